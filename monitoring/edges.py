"""The provider edges' metrics (``radlake_edge_*``), summed per provider from the files the edge processes write
(``platform_layer.edge_metrics``), for the lag exporter."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from platform_layer.edge_metrics import read_snapshots


def families(snapshots: list[dict[str, Any]]) -> list[Metric]:
    """The ``radlake_edge_*`` metric families of the snapshots, summed per provider (pure)."""
    requests = CounterMetricFamily("radlake_edge_requests", "Requests the provider's edge answered, by kind "
                                   "(stow, archive, drop, manifest, or none before routing) and HTTP status",
                                   labels=["provider", "kind", "status"])
    instances = CounterMetricFamily("radlake_edge_instances", "Instances the edge accepted, found duplicate or "
                                    "quarantined (with the reason)", labels=["provider", "outcome", "reason"])
    received = CounterMetricFamily("radlake_edge_received_bytes", "Bytes of request bodies the edge received",
                                   labels=["provider"])
    deid = HistogramMetricFamily("radlake_edge_deid_seconds", "De-identification and storing time per request "
                                 "that carried instances", labels=["provider"])
    totals: dict[str, dict[str, Any]] = {}
    for snap in snapshots:
        total = totals.setdefault(snap["provider"], {"requests": {}, "instances": {}, "bytes": 0, "buckets": None,
                                                     "counts": None, "sum": 0.0})
        for field in ("requests", "instances"):
            for key, n in (snap.get(field) or {}).items():
                total[field][key] = total[field].get(key, 0) + int(n)
        total["bytes"] += int(snap.get("bytes") or 0)
        buckets, counts = snap.get("deid_buckets"), snap.get("deid_counts")
        if total["buckets"] is None:
            total["buckets"], total["counts"] = list(buckets), [0] * len(counts)
        if list(buckets) == total["buckets"] and len(counts) == len(total["counts"]):  # else: another layout
            total["counts"] = [a + int(b) for a, b in zip(total["counts"], counts)]
            total["sum"] += float(snap.get("deid_sum") or 0.0)
    for provider, total in sorted(totals.items()):
        for key, n in sorted(total["requests"].items()):
            kind, _, status = key.partition(" ")
            requests.add_metric([provider, kind, status], n)
        for key, n in sorted(total["instances"].items()):
            outcome, _, reason = key.partition(" ")
            instances.add_metric([provider, outcome, reason], n)
        received.add_metric([provider], total["bytes"])
        cumulative, acc = [], 0
        for bound, n in zip((*(str(float(b)) for b in total["buckets"]), "+Inf"), total["counts"]):
            acc += n
            cumulative.append((bound, acc))
        deid.add_metric([provider], cumulative, total["sum"])
    return [requests, instances, received, deid]


class EdgeCollector(Collector):
    """The edges' counters, read from their files at each scrape."""

    def __init__(self, edges_root: Path) -> None:
        self.edges_root = edges_root

    def collect(self) -> Iterator[Metric]:
        yield from families(read_snapshots(self.edges_root))
