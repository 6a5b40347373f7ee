"""``radlake status [--watch [SECONDS]] [--json]`` — one screen for an admin: providers, consumer groups, lake tables,
open alerts and the supervisor's restarts.

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
import json
import logging
import ssl
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from deltalake import DeltaTable

from apps._common import command
from lake_schemas.errors import RadlakeError
from lake_schemas.topics import INSTANCE_RECEIVED
from monitoring.exporter import read_offsets
from monitoring.lag import group_totals
from monitoring.overview import (
    AlertRow,
    GroupRow,
    Overview,
    ProviderRow,
    SupervisedRow,
    TableRow,
    age,
    rates,
    trend,
)
from nifi.providers import edge_dir
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap, monitoring_dir, prometheus_url
from platform_layer.settings import Settings
from platform_layer.state import write_private
from platform_layer.supervision import events_file, read, summary
from platform_layer.tls import ca_file, ensure_certificate
from platform_layer.vault import admin_client
from radlake.deid.quarantine import read_records
from spark_jobs.maintenance import find_tables

log = logging.getLogger(__name__)

MAX_INSTANCE_MESSAGES = 500_000  # an hour of arrivals read at most; beyond, the rates are lower bounds
TREND_WINDOW = "5m"


# --- Prometheus ----------------------------------------------------------------------------------------------
def _prometheus(settings: Settings) -> httpx.Client | None:
    """A client of the stack's Prometheus, or None when it does not answer (or no certificate can be had)."""
    try:
        files = ensure_certificate(admin_client(settings), monitoring_dir(settings) / "tls", "status",
                                   "status.radlake.local")
        context = ssl.create_default_context(cafile=str(ca_file(settings)))
        context.load_cert_chain(str(files.certificate), str(files.key))
        client = httpx.Client(base_url=prometheus_url(settings), verify=context, timeout=10)
        if client.get("/-/ready").status_code == 200:
            return client
    except (RadlakeError, OSError, ssl.SSLError, httpx.HTTPError) as err:
        log.info("Prometheus not used: %s", err)
    return None


