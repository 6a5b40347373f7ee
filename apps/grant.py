"""``radlake grant USER DATASET --until DATE`` and ``radlake revoke USER DATASET``: who may read a dataset.

A grant is time-limited (``--until``, ISO-8601; a date alone means its start, UTC) and revocable; revoking ends
every active grant of that dataset to that user and keeps their rows. The user must exist in the realm
(``radlake user add``). Both are recorded in the audit trail before they take effect. Exit status: 0 ok,
1 failure (unknown user or dataset, a date in the past), 2 usage.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from apps._common import UsageError, command
from platform_layer import audit, governance
from platform_layer.realm import REALM, realm_admin
from platform_layer.settings import Settings


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"radlake {prog}", description=__doc__.splitlines()[0].strip("`."))
    parser.add_argument("user")
    parser.add_argument("dataset")
    if prog == "grant":
        parser.add_argument("--until", required=True, help="ISO-8601 date or time (UTC when no offset)")
    return parser


def _until(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise UsageError(f"--until {text!r} is not an ISO-8601 date or time") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _known_user(settings: Settings, name: str) -> None:
    with realm_admin(settings) as admin:
        if admin.user(REALM, name) is None:
            raise governance.GovernanceError(f"no user {name!r} in realm {REALM} (`radlake user list`)")


def _grant(args: argparse.Namespace, settings: Settings) -> int:
    until = _until(args.until)
    _known_user(settings, args.user)
    governance.dataset(settings, args.dataset)
    with audit.recorded(settings, "dataset.grant", f"user {args.user} dataset {args.dataset}",
                        details={"until": until.isoformat()}) as entry:
        granted = governance.grant(settings, args.user, args.dataset, until, granted_by=entry.actor)
    print(f"{args.user} may read {args.dataset} until {granted.until.isoformat()}", file=sys.stderr)
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    with audit.recorded(settings, "dataset.revoke", f"user {args.user} dataset {args.dataset}") as entry:
        ended = governance.revoke(settings, args.user, args.dataset, revoked_by=entry.actor)
    print(f"{args.user}: {len(ended)} active grant(s) of {args.dataset} ended", file=sys.stderr)
    return 0


grant_main = command("radlake grant", lambda: _parser("grant"), _grant)
revoke_main = command("radlake revoke", lambda: _parser("revoke"), _revoke)
main = grant_main
