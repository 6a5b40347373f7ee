"""``radlake monitoring exporter | receiver`` — the two radlake processes of the monitoring stack.

``exporter`` serves consumer lag, the state dir's disk and certificate expiry on ``/metrics``; it grants its
principal (``radlake-monitoring``: describe topics and groups, nothing else) as the platform administrator and
then speaks to Kafka as that principal only. ``receiver`` is Alertmanager's webhook: each alert becomes a line
of ``<state>/monitoring/alerts.jsonl``. Both are HTTPS with a certificate of the platform CA
(``<state>/monitoring/tls/``) and require clients to show one of the same CA. ``radlake stack up monitoring``
starts them; run by hand they serve until interrupted.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from apps._common import command
from monitoring.exporter import ServerTLS, serve
from monitoring.receiver import server
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap, monitoring_dir
from platform_layer.identities import use_stack_identity
from platform_layer.principals import KAFKA_MONITORING
from platform_layer.settings import Settings
from platform_layer.tls import ca_file, ensure_certificate
from platform_layer.vault import admin_client

EXPORTER_NAME = "lag-exporter.radlake.local"
RECEIVER_NAME = "alert-receiver.radlake.local"


def monitoring_rights() -> kafka.Rights:
    return kafka.Rights(describe_all=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake monitoring", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("exporter", help="serve consumer lag, disk and certificate expiry on /metrics")
    sub.add_parser("receiver", help="Alertmanager's webhook: append each alert to alerts.jsonl")
    return parser


def _tls(settings: Settings, stem: str, name: str) -> ServerTLS:
    files = ensure_certificate(admin_client(settings), monitoring_dir(settings) / "tls", stem, name)
    return ServerTLS(str(files.certificate), str(files.key), str(ca_file(settings)))


def _wait_for_signal() -> None:
    stopped = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "exporter":
        tls = _tls(settings, "lag-exporter", EXPORTER_NAME)
        bootstrap = kafka_bootstrap(settings)
        kafka.grant(bootstrap, KAFKA_MONITORING, monitoring_rights())  # as the administrator, once per start
        use_stack_identity(settings, KAFKA_MONITORING)
        admin = kafka.admin(bootstrap, extra={"client.id": "radlake-lag-exporter"})
        serve(admin, settings.state_dir, "127.0.0.1", settings.lag_exporter_port, tls)
        print(f"radlake monitoring exporter: https://127.0.0.1:{settings.lag_exporter_port}/metrics "
              "(client certificate required)", file=sys.stderr)
        _wait_for_signal()
        return 0
    tls = _tls(settings, "alert-receiver", RECEIVER_NAME)
    httpd = server(monitoring_dir(settings) / "alerts.jsonl", "127.0.0.1", settings.alert_receiver_port, tls)
    print(f"radlake monitoring receiver: https://127.0.0.1:{settings.alert_receiver_port}/ -> "
          f"{monitoring_dir(settings) / 'alerts.jsonl'}", file=sys.stderr)
    threading.Thread(target=httpd.serve_forever, daemon=True, name="alert-receiver").start()
    _wait_for_signal()
    httpd.shutdown()
    return 0


main = command("radlake monitoring", _parser, _run, console_level=lambda _args: logging.INFO)
