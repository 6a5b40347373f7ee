"""``radlake provider add NAME --project P | list | remove NAME | token NAME [--rotate]``: a NiFi edge per provider.

``add`` deploys the provider's edge (``nifi/providers.py`` says what that sets up) and makes the realm role
``provider:NAME`` in Keycloak. Exit status: 0 ok,
1 failure (the message names the step), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys

from apps._common import UsageError, command
from nifi.providers import NAME, add, endpoint_token, list_edges, remove, rotate_endpoint_token
from platform_layer.realm import ensure_realm_roles
from platform_layer.realm_roles import provider_role
from platform_layer.settings import Settings


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
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    name = getattr(args, "name", None)
    if name is not None and not NAME.match(name):
        raise UsageError(f"{name!r} is not a provider id ([a-z0-9][a-z0-9_-]*)")
    if args.action == "add":
        topics = {f"{t}_topic": getattr(args, f"{t}_topic") for t in ("instance", "quarantine", "manifest")
                  if getattr(args, f"{t}_topic")}
        ensure_realm_roles(settings, {provider_role(name): f"acts for provider {name}"})
        print(f"deploying the edge of {name} (first use installs the processor's environment)", file=sys.stderr)
        edge = add(settings, name, args.project, port=args.port, drop_dir=args.drop_dir, topics=topics)
        print(json.dumps({**edge.__dict__, "url": edge.url}))
    elif args.action == "list":
        edges = list_edges(settings)
        print(f"{'provider':<20} {'project':<20} {'url':<24} state")
        for edge in edges:
            print(f"{edge.provider:<20} {edge.project:<20} {edge.url:<24} {edge.state}")
    elif args.action == "remove":
        remove(settings, name, keep_token=args.keep_token)
        print(f"removed the edge of {name}", file=sys.stderr)
    elif args.action == "token":
        print(rotate_endpoint_token(settings, name) if args.rotate else endpoint_token(settings, name))
    return 0


main = command("radlake provider", _parser, _run)