def _query(client: httpx.Client, expr: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/query", params={"query": expr})
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def _groups_from_prometheus(client: httpx.Client) -> list[GroupRow]:
    lags = {r["metric"]["group"]: int(float(r["value"][1])) for r in _query(client, "radlake_consumer_group_lag")}
    trends = {r["metric"]["group"]: int(float(r["value"][1]))
              for r in _query(client, f"delta(radlake_consumer_group_lag[{TREND_WINDOW}])")}
    return [GroupRow(g, lag, trends.get(g)) for g, lag in sorted(lags.items())]


def _alerts_from_prometheus(client: httpx.Client) -> list[AlertRow]:
    answer = client.get("/api/v1/alerts")
    answer.raise_for_status()
    return [AlertRow(a["labels"].get("alertname", ""), a["labels"].get("severity", ""),
                     a.get("annotations", {}).get("summary", ""), a.get("activeAt", ""))
            for a in answer.json()["data"]["alerts"] if a.get("state") == "firing"]


def _supervised_from_prometheus(client: httpx.Client) -> list[SupervisedRow]:
    def by_component(expr: str) -> dict[str, float]:
        return {r["metric"]["component"]: float(r["value"][1]) for r in _query(client, expr)}

    restarts = by_component("radlake_supervisor_restarts_total")
    failed = by_component("radlake_supervisor_failed_restarts_total")
    gave_up = by_component("radlake_supervisor_gave_up")
    return [SupervisedRow(c, int(restarts.get(c, 0)), int(failed.get(c, 0)), gave_up.get(c, 0) == 1)
            for c in sorted({*restarts, *failed, *gave_up})]


# --- the parts themselves ------------------------------------------------------------------------------------
def _lag_snapshot(settings: Settings) -> Path:
    return settings.state_dir / "status" / "lag.json"


def _groups_from_kafka(settings: Settings) -> list[GroupRow]:
    admin = kafka.admin(kafka_bootstrap(settings), extra={"client.id": "radlake-status"})
    totals = group_totals(read_offsets(admin).lags)
    try:
        before = json.loads(_lag_snapshot(settings).read_text())["groups"]
    except (FileNotFoundError, ValueError, KeyError):
        before = {}
    _lag_snapshot(settings).parent.mkdir(parents=True, exist_ok=True)
    write_private(_lag_snapshot(settings), json.dumps({"at": time.time(), "groups": totals}))
    return [GroupRow(g, lag, trend(lag, before.get(g))) for g, lag in sorted(totals.items())]


def _payload_provider(value: bytes | None) -> str | None:
    """The envelope's provider, read from the JSON after the registry's 5-byte framing (no schema needed)."""
    if not value:
        return None
    body = value[5:] if value[:1] == b"\x00" else value
    try:
        provider = json.loads(body).get("provider")
    except (ValueError, AttributeError):
        return None
    return provider if isinstance(provider, str) else None


def arrivals(settings: Settings, topic: str, since: datetime) -> dict[str, list[datetime]]:
    """Message timestamps per provider on ``topic`` since ``since`` (committed messages only)."""
    consumer = kafka.consumer(kafka_bootstrap(settings), group_id="radlake-status",
                              extra={"enable.partition.eof": True, "client.id": "radlake-status"})
    found: dict[str, list[datetime]] = defaultdict(list)
    try:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return {}
        start_ms = int(since.timestamp() * 1000)
        starts = consumer.offsets_for_times([TopicPartition(topic, p, start_ms) for p in metadata.partitions],
                                            timeout=10)
        assigned = [tp for tp in starts if tp.offset >= 0]  # -1: nothing written since
        if not assigned:
            return {}
        consumer.assign(assigned)
        pending, read_count = {tp.partition for tp in assigned}, 0
        while pending and read_count < MAX_INSTANCE_MESSAGES:
            for msg in consumer.consume(1000, timeout=2.0):
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise KafkaException(error)
                read_count += 1
                provider = _payload_provider(msg.value())
                if provider is not None:
                    found[provider].append(datetime.fromtimestamp(msg.timestamp()[1] / 1000, timezone.utc))
    finally:
        consumer.close()
    return dict(found)


def _quarantine(settings: Settings) -> dict[str, dict[str, int]]:
    """Quarantine counts by reason per provider, from each edge's journal (sealed fields are never opened)."""
    counts: dict[str, dict[str, int]] = {}
    root = settings.state_dir / "edge"
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        records = read_records(edge_dir(settings, folder.name))
        if records:
            counts[folder.name] = dict(Counter(r.reason.value for r in records))
    return counts


def _tables(settings: Settings) -> list[TableRow]:
    root = settings.resolved_lake_uri
    rows = []
    for relative in find_tables(root) if Path(root).is_dir() else []:
        table = DeltaTable(str(Path(root) / relative))
        history = table.history(1)
        stamp = history[0].get("timestamp") if history else None
        rows.append(TableRow(relative, table.version(),
                             datetime.fromtimestamp(stamp / 1000, timezone.utc) if stamp else None))
    return rows


def _alerts_from_receiver(settings: Settings) -> list[AlertRow]:
    """The alerts whose last notification to the receiver was ``firing``."""
    latest: dict[str, dict[str, Any]] = {}
    path = monitoring_dir(settings) / "alerts.jsonl"
    for line in path.read_text().splitlines() if path.exists() else []:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        latest[record.get("fingerprint") or json.dumps(record.get("labels"), sort_keys=True)] = record
    return [AlertRow(r.get("alertname", ""), r.get("labels", {}).get("severity", ""),
                     r.get("annotations", {}).get("summary", ""), r.get("starts_at", ""))
            for r in latest.values() if r.get("status") == "firing"]


def _supervised_from_log(settings: Settings) -> list[SupervisedRow]:
    return [SupervisedRow(c, r.restarts, r.failed_restarts, r.gave_up)
            for c, r in sorted(summary(read(events_file(settings.state_dir))).items())]


# --- gathering and showing ---------------------------------------------------------------------------------
def gather(settings: Settings, instance_topic: str = INSTANCE_RECEIVED.name, use_prometheus: bool = True) -> Overview:
    now = datetime.now(timezone.utc)
    problems: list[str] = []
    sources: dict[str, str] = {}

    def attempt(section: str, source: str, read_part: Any, default: Any) -> Any:
        try:
            value = read_part()
        except (RadlakeError, KafkaException, OSError, httpx.HTTPError, ValueError, KeyError) as err:
            problems.append(f"{section}: {source} could not be read: {err}")
            sources[section] = f"{source} (unreadable)"
            return default
        sources[section] = source
        return value

    client = _prometheus(settings) if use_prometheus else None
    if client is not None:
        where = f"Prometheus {prometheus_url(settings)}"
        groups = attempt("groups", where, lambda: _groups_from_prometheus(client), [])
        alerts = attempt("alerts", where, lambda: _alerts_from_prometheus(client), [])
        supervised = attempt("supervisor", where, lambda: _supervised_from_prometheus(client), [])
        client.close()
    else:
        groups = attempt("groups", f"Kafka {kafka_bootstrap(settings)} (Prometheus not running)",
                         lambda: _groups_from_kafka(settings), [])
        alerts = attempt("alerts", "the alert receiver's log (Prometheus not running)",
                         lambda: _alerts_from_receiver(settings), [])
        supervised = attempt("supervisor", "the supervisor's log", lambda: _supervised_from_log(settings), [])
    seen = attempt("providers", f"Kafka topic {instance_topic}; quarantine: the edges' journals",
                   lambda: arrivals(settings, instance_topic, now - timedelta(minutes=60)), {})
    quarantined = attempt("quarantine", "the edges' quarantine journals", lambda: _quarantine(settings), {})
    per_provider = rates(seen, now)
    providers = [ProviderRow(p, *per_provider.get(p, (0.0, 0.0, None)), quarantined=quarantined.get(p, {}))
                 for p in sorted({*per_provider, *quarantined})]
    tables = attempt("tables", f"Delta logs under {settings.resolved_lake_uri} (delta-rs)",
                     lambda: _tables(settings), [])
    return Overview(now, sources, providers, groups, tables, alerts, supervised, problems)


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
