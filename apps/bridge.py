"""``radlake bridge serve``: the results bridge (``radlake stack up`` runs it; see ``streams/results_bridge``).

As the platform administrator it creates the result topics that are missing, gives them the results' retention
and grants its own principal (``radlake-results-bridge``: read the result topics, nothing else); then it reads
Kafka as that principal only and serves HTTPS on 127.0.0.1 with a certificate of the platform CA.
"""

from __future__ import annotations

import argparse
import logging
import sys

from apps._common import command
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap
from platform_layer.identities import use_stack_identity
from platform_layer.identity_provider import AccessTokenVerifier
from platform_layer.principals import KAFKA_RESULTS_BRIDGE
from platform_layer.realm import issuer, keycloak_ca_file
from platform_layer.settings import Settings
from platform_layer.tls import ensure_certificate
from platform_layer.vault import admin_client
from streams.results_bridge.service import ensure_result_topics, make_hub, result_topics, rights, serve

SERVER_NAME = "results-bridge.radlake.local"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake bridge", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    p = sub.add_parser("serve", help="stream result events to dashboards until stopped")
    p.add_argument("--port", type=int, help="default: the settings' results_bridge_port")
    for short in ("prediction", "features", "study"):
        p.add_argument(f"--{short}-topic", help=f"another topic with the {short} contract (tests, benches)")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    port = args.port or settings.results_bridge_port
    files = ensure_certificate(admin_client(settings), settings.state_dir / "results-bridge" / "tls",
                               "results-bridge", SERVER_NAME)
    topics = result_topics({"prediction": args.prediction_topic, "features": args.features_topic,
                            "study": args.study_topic})
    bootstrap = kafka_bootstrap(settings)
    ensure_result_topics(bootstrap, topics, settings.results_retention_days)  # as the administrator
    kafka.grant(bootstrap, KAFKA_RESULTS_BRIDGE, rights(topics))
    use_stack_identity(settings, KAFKA_RESULTS_BRIDGE)
    hub = make_hub(settings, topics)
    print(f"radlake bridge: https://127.0.0.1:{port}/ (topics {', '.join(t.name for t in topics.values())})",
          file=sys.stderr)
    serve(settings, hub, AccessTokenVerifier(issuer(settings), keycloak_ca_file(settings)), topics,
          host="127.0.0.1", port=port, certificate=str(files.certificate), key=str(files.key))
    return 0


main = command("radlake bridge", _parser, _run, console_level=lambda _args: logging.INFO)
