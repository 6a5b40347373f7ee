"""Prometheus metrics of the Spark jobs: the lake's streaming queries (``radlake_lake_*``, from a
``StreamingQueryListener`` and the tables' Delta logs) and the radiomics follower (``radlake_radiomics_*``).

The listener's callbacks only record numbers (they run on Spark's listener bus: no Spark action there). Delta
versions and rows written are read from each table's ``_delta_log`` at scrape time, counting the commits made
since the process started, whoever made them (the lake's queries are the only writers of their tables).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timezone
from typing import Any

import fsspec
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from pyspark.sql.streaming import StreamingQueryListener

log = logging.getLogger(__name__)

SECONDS_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900)


# -- pure parts ---------------------------------------------------------------------------------------------


def _offsets(value: Any) -> dict[tuple[str, str], int]:
    """``{"topic": {"0": 12, ...}}`` (a Kafka source's offsets, as JSON text or parsed) → {(topic, partition): n}."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {}
    if not isinstance(value, dict):
        return {}
    found = {}
    for topic, partitions in value.items():
        if isinstance(partitions, dict):
            for partition, offset in partitions.items():
                if isinstance(offset, int) and not isinstance(offset, bool):
                    found[(topic, str(partition))] = offset
    return found


def source_backlog(source: Mapping[str, Any]) -> int | None:
    """Messages a source had available beyond what its batch read (``latestOffset - endOffset``, summed over
    partitions); None for a source that reports no Kafka offsets."""
    end, latest = _offsets(source.get("endOffset")), _offsets(source.get("latestOffset"))
    if not latest:
        return None
    return sum(max(0, n - end.get(key, 0)) for key, n in latest.items())


def parse_timestamp(value: str) -> float:
    """A progress's ISO 8601 timestamp (``2026-12-07T23:48:04.123Z``) as Unix seconds."""
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


def rows_written(commit_info: Mapping[str, Any]) -> int:
    """Rows a Delta commit wrote (inserted or rewritten), from its ``commitInfo.operationMetrics`` as Spark
    (``numOutputRows``) or delta-rs (``num_added_rows``) records them; 0 when it records neither."""
    metrics = commit_info.get("operationMetrics") or {}
    for name in ("numOutputRows", "num_added_rows", "numTargetRowsInserted"):
        if name in metrics:
            try:
                return int(metrics[name])
            except (TypeError, ValueError):
                return 0
    return 0


def commit_info(commit: str) -> dict[str, Any]:
    """The ``commitInfo`` action of a Delta commit file's text ({} when it has none)."""
    for line in commit.splitlines():
        if '"commitInfo"' in line:
            try:
                return json.loads(line).get("commitInfo") or {}
            except ValueError:
                return {}
    return {}


# -- the lake's queries ----------------------------------------------------------------------------------------


class DeltaLogs(Collector):
    """``radlake_lake_table_version`` and ``radlake_lake_rows_written_total`` of some tables, read from their
    ``_delta_log`` at each scrape."""

    def __init__(self, tables: Mapping[str, str]) -> None:
        self.tables = dict(tables)  # name -> table URI
        self._lock = threading.Lock()
        self._versions: dict[str, int] = {}
        self._rows: dict[str, int] = {name: 0 for name in tables}

    def _latest(self, fs, log_dir: str) -> int | None:
        try:
            names = [n.rsplit("/", 1)[-1] for n in fs.ls(log_dir, detail=False)]
        except FileNotFoundError:
            return None
        versions = [int(n[:-5]) for n in names if n.endswith(".json") and n[:-5].isdigit()]
        return max(versions) if versions else None

    def poll(self) -> None:
        with self._lock:
            for name, uri in self.tables.items():
                fs, path = fsspec.core.url_to_fs(uri)
                log_dir = f"{path.rstrip('/')}/_delta_log"
                latest = self._latest(fs, log_dir)
                if latest is None:
                    continue
                seen = self._versions.get(name)
                if seen is not None:  # the commits since this process started (the first poll is the baseline)
                    for version in range(seen + 1, latest + 1):
                        try:
                            text = fs.cat_file(f"{log_dir}/{version:020d}.json").decode()
                        except FileNotFoundError:
                            continue  # cleaned up by a log retention already
                        self._rows[name] += rows_written(commit_info(text))
                self._versions[name] = latest

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        try:
            self.poll()
        except OSError as err:
            log.warning("lake metrics: reading the Delta logs failed: %s", err)
        version = GaugeMetricFamily("radlake_lake_table_version", "The table's latest Delta version", labels=["table"])
        rows = CounterMetricFamily("radlake_lake_rows_written", "Rows the table's Delta commits wrote since this "
                                   "process started", labels=["table"])
        with self._lock:
            for name in self.tables:
                if name in self._versions:
                    version.add_metric([name], self._versions[name])
                rows.add_metric([name], self._rows[name])
        yield version
        yield rows


class LakeMetrics:
    def __init__(self, tables: Mapping[str, str], registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self.batches = Counter("radlake_lake_batches", "Micro-batches that made progress", ["query"], registry=r)
        self.input_rows = Counter("radlake_lake_input_rows", "Rows read by the query's micro-batches", ["query"],
                                  registry=r)
        self.batch_duration = Histogram("radlake_lake_batch_duration_seconds", "Wall time of a micro-batch",
                                        ["query"], buckets=SECONDS_BUCKETS, registry=r)
        self.backlog = Gauge("radlake_lake_source_backlog_messages", "Messages the source had beyond what the last "
                             "micro-batch read (0 when idle): the query's trigger lag", ["query"], registry=r)
        self.last_progress = Gauge("radlake_lake_last_progress_timestamp_seconds", "When the query last reported "
                                   "progress or idleness (Unix time)", ["query"], registry=r)
        self.active = Gauge("radlake_lake_query_active", "1 while the query runs, 0 once it terminated",
                            ["query"], registry=r)
        self.failed = Counter("radlake_lake_query_failures", "Queries that terminated with an exception", ["query"],
                              registry=r)
        self.delta = DeltaLogs(tables)
        r.register(self.delta)
        self._names: dict[str, str] = {}  # query id -> name (idle and terminated events carry only the id)

    def started(self, query_id: str, name: str | None, now: float) -> None:
        self._names[query_id] = name or query_id
        self.active.labels(self._names[query_id]).set(1)
        self.last_progress.labels(self._names[query_id]).set(now)

    def progressed(self, progress: Mapping[str, Any]) -> None:
        """One ``StreamingQueryProgress`` (its JSON as a dict)."""
        name = progress.get("name") or progress.get("id") or "unnamed"
        if progress.get("id"):
            self._names[progress["id"]] = name
        rows = int(progress.get("numInputRows") or 0)
        self.active.labels(name).set(1)
        self.batches.labels(name).inc()
        self.input_rows.labels(name).inc(rows)
        duration_ms = (progress.get("durationMs") or {}).get("triggerExecution")
        if duration_ms is not None:
            self.batch_duration.labels(name).observe(duration_ms / 1000.0)
        backlogs = [b for b in (source_backlog(s) for s in progress.get("sources") or ()) if b is not None]
        self.backlog.labels(name).set(sum(backlogs))
        self.last_progress.labels(name).set(parse_timestamp(progress["timestamp"]) if progress.get("timestamp")
                                            else time.time())

    def idle(self, query_id: str, now: float) -> None:
        name = self._names.get(query_id, query_id)
        self.backlog.labels(name).set(0)
        self.last_progress.labels(name).set(now)

    def terminated(self, query_id: str, exception: str | None) -> None:
        name = self._names.get(query_id, query_id)
        self.active.labels(name).set(0)
        if exception:
            self.failed.labels(name).inc()


class LakeListener(StreamingQueryListener):
    """Feeds :class:`LakeMetrics` from Spark's query events (register with ``spark.streams.addListener``)."""

    def __init__(self, metrics: LakeMetrics) -> None:
        self.metrics = metrics

    def onQueryStarted(self, event) -> None:  # noqa: N802 - Spark's names
        self.metrics.started(str(event.id), event.name, time.time())

    def onQueryProgress(self, event) -> None:  # noqa: N802
        try:
            self.metrics.progressed(json.loads(event.progress.json))
        except (ValueError, KeyError, TypeError) as err:  # a metric must never stop a query
            log.warning("lake metrics: unreadable progress: %s", err)

    def onQueryIdle(self, event) -> None:  # noqa: N802
        self.metrics.idle(str(event.id), time.time())

    def onQueryTerminated(self, event) -> None:  # noqa: N802
        self.metrics.terminated(str(event.id), event.exception)


# -- the radiomics follower -------------------------------------------------------------------------------------


class RadiomicsMetrics:
    def __init__(self, on: str, registry: CollectorRegistry | None = None) -> None:
        self.on = on  # studies | segmentations
        self.registry = r = registry or CollectorRegistry()
        self.rois = Counter("radlake_radiomics_rois", "ROIs whose features were computed, or that failed (by "
                            "reason)", ["on", "outcome", "reason"], registry=r)
        self.roi_seconds = Histogram("radlake_radiomics_roi_seconds", "Feature computation time per ROI (a batch's "
                                     "compute time shared by its ROIs: Spark computes them in parallel)", ["on"],
                                     buckets=SECONDS_BUCKETS, registry=r)
        self.batch_seconds = Histogram("radlake_radiomics_batch_seconds", "Wall time of a batch, retries included",
                                       ["on"], buckets=SECONDS_BUCKETS, registry=r)
        self.messages = Counter("radlake_radiomics_messages", "Events consumed, by provider and outcome (handled, "
                                "dead_lettered)", ["on", "provider", "outcome"], registry=r)
        self.events = Counter("radlake_radiomics_events_published", "features computed events published", ["on"],
                              registry=r)
        self.retries = Counter("radlake_radiomics_failed_attempts", "Batch attempts that failed transiently (then "
                               "retried)", ["on"], registry=r)
        self.last_batch = Gauge("radlake_radiomics_last_batch_timestamp_seconds", "When the last batch was done "
                                "(Unix time)", ["on"], registry=r)

    def batch(self, *, seconds: float, computed: int, failures: Iterable[str], compute_s: float,
              handled: Iterable[str], dead_lettered: Iterable[str], published: int, failed_attempts: int,
              now: float) -> None:
        """One batch: ROIs computed, the reasons of ROIs that failed, the job's compute time, the providers of the
        messages handled and dead-lettered."""
        on = self.on
        self.batch_seconds.labels(on).observe(seconds)
        failed = list(failures)
        if computed:
            self.rois.labels(on, "computed", "").inc(computed)
        for reason in failed:
            self.rois.labels(on, "failed", reason).inc()
        if computed or failed:
            share = compute_s / (computed + len(failed))
            for _ in range(computed + len(failed)):
                self.roi_seconds.labels(on).observe(share)
        for provider in handled:
            self.messages.labels(on, provider, "handled").inc()
        for provider in dead_lettered:
            self.messages.labels(on, provider, "dead_lettered").inc()
        if published:
            self.events.labels(on).inc(published)
        if failed_attempts:
            self.retries.labels(on).inc(failed_attempts)
        self.last_batch.labels(on).set(now)
