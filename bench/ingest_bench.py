"""Provider ingestion side by side: the whole edge path vs ``radlake deid`` alone, same data, same run.

    .venv/bin/python bench/ingest_bench.py [--instances 200] [--size 512] [--per-request 50] [--quick] [--dimse]
        [--write-docs] [--summary FILE] [--json FILE]

Needs the stack (``radlake stack up vault keycloak kafka registry nifi``). Generates a CT set (``--size`` x ``--size``
int16 pixels, typical CT header PHI), then:

1. ``radlake deid`` (in process, Vault Transit pseudonyms, ``--workers 1`` and ``--workers 2``): files in,
   de-identified files out;
2. the edge path: ``radlake provider add`` (a fresh edge), ``radlake upload`` of the same folder
   (manifests, STOW-RS requests of ``--per-request`` instances) → NiFi HandleHttpRequest → IngestDicom
   (radlake's engine, object store, registry-validated Kafka publish, acknowledgements) →
   HandleHttpResponse, timed until the last ``instance received`` event is readable on its topic.

3. with ``--dimse``, the DIMSE path: another fresh provider edge with its Storage SCP (``radlake provider dimse``),
   dcmtk's ``storescu`` sending the same files in one association (each C-STORE answered after the edge stored
   and announced it), timed until the last ``instance received`` event is readable on its topic.

Reports instances/s and MB/s of each, the ratio, and where the edge's time goes (de-identification +
store and publish, as measured inside the processor; the rest is HTTP, NiFi queues and the client).
``--write-docs`` replaces the ``ingest`` section of docs/benchmarks.md; ``--summary`` appends the edge's
throughput over each ``radlake deid`` run as JSON lines.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from importlib.metadata import version
from pathlib import Path

import numpy as np

# Run as ``python bench/ingest_bench.py``: the repository root is not on the path then.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from apps import _dimse  # noqa: E402
from apps.deid import main as deid_main  # noqa: E402
from bench.report import write_section  # noqa: E402
from infra.downloads import fetch_debian_packages  # noqa: E402
from lake_schemas.topics import INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST  # noqa: E402
from nifi import dimse, providers  # noqa: E402
from nifi.edge.client import Uploader, plan, wait_until_listening  # noqa: E402
from nifi.edge.reconcile import read_provider_events  # noqa: E402
from platform_layer import kafka  # noqa: E402
from platform_layer.endpoints import kafka_bootstrap, registry_url
from platform_layer.identities import use_stack_identity  # noqa: E402
from platform_layer.kafka import TopicSpec  # noqa: E402
from platform_layer.registration import register, schema_admin  # noqa: E402
from platform_layer.settings import Settings  # noqa: E402
from platform_layer.state import lock_down  # noqa: E402
from radlake.synthetic import phi_dicom  # noqa: E402

PER_SERIES = 100  # instances per generated series (one patient each), as in the de-identification bench
QUICK = {"instances": 150, "size": 512, "per_request": 50}


def generate(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` CT instances of ``size`` x ``size`` with the identifying attributes a CT header usually has."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, count, PER_SERIES):
        series = start // PER_SERIES + 1
        patient = phi_dicom.Patient(patient_id=f"MRN{48213377 + series}")
        base = phi_dicom.phantom(size, series * 1000 + 1)
        for i in range(min(PER_SERIES, count - start)):
            ds = phi_dicom.ct_instance(i, patient=patient, study=series, series=1, size=size,
                                       pixels=np.roll(base, i, axis=0), only=phi_dicom.TYPICAL_CT_PHI)
            path = folder / f"s{series:03d}_{i:04d}.dcm"
            path.write_bytes(phi_dicom.to_bytes(ds))
            paths.append(path)
    return paths


def deid_leg(folder: Path, out: Path, project: str, workers: int) -> float:
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        status = deid_main([str(folder), "--out", str(out), "--project", project, "--provider", "bench",
                            "--workers", str(workers), "--no-progress"])
    if status != 0:
        raise SystemExit(f"radlake deid failed ({status})")
    return time.perf_counter() - started


def edge_leg(settings: Settings, folder: Path, journal_path: Path, project: str, per_request: int) -> dict:
    run = uuid.uuid4().hex[:6]
    provider = f"bench-{run}"
    names = {"instance_topic": f"bench.ingest.instances.{run}", "quarantine_topic": f"bench.ingest.quarantined.{run}",
             "manifest_topic": f"bench.ingest.manifests.{run}"}
    contracts = (INSTANCE_RECEIVED.with_name(names["instance_topic"]), QUARANTINED.with_name(names["quarantine_topic"]),
                 STUDY_MANIFEST.with_name(names["manifest_topic"]))
    bootstrap, registry = kafka_bootstrap(settings), registry_url(settings)
    kafka.ensure_topics(bootstrap, [TopicSpec(t.name, 3) for t in contracts])
    register(schema_admin(Settings(), registry), contracts)
    edge = providers.add(settings, provider, project, topics=names)
    try:
        verify = providers.edge_verification(settings)  # the edge's HTTPS certificate, against the platform CA
        wait_until_listening(edge.url, verify=verify)
        the_plan = plan([folder], max_instances=per_request)
        uploader = Uploader(edge.url, providers.endpoint_token(settings, provider), journal_path, verify=verify,
                            on_progress=lambda line: print(f"  {line}", file=sys.stderr))
        started = time.perf_counter()
        try:
            records = uploader.upload(the_plan, hashlib.sha256(f"bench-{run}".encode()).hexdigest()[:32])
        finally:
            uploader.close()
        acknowledged = time.perf_counter()
        accepted = sum(1 for r in records for o in r["outcomes"] if o["status"] == "accepted")
        while len(read_provider_events(bootstrap, registry, contracts[0], provider)) < accepted:
            time.sleep(0.2)
        on_topic = time.perf_counter()
        timings = [r.get("timings", {}) for r in records]
        return {"seconds": on_topic - started, "seconds_acknowledged": acknowledged - started, "accepted": accepted,
                "requests": len(records),
                "deid_store_s": sum(t.get("deid_store_s", 0.0) for t in timings),
                "publish_s": sum(t.get("publish_s", 0.0) for t in timings),
                "request_s": sum(t.get("request_s", 0.0) for t in timings)}
    finally:
        providers.remove(settings, provider)


def dimse_leg(settings: Settings, folder: Path, project: str, associations: int = 1) -> dict:
    """storescu → the provider's Storage SCP → its edge, until the last event is on the topic; ``associations``
    storescu processes at once, each sending its share of the files in one association."""
    tree = fetch_debian_packages(settings.cache_dir, "dcmtk", ["dcmtk", "libdcmtk17", "libwrap0"],
                                 ["storescu", "echoscu"])
    run = uuid.uuid4().hex[:6]
    provider = f"bench-dimse-{run}"
    names = {"instance_topic": f"bench.dimse.instances.{run}", "quarantine_topic": f"bench.dimse.quarantined.{run}",
             "manifest_topic": f"bench.dimse.manifests.{run}"}
    contracts = (INSTANCE_RECEIVED.with_name(names["instance_topic"]), QUARANTINED.with_name(names["quarantine_topic"]),
                 STUDY_MANIFEST.with_name(names["manifest_topic"]))
    bootstrap, registry = kafka_bootstrap(settings), registry_url(settings)
    kafka.ensure_topics(bootstrap, [TopicSpec(t.name, 3) for t in contracts])
    register(schema_admin(Settings(), registry), contracts)
    providers.add(settings, provider, f"{project}-dimse", topics=names)
    try:
        config = dimse.configure(settings, provider, ae_title="RADLAKE_BENCH", allow_ae_titles=["BENCH_PACS"])
        _dimse.start(settings, config, restart=True)
        files = sorted(str(p) for p in folder.iterdir())
        env = {**tree.env(), "DCMDICTPATH": str(tree.root / "usr" / "share" / "libdcmtk17" / "dicom.dic")}
        started = time.perf_counter()
        senders = [subprocess.Popen([str(tree.program("storescu")), "-v", "-aet", "BENCH_PACS", "-aec", "RADLAKE_BENCH",
                                     config.bind_address, str(config.port), *files[k::associations]], env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                   for k in range(associations)]
        outputs = [(sender.communicate()[0], sender.returncode) for sender in senders]
        acknowledged = time.perf_counter()
        successes = sum(out.count("Received Store Response (Success)") for out, _ in outputs)
        if any(code != 0 for _, code in outputs) or successes != len(files):
            raise SystemExit(f"storescu: exit {[code for _, code in outputs]}, {successes}/{len(files)} Success")
        while len(read_provider_events(bootstrap, registry, contracts[0], provider)) < successes:
            time.sleep(0.2)
        return {"seconds": time.perf_counter() - started, "seconds_acknowledged": acknowledged - started,
                "accepted": successes}
    finally:
        _dimse.stop(settings, provider)
        dimse.forget(settings, provider)
        providers.remove(settings, provider)


def summary_rows(results: dict) -> list[dict]:
    """The edge's throughput over ``radlake deid``'s on the same files (same instance count, so a time ratio)."""
    edge_s = results["edge"]["seconds"]
    return [
        {"benchmark": "ingest", "measure": "edge (upload -> NiFi -> event on topic) / radlake deid --workers 1, "
                                           "instances/s", "ratio": round(results["deid_w1"] / edge_s, 4), "goal": ""},
        {"benchmark": "ingest", "measure": "edge (upload -> NiFi -> event on topic) / radlake deid --workers 2, "
                                           "instances/s", "ratio": round(results["deid_w2"] / edge_s, 4), "goal": ""},
    ]


def body(args: argparse.Namespace, settings: Settings, results: dict, megabytes: float,
         load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    n, edge = args.instances, results["edge"]
    rows = [
        ("`radlake deid --workers 1`", results["deid_w1"]),
        ("`radlake deid --workers 2`", results["deid_w2"]),
        ("edge: `radlake upload` → NiFi → event on topic", edge["seconds"]),
    ]
    if "dimse" in results:
        rows.append(("DIMSE: `storescu` → Storage SCP → edge (one instance per request) → event on topic",
                     results["dimse"]["seconds"]))
    if "dimse_parallel" in results:
        rows.append((f"DIMSE, {args.dimse_associations} associations at once", results["dimse_parallel"]["seconds"]))
    table = ["| path | seconds | instances/s | MB/s | vs deid --workers 2 | vs deid --workers 1 |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for label, seconds in rows:
        table.append(f"| {label} | {seconds:.1f} | {n / seconds:.1f} | {megabytes / seconds:.1f} | "
                     f"{results['deid_w2'] / seconds:.0%} | {results['deid_w1'] / seconds:.0%} |")
    other = max(edge["request_s"] - edge["deid_store_s"] - edge["publish_s"], 0.0)
    breakdown = (
        f"Where the edge's time goes (sums over {edge['requests']} requests, measured inside the processor and by "
        f"the client): de-identification + object store **{edge['deid_store_s']:.1f} s**, Kafka publish with "
        f"acknowledgements **{edge['publish_s']:.1f} s**, HTTP + NiFi (request body into the content repository, "
        f"queue, Python bridge, response) **{other:.1f} s**; last acknowledgement → last event readable "
        f"{edge['seconds'] - edge['seconds_acknowledged']:.1f} s; the rest (manifests, client reading files) "
        f"{max(edge['seconds'] - edge['request_s'], 0.0):.1f} s."
    )
    (start, end) = load
    versions = (f"NiFi {settings.nifi_version}, Kafka {settings.kafka_version}, pydicom {version('pydicom')}, "
                f"confluent-kafka {version('confluent-kafka')}, Python {platform.python_version()}")
    return (
        f"Load average {start[0]:.2f}/{start[1]:.2f}/{start[2]:.2f} at the start, {end[0]:.2f}/{end[1]:.2f}/"
        f"{end[2]:.2f} at the end (1/5/15 min, {os.cpu_count()} cores). {versions}.\n\n"
        f"{n} generated CT instances ({args.size}x{args.size}, typical CT header PHI), {megabytes:.0f} MB, "
        f"pseudonyms from the stack's Vault Transit in both paths; {args.per_request} instances per STOW-RS request; "
        f"{edge['accepted']} accepted at the edge.\n\n" + "\n".join(table) + "\n\n" + breakdown + "\n\n"
        "A provider's edge runs one IngestDicom task in a Python process of its own (one per edge processor, "
        "`RADLAKE_NIFI_PYTHON_PROCESSES`), so one provider's uploads use one core for "
        "de-identification while `radlake deid --workers 2` uses two; the per-core comparison is the "
        "`--workers 1` column."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instances", type=int, default=200)
    parser.add_argument("--size", type=int, default=512, help="rows = columns of the generated CT")
    parser.add_argument("--per-request", type=int, default=50, help="instances per STOW-RS request")
    parser.add_argument("--dimse", action="store_true",
                        help="also send the files with dcmtk's storescu through a provider's Storage SCP")
    parser.add_argument("--dimse-associations", type=int, default=4,
                        help="with --dimse, also send with this many storescu associations at once")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['instances']} instances of {QUICK['size']}x{QUICK['size']}, "
                             f"{QUICK['per_request']} per request")
    # --write is the flag's earlier name
    parser.add_argument("--write-docs", "--write", dest="write_docs", action="store_true",
                        help="replace the 'ingest' section of docs/benchmarks.md")
    parser.add_argument("--summary", type=Path, help="append the headline ratios to this file (JSON lines)")
    parser.add_argument("--json", type=Path, help="write the full results here")
    args = parser.parse_args(argv)
    if args.quick:
        args.instances, args.size, args.per_request = QUICK["instances"], QUICK["size"], QUICK["per_request"]
    settings = Settings()
    lock_down(settings)  # what the bench writes under the state dir is private, as the commands' is
    use_stack_identity(settings)  # as the platform administrator, like the commands it stands for
    project = f"bench-ingest-{uuid.uuid4().hex[:6]}"
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="radlake-ingest-bench-") as tmp:
        folder = Path(tmp) / "in"
        print(f"generating {args.instances} CT instances ({args.size}x{args.size})", file=sys.stderr)
        paths = generate(folder, args.instances, args.size)
        megabytes = sum(p.stat().st_size for p in paths) / 1e6
        results: dict = {}
        for workers in (1, 2):
            print(f"radlake deid --workers {workers}", file=sys.stderr)
            results[f"deid_w{workers}"] = deid_leg(folder, Path(tmp) / f"out{workers}", project, workers)
        print("edge path: provider add, radlake upload, until the last event is on the topic", file=sys.stderr)
        results["edge"] = edge_leg(settings, folder, Path(tmp) / "journal.jsonl", project, args.per_request)
        if args.dimse:
            print("DIMSE path: provider add, provider dimse, storescu, until the last event is on the topic",
                  file=sys.stderr)
            results["dimse"] = dimse_leg(settings, folder, project)
            if args.dimse_associations > 1:
                results["dimse_parallel"] = dimse_leg(settings, folder, f"{project}-p", args.dimse_associations)
    load_end = os.getloadavg()
    text = body(args, settings, results, megabytes, (load_start, load_end))
    print(text)
    if args.json:
        args.json.write_text(json.dumps({"instances": args.instances, "size": args.size, "megabytes": megabytes,
                                         **results}, indent=2))
    if args.summary:
        with args.summary.open("a") as out:
            for row in summary_rows(results):
                out.write(json.dumps(row) + "\n")
    if args.write_docs:
        command = shlex.join(["python", "bench/ingest_bench.py", *(sys.argv[1:] if argv is None else argv)])
        write_section("ingest", "Provider ingestion: edge path vs radlake deid (issue 5)", command, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
