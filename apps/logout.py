"""``radlake logout``: revoke the stored session's refresh token at Keycloak and delete the token file.

When Keycloak cannot be reached the file is kept (the session is still live there) and the command fails;
run it again. Exit status: 0 logged out (or was not logged in), 1 failure, 2 usage.
"""

from __future__ import annotations

import argparse
import sys

from apps._common import command
from platform_layer.realm import cli_client, issuer
from platform_layer.settings import Settings
from platform_layer.user_session import NotLoggedIn, forget, load


def _parser() -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog="radlake logout", description=__doc__.splitlines()[0].strip("`."))


def _run(_args: argparse.Namespace, settings: Settings) -> int:
    try:
        session = load(settings.token_file)
    except NotLoggedIn:
        forget(settings.token_file)  # an unreadable file holds nothing worth keeping
        print("not logged in", file=sys.stderr)
        return 0
    if session.issuer != issuer(settings):
        raise NotLoggedIn(f"the stored session belongs to {session.issuer}, not to {issuer(settings)}; delete "
                          f"{settings.token_file} to forget it")
    with cli_client(settings) as client:
        client.revoke(session.refresh_token)
    forget(settings.token_file)
    print(f"logged out {session.username}", file=sys.stderr)
    return 0


main = command("radlake logout", _parser, _run)
