"""The governed read path against reading the same Delta version directly, the audit's cost per read, and
the time to erase one patient.

    python -m bench.governance_bench [--quick] [--rows N] [--repeat R] [--write-docs] [--summary FILE]

Needs the stack's Vault and Keycloak (``radlake stack up``): the gateway verifies real tokens. The benchmark
writes a silver ``studies`` table of two projects into a lake of its own (N rows, half per project), makes a
dataset of project A (all its rows, all columns: a scan), grants it to the platform's service account, and
starts a second gateway process (``radlake gateway serve``) on that lake, constructed once before timing.

- **direct**: what a data scientist with file access would run: delta-rs opens the same pinned version,
  DuckDB runs the same query (project A, the same filter) into an Arrow table, in this process.
- **gateway**: the Flight client's ``do_get`` of the dataset, to the last batch: token verification, grant
  check, the same read in the gateway, the audit row, TLS and gRPC.

Both run alternately R times after one warm-up each; medians are compared (rows/s). The audit's append is
timed alone on the same lake (the gateway's read includes one).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pyarrow as pa
from deltalake import DeltaTable, write_deltalake

from bench.report import write_section
from infra.component import radlake_process
from infra.components.gateway import Gateway
from lake_schemas.tables import SILVER_STUDIES
from platform_layer import audit, governance
from platform_layer.identity_provider import ServiceToken
from platform_layer.lake_access import LakeGatewayClient
from platform_layer.realm import PLATFORM_CLIENT, service_client
from platform_layer.settings import Settings
from spark_jobs.erasure import Key, erase, find

GOAL = 0.8


def _silver(settings: Settings, rows: int) -> None:
    path = governance.lake_table_path(settings, "silver/studies")
    schema = governance.arrow_schema(SILVER_STUDIES)
    chunk = 50_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        batch = {
            "provider": ["h1"] * n, "providers": [["h1"]] * n,
            "project": ["bench-a" if (start + i) % 2 == 0 else "bench-b" for i in range(n)],
            "pseudo_patient_id": [f"p-{(start + i) // 3}" for i in range(n)],
            "study_uid": [f"2.25.{start + i}" for i in range(n)], "modalities": [["CT"]] * n,
            "series_count": [1] * n, "instance_count": [(start + i) % 300 for i in range(n)],
            "reconstructable_series": [1] * n, "status": ["complete"] * n, "study_version": [1] * n,
            "completed_at": [datetime(2026, 1, 1, tzinfo=UTC)] * n, "counts_match": [True] * n,
        }
        table = pa.Table.from_pydict({name: batch.get(name, [None] * n) for name in schema.names}, schema=schema)
        write_deltalake(path, table, mode="append")


def _direct(settings: Settings, item: governance.Dataset) -> int:
    source = DeltaTable(governance.lake_table_path(settings, item.source_table), version=item.source_version)
    con = duckdb.connect()
    con.register("studies", source.to_pyarrow_dataset())
    rows = con.sql(f"SELECT * FROM studies WHERE project = '{item.project}' AND ({item.filter})").to_arrow_table()
    con.close()
    return rows.num_rows


def _wait_for_gateway(settings: Settings, process: subprocess.Popen, timeout_s: float = 60.0) -> None:
    """Until the second gateway answers as the stack's health check expects (unauthenticated is healthy)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the benchmark's gateway exited with {process.returncode}")
        if Gateway(settings).responding():
            return
        time.sleep(0.3)
    raise RuntimeError("the benchmark's gateway did not answer within a minute")


