"""``radlake status [--watch [SECONDS]] [--json]`` — one screen for an admin: providers, consumer groups, lake tables,
open alerts and the supervisor's restarts. The gathering is :func:`monitoring.status_data.gather` (the admin
console shows the same); this command formats it.

When the stack's Prometheus answers (``stack up monitoring``), consumer lag and its trend over 5 minutes, the open
alerts and the supervisor's counts come from its HTTP API (mutual TLS: this command shows a client certificate of
the platform CA, ``<state>/monitoring/tls/status.crt``); otherwise from the parts themselves: offsets from Kafka
(the trend is the change since the previous ``radlake status``), alerts from the alert receiver's log, restarts
from the supervisor's log. Per provider, arrivals come from the instance topic's message timestamps (the last 60
minutes are read) and quarantine counts by reason from the edges' journals, whose identifying fields stay sealed;
lake tables from their Delta logs (delta-rs). Each section names its source. A part that cannot be read is one
line under the tables; the others are still shown.
"""

from __future__ import annotations

import argparse
import sys
import time

from apps._common import command
from lake_schemas.topics import INSTANCE_RECEIVED
from monitoring.overview import Overview, age
from monitoring.status_data import gather
from platform_layer.settings import Settings


# --- showing ---------------------------------------------------------------------------------------------
def _sections(overview: Overview) -> list[tuple[str, str, list[str], list[list[str]]]]:
    """(title, source, header, rows) of each table."""
    now = overview.at
    src = overview.sources
    return [
        ("Providers", src.get("providers", ""), ["provider", "inst/min 5m", "inst/min 60m", "last upload",
                                                 "quarantined by reason"],
         [[p.provider, f"{p.per_min_5:.1f}", f"{p.per_min_60:.2f}",
           f"{age(p.last_upload, now)} ago" if p.last_upload else "-",
           ", ".join(f"{r}={n}" for r, n in sorted(p.quarantined.items())) or "-"] for p in overview.providers]),
        ("Consumer groups", src.get("groups", ""), ["group", "lag", "trend"],
         [[g.group, str(g.lag), "?" if g.trend is None else f"{g.trend:+d}"] for g in overview.groups]),
        ("Lake tables", src.get("tables", ""), ["table", "version", "age"],
         [[t.table, str(t.version), age(t.last_commit, now)] for t in overview.tables]),
        ("Open alerts", src.get("alerts", ""), ["alert", "severity", "summary", "since"],
         [[a.name, a.severity, a.summary, a.since] for a in overview.alerts]),
        ("Supervisor", src.get("supervisor", ""), ["component", "restarts", "failed restarts", "gave up"],
         [[s.component, str(s.restarts), str(s.failed_restarts), "yes" if s.gave_up else "no"]
          for s in overview.supervised]),
    ]


def render_plain(overview: Overview) -> str:
    out = [f"radlake status at {overview.at.isoformat(timespec='seconds')}"]
    for title, source, header, rows in _sections(overview):
        out += ["", f"{title}  (from {source})"]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        out += ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in [header, *rows]]
        if not rows:
            out.append("(none)")
    out += [f"! {p}" for p in overview.problems]
    return "\n".join(out)


def _render_rich(overview: Overview) -> None:
    from rich.console import Console  # noqa: PLC0415 - optional: the plain table without it
    from rich.markup import escape  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console()
    console.print(f"[bold]radlake status[/bold] at {overview.at.isoformat(timespec='seconds')}")
    for title, source, header, rows in _sections(overview):
        console.print(f"\n[bold]{title}[/bold] [dim](from {escape(source)})[/dim]")  # a title would wrap to the table
        table = Table()
        for column in header:
            table.add_column(column)
        for row in rows:
            table.add_row(*map(escape, row))
        console.print(table)
    for problem in overview.problems:
        console.print(f"[red]! {escape(problem)}[/red]")


def _has_rich() -> bool:
    try:
        import rich  # noqa: F401, PLC0415
    except ImportError:
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake status", description=__doc__)
    parser.add_argument("--watch", nargs="?", type=float, const=5.0, default=None, metavar="SECONDS",
                        help="refresh every SECONDS (default 5) until interrupted")
    parser.add_argument("--json", action="store_true", help="one JSON document instead of the tables")
    parser.add_argument("--plain", action="store_true", help="plain text tables even where rich is installed")
    parser.add_argument("--no-prometheus", action="store_true", help="read the parts directly")
    parser.add_argument("--instance-topic", default=INSTANCE_RECEIVED.name, help="default: %(default)s")
    return parser


def _show(args: argparse.Namespace, overview: Overview) -> None:
    if args.json:
        print(overview.to_json())
    elif args.plain or not _has_rich() or not sys.stdout.isatty():
        print(render_plain(overview))
    else:
        _render_rich(overview)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    while True:
        overview = gather(settings, args.instance_topic, use_prometheus=not args.no_prometheus)
        if args.watch is not None and sys.stdout.isatty():
            print("\033[2J\033[H", end="")  # clear the screen between refreshes
        _show(args, overview)
        if args.watch is None:
            return 3 if overview.problems else 0
        sys.stdout.flush()
        time.sleep(args.watch)


main = command("radlake status", _parser, _run)
