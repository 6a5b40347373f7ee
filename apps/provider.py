"""``radlake provider add NAME --project P | list | remove NAME | token NAME [--rotate] | quarantine NAME | ca |
dimse NAME``: a NiFi edge per provider, and its DICOM Storage SCP.

``add`` deploys the provider's edge (``nifi/providers.py`` says what that sets up) and makes the realm role
``provider:NAME`` in Keycloak. ``quarantine`` lists what the edge refused (time, reason, digest); the identifying
fields (``--reveal``) and the original bytes (``--open SHA256 --out FILE``) are sealed and opened through Vault,
which logs the request. ``ca`` prints the platform CA (PEM) that every edge's HTTPS certificate verifies against:
give it to providers with their token. ``dimse NAME --ae-title AE --allow-ae SCU_AE`` (or the same options on
``add``) configures and (re)starts the provider's Storage SCP, which forwards what a PACS sends over DIMSE to the
edge (``nifi/edge/storage_scp.py``); ``dimse NAME --off`` stops and forgets it. Every action but ``list`` and ``ca``
is recorded in the audit trail before it takes effect (``radlake audit show --target provider``); Vault's log
carries the same entry id (header ``X-Radlake-Audit-Id``). Exit status: 0 ok, 1 failure (the message names the
step), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from apps import _dimse
from apps._common import UsageError, command
from nifi import dimse
from nifi.edge.storage_scp import ScpLimits
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
    _dimse_options(p_add, on_add=True)
    p_dimse = sub.add_parser("dimse", help="configure and (re)start the provider's DICOM Storage SCP")
    p_dimse.add_argument("name")
    _dimse_options(p_dimse, on_add=False)
    p_dimse.add_argument("--off", action="store_true", help="stop the SCP and forget its configuration")
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


def _dimse_options(parser: argparse.ArgumentParser, *, on_add: bool) -> None:
    """The SCP's options; on ``add`` they carry a ``dimse-`` prefix where a bare name would be ambiguous."""
    pre = "dimse-" if on_add else ""
    group = parser.add_argument_group("DICOM Storage SCP" + (" (with --dimse-ae-title)" if on_add else ""))
    group.add_argument(f"--{pre}ae-title", dest="ae_title", help="the SCP's AE title (the PACS's 'called AE')")
    group.add_argument(f"--{pre}port", dest="dimse_port", type=int,
                       help="TCP port (default: the first free from RADLAKE_DIMSE_PORT, 11112)")
    group.add_argument("--allow-ae", action="append", default=[], metavar="SCU_AE",
                       help="a calling AE title allowed to send (repeat); any other is rejected")
    group.add_argument("--allow-address", action="append", default=[], metavar="IP[/PREFIX]",
                       help="a source address or network allowed (repeat; default: any)")
    group.add_argument(f"--{pre}tls", dest="tls", action="store_true",
                       help="DICOM TLS (BCP 195): the edges' certificate from the platform CA")
    defaults = ScpLimits()
    group.add_argument("--max-associations", type=int, default=defaults.max_associations)
    group.add_argument("--max-pdu", type=int, default=defaults.max_pdu, help="bytes")
    group.add_argument("--acse-timeout", type=float, default=defaults.acse_timeout_s, help="seconds")
    group.add_argument("--dimse-timeout", type=float, default=defaults.dimse_timeout_s, help="seconds")
    group.add_argument("--network-timeout", type=float, default=defaults.network_timeout_s, help="seconds")


def _configure_dimse(settings: Settings, name: str, args: argparse.Namespace) -> None:
    if not args.ae_title:
        raise UsageError("the Storage SCP needs its AE title (--ae-title, on add --dimse-ae-title)")
    limits = ScpLimits(max_associations=args.max_associations, max_pdu=args.max_pdu,
                       acse_timeout_s=args.acse_timeout, dimse_timeout_s=args.dimse_timeout,
                       network_timeout_s=args.network_timeout, edge_timeout_s=ScpLimits().edge_timeout_s)
    if limits.max_associations < 1 or not 4096 <= limits.max_pdu <= 2**26:
        raise UsageError("--max-associations must be at least 1 and --max-pdu between 4096 and 67108864")
    config = dimse.configure(settings, name, ae_title=args.ae_title, allow_ae_titles=args.allow_ae,
                             allow_addresses=args.allow_address, port=args.dimse_port, tls=args.tls, limits=limits)
    state = _dimse.start(settings, config, restart=True)
    print(json.dumps({"provider": name, "ae_title": config.ae_title, "host": config.bind_address,
                      "port": config.port, "tls": config.tls, "allow_ae_titles": list(config.allow_ae_titles),
                      "allow_addresses": list(config.allow_addresses), "pid": state.pid, "healthy": state.healthy}))


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
        if args.ae_title:
            _configure_dimse(settings, name, args)
    elif args.action == "dimse":
        with audit.recorded(settings, "provider.dimse", f"provider {name}",
                            details={"off": args.off, "ae_title": args.ae_title, "allow_ae": args.allow_ae,
                                     "allow_address": args.allow_address}):
            if args.off:
                _dimse.stop(settings, name)
                dimse.forget(settings, name)
                print(f"stopped and forgot the Storage SCP of {name}", file=sys.stderr)
            else:
                _configure_dimse(settings, name, args)
    elif args.action == "list":
        edges = list_edges(settings)
        print(f"{'provider':<20} {'project':<20} {'url':<30} state")
        for edge in edges:
            print(f"{edge.provider:<20} {edge.project:<20} {edge.url:<30} {edge.state}")
        for config in dimse.configured(settings):
            scp = _dimse.status(settings, config)
            print(f"{config.provider:<20} {'(DICOM SCP)':<20} {scp.address:<30} "
                  f"{'running' if scp.healthy else 'stopped'} {scp.detail}")
    elif args.action == "remove":
        with audit.recorded(settings, "provider.remove", f"provider {name}", details={"keep_token": args.keep_token}):
            _dimse.stop(settings, name)
            dimse.forget(settings, name)
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
            if args.rotate:
                print(rotate_endpoint_token(settings, name))
                dimse.refresh_token(settings, name)  # the SCP's next association uses the new one
            else:
                print(endpoint_token(settings, name))
    return 0


main = command("radlake provider", _parser, _run)
