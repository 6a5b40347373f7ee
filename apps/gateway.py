"""``radlake gateway serve``: the lake gateway process (``radlake stack up gateway`` runs it; see
``spark_jobs/gateway.py``). Data scientists read through it with ``platform_layer.lake_access``.
"""

from __future__ import annotations

import argparse
import logging

import pyarrow.flight as flight

from apps._common import command
from platform_layer.endpoints import gateway_location
from platform_layer.identity_provider import AccessTokenVerifier
from platform_layer.realm import issuer, keycloak_ca_file
from platform_layer.settings import Settings
from spark_jobs.gateway import serve


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake gateway", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("serve", help="serve granted datasets over Arrow Flight until stopped")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    tls = settings.state_dir / "gateway" / "tls"
    certificate = flight.CertKeyPair((tls / "gateway.crt").read_bytes(), (tls / "gateway.key").read_bytes())
    serve(settings, gateway_location(settings), certificate, AccessTokenVerifier(issuer(settings),
                                                                                  keycloak_ca_file(settings)))
    return 0


main = command("radlake gateway", _parser, _run, console_level=lambda _args: logging.INFO)
