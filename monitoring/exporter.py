"""The consumer-lag exporter: lag of every consumer group on every partition, the state dir's disk, how long
the platform's leaf certificates have left, and the supervisor's restarts and give-ups (from its log), in
Prometheus's exposition format.

Kafka is asked at scrape time (one scrape, one round of describe requests: no second clock to tune), as the
``radlake-monitoring`` principal, which may describe topics and groups and read nothing. ``/metrics`` is HTTPS
with a certificate of the platform CA and answers only clients that show one of the same CA (Prometheus).
"""

from __future__ import annotations

import datetime
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec
from cryptography import x509
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitoring.edges import EdgeCollector
from monitoring.lag import PartitionLag, group_totals, partition_lags
from platform_layer.edge_metrics import edges_root
from platform_layer.supervision import events_file, read, summary

log = logging.getLogger(__name__)

# Where the stack keeps leaf certificates: <state>/<component>/tls/*.crt and one level deeper
CERTIFICATE_GLOBS = ("*/tls/*.crt", "*/*/tls/*.crt", "*/*/*/tls/*.crt")


@dataclass(frozen=True)
class KafkaOffsets:
    """What one scrape read from Kafka."""

    lags: list[PartitionLag]
    topic_ends: dict[str, int]  # messages ever written per topic (sum of end offsets over its partitions)


def read_offsets(admin: AdminClient, timeout_s: float = 10.0) -> KafkaOffsets:
    """Committed offsets of every consumer group and the end offsets (read_committed) of every topic."""
    listed = admin.list_consumer_groups(request_timeout=timeout_s).result()
    groups = sorted(g.group_id for g in listed.valid)
    committed: dict[str, dict[tuple[str, int], int]] = {}
    for group in groups:  # the admin API takes one group per request
        try:
            answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)],
                                                       request_timeout=timeout_s)[group].result()
        except KafkaException as err:
            if err.args[0].code() != KafkaError.GROUP_ID_NOT_FOUND:
                raise
            continue  # deleted since it was listed
        committed[group] = {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions or []}
    topics = admin.list_topics(timeout=timeout_s).topics
    wanted = [TopicPartition(name, p) for name, meta in topics.items() if not name.startswith("__")
              for p in meta.partitions]
    ends: dict[tuple[str, int], int] = {}
    if wanted:
        answers = admin.list_offsets({tp: OffsetSpec.latest() for tp in wanted},
                                     isolation_level=IsolationLevel.READ_COMMITTED, request_timeout=timeout_s)
        for tp, future in answers.items():
            try:
                ends[(tp.topic, tp.partition)] = future.result().offset
            except KafkaException as err:  # a topic deleted since it was listed has no end, and no lag
                if err.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise
    lags = [lag for group, offsets in committed.items() for lag in partition_lags(group, offsets, ends)]
    topic_ends: dict[str, int] = {}
    for (topic, _partition), end in ends.items():
        topic_ends[topic] = topic_ends.get(topic, 0) + end
    return KafkaOffsets(lags, topic_ends)


class KafkaLagCollector(Collector):
    def __init__(self, admin: AdminClient) -> None:
        self.admin = admin

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("radlake_lag_exporter_kafka_up", "1 when this scrape read the offsets from Kafka")
        started = time.monotonic()
        try:
            offsets = read_offsets(self.admin)
        except KafkaException as err:
            log.warning("reading offsets from Kafka failed: %s", err)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        duration = GaugeMetricFamily("radlake_lag_exporter_read_seconds", "How long reading the offsets took")
        duration.add_metric([], time.monotonic() - started)
        yield duration
        per_partition = GaugeMetricFamily("radlake_consumer_lag", "Messages not yet consumed: end offset "
                                          "(read_committed) minus the group's committed offset",
                                          labels=["group", "topic", "partition"])
        for lag in offsets.lags:
            per_partition.add_metric([lag.group, lag.topic, str(lag.partition)], lag.lag)
        yield per_partition
        per_group = GaugeMetricFamily("radlake_consumer_group_lag", "Total lag of a consumer group over all its "
                                      "topics and partitions", labels=["group"])
        for group, total in group_totals(offsets.lags).items():
            per_group.add_metric([group], total)
        yield per_group
        messages = GaugeMetricFamily("radlake_topic_end_offset", "Sum of a topic's end offsets over its "
                                     "partitions (messages written, transaction markers included)",
                                     labels=["topic"])
        for topic, end in sorted(offsets.topic_ends.items()):
            messages.add_metric([topic], end)
        yield messages


