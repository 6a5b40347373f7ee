"""Prometheus metrics of an inference worker (``radlake_inference_*``), served on its ``/metrics``.

Counters count what this worker process did: a batch processed again after an aborted transaction is counted
again. Device memory and utilisation are read at scrape time, and only on CUDA.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timezone

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
# study completed -> prediction committed: includes the wait in the topic behind other studies
LAG_BUCKETS = (0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800, 7200)


class CudaDevice(Collector):
    """``radlake_inference_device_memory_bytes`` (allocated / reserved by torch) and
    ``radlake_inference_device_utilization_ratio`` (the GPU's, from NVML when installed) of one CUDA device."""

    def __init__(self, index: int, memory: Callable[[int], tuple[int, int]],
                 utilization: Callable[[int], float | None]) -> None:
        self.index = index
        self._memory = memory
        self._utilization = utilization

    def collect(self) -> Iterator[GaugeMetricFamily]:
        device = f"cuda:{self.index}"
        allocated, reserved = self._memory(self.index)
        memory = GaugeMetricFamily("radlake_inference_device_memory_bytes",
                                   "Device memory held by this worker's torch, by kind", labels=["device", "kind"])
        memory.add_metric([device, "allocated"], allocated)
        memory.add_metric([device, "reserved"], reserved)
        yield memory
        busy = self._utilization(self.index)
        if busy is not None:
            yield _utilization_family(device, busy)


def _utilization_family(device: str, busy: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily("radlake_inference_device_utilization_ratio",
                               "Share of the last sample period the GPU was busy (all its processes)",
                               labels=["device"])
    family.add_metric([device], busy)
    return family


def torch_cuda_device(index: int) -> CudaDevice:
    """The collector of CUDA device ``index``, read through torch (utilisation needs ``pynvml``)."""
    import torch  # noqa: PLC0415 - only workers on CUDA reach this

    def memory(i: int) -> tuple[int, int]:
        return int(torch.cuda.memory_allocated(i)), int(torch.cuda.memory_reserved(i))

    def utilization(i: int) -> float | None:
        try:
            return float(torch.cuda.utilization(i)) / 100.0
        except Exception as err:  # noqa: BLE001 - no pynvml, or NVML's own errors: memory alone, and a scrape that works
            log.debug("no GPU utilisation for cuda:%d: %s", i, err)
            return None

    return CudaDevice(index, memory, utilization)


class InferenceMetrics:
    def __init__(self, model: str, registry: CollectorRegistry | None = None) -> None:
        self.model = model
        self.registry = r = registry or CollectorRegistry()
        self.studies = Counter(
            "radlake_inference_studies", "Studies handled, by provider, model (name:version) and outcome "
            "(predicted, rejected: dead-lettered, duplicate: already predicted)",
            ["provider", "model", "outcome"], registry=r)
        self.batches = Counter("radlake_inference_batches", "Batches committed", ["model"], registry=r)
        self.aborted = Counter("radlake_inference_aborted_batches", "Batches whose transaction was aborted (they are "
                               "processed again)", ["model"], registry=r)
        self.batch_size = Histogram("radlake_inference_batch_size", "Studies per model batch", ["model"],
                                    buckets=BATCH_SIZE_BUCKETS, registry=r)
        self.predict_seconds = Histogram(
            "radlake_inference_batch_predict_seconds", "Time the model took per batch (pre-process, predict, "
            "post-process, results written)", ["model"], buckets=SECONDS_BUCKETS, registry=r)
        self.latency = Histogram(
            "radlake_inference_latency_seconds", "Per study: consumed to prediction committed", ["model"],
            buckets=SECONDS_BUCKETS, registry=r)
        self.event_lag = Histogram(
            "radlake_inference_event_lag_seconds", "Per study: the study completed event's occurred_at to its "
            "prediction committed, by provider", ["provider", "model"], buckets=LAG_BUCKETS, registry=r)

    def watch_device(self, device: str) -> None:
        """Add the device collector when ``device`` is CUDA (``cuda`` or ``cuda:N``)."""
        if device.startswith("cuda"):
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            self.registry.register(torch_cuda_device(index))

    def committed(self, *, batch: int, predict_s: float, latencies_s: list[float],
                  outcomes: list[tuple[str, str]], completed_at: list[tuple[str, datetime]], now: datetime) -> None:
        """One committed batch: its size, model time, per-study latencies, (provider, outcome) of each study, and
        (provider, occurred_at) of each study completed event that got a prediction."""
        m = self.model
        self.batches.labels(m).inc()
        if batch:
            self.batch_size.labels(m).observe(batch)
            self.predict_seconds.labels(m).observe(predict_s)
        for value in latencies_s:
            self.latency.labels(m).observe(value)
        for provider, outcome in outcomes:
            self.studies.labels(provider, m, outcome).inc()
        for provider, at in completed_at:
            at = at if at.tzinfo is not None else at.replace(tzinfo=timezone.utc)  # the contract's times are UTC
            self.event_lag.labels(provider, m).observe(max(0.0, (now - at).total_seconds()))
