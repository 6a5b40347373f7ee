"""``radlake quarantine list|show|release|discard --provider P``: triage what a provider's edge refused.

``list`` shows each refused input (time, reason, digest, whether its original is kept) without opening
anything sealed; ``--reason`` filters. ``show SHA256`` is one input's records. ``release SHA256`` opens the
kept original through Vault and sends it to the provider's edge again, so the current engine decides anew
(after a profile change, a fixed bug, a corrected file): what it accepts is stored and announced as any upload;
what it refuses again is quarantined again with the new reason; the old records and original go. ``discard
SHA256`` deletes the records and the original. Every action is recorded in the audit trail first; release and
discard also in Vault's log (header ``X-Radlake-Audit-Id``) where Vault is used. The actions themselves are
:mod:`nifi.triage` (the admin console uses them too). Exit status: 0 ok, 1 failure, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys

from apps._common import UsageError, command
from nifi import triage
from nifi.providers import NAME
from platform_layer.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake quarantine", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    for action, help_ in (("list", "what the provider's edge refused"), ("show", "one input's records"),
                          ("release", "send a kept original through the current engine again"),
                          ("discard", "delete an input's records and kept original")):
        p = sub.add_parser(action, help=help_)
        if action != "list":
            p.add_argument("sha256")
        p.add_argument("--provider", required=True)
        if action == "list":
            p.add_argument("--reason", help="only this reason (e.g. NOT_DICOM)")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if not NAME.match(args.provider):
        raise UsageError(f"{args.provider!r} is not a provider id ([a-z0-9][a-z0-9_-]*)")
    if args.action == "list":
        rows = triage.list_audited(settings, args.provider, reason=args.reason)
        for row in rows:
            print(json.dumps(row, default=str))
        print(f"{len(rows)} refused input(s)", file=sys.stderr)
    elif args.action == "show":
        print(json.dumps(triage.show(settings, args.provider, args.sha256), indent=2, default=str))
    elif args.action == "release":
        print(json.dumps(triage.release(settings, args.provider, args.sha256)))
    else:
        originals, records = triage.discard(settings, args.provider, args.sha256)
        print(f"discarded {records} record(s) and {originals} original(s)", file=sys.stderr)
    return 0


main = command("radlake quarantine", _parser, _run)