class StateDirCollector(Collector):
    """The file system holding the state dir, the state dir's own size (walked at most every ``walk_every_s``),
    and the seconds each leaf certificate under it has left."""

    def __init__(self, state_dir: Path, walk_every_s: float = 60.0) -> None:
        self.state_dir = state_dir
        self.walk_every_s = walk_every_s
        self._lock = threading.Lock()
        self._walked_at = -float("inf")
        self._size = 0

    def collect(self) -> Iterator[Metric]:
        usage = shutil.disk_usage(self.state_dir)
        size = GaugeMetricFamily("radlake_state_dir_filesystem_size_bytes", "Size of the file system holding "
                                 "the state dir")
        size.add_metric([], usage.total)
        free = GaugeMetricFamily("radlake_state_dir_filesystem_free_bytes", "Free bytes on the file system "
                                 "holding the state dir")
        free.add_metric([], usage.free)
        own = GaugeMetricFamily("radlake_state_dir_bytes", "Bytes of the files under the state dir")
        own.add_metric([], self._state_dir_bytes())
        yield from (size, free, own)
        expiry = GaugeMetricFamily("radlake_certificate_expiry_seconds", "Seconds until a leaf certificate under "
                                   "the state dir expires (negative: expired)", labels=["file", "subject"])
        for path, subject, seconds in certificate_expiries(self.state_dir):
            expiry.add_metric([path, subject], seconds)
        yield expiry

    def _state_dir_bytes(self) -> int:
        with self._lock:
            if time.monotonic() - self._walked_at >= self.walk_every_s:
                self._size = directory_bytes(self.state_dir)
                self._walked_at = time.monotonic()
            return self._size


def directory_bytes(root: Path) -> int:
    total = 0
    for folder, _dirs, files in os.walk(root, onerror=lambda _err: None):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:  # removed while walking
                continue
    return total


def certificate_expiries(state_dir: Path, now: datetime.datetime | None = None) -> list[tuple[str, str, float]]:
    """(file relative to the state dir, subject, seconds left) of each leaf certificate (CA certificates and
    files that hold no certificate are left out)."""
    now = now or datetime.datetime.now(datetime.timezone.utc)
    found = []
    for pattern in CERTIFICATE_GLOBS:
        for path in sorted(state_dir.glob(pattern)):
            try:
                certificate = x509.load_pem_x509_certificate(path.read_bytes())
            except (OSError, ValueError):
                continue
            try:
                if certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca:
                    continue
            except x509.ExtensionNotFound:
                pass
            found.append((str(path.relative_to(state_dir)), certificate.subject.rfc4514_string(),
                          (certificate.not_valid_after_utc - now).total_seconds()))
    return found


class SupervisorCollector(Collector):
    """What the stack's supervisor did, read from its log at each scrape (the log outlives the supervisor, so the
    counts survive its restarts)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir

    def collect(self) -> Iterator[Metric]:
        records = summary(read(events_file(self.state_dir)))
        restarts = CounterMetricFamily("radlake_supervisor_restarts", "Restarts of a component by the supervisor "
                                       "that ended with it healthy", labels=["component"])
        failed = CounterMetricFamily("radlake_supervisor_failed_restarts", "Restart attempts that did not bring "
                                     "the component back", labels=["component"])
        gave_up = GaugeMetricFamily("radlake_supervisor_gave_up", "1 while the supervisor has given up on a "
                                    "component (its crash-loop limit reached) and nobody brought it back",
                                    labels=["component"])
        for component, record in sorted(records.items()):
            restarts.add_metric([component], record.restarts)
            failed.add_metric([component], record.failed_restarts)
            gave_up.add_metric([component], int(record.gave_up))
        yield from (restarts, failed, gave_up)


@dataclass(frozen=True)
class ServerTLS:
    certificate: str
    key: str
    client_ca: str


def serve(admin: AdminClient, state_dir: Path, host: str, port: int, tls: ServerTLS) -> threading.Thread:
    """Start ``/metrics`` (HTTPS, client certificate required); returns the server's thread."""
    registry = CollectorRegistry()
    registry.register(KafkaLagCollector(admin))
    registry.register(StateDirCollector(state_dir))
    registry.register(SupervisorCollector(state_dir))
    registry.register(EdgeCollector(edges_root(state_dir)))
    _server, thread = start_http_server(port, host, registry=registry, certfile=tls.certificate, keyfile=tls.key,
                                        client_cafile=tls.client_ca, client_auth_required=True)
    return thread
