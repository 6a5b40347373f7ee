"""Prometheus metrics of the streams app (served on ``/metrics`` by the worker's web server).

Counters count what this worker process handled: after a crash, reprocessed events are counted again.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
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


LAG_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800)


class LagHistogram(Collector):
    """``radlake_streams_event_lag_seconds`` by provider, a Prometheus histogram fed a batch of observations at
    a time (:meth:`observe_many`: one lock and no per-value Python loop over the buckets; the handler observes
    every event)."""

    def __init__(self, buckets: tuple[float, ...] = LAG_BUCKETS) -> None:
        self.bounds = tuple(float(b) for b in buckets)
        self._lock = threading.Lock()
        self._by_provider: dict[str, tuple[list[int], list[float]]] = {}  # counts per bucket (+Inf last), [sum]

    def observe_many(self, provider: str, values: Iterable[float]) -> None:
        bounds = self.bounds
        counts = [0] * (len(bounds) + 1)
        total = 0.0
        for value in values:
            counts[bisect_left(bounds, value)] += 1  # le: the first bound >= value
            total += value
        with self._lock:
            kept = self._by_provider.get(provider)
            if kept is None:
                self._by_provider[provider] = (counts, [total])
            else:
                for i, n in enumerate(counts):
                    kept[0][i] += n
                kept[1][0] += total

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily("radlake_streams_event_lag_seconds",
                                       "Handling time minus the event's occurred_at, by provider", labels=["provider"])
        with self._lock:
            snapshot = [(p, list(counts), sums[0]) for p, (counts, sums) in self._by_provider.items()]
        for provider, counts, total in snapshot:
            cumulative, acc = [], 0
            for bound, n in zip((*(str(b) for b in self.bounds), "+Inf"), counts):
                acc += n
                cumulative.append((bound, acc))
            family.add_metric([provider], cumulative, total)
        yield family


class StreamsMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry or CollectorRegistry()
        self._handled: dict[tuple[str, str, str], Any] = {}
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
        self.event_lag = LagHistogram()
        r.register(self.event_lag)
        self.completion_delay = Histogram(
            "radlake_streams_completion_delay_seconds", "A study version's emission time minus the handling time of "
            "its last instance (the quiet period, or ~0 after a manifest), by provider and reason",
            ["provider", "reason"], buckets=LAG_BUCKETS + (3600,), registry=r)
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
