"""``radlake console serve``: the admin console (``radlake stack up console`` runs it; see ``admin_console/``).

It serves HTTPS on 127.0.0.1 with a certificate of the platform CA; people holding ``platform-admin`` log in
through Keycloak (client ``radlake-console``, authorization code flow with PKCE).
"""

from __future__ import annotations

import argparse
import logging
import sys

from admin_console.service import serve
from apps._common import command
from platform_layer.endpoints import console_url
from platform_layer.settings import Settings
from platform_layer.tls import ensure_certificate
from platform_layer.vault import admin_client

SERVER_NAME = "console.radlake.local"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake console", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("serve", help="serve the admin console until stopped")
    return parser


def _run(_args: argparse.Namespace, settings: Settings) -> int:
    files = ensure_certificate(admin_client(settings), settings.state_dir / "console" / "tls", "console",
                               SERVER_NAME)
    print(f"radlake console: {console_url(settings)}/", file=sys.stderr)
    serve(settings, host="127.0.0.1", port=settings.console_port, certificate=files.certificate, key=files.key)
    return 0


main = command("radlake console", _parser, _run, console_level=lambda _args: logging.INFO)
