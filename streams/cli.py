"""``radlake streams run`` — the study completion worker (faust), with ``/metrics`` on its web port."""

from __future__ import annotations

import argparse
import logging
import sys
from datetime import timedelta

from streams.config import StreamsConfig
from streams.errors import StreamsError


def config_from(args: argparse.Namespace) -> StreamsConfig:
    from infra.components.kafka import Kafka
    from infra.components.registry import SchemaRegistry
    from radlake.settings import Settings

    settings = Settings()
    defaults = StreamsConfig(bootstrap="", registry_url="", data_dir=settings.state_dir / "streams")
    overrides = {k: v for k, v in vars(args).items()
                 if k in StreamsConfig.__dataclass_fields__ and v not in (None, "")}
    if args.quiet_period_s is not None:
        overrides["quiet_period"] = timedelta(seconds=args.quiet_period_s)
    return StreamsConfig(**{
        **vars(defaults),
        "bootstrap": args.bootstrap or Kafka(settings).address,
        "registry_url": args.registry_url or SchemaRegistry(settings).address,
        "data_dir": settings.state_dir / "streams" / (args.app_id or defaults.app_id),
        **overrides,
    })


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="radlake streams", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run the worker until interrupted")
    run.add_argument("--bootstrap", default="", help="default: the stack's Kafka")
    run.add_argument("--registry-url", default="", help="default: the stack's schema registry")
    run.add_argument("--app-id", help="consumer group, transactional id and table prefix (default radlake-streams)")
    run.add_argument("--quiet-period-s", type=float, help="complete a study this long after its last instance")
    run.add_argument("--tick-interval-s", type=float, help="how often the quiet period is checked")
    run.add_argument("--stall-s", type=float,
                     help="read back input faust fetched but did not deliver for this long (default 15 s)")
    run.add_argument("--web-port", type=int, help="port of /metrics (default 6066)")
    run.add_argument("--partitions", type=int, help="partitions of the topics the worker creates (default 3)")
    run.add_argument("--processing-guarantee", choices=["exactly_once", "at_least_once"])
    run.add_argument("--session-timeout-s", type=float)
    run.add_argument("--commit-interval-s", type=float, help="transaction commit interval (default 1 s)")
    for name in ("instance", "manifest", "completed", "quarantined", "dead-letter"):
        run.add_argument(f"--{name}-topic", help="topic name (default: the lake_schemas contract's)")
    run.add_argument("--log-level", default="info")
    args = parser.parse_args(argv)

    from streams.app import build_app, check_contracts, ensure_topics

    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        config = config_from(args)
        config.data_dir.mkdir(parents=True, exist_ok=True)
        check_contracts(config)
        ensure_topics(config)
        app, _ = build_app(config)
    except StreamsError as err:
        print(f"radlake streams: {err}", file=sys.stderr)
        return 1
    print(f"radlake streams: {config.app_id} on {config.bootstrap}, metrics on "
          f"http://{config.web_host}:{config.web_port}/metrics", file=sys.stderr)
    from faust.worker import Worker

    worker = Worker(app, loglevel=args.log_level, quiet=True, redirect_stdouts=False)
    try:
        worker.execute_from_commandline()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0
