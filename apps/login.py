"""``radlake login [--status]``: log in to radlake's identity provider with the OAuth 2.0 device flow.

``login`` asks Keycloak for a device code (public client ``radlake-cli``), prints where to approve it and the
code to type, polls until the person has logged in on that page (or refused, or the code expired), stores
the tokens in the settings' ``token_file`` (0600) and prints who is logged in and their roles. ``--status``
refreshes the stored session (so the roles shown are current) and prints the same. Exit status: 0 logged in,
1 not logged in or refused (the message says why), 2 usage.
"""

from __future__ import annotations

import argparse
import datetime
import sys

from apps._common import command
from platform_layer.device_authorization import poll_for_token
from platform_layer.realm import cli_client, issuer, refreshed_session
from platform_layer.settings import Settings
from platform_layer.user_session import UserSession, save


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake login", description=__doc__.splitlines()[0].strip("`."))
    parser.add_argument("--status", action="store_true", help="show who is logged in (refreshes the session)")
    return parser


def describe(session: UserSession) -> str:
    """``alice (alice@example.org): platform-admin, project:lung:reader; session until 2026-...``."""
    claims = session.claims
    email = f" ({claims['email']})" if claims.get("email") else ""
    roles = ", ".join(session.roles) or "no radlake roles"
    until = (datetime.datetime.fromtimestamp(session.refresh_expires_at).isoformat(timespec="minutes")
             if session.refresh_expires_at else "it is revoked")
    return f"{session.username}{email}: {roles}; session until {until}"


def _login(settings: Settings) -> UserSession:
    with cli_client(settings) as client:
        authorization = client.start_device_authorization()
        print(f"open {authorization.verification_uri} and enter the code {authorization.user_code}\n"
              f"  (or open {authorization.verification_uri_complete or authorization.verification_uri})\n"
              f"waiting for the approval (the code expires in {authorization.expires_in // 60} min)...",
              file=sys.stderr)
        tokens = poll_for_token(client.device_token, authorization)
    session = UserSession.from_tokens(issuer(settings), client.client_id, tokens)
    save(settings.token_file, session)
    return session


def _run(args: argparse.Namespace, settings: Settings) -> int:
    session = refreshed_session(settings) if args.status else _login(settings)
    print(f"logged in as {describe(session)}")
    return 0


main = command("radlake login", _parser, _run)
