"""``radlake streams run`` — the study completion worker, with ``/metrics`` on its web port.

The command creates the worker's topics and grants its principal (``radlake-streams``) its rights as the
platform administrator; the worker itself speaks to Kafka as ``radlake-streams`` only. ``/metrics`` is HTTPS
with a certificate of the platform CA (``<state>/streams/tls/metrics.*``, renewed by the command when two
thirds of its life are gone) and answers only clients that show a certificate of the same CA. While it runs, the
worker is announced to Prometheus in ``<state>/monitoring/targets/streams-APP-INSTANCE.json`` (file_sd), removed
when it stops: a worker killed with -9 leaves it behind, and Prometheus's ScrapeTargetDown alert says so until
the worker runs again or ``stack up monitoring`` removes the announcements of processes that are gone.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from dataclasses import replace
from datetime import timedelta

from apps._common import command
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap, registry_url
from platform_layer.identities import use_stack_identity
from platform_layer.metrics_endpoint import announced, metrics_certificate
from platform_layer.principals import KAFKA_STREAMS
from platform_layer.settings import Settings
from streams.config import StreamsConfig
from streams.worker import StudyCompletionWorker, check_contracts, ensure_topics, rights


def config_from(args: argparse.Namespace, settings: Settings) -> StreamsConfig:
    overrides = {k: v for k, v in vars(args).items()
                 if k in StreamsConfig.__dataclass_fields__ and v not in (None, "")}
    if args.quiet_period_s is not None:
        overrides["quiet_period"] = timedelta(seconds=args.quiet_period_s)
    return StreamsConfig(**{
        "bootstrap": args.bootstrap or kafka_bootstrap(settings),
        "registry_url": args.registry_url or registry_url(settings),
        **{k: v for k, v in overrides.items() if k not in ("bootstrap", "registry_url")},
    })


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake streams", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="run the worker until interrupted")
    run.add_argument("--bootstrap", default="", help="default: the stack's Kafka")
    run.add_argument("--registry-url", default="", help="default: the stack's schema registry")
    run.add_argument("--app-id", help="consumer group, transactional id and state topic prefix "
                                      "(default radlake-streams)")
    run.add_argument("--instance-id", help="distinct per worker of one app id (default 0)")
    run.add_argument("--quiet-period-s", type=float, help="complete a study this long after its last instance")
    run.add_argument("--tick-interval-s", type=float, help="how often the quiet period is checked (default 0.25)")
    run.add_argument("--commit-interval-s", type=float, help="transaction commit interval (default 0.5 s)")
    run.add_argument("--no-commit-when-drained", dest="commit_when_drained", action="store_const", const=False,
                     help="commit only at the commit interval, not as soon as the input is drained")
    run.add_argument("--batch-size", type=int, help="messages per consume call (default 2000)")
    run.add_argument("--web-port", type=int, help="port of /metrics (default 6066)")
    run.add_argument("--partitions", type=int, help="partitions of the topics the worker creates (default 3)")
    run.add_argument("--session-timeout-s", type=float)
    for name in ("instance", "manifest", "completed", "quarantined", "dead-letter"):
        run.add_argument(f"--{name}-topic", help="topic name (default: the lake_schemas contract's)")
    run.add_argument("--log-level", default="info")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    tls = metrics_certificate(settings, "streams")
    config = replace(config_from(args, settings), metrics_certificate=tls.certificate, metrics_key=tls.key,
                     metrics_client_ca=tls.client_ca)
    check_contracts(config)
    ensure_topics(config)  # as the platform administrator, who then gives the worker its own principal
    kafka.grant(config.bootstrap, KAFKA_STREAMS, rights(config))
    use_stack_identity(settings, KAFKA_STREAMS)
    worker = StudyCompletionWorker(config)
    print(f"radlake streams: {config.app_id} on {config.bootstrap}, metrics on "
          f"https://{config.web_host}:{config.web_port}/metrics (client certificate required)", file=sys.stderr)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop())
    with announced(settings, "streams", f"{config.app_id}-{config.instance_id}",
                   f"{config.web_host}:{config.web_port}",
                   {"app_id": config.app_id, "instance_id": config.instance_id}):
        worker.run()
    return 0


main = command("radlake streams", _parser, _run,
               console_level=lambda args: logging.getLevelName(args.log_level.upper()))