def _erasure(settings: Settings, work: Path, rows: int) -> tuple[float, int]:
    """Seconds to erase one patient (50 instances, their objects) from a bronze-shaped table of ``rows`` rows
    written in 20 commits, everything included: find, delete, purge of the history, object deletion, scan."""
    lake = str(work / "erasure-lake")
    objects = work / "erasure-objects"
    objects.mkdir()
    per_commit = rows // 20
    for commit in range(20):
        batch = []
        for i in range(commit * per_commit, (commit + 1) * per_commit):
            patient = "RL-ERASED" if i % (rows // 50) == 0 else f"RL-{i // 40:08d}"
            uri = ""
            if patient == "RL-ERASED":
                (objects / f"{i}.dcm").write_bytes(b"DICM")
                uri = f"file://{objects / f'{i}.dcm'}"
            batch.append({"pseudo_patient_id": patient, "study_uid": f"2.25.{i // 40}.{patient}",
                          "sop_instance_uid": f"2.25.{i}", "object_uri": uri or f"file:///nowhere/{i}.dcm",
                          "modality": "CT", "size_bytes": 524_288})
        write_deltalake(f"{lake}/bronze/instances", pa.Table.from_pylist(batch), mode="append")
    started = time.perf_counter()
    studies, found = find(lake, Key.patient("RL-ERASED"))
    report = erase(lake, Key.patient("RL-ERASED"), studies, found)
    seconds = time.perf_counter() - started
    assert report.complete and report.objects_deleted == 50, report.as_text()
    return seconds, sum(t.rows_deleted for t in report.tables)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200,000 rows, 5 repeats (full: 1,000,000, 9)")
    parser.add_argument("--rows", type=int)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--summary", type=Path)
    args = parser.parse_args(argv)
    rows = args.rows or (200_000 if args.quick else 1_000_000)
    repeat = args.repeat or (5 if args.quick else 9)

    stack = Settings()
    work = Path(tempfile.mkdtemp(prefix="radlake-governance-bench-"))
    settings = stack.model_copy(update={"lake_uri": str(work / "lake"), "gateway_port": stack.gateway_port + 1})
    _silver(settings, rows)
    item = governance.create(settings, "bench-scan", "bench-a", "silver/studies", "instance_count >= 0",
                             created_by="bench")
    token = ServiceToken(service_client(settings, PLATFORM_CLIENT))
    username = f"service-account-{PLATFORM_CLIENT}"
    governance.grant(settings, username, item.dataset, datetime.now(UTC) + timedelta(hours=2), granted_by="bench")

    argv, environment = radlake_process(settings, "gateway", "serve")
    gateway = subprocess.Popen(argv, env={**os.environ, **environment},  # noqa: S603
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_for_gateway(settings, gateway)
        with LakeGatewayClient(settings, token=token) as lake:
            expected = _direct(settings, item)
            assert lake.read(item.dataset).num_rows == expected, "the gateway and the direct read disagree"
            direct_s, gateway_s = [], []
            for _ in range(repeat):
                started = time.perf_counter()
                _direct(settings, item)
                direct_s.append(time.perf_counter() - started)
                started = time.perf_counter()
                lake.read(item.dataset)
                gateway_s.append(time.perf_counter() - started)
    finally:
        gateway.terminate()
        gateway.wait(timeout=30)

    appends = 50 if args.quick else 200
    started = time.perf_counter()
    for i in range(appends):
        audit.append(settings, "bench.append", f"append {i}", actor="bench")
    append_ms = (time.perf_counter() - started) / appends * 1000
    assert audit.verify(settings).intact

    erasure_rows = 20_000 if args.quick else 100_000
    erase_s, erased = _erasure(settings, work, erasure_rows)

    direct_rate, gateway_rate = expected / statistics.median(direct_s), expected / statistics.median(gateway_s)
    ratio = gateway_rate / direct_rate
    read_ms = statistics.median(gateway_s) * 1000
    print(f"scan of {expected:,} rows: direct {direct_rate:,.0f} rows/s, gateway {gateway_rate:,.0f} rows/s "
          f"({ratio:.2f}); audit append {append_ms:.1f} ms ({append_ms / read_ms:.1%} of a read); "
          f"erasure of {erased} rows among {erasure_rows:,}: {erase_s:.2f} s")

    if args.summary:
        with args.summary.open("a") as out:
            out.write(json.dumps({"benchmark": "governance", "measure": "gateway scan / direct Delta read",
                                  "ratio": round(ratio, 3), "goal": f">= {GOAL}"}) + "\n")
    if args.write_docs:
        load = os.getloadavg()[0]
        body = f"""
Load average at start of the timed part: {load:.2f}. pyarrow {pa.__version__}, DuckDB {duckdb.__version__}.
A silver `studies` table of {rows:,} rows (two projects, half each) in a lake of the benchmark's own; the
dataset is project A with a filter every row passes (a scan: {expected:,} rows, all {len(SILVER_STUDIES.columns)}
columns). Medians of {repeat} alternating runs after one warm-up each; the gateway is a second `radlake gateway
serve` process, started once before timing, reached over TLS with the platform service account's real
Keycloak token.

| path | median s | rows/s | vs direct |
| --- | ---: | ---: | ---: |
| direct: delta-rs + DuckDB, same version and query, in-process | {statistics.median(direct_s):.3f} | {direct_rate:,.0f} | 1.00 |
| lake gateway: token check, grant check, same read, audit row, Flight over TLS | {statistics.median(gateway_s):.3f} | {gateway_rate:,.0f} | **{ratio:.2f}** (goal ≥ {GOAL}) |

Audit append (delta-rs commit under the lock, head kept in the state dir): **{append_ms:.1f} ms** per row
({appends} appends, chain verified after), {append_ms / read_ms:.1%} of one gateway read of this size.

Erasure of one patient ({erased} instance rows and their 50 objects) from a bronze-shaped table of
{erasure_rows:,} rows written in 20 commits: **{erase_s:.2f} s**, everything included (find, delete, purge of the
table's history, objects, and the scan that reads every remaining file of the lake).
"""
        write_section("governance", "Governance: the lake gateway against a direct read, and the audit's cost",
                      f"python -m bench.governance_bench{' --quick' if args.quick else ''} --write-docs", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
