"""``radlake stack up [COMPONENT...] | down [COMPONENT...] | status | root-token | install-units [--dir DIR] |
supervise`` — the local stack from one command.

``up`` ends by starting the supervisor (``supervise``, one process; ``RADLAKE_SUPERVISE=false`` leaves it out),
which restarts a component that died, with back-off and a crash-loop limit; ``down`` stops it first.
``install-units`` writes systemd unit files for a production host instead (systemd then restarts the components).

With NiFi, ``up`` also starts every provider's Storage SCP (``radlake provider dimse``) and ``down`` stops them
first: an SCP forwards to its provider's edge, so it runs only while NiFi does.

``root-token`` prints a new Vault root token, generated from the unseal shares, for an administrator's
one-off repair; nothing in radlake uses one. Revoke it when done (``bao token revoke -self``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time
from pathlib import Path

from apps import _dimse
from apps._common import UsageError, command
from infra import stack, supervision, units
from infra.component import ComponentStatus
from nifi import dimse
from nifi.providers import bind_address, follow_stack, isolate_edges, renew_edge_certificate
from platform_layer import audit
from platform_layer.settings import Settings


def format_table(statuses: list[ComponentStatus]) -> str:
    header = ("COMPONENT", "ADDRESS", "PID", "HEALTH", "RSS", "VERSION", "DETAIL")
    rows = [
        (
            s.name,
            s.address,
            str(s.pid or "-"),
            "healthy" if s.healthy else "down",
            f"{s.rss_bytes / 2**20:.0f} MiB" if s.rss_bytes else "-",
            s.version,
            s.detail,
        )
        for s in statuses
    ]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in [header, *rows])


def _status(settings: Settings, components: list[str]) -> list[ComponentStatus]:
    statuses = stack.status(settings, components or None)
    if "nifi" in (components or stack.COMPONENTS):
        statuses += [_dimse.status(settings, config) for config in dimse.configured(settings)]
    return statuses


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake stack", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    for action, help_ in (("up", "install, start and health-check"), ("down", "stop"), ("status", "show")):
        p = sub.add_parser(action, help=help_)
        p.add_argument("components", nargs="*", metavar="COMPONENT",
                       help=f"any of: {', '.join(stack.COMPONENTS)}, or {', '.join(stack.ALIASES)} "
                            f"(up without names: {', '.join(stack.DEFAULT_UP)})")
    sub.add_parser("root-token", help="print a new Vault root token made from the unseal shares (revoke it after use)")
    p = sub.add_parser("install-units", help="write systemd unit files (one service per component, radlake.target)")
    p.add_argument("components", nargs="*", metavar="COMPONENT", help="default: those of a plain `up`")
    p.add_argument("--dir", type=Path, default=Path("/etc/systemd/system"), help="where (default: %(default)s)")
    p.add_argument("--environment-file", type=Path, default=None,
                   help="the root-only file the units read secrets from (default: <state dir>/run/secrets.env)")
    sub.add_parser("supervise", help="the supervisor process (`up` starts it): restart components that die")
    return parser


def _install_units(args: argparse.Namespace, settings: Settings) -> int:
    chosen = [stack.component(n, settings) for n in stack.selected(args.components or None, up=True)]
    components = [c for c in chosen if c.supervisable]
    for skipped in (c for c in chosen if not c.supervisable):
        print(f"{skipped.name}: no process of its own to run as a service, left out", file=sys.stderr)
    environment_file = args.environment_file or settings.state_dir / "run" / "secrets.env"
    args.dir.mkdir(parents=True, exist_ok=True)
    for unit in units.units(settings, components, environment_file):
        (args.dir / unit.name).write_text(unit.text)
        print(args.dir / unit.name)
    print(f"then: systemctl daemon-reload && systemctl enable --now {units.TARGET}", file=sys.stderr)
    return 0


def _supervise(settings: Settings) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    print(f"radlake stack supervise: watching {supervision.supervised_file(settings)} every "
          f"{settings.supervisor_interval_s:g}s", file=sys.stderr)
    supervision.supervise(settings, lambda name: stack.component(name, settings), stack.COMPONENTS, stop,
                          renew_edges=lambda: renew_edge_certificate(settings))
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "up":
        started = time.monotonic()
        bind_address(settings)  # where the edges will listen: a bad RADLAKE_BIND_ADDRESS stops before anything starts
        stack.up(settings, args.components or None)
        if "nifi" in stack.selected(args.components, up=True):
            for provider in follow_stack(settings):
                print(f"edge {provider}: parameters now point at the stack's Kafka, registry, Vault, the edges' "
                      "certificate and bind address", file=sys.stderr)
            for provider in isolate_edges(settings):
                print(f"edge {provider}: shared a Python process with another provider's edge; deployed again in "
                      "its own", file=sys.stderr)
            for scp in _dimse.start_all(settings):
                print(f"{scp.name}: {scp.address} ({scp.detail}) answers C-ECHO", file=sys.stderr)
        print(f"stack up in {time.monotonic() - started:.1f}s", file=sys.stderr)
        print(format_table(_status(settings, stack.selected(args.components, up=True))))
    elif args.action == "install-units":
        return _install_units(args, settings)
    elif args.action == "supervise":
        return _supervise(settings)
    elif args.action == "root-token":
        vault = stack.component("vault", settings)
        if vault.external:
            raise UsageError("Vault is external (RADLAKE_VAULT_ADDR): its own operators hold its unseal keys")
        with audit.recorded(settings, "vault.root-token", "vault root token"):
            print(vault.root_token())
        print("a root token: use it once, then revoke it (`bao token revoke -self`)", file=sys.stderr)
    elif args.action == "down":
        if "nifi" in (args.components or stack.COMPONENTS):
            _dimse.stop_all(settings)
        stack.down(settings, args.components or None)
        print("stack down", file=sys.stderr)
    else:
        statuses = _status(settings, args.components)
        print(format_table(statuses))
        return 0 if all(s.healthy for s in statuses) else 3
    return 0


# the stack's own progress (each component's install, start, health) is what this command is for
main = command("radlake stack", _parser, _run, console_level=lambda _args: logging.INFO)
