"""What ``radlake status`` and the admin console show, gathered from the stack: providers, consumer groups, lake
tables, open alerts and the supervisor's restarts (:class:`~monitoring.overview.Overview`).

When the stack's Prometheus answers (``stack up monitoring``), consumer lag and its trend over 5 minutes, the open
alerts and the supervisor's counts come from its HTTP API (mutual TLS: the reader shows a client certificate of
the platform CA, ``<state>/monitoring/tls/status.crt``); otherwise from the parts themselves: offsets from Kafka
(the trend is the change since the previous gathering), alerts from the alert receiver's log, restarts
from the supervisor's log. Per provider, arrivals come from the instance topic's message timestamps (the last 60
minutes are read) and quarantine counts by reason from the edges' journals, whose identifying fields stay sealed;
lake tables from their Delta logs (delta-rs). Each section names its source. A part that cannot be read is one
line in :attr:`Overview.problems`; the others are still gathered.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
from confluent_kafka import KafkaError, KafkaException, TopicPartition
from deltalake import DeltaTable

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
    rates,
    trend,
)
from platform_layer import kafka
from platform_layer.edge_metrics import edges_root
from platform_layer.endpoints import edge_dir, kafka_bootstrap, monitoring_dir, prometheus_url
from platform_layer.lake_tables import find_tables
from platform_layer.settings import Settings
from platform_layer.state import write_private
from platform_layer.supervision import events_file, read, summary
from platform_layer.tls import ca_file, ensure_certificate
from platform_layer.vault import admin_client
from radlake.deid.quarantine import read_records

log = logging.getLogger(__name__)

MAX_INSTANCE_MESSAGES = 500_000  # an hour of arrivals read at most; beyond, the rates are lower bounds
TREND_WINDOW = "5m"


# --- Prometheus ----------------------------------------------------------------------------------------------
def prometheus(settings: Settings) -> httpx.Client | None:
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


def query(client: httpx.Client, expr: str) -> list[dict[str, Any]]:
    answer = client.get("/api/v1/query", params={"query": expr})
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def query_range(client: httpx.Client, expr: str, start: float, end: float,
                step_s: float) -> list[dict[str, Any]]:
    """Prometheus's ``query_range``: one ``{"metric": labels, "values": [[t, "v"], ...]}`` per series."""
    answer = client.get("/api/v1/query_range", params={"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}",
                                                       "step": f"{step_s:g}"})
    answer.raise_for_status()
    return answer.json()["data"]["result"]


def _groups_from_prometheus(client: httpx.Client) -> list[GroupRow]:
    lags = {r["metric"]["group"]: int(float(r["value"][1])) for r in query(client, "radlake_consumer_group_lag")}
    trends = {r["metric"]["group"]: int(float(r["value"][1]))
              for r in query(client, f"delta(radlake_consumer_group_lag[{TREND_WINDOW}])")}
    return [GroupRow(g, lag, trends.get(g)) for g, lag in sorted(lags.items())]


def _alerts_from_prometheus(client: httpx.Client) -> list[AlertRow]:
    answer = client.get("/api/v1/alerts")
    answer.raise_for_status()
    return [AlertRow(a["labels"].get("alertname", ""), a["labels"].get("severity", ""),
                     a.get("annotations", {}).get("summary", ""), a.get("activeAt", ""))
            for a in answer.json()["data"]["alerts"] if a.get("state") == "firing"]


def _supervised_from_prometheus(client: httpx.Client) -> list[SupervisedRow]:
    def by_component(expr: str) -> dict[str, float]:
        return {r["metric"]["component"]: float(r["value"][1]) for r in query(client, expr)}

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
    root = edges_root(settings.state_dir)
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

    client = prometheus(settings) if use_prometheus else None
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
