"""The provider edges' counters: kept by each edge process, served by the lag exporter (``radlake_edge_*``,
``monitoring/edges.py``). Plain Python: NiFi's processor environment has no prometheus-client.

An edge runs inside NiFi's Python processors, one process per processor, started and restarted by NiFi; a
web server per processor would need a port, a certificate and an announcement each. Instead each edge process
writes its counters, at most once a second (:class:`FileRecorder`), to ``<state>/edge/<provider>/metrics/<pid>-<n>.json`` (write, then
rename: a reader never sees half a file), and the lag exporter, already scraped over mutual TLS, sums the files
of each provider at scrape time. Files of processes that are gone stay (their counts are part of the
provider's totals); a file is a few hundred bytes.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

DEID_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
FORMAT = 1
_sequence = itertools.count()


class EdgeCounters:
    """One edge process's counters of one provider (thread-safe; NiFi may run a processor's tasks concurrently)."""

    def __init__(self, provider: str, buckets: tuple[float, ...] = DEID_BUCKETS) -> None:
        self.provider = provider
        self.buckets = tuple(float(b) for b in buckets)
        self._lock = threading.Lock()
        self._requests: dict[str, int] = {}  # "kind status" -> n
        self._instances: dict[str, int] = {}  # "status reason" -> n
        self._bytes = 0
        self._deid_counts = [0] * (len(self.buckets) + 1)  # per bucket, +Inf last
        self._deid_sum = 0.0

    def request(self, kind: str, status: int, received_bytes: int) -> None:
        with self._lock:
            key = f"{kind} {status}"
            self._requests[key] = self._requests.get(key, 0) + 1
            self._bytes += received_bytes

    def ingested(self, outcomes: Mapping[tuple[str, str], int], deid_s: float) -> None:
        """Instances by (status, reason) of one request (reason "" for accepted and duplicates), and the time its
        de-identification and storing took."""
        with self._lock:
            for (status, reason), n in outcomes.items():
                key = f"{status} {reason}"
                self._instances[key] = self._instances.get(key, 0) + n
            self._deid_counts[bisect_left(self.buckets, deid_s)] += 1
            self._deid_sum += deid_s

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {"format": FORMAT, "provider": self.provider, "requests": dict(self._requests),
                    "instances": dict(self._instances), "bytes": self._bytes, "deid_buckets": list(self.buckets),
                    "deid_counts": list(self._deid_counts), "deid_sum": self._deid_sum}


class FileRecorder:
    """Writes an :class:`EdgeCounters`' snapshot to its own file under ``folder``: at once when the last write is
    ``every_s`` old, else once that long after it (a timer), so a burst of small requests costs one write a
    second, and the file is never more than ``every_s`` behind."""

    def __init__(self, counters: EdgeCounters, folder: Path, every_s: float = 1.0) -> None:
        self.counters = counters
        self.path = folder / f"{os.getpid()}-{next(_sequence)}.json"
        self.every_s = every_s
        self._lock = threading.Lock()
        self._last = float("-inf")
        self._pending: threading.Timer | None = None

    def flush(self) -> None:
        """Write now or soon (see the class). Never raises: counting must not fail a request."""
        with self._lock:
            wait = self._last + self.every_s - time.monotonic()
            if wait > 0:
                if self._pending is None:
                    self._pending = threading.Timer(wait, self.write)
                    self._pending.daemon = True
                    self._pending.start()
                return
        self.write()

    def write(self) -> None:
        """Write the snapshot now (an unwritable folder is logged)."""
        snapshot = json.dumps(self.counters.snapshot())
        with self._lock:
            self._pending = None
            self._last = time.monotonic()
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                partial = self.path.with_suffix(".tmp")
                partial.write_text(snapshot)
                partial.replace(self.path)
            except OSError as err:
                log.warning("edge metrics not written to %s: %s", self.path, err)


def edges_root(state_dir: Path) -> Path:
    """Where the stack keeps its providers' edge folders (``<state>/edge/<provider>``)."""
    return state_dir / "edge"


def metrics_folder(edge_dir: Path) -> Path:
    return edge_dir / "metrics"


def read_snapshots(edges_root: Path) -> list[dict[str, Any]]:
    """Every snapshot under ``<edges_root>/<provider>/metrics/`` (unreadable or foreign files skipped)."""
    found = []
    for path in sorted(edges_root.glob("*/metrics/*.json")):
        try:
            snapshot = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(snapshot, dict) and snapshot.get("format") == FORMAT and isinstance(snapshot.get("provider"), str):
            found.append(snapshot)
    return found


class EdgeTelemetry:
    """What an edge runtime counts with: its counters and the file they go to."""

    def __init__(self, provider: str, edge_dir: Path) -> None:
        self.counters = EdgeCounters(provider)
        self.recorder = FileRecorder(self.counters, metrics_folder(edge_dir))

    def answered(self, kind: str, status: int, received_bytes: int) -> None:
        self.counters.request(kind, status, received_bytes)
        self.recorder.flush()
