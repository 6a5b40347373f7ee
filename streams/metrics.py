"""Prometheus metrics of the streams app (served on ``/metrics`` by the worker's web server).

Counters count what this worker process handled: after a crash, reprocessed events are counted again.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from platform_layer.serde import REGISTRY_CALLS


class _RegistryCalls(Collector):
    """The process's schema registry calls (kept by platform_layer.serde), read at scrape time."""

    def collect(self) -> Iterator[CounterMetricFamily]:
        calls = CounterMetricFamily("radlake_registry_calls", "Calls this process made to the schema registry, "
                                    "by outcome (each call has a timeout and bounded retries)", labels=["outcome"])
        calls.add_metric(["ok"], REGISTRY_CALLS.ok)
        calls.add_metric(["failed"], REGISTRY_CALLS.failed)
        yield calls


class StreamsMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self._handled: dict[tuple[str, str, str], Any] = {}
        self._lag: dict[str, Any] = {}
        self.events = Counter(
            "radlake_streams_events", "Events handled, by input topic kind, provider and outcome",
            ["kind", "provider", "outcome"], registry=r)
        self.duplicates = Counter(
            "radlake_streams_duplicates", "Redelivered instances dropped (by event id or by SOP UID + sha256)",
            ["provider", "by"], registry=r)
        self.conflicts = Counter(
            "radlake_streams_conflicts", "Same SOP UID with another sha256, quarantined", ["provider"], registry=r)
        self.dead_letters = Counter(
            "radlake_streams_dead_letters", "Messages sent to the dead-letter topic", ["topic", "reason"],
            registry=r)
        self.studies = Counter(
            "radlake_streams_studies_emitted", "Study versions emitted", ["provider", "event_type", "reason"],
            registry=r)
        self.event_lag = Histogram(
            "radlake_streams_event_lag_seconds", "Handling time minus the event's occurred_at, by provider",
            ["provider"], registry=r, buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800))
        self.consumer_lag = Gauge(
            "radlake_streams_consumer_lag_messages", "Instance events not yet handled, per partition",
            ["topic", "partition"], registry=r)
        self.handler_busy = Gauge(
            "radlake_streams_handler_busy_seconds", "How long the handler now running has been at it (0: idle)",
            registry=r)
        r.register(_RegistryCalls())
        self.open_studies = Gauge(
            "radlake_streams_open_studies", "Studies with instances not yet covered by an emitted version",
            registry=r)

    def handled(self, kind: str, provider: str, outcome: str) -> Any:
        """The ``events`` counter child of one label set (looked up once: ``labels()`` costs more than ``inc()``)."""
        key = (kind, provider, outcome)
        child = self._handled.get(key)
        if child is None:
            child = self._handled[key] = self.events.labels(*key)
        return child

    def lag(self, provider: str) -> Any:
        child = self._lag.get(provider)
        if child is None:
            child = self._lag[provider] = self.event_lag.labels(provider)
        return child
