"""``radlake audit show [--actor A] [--action X] [--target T] [--since TIME] [--json] | verify``: the audit trail.

``show`` lists the rows of the platform's audit trail (``governance/audit`` in the lake), oldest first,
filtered by who acted (``--actor``, e.g. ``user:alice`` or a part of it), the action (``role.grant``, a prefix
such as ``quarantine``), the target, and a start time (ISO-8601). ``verify`` recomputes the hash chain,
checks that every commit of the table was an append and that the table still reaches the last row this host
wrote, and names every row where that fails. Exit status: 0 ok (verify: intact), 1 failure or a broken
trail, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime

from apps._common import UsageError, command
from platform_layer import audit
from platform_layer.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake audit", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    p_show = sub.add_parser("show", help="list the audit trail's rows, oldest first")
    p_show.add_argument("--actor", help="who acted: user:NAME, host:NAME, or any part of it")
    p_show.add_argument("--action", dest="what", help="an action or its prefix (role, quarantine.open, ...)")
    p_show.add_argument("--target", help="any part of the target (a user, a role, a provider, a digest)")
    p_show.add_argument("--since", help="ISO-8601 time (UTC when no offset is given)")
    p_show.add_argument("--json", action="store_true", help="one JSON object per row")
    sub.add_parser("verify", help="recompute the hash chain and say where it breaks")
    return parser


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as err:
        raise UsageError(f"--since {text!r} is not an ISO-8601 time") from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _show(args: argparse.Namespace, settings: Settings) -> None:
    since = _since(args.since)
    rows = [r for r in audit.read(settings)
            if (args.actor is None or args.actor in r.actor)
            and (args.what is None or r.action == args.what or r.action.startswith(args.what + "."))
            and (args.target is None or args.target in r.target)
            and (since is None or r.recorded_at >= since)]
    for row in rows:
        if args.json:
            print(json.dumps({**row.__dict__, "recorded_at": row.recorded_at.isoformat(),
                              "details": json.loads(row.details)}))
        else:
            when = row.recorded_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{row.seq:>6}  {when}  {row.actor:<18} {row.action:<20} {row.outcome:<8} {row.target}")
    print(f"{len(rows)} row(s)", file=sys.stderr)


def _verify(settings: Settings) -> int:
    result = audit.verify(settings)
    problems = [str(b) for b in result.breaks] + [f"not an append: {r}" for r in result.rewrites]
    problems += [p for p in (result.truncated, result.unreadable) if p]
    if not problems:
        print(f"audit trail intact: {result.rows} row(s), every commit an append")
        return 0
    print(f"audit trail BROKEN ({result.rows} row(s) read):")
    for problem in problems:
        print(f"  {problem}")
    return 1


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "show":
        _show(args, settings)
        return 0
    return _verify(settings)


main = command("radlake audit", _parser, _run)
