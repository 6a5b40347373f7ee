"""``radlake provider add NAME --project P | list | remove NAME | token NAME [--rotate] | quarantine NAME | ca``: a
NiFi edge per provider.

``add`` deploys the provider's edge (``nifi/providers.py`` says what that sets up) and makes the realm role
``provider:NAME`` in Keycloak. ``quarantine`` lists what the edge refused (time, reason, digest); the identifying
fields (``--reveal``) and the original bytes (``--open SHA256 --out FILE``) are sealed and opened through Vault,
which logs the request. Every action but ``list`` and ``ca`` is recorded in the audit trail before it takes
effect (``radlake audit show --target provider``); Vault's log carries the same entry id
(header ``X-Radlake-Audit-Id``). ``ca`` prints the platform CA (PEM) that every edge's HTTPS certificate verifies against:
give it to providers with their token. Exit status: 0 ok, 1 failure (the message names the step), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from apps._common import UsageError, command
from nifi.providers import (
    NAME,
    ProviderError,
    add,
    bind_address,
    edge_dir,
    endpoint_token,
    list_edges,
    quarantine_keys,
    remove,
    rotate_endpoint_token,
)
from platform_layer import audit
from platform_layer.realm import ensure_realm_roles
from platform_layer.realm_roles import provider_role
from platform_layer.settings import Settings
from platform_layer.tls import ca_file
from platform_layer.vault import admin_client
from radlake.deid.quarantine import read_original, read_records


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake provider", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    p_add = sub.add_parser("add", help="deploy a provider's edge flow")
    p_add.add_argument("name")
    p_add.add_argument("--project", required=True)
    p_add.add_argument("--port", type=int)
    p_add.add_argument("--drop-dir")
    for topic in ("instance", "quarantine", "manifest"):
        p_add.add_argument(f"--{topic}-topic", help=f"{topic} events topic (default: the contract's name)")
    sub.add_parser("list", help="list provider edges")
    p_rm = sub.add_parser("remove", help="remove a provider's edge (and its tokens)")
    p_rm.add_argument("name")
    p_rm.add_argument("--keep-token", action="store_true")
    p_tok = sub.add_parser("token", help="print the provider's endpoint token (give it to the provider)")
    p_tok.add_argument("name")
    p_tok.add_argument("--rotate", action="store_true",
                       help="replace it with a new one first: the edge refuses the old one from its next request")
    sub.add_parser("ca", help="print the CA (PEM) that verifies the edges' HTTPS certificate (give it to providers)")
    p_q = sub.add_parser("quarantine", help="what the provider's edge quarantined (sealed at rest)")
    p_q.add_argument("name")
    p_q.add_argument("--reveal", action="store_true",
                     help="open the identifying fields (input name, original SOP Instance UID, message)")
    p_q.add_argument("--open", metavar="SHA256", help="write the original bytes of this digest to --out")
    p_q.add_argument("--out", help="file for --open (created 0600, never overwritten)")
    return parser


def _quarantine(settings: Settings, name: str, args: argparse.Namespace) -> None:
    folder = edge_dir(settings, name)
    if args.open:
        if not args.out:
            raise UsageError("--open needs --out FILE")
        records = [r for r in read_records(folder) if r.sha256 == args.open and r.stored_as]
        if not records:
            raise ProviderError(f"the quarantine of {name} keeps no original with digest {args.open}")
        with audit.recorded(settings, "quarantine.open", f"provider {name} original {args.open}") as entry:
            vault = audit.link_vault(admin_client(settings), entry)
            original = read_original(folder, records[-1], quarantine_keys(settings, name, vault))
        with os.fdopen(os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as out:
            out.write(original)
        print(f"wrote {len(original)} bytes to {args.out}", file=sys.stderr)
        return
    action = "quarantine.reveal" if args.reveal else "quarantine.list"
    with audit.recorded(settings, action, f"provider {name} quarantine") as entry:
        keys = quarantine_keys(settings, name, audit.link_vault(admin_client(settings), entry)) if args.reveal \
            else None
        for record in read_records(folder, keys):
            print(json.dumps({k: v for k, v in record.__dict__.items() if v is not None}, default=str))


def _run(args: argparse.Namespace, settings: Settings) -> int:
    name = getattr(args, "name", None)
    if name is not None and not NAME.match(name):
        raise UsageError(f"{name!r} is not a provider id ([a-z0-9][a-z0-9_-]*)")
    if args.action == "add":
        topics = {f"{t}_topic": getattr(args, f"{t}_topic") for t in ("instance", "quarantine", "manifest")
                  if getattr(args, f"{t}_topic")}
        bind_address(settings)  # a bad RADLAKE_BIND_ADDRESS stops before anything is made
        ensure_realm_roles(settings, {provider_role(name): f"acts for provider {name}"})
        print(f"deploying the edge of {name} (first use installs the processor's environment)", file=sys.stderr)
        with audit.recorded(settings, "provider.add", f"provider {name}", details={"project": args.project}):
            edge = add(settings, name, args.project, port=args.port, drop_dir=args.drop_dir, topics=topics)
        print(json.dumps({**edge.__dict__, "url": edge.url}))
    elif args.action == "list":
        edges = list_edges(settings)
        print(f"{'provider':<20} {'project':<20} {'url':<30} state")
        for edge in edges:
            print(f"{edge.provider:<20} {edge.project:<20} {edge.url:<30} {edge.state}")
    elif args.action == "remove":
        with audit.recorded(settings, "provider.remove", f"provider {name}", details={"keep_token": args.keep_token}):
            remove(settings, name, keep_token=args.keep_token)
        print(f"removed the edge of {name}", file=sys.stderr)
    elif args.action == "quarantine":
        _quarantine(settings, name, args)
    elif args.action == "ca":
        path = ca_file(settings)
        if not path.exists():
            raise ProviderError(f"no platform CA at {path}: `radlake stack up` makes it")
        print(path.read_text(), end="")
    elif args.action == "token":
        with audit.recorded(settings, "provider.token." + ("rotate" if args.rotate else "read"), f"provider {name}"):
            print(rotate_endpoint_token(settings, name) if args.rotate else endpoint_token(settings, name))
    return 0


main = command("radlake provider", _parser, _run)
