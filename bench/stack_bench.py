"""Cold and warm `stack up` time per component, and resident memory at idle.

Cold: an empty download cache and an empty state dir (what a fresh machine sees; downloads from
Maven Central / PyPI-shipped binaries included — the pip install of the venv itself is not counted).
Warm: the same cache and state, after `stack down`. Memory: RSS of each component's process tree after
an idle period.

It starts and stops its own copy of each component (ports 25xxx, a temporary state dir and, unless
``--keep-cache``, a temporary download cache), so a running stack keeps running, but the copy competes
with it for CPU, memory and bandwidth for minutes: ``bench/run_all.py`` runs it only with ``--with-stack``.

    .venv/bin/python bench/stack_bench.py [--components vault keycloak kafka registry nifi spark] [--idle 30]
        [--keep-cache] [--quick] [--write-docs] [--summary FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section  # noqa: E402
from infra import process, stack  # noqa: E402
from platform_layer.settings import Settings  # noqa: E402

IDLE_TARGET_GIB = 6.0  # the whole stack's idle memory must leave most of a 24 GiB machine to the work


def _settings(root: Path, cache: Path) -> Settings:
    return Settings(state_dir=root / "state", cache_dir=cache, vault_port=25200, kafka_port=25092,
                    kafka_controller_port=25093, kafka_broker_port=25094, schema_registry_port=25081, nifi_port=25080,
                    keycloak_port=25443, gateway_port=25815, results_bridge_port=25820, dimse_port=25112,
                    prometheus_port=25790, alertmanager_port=25793, lag_exporter_port=25794,
                    alert_receiver_port=25795)


def _timed_up(settings: Settings, names: list[str]) -> dict[str, float]:
    times = {}
    for name in names:
        started = time.monotonic()
        stack.component(name, settings).start()
        times[name] = time.monotonic() - started
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0],
        epilog="It starts and stops a second copy of every component on its own ports (minutes; the cold start "
               "downloads ~1 GB unless --keep-cache); bench/run_all.py runs it only with --with-stack.")
    parser.add_argument("--components", nargs="+", default=list(stack.DEFAULT_UP))
    parser.add_argument("--idle", type=float, default=30.0, help="seconds to idle before reading RSS")
    parser.add_argument("--keep-cache", action="store_true", help="measure with the existing ~/.cache/radlake")
    parser.add_argument("--quick", action="store_true", help="--keep-cache (no downloads) and --idle 5")
    parser.add_argument("--write-docs", action="store_true", help="replace the 'stack' section of docs/benchmarks.md")
    parser.add_argument("--summary", type=Path, help="append the headline ratios to this file (JSON lines)")
    args = parser.parse_args(argv)
    if args.quick:
        args.keep_cache, args.idle = True, min(args.idle, 5.0)
    load_start = os.getloadavg()
    names = stack.selected(args.components)

    with tempfile.TemporaryDirectory(prefix="radlake-stack-bench-") as tmp:
        root = Path(tmp)
        cache = Settings().cache_dir if args.keep_cache else root / "cache"
        settings = _settings(root, cache)
        try:
            cold = _timed_up(settings, names)
            time.sleep(args.idle)
            rss = {s.name: s.rss_bytes for s in stack.status(settings, names)}
            stack.down(settings, names)
            assert not any(process.port_open(p) for p in (25200, 25092, 25081, 25080, 25443))
            warm = _timed_up(settings, names)
        finally:
            stack.down(settings, names)
        cache_mib = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20 if not args.keep_cache else 0
        if not args.keep_cache:
            shutil.rmtree(cache, ignore_errors=True)

    load_end = os.getloadavg()
    rows = ["| component | cold start (s, downloads incl.) | warm start (s) | RSS at idle (MiB) |", "| --- | ---: | ---: | ---: |"]
    for name in names:
        rows.append(f"| {name} | {cold[name]:.1f} | {warm[name]:.1f} | {rss.get(name, 0) / 2**20:.0f} |")
    total_rss = sum(rss.values()) / 2**30
    rows.append(f"| **all** | {sum(cold.values()):.1f} | {sum(warm.values()):.1f} | {sum(rss.values()) / 2**20:.0f} |")
    versions = (f"Keycloak {settings.keycloak_version}, Kafka {settings.kafka_version}, Apicurio Registry "
                f"{settings.apicurio_version}, NiFi "
                f"{settings.nifi_version}, Delta {settings.delta_version}")
    body = (
        f"Load average {load_start[0]:.2f}/{load_start[1]:.2f}/{load_start[2]:.2f} at the start, {load_end[0]:.2f}/"
        f"{load_end[1]:.2f}/{load_end[2]:.2f} at the end (1/5/15 min, {os.cpu_count()} cores). {versions}.\n\n"
        + "\n".join(rows) + (
            f"\n\nIdle memory of the whole stack: **{total_rss:.2f} GiB** (target ≤ {IDLE_TARGET_GIB:.0f} GiB of the "
            f"machine's 24 GiB). Cold start began with an {'existing' if args.keep_cache else 'empty'} download cache"
            + (f" and downloaded {cache_mib:.0f} MiB" if cache_mib else "")
            + ". Spark has no server in local mode: its row is the Ivy resolution of the Delta and Kafka connector "
            "jars plus a Delta write/read round trip in a fresh JVM (cold), and a no-op once probed (warm); its RSS "
            "is 0 between jobs."))
    print(body)
    if args.summary:
        summary = [{"benchmark": "stack", "measure": f"idle RSS of the stack / {IDLE_TARGET_GIB:.0f} GiB target",
                    "ratio": round(total_rss / IDLE_TARGET_GIB, 4), "goal": "<= 1"},
                   {"benchmark": "stack", "measure": "warm start / cold start, all components",
                    "ratio": round(sum(warm.values()) / max(sum(cold.values()), 1e-9), 4), "goal": ""}]
        with args.summary.open("a") as out:
            for row in summary:
                out.write(json.dumps(row) + "\n")
    if args.write_docs:
        command = shlex.join(["python", "bench/stack_bench.py", *(argv if argv is not None else sys.argv[1:])])
        write_section("stack", "Local stack: start-up time and idle memory", command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
