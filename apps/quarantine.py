"""``radlake quarantine list|show|release|discard --provider P``: triage what a provider's edge refused.

``list`` shows each refused input (time, reason, digest, whether its original is kept) without opening
anything sealed; ``--reason`` filters. ``show SHA256`` is one input's records. ``release SHA256`` opens the
kept original through Vault and sends it to the provider's edge again, so the current engine decides anew
(after a profile change, a fixed bug, a corrected file): what it accepts is stored and announced as any upload;
what it refuses again is quarantined again with the new reason; the old records and original go. ``discard
SHA256`` deletes the records and the original. Every action is recorded in the audit trail first; release and
discard also in Vault's log (header ``X-Radlake-Audit-Id``) where Vault is used. Exit status: 0 ok, 1 failure,
2 usage.
"""

from __future__ import annotations

import argparse
import json
import ssl
import sys
from datetime import UTC, datetime

import httpx

from apps._common import UsageError, command
from nifi.edge.handler import RADLAKE_REPORT
from nifi.providers import NAME, ProviderError, edge_dir, endpoint_token, list_edges, quarantine_keys
from platform_layer import audit
from platform_layer.settings import Settings
from platform_layer.tls import ca_file
from platform_layer.vault import admin_client
from radlake.deid.quarantine import read_original, read_records, remove

RELEASE_TIMEOUT_S = 600.0


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


def _records(settings: Settings, provider: str, sha256: str | None = None) -> list[dict]:
    rows = [{k: v for k, v in r.__dict__.items() if v is not None and k not in ("input", "message",
                                                                              "original_sop_instance_uid")}
            for r in read_records(edge_dir(settings, provider))]
    return [r for r in rows if sha256 is None or r.get("sha256") == sha256]


def _release(settings: Settings, provider: str, sha256: str) -> dict:
    folder = edge_dir(settings, provider)
    records = [r for r in read_records(folder) if r.sha256 == sha256 and r.stored_as]
    if not records:
        raise ProviderError(f"the quarantine of {provider} keeps no original with digest {sha256}")
    edges = [e for e in list_edges(settings) if e.provider == provider]
    if not edges:
        raise ProviderError(f"{provider} has no edge to send it to (`radlake provider add {provider}`)")
    started = datetime.now(UTC).replace(microsecond=0)  # records are stamped to the second
    with audit.recorded(settings, "quarantine.release", f"provider {provider} original {sha256}") as entry:
        original = read_original(folder, records[-1], quarantine_keys(settings, provider,
                                                                      audit.link_vault(admin_client(settings), entry)))
        try:
            answer = httpx.post(f"{edges[0].url}/archives", content=original, timeout=RELEASE_TIMEOUT_S,
                                verify=ssl.create_default_context(cafile=str(ca_file(settings))),
                                headers={"Authorization": f"Bearer {endpoint_token(settings, provider)}",
                                         "Content-Type": "application/octet-stream",
                                         "Accept": RADLAKE_REPORT})
        except httpx.HTTPError as err:
            raise ProviderError(f"the edge of {provider} did not answer: {err}") from err
        if answer.status_code not in (200, 202, 409):
            raise ProviderError(f"the edge of {provider} answered {answer.status_code}: kept in the quarantine")
        remove(folder, sha256, before=started)  # what the edge refused anew has a record of its own now
    report = answer.json()
    return {"sha256": sha256, "status": answer.status_code, "counts": report.get("counts", {})}


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if not NAME.match(args.provider):
        raise UsageError(f"{args.provider!r} is not a provider id ([a-z0-9][a-z0-9_-]*)")
    target = f"provider {args.provider} quarantine"
    if args.action == "list":
        with audit.recorded(settings, "quarantine.list", target):
            rows = [r for r in _records(settings, args.provider) if args.reason in (None, r.get("reason"))]
        for row in rows:
            print(json.dumps(row, default=str))
        print(f"{len(rows)} refused input(s)", file=sys.stderr)
    elif args.action == "show":
        with audit.recorded(settings, "quarantine.show", f"provider {args.provider} original {args.sha256}"):
            rows = _records(settings, args.provider, args.sha256)
        if not rows:
            raise ProviderError(f"the quarantine of {args.provider} has no record of {args.sha256}")
        print(json.dumps(rows, indent=2, default=str))
    elif args.action == "release":
        print(json.dumps(_release(settings, args.provider, args.sha256)))
    else:
        with audit.recorded(settings, "quarantine.discard", f"provider {args.provider} original {args.sha256}"):
            originals, records = remove(edge_dir(settings, args.provider), args.sha256)
        if not records and not originals:
            raise ProviderError(f"the quarantine of {args.provider} has no record of {args.sha256}")
        print(f"discarded {records} record(s) and {originals} original(s)", file=sys.stderr)
    return 0


main = command("radlake quarantine", _parser, _run)
