"""The study completion worker: a confluent-kafka consumer and transactional producer around the pure steps.

Inputs (keyed by study UID, co-partitioned): ``instance received`` and ``study manifest``. Outputs: ``study
completed``/``updated``, ``quarantined`` (conflicts) and the dead-letter topic, each sent to the partition of
the input that caused it. State (:mod:`streams.state`) is in memory and in a compacted state topic.

Exactly once: the worker consumes a batch, runs the pure steps (``streams.completion``, ``streams.dedupe``,
``streams.series_summary``) over it, and produces the outputs and the changed state records inside one Kafka
transaction that also carries the input offsets (``send_offsets_to_transaction``). Either all of a batch's
effects are committed or none: a crash aborts the open transaction (the restarted worker's
``init_transactions`` with the same transactional id fences and aborts it), the restarted worker restores
the committed state and resumes from the committed offsets, and re-derives the same outputs with the same
deterministic event ids. A transaction that fails to commit is aborted, the in-memory state rolled back and
the consumer rewound to the committed offsets.

The quiet period is checked on a timer between batches, and only for partitions with no backlog (a study
whose remaining instances are still queued must not look quiet).
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from collections import Counter
from dataclasses import replace
from datetime import datetime, timezone
from operator import attrgetter
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)
from pydantic import BaseModel

from lake_schemas.errors import RegistryError, SchemaViolation
from lake_schemas.events import InstanceReceived, StudyManifest
from lake_schemas.topics import (
    INSTANCE_RECEIVED,
    QUARANTINED,
    STUDY_COMPLETED,
    STUDY_MANIFEST,
    dead_letter_headers,
)
from platform_layer import kafka
from platform_layer.errors import TopicError
from platform_layer.kafka import TopicSpec
from platform_layer.metrics_endpoint import MetricsTLS, start_server
from platform_layer.serde import EventSerde, registry_client
from streams.completion import (
    StudyProgress,
    accept_instances,
    apply_manifest,
    completion,
    mark_emitted,
)
from streams.config import StreamsConfig
from streams.dedupe import Verdict, classify, conflict_event
from streams.errors import ContractError, StreamsError, TopicLayoutError
from streams.metrics import StreamsMetrics
from streams.records import InstanceRecord
from streams.series_summary import completed_document
from streams.state import StudyStore
from streams.watchdog import HandlerWatchdog

log = logging.getLogger(__name__)

READY = "radlake streams: ready"
_ACCEPT = Verdict.ACCEPT  # a module global: an Enum member looked up on its class, or its value, costs ~0.2 us
_ACCEPTED = Verdict.ACCEPT.value
_PROVIDER = attrgetter("provider")
_TIMEOUT_S = 60.0  # bound of every blocking broker call (transactions, restore)


def ensure_topics(config: StreamsConfig) -> None:
    """Create the worker's topics that are missing; all must have ``config.partitions`` partitions
    (co-partitioned by study UID), and the state topic is compacted."""
    names = [config.instance_topic, config.manifest_topic, config.completed_topic, config.quarantined_topic,
             config.dead_letter_topic]
    specs = [TopicSpec(n, config.partitions) for n in names]
    specs.append(TopicSpec(config.state_topic, config.partitions, {"cleanup.policy": "compact"}))
    try:
        kafka.ensure_topics(config.bootstrap, specs)
    except TopicError as err:
        raise TopicLayoutError(f"the streams topics must all have {config.partitions} partitions: {err}") from err


def rights(config: StreamsConfig) -> kafka.Rights:
    """What the worker's principal may do on Kafka: read its inputs and its state, write its outputs and its
    state, use its group(s) and transactional ids (all named after its app id)."""
    return kafka.Rights(
        reads=(config.instance_topic, config.manifest_topic, config.state_topic),
        writes=(config.completed_topic, config.quarantined_topic, config.dead_letter_topic, config.state_topic),
        group_prefixes=(config.app_id,), transactional_prefixes=(config.app_id,))


def check_contracts(config: StreamsConfig) -> None:
    """Every topic the worker decodes or encodes has its lake_schemas schema registered under its subject."""
    registry = registry_client(config.registry_url)
    pairs = ((INSTANCE_RECEIVED, config.instance_topic), (STUDY_MANIFEST, config.manifest_topic),
             (STUDY_COMPLETED, config.completed_topic), (QUARANTINED, config.quarantined_topic))
    for contract, name in pairs:
        try:
            EventSerde(contract.with_name(name), registry).schema_id
        except RegistryError as err:
            raise ContractError(str(err)) from err


class Arrivals:
    """The instances of one study accepted in the current batch, not yet added to its progress (nor counted)."""

    __slots__ = ("records", "project", "pseudo_patient_id", "latest_ms")

    def __init__(self, record: InstanceRecord, data: Any, at_ms: int) -> None:
        self.records: list[InstanceRecord] = [record]
        self.project = data.project  # of the first of them
        self.pseudo_patient_id = data.pseudo_patient_id
        self.latest_ms = at_ms  # the latest message timestamp (a datetime is made once per study and batch)

    def add(self, record: InstanceRecord, at_ms: int) -> None:
        self.records.append(record)
        if at_ms > self.latest_ms:
            self.latest_ms = at_ms


def _message_time(msg: Message) -> datetime:
    return datetime.fromtimestamp(msg.timestamp()[1] / 1000, tz=timezone.utc)


class StudyCompletionWorker:
    """One worker process: run :meth:`run` until :meth:`stop`."""

    def __init__(self, config: StreamsConfig, metrics: StreamsMetrics | None = None) -> None:
        self.config = config
        self.metrics = metrics or StreamsMetrics()
        registry = registry_client(config.registry_url)
        self.instance_serde = EventSerde(INSTANCE_RECEIVED.with_name(config.instance_topic), registry)
        self.manifest_serde = EventSerde(STUDY_MANIFEST.with_name(config.manifest_topic), registry)
        self.completed_serde = EventSerde(STUDY_COMPLETED.with_name(config.completed_topic), registry)
        self.quarantined_serde = EventSerde(QUARANTINED.with_name(config.quarantined_topic), registry)
        for serde in (self.instance_serde, self.manifest_serde, self.completed_serde, self.quarantined_serde):
            serde.schema_id  # resolve once now, not on the first event  # noqa: B018
        self.store = StudyStore()
        self.watchdog = HandlerWatchdog()
        self.metrics.handler_busy.set_function(self.watchdog.busy_seconds)
        self.metrics.open_studies.set_function(self.store.open_count)
        self.started_at = datetime.now(timezone.utc)
        self._stop = threading.Event()
        self._transaction_since: float | None = None  # monotonic time the open transaction began
        # instances of the batch accepted but not yet added to their study's progress, added once per study
        # per batch (see _settle): (partition, study UID) -> the events' data and arrival times
        self._arrived: dict[tuple[int, str], Arrivals] = {}
        # events handled in the batch by (kind, provider, outcome), added to the counters once per batch
        self._tally: Counter[tuple[str, str, str]] = Counter()
        # lag of each instance handled in the batch, by provider, added to the histogram once per batch
        self._lags: dict[str, list[float]] = {}
        # (topic, partition) -> the group's committed offset at assignment: where the backlog starts until the
        # consumer has a position of its own there
        self._assigned_at: dict[tuple[str, int], int] = {}
        member_id = f"{config.app_id}-{config.instance_id}"
        self.producer = kafka.transactional_producer(config.bootstrap, transactional_id=member_id,
                                                     extra={"queue.buffering.max.messages": 1_000_000})
        self.consumer = kafka.consumer(config.bootstrap, group_id=config.app_id, static_member_id=member_id, extra={
            "session.timeout.ms": int(config.session_timeout_s * 1000),
            # range: partition i of the instance and the manifest topic go to the same worker
            "partition.assignment.strategy": "range",
        })

    def stop(self) -> None:
        self._stop.set()

    # -- the loop -------------------------------------------------------------------------------------

    def run(self) -> None:
        # The state is many long-lived objects: with the default thresholds the collector would rescan them
        # every few thousand allocations. Restored state is frozen (_on_assign); young objects are
        # collected less often.
        gc.set_threshold(50_000, 20, 100)
        c = self.config
        if not (c.metrics_certificate and c.metrics_key and c.metrics_client_ca):
            raise StreamsError("the metrics endpoint is HTTPS only: it needs a certificate, its key and the CA of its "
                               "clients (`radlake streams run` issues them)")
        server = start_server(self.metrics.registry, MetricsTLS(c.metrics_certificate, c.metrics_key,
                                                                c.metrics_client_ca), c.web_host, c.web_port)
        self.watchdog.start()
        try:
            self.producer.init_transactions(_TIMEOUT_S)
            self.consumer.subscribe([self.config.instance_topic, self.config.manifest_topic],
                                    on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
            log.info(READY)
            next_tick = time.monotonic()
            while not self._stop.is_set():
                messages = self._next_batch(self._wait_s(next_tick))
                if messages:
                    self._handle_batch(messages)
                if time.monotonic() >= next_tick - 0.001:  # consume's timeout has millisecond resolution
                    next_tick = time.monotonic() + self.config.tick_interval_s
                    self._quiet_check()
                if self._commit_due(drained=not messages):  # nothing arrived within the wait
                    self._commit()
            if self._transaction_since is not None:
                self._commit()
        finally:
            self.watchdog.stop()
            self.consumer.close()
            self.producer.flush(_TIMEOUT_S)
            server.shutdown()

    def _next_batch(self, wait_s: float) -> list[Message]:
        """Up to a batch of what the consumer holds now; when it holds nothing, the first message to arrive within
        ``wait_s`` and what came with it. (``consume`` alone waits for a full batch until its timeout: a caught-up
        worker would sit on a study's last instances for that long.)"""
        batch_size = self.config.batch_size
        messages = self.consumer.consume(batch_size, timeout=0)
        if messages or wait_s <= 0:
            return messages
        first = self.consumer.poll(wait_s)
        if first is None:
            return []
        return [first, *self.consumer.consume(batch_size - 1, timeout=0)]

    def _wait_s(self, next_tick: float) -> float:
        now = time.monotonic()
        until = next_tick
        if self._transaction_since is not None:
            until = min(until, self._transaction_since + self.config.commit_interval_s)
            if self.config.commit_when_drained:  # wait for input at most until a drained one may commit
                until = min(until, max(now, self._transaction_since + self.config.drained_after_s))
        return max(0.0, min(1.0, until - now))

    def _commit_due(self, drained: bool) -> bool:
        """An open transaction commits at the commit interval, or once the input is drained."""
        since = self._transaction_since
        if since is None:
            return False
        open_s = time.monotonic() - since + 0.001  # the consumer's waits have millisecond resolution
        return open_s >= self.config.commit_interval_s or (
            drained and self.config.commit_when_drained and open_s >= self.config.drained_after_s)

    def _begin(self) -> None:
        if self._transaction_since is None:
            self.producer.begin_transaction()
            self._transaction_since = time.monotonic()

    def _handle_batch(self, messages: list[Message]) -> None:
        self._begin()
        handled_at = datetime.now(timezone.utc)
        instance_topic = self.config.instance_topic
        self.watchdog.enter(f"a batch of {len(messages)} messages")
        try:
            for msg in messages:
                error = msg.error()
                if error is not None:
                    if error.fatal():
                        raise StreamsError(f"consumer failed: {error}")
                    log.warning("consumer: %s", error)
                    continue
                if msg.topic() == instance_topic:
                    self._on_instance(msg, handled_at)
                else:
                    self._on_manifest(msg)
            for partition, study_uid in list(self._arrived):
                self._settle(partition, study_uid)
            self._produce_state()
        finally:
            self.watchdog.leave()
        for labels, count in self._tally.items():
            self.metrics.handled(*labels).inc(count)
        self._tally.clear()
        for provider, lags in self._lags.items():
            self.metrics.event_lag.observe_many(provider, lags)
        self._lags.clear()

    def _produce(self, topic: str, key: bytes | None, value: bytes | None, partition: int,
                 headers: list[tuple[str, bytes]] | None = None) -> None:
        self._begin()
        while True:
            try:
                self.producer.produce(topic, value=value, key=key, partition=partition, headers=headers)
                return
            except BufferError:  # the local queue is full: let librdkafka deliver some first
                self.producer.poll(0.1)

    def _produce_state(self) -> None:
        for partition, key, value in self.store.take_records():
            self._produce(self.config.state_topic, key, value, partition)
        self.producer.poll(0)

    def _commit(self) -> None:
        self._produce_state()
        positions = [tp for tp in self.consumer.position(self.consumer.assignment()) if tp.offset >= 0]
        try:
            self.producer.send_offsets_to_transaction(positions, self.consumer.consumer_group_metadata(),
                                                      _TIMEOUT_S)
            self.producer.commit_transaction(_TIMEOUT_S)
        except KafkaException as err:
            if not err.args[0].txn_requires_abort():
                raise  # fatal (e.g. fenced by a newer instance with the same id): the process must stop
            log.error("transaction aborted (%s): state rolled back, input rewound to the committed offsets", err)
            self.producer.abort_transaction(_TIMEOUT_S)
            self.store.rollback()
            self._rewind()
        else:
            self.store.committed()
        self._transaction_since = None

    def _rewind(self) -> None:
        assignment = self.consumer.assignment()
        for tp in self.consumer.committed(assignment, timeout=_TIMEOUT_S):
            offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            self.consumer.seek(TopicPartition(tp.topic, tp.partition, offset))

    # -- assignment -----------------------------------------------------------------------------------

    def _on_assign(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        wanted = {tp.partition for tp in partitions} - set(self.store.partitions)
        if wanted:
            started = time.monotonic()
            counts = self._restore(wanted)
            gc.freeze()
            log.info("restored state of partitions %s (%s records) in %.1f s", sorted(wanted), counts,
                     time.monotonic() - started)
        committed = self.consumer.committed(partitions, timeout=_TIMEOUT_S)  # stable offsets (KIP-447)
        for tp in committed:
            self._assigned_at[(tp.topic, tp.partition)] = max(tp.offset, 0)  # none committed: from the start
        # start at the offsets just read (none committed: the beginning, as auto.offset.reset): assigned without
        # them, the consumer would fetch them again before its first fetch, delaying the first batch
        self.consumer.assign([TopicPartition(tp.topic, tp.partition, tp.offset if tp.offset >= 0 else OFFSET_BEGINNING)
                              for tp in committed])
        log.info("assigned %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def _on_revoke(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._transaction_since is not None:  # the open transaction covers these partitions: finish it
            self._commit()
        for partition in {tp.partition for tp in partitions}:
            self.store.drop(partition)
        log.info("revoked %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def _on_lost(self, _consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._transaction_since is not None:  # another worker owns them now: nothing of ours may commit
            self.producer.abort_transaction(_TIMEOUT_S)
            self.store.rollback()
            self._transaction_since = None
        for partition in {tp.partition for tp in partitions}:
            self.store.drop(partition)
        log.warning("lost %s", [f"{tp.topic}[{tp.partition}]" for tp in partitions])

    def _restore(self, partitions: set[int]) -> dict[int, int]:
        """Load the committed state of ``partitions`` from the state topic (read_committed, to its end)."""
        reader = kafka.consumer(self.config.bootstrap, group_id=f"{self.config.app_id}-restore",
                                extra={"enable.partition.eof": True})
        records: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in partitions}
        remaining = set(partitions)
        deadline = time.monotonic() + 10 * _TIMEOUT_S
        try:
            reader.assign([TopicPartition(self.config.state_topic, p, OFFSET_BEGINNING) for p in partitions])
            while remaining:
                if time.monotonic() > deadline:
                    raise StreamsError(f"restoring state partitions {sorted(remaining)} did not reach their end")
                for msg in reader.consume(10_000, 0.1):
                    error = msg.error()
                    if error is None:
                        records[msg.partition()].append((msg.key(), msg.value()))
                    elif error.code() == KafkaError._PARTITION_EOF:
                        remaining.discard(msg.partition())
                    elif error.fatal() or not error.retriable():
                        raise StreamsError(f"restoring state: {error}")
        finally:
            reader.close()
        for partition, items in records.items():
            self.store.load(partition, items)
        return {p: len(items) for p, items in records.items()}

    # -- handlers -------------------------------------------------------------------------------------

    def _dead_letter(self, msg: Message, reason: str, err: Exception) -> None:
        headers = dead_letter_headers(reason, str(err), msg.topic(), msg.partition(), msg.offset(), "streams")
        self._produce(self.config.dead_letter_topic, msg.key(), msg.value(), msg.partition(), headers)
        self.metrics.dead_letters.labels(msg.topic(), reason).inc()
        log.warning("dead-lettered %s[%d]@%d: %s", msg.topic(), msg.partition(), msg.offset(), reason)

    def _decode(self, msg: Message, serde: EventSerde, kind: str) -> BaseModel | None:
        """The typed event of ``msg``, or None once a message that does not match its schema is dead-lettered."""
        try:
            return serde.deserialize(msg.value())
        except SchemaViolation as err:
            self._dead_letter(msg, "SCHEMA_VIOLATION", err)
            self._tally[(kind, "", "dead_letter")] += 1
            return None

    def _on_instance(self, msg: Message, handled_at: datetime) -> None:
        partition = msg.partition()
        try:
            # the validated view, not the pydantic event: this runs for every instance of every study
            instance = self.instance_serde.read(msg.value())
        except SchemaViolation as err:
            self._dead_letter(msg, "SCHEMA_VIOLATION", err)
            self._tally[("instance", "", "dead_letter")] += 1
            return
        provider, data = instance.provider, instance.data
        lag = (handled_at - instance.occurred_at).total_seconds()
        lags = self._lags.get(provider)
        if lags is None:
            lags = self._lags[provider] = []
        lags.append(lag if lag > 0.0 else 0.0)
        record = InstanceRecord.from_event(instance)
        event_id = instance.event_id
        study_uid = data.study_uid
        known, seen = self.store.lookup(partition, study_uid, data.sop_instance_uid, event_id)
        # an accepted event's id is in its instance record; `seen` holds the ids of the others (conflicts)
        verdict = classify(record, event_seen=(known is not None and known.event_id == event_id) or seen,
                           known=known)
        if verdict is _ACCEPT:  # counted once per study and batch, when settled
            self.store.put_instance(partition, study_uid, record)
            arrivals = self._arrived.get((partition, study_uid))
            if arrivals is None:
                self._arrived[(partition, study_uid)] = Arrivals(record, data, msg.timestamp()[1])
            else:
                arrivals.add(record, msg.timestamp()[1])
            return
        self._tally[("instance", provider, verdict.value)] += 1
        if verdict in (Verdict.DUPLICATE_EVENT, Verdict.DUPLICATE_CONTENT):
            self.metrics.duplicates.labels(provider, "event_id" if verdict is Verdict.DUPLICATE_EVENT
                                           else "sop_uid_sha256").inc()
            return
        if verdict is Verdict.CONFLICT:
            assert known is not None
            self.store.mark_seen(partition, event_id)
            event = self.instance_serde.deserialize(msg.value())  # the typed event, for the (rare) quarantine record
            assert isinstance(event, InstanceReceived)
            self._produce(self.config.quarantined_topic, study_uid.encode(),
                          self.quarantined_serde.serialize(conflict_event(event, known)), partition)
            self.metrics.conflicts.labels(provider).inc()

    def _settle(self, partition: int, study_uid: str) -> None:
        """Add the study's instances accepted in this batch to its progress, then decide on completion: the
        same result as adding them one by one, for the cost of one progress update."""
        arrived = self._arrived.pop((partition, study_uid), None)
        if arrived is None:
            return
        for provider, count in Counter(map(_PROVIDER, arrived.records)).items():
            self._tally[("instance", provider, _ACCEPTED)] += count
        latest = datetime.fromtimestamp(arrived.latest_ms / 1000, tz=timezone.utc)
        progress = accept_instances(self.store.progress(partition, study_uid), arrived.records,
                                    study_uid=study_uid, project=arrived.project,
                                    pseudo_patient_id=arrived.pseudo_patient_id, arrived_at=latest)
        self.store.put_progress(partition, progress)
        self._maybe_emit(partition, progress, latest)

    def _on_manifest(self, msg: Message) -> None:
        partition = msg.partition()
        manifest = self._decode(msg, self.manifest_serde, "manifest")
        if manifest is None:
            return
        assert isinstance(manifest, StudyManifest)
        if self.store.seen(partition, manifest.event_id):
            self._tally[("manifest", manifest.provider, Verdict.DUPLICATE_EVENT.value)] += 1
            self.metrics.duplicates.labels(manifest.provider, "event_id").inc()
            return
        self.store.mark_seen(partition, manifest.event_id)
        self._tally[("manifest", manifest.provider, Verdict.ACCEPT.value)] += 1
        self._settle(partition, manifest.data.study_uid)  # the study's instances before it in the batch first
        progress = apply_manifest(self.store.progress(partition, manifest.data.study_uid), manifest)
        self.store.put_progress(partition, progress)
        self._maybe_emit(partition, progress, _message_time(msg))

    def _maybe_emit(self, partition: int, progress: StudyProgress, now: datetime,
                    decide_on: StudyProgress | None = None) -> None:
        done = completion(decide_on or progress, now, self.config.quiet_period)
        if done is None:
            return
        event = completed_document(progress, self.store.instances_of(progress, partition), done, now)
        self._produce(self.config.completed_topic, progress.study_uid.encode(), self.completed_serde.encode(event),
                      partition)
        self.store.put_progress(partition, mark_emitted(progress, done))
        self.metrics.studies.labels(event["provider"], done.event_type, done.reason).inc()
        if progress.last_arrival is not None:
            self.metrics.completion_delay.labels(event["provider"], done.reason).observe(
                max(0.0, (now - progress.last_arrival).total_seconds()))
        log.info("study %s v%d %s (%s, %d instances)", progress.study_uid, done.version, done.event_type,
                 done.reason, len(progress.sop_uids))

    def _backlog(self, partition: int) -> int:
        """Input messages of ``partition`` not consumed yet (from the consumer's cached end offsets; before the
        first message since the assignment, counted from the committed offset)."""
        total = 0
        for topic in (self.config.instance_topic, self.config.manifest_topic):
            tp = TopicPartition(topic, partition)
            _low, high = self.consumer.get_watermark_offsets(tp, cached=True)
            [position] = self.consumer.position([tp])
            start = position.offset if position.offset >= 0 else self._assigned_at.get((topic, partition), 0)
            lag = max(0, high - start) if high >= 0 else 0
            if topic == self.config.instance_topic:
                self.metrics.consumer_lag.labels(topic, str(partition)).set(lag)
            total += lag
        return total

    def _quiet_check(self) -> None:
        """Quiet-period completion of the open studies of every assigned partition without a backlog."""
        now = datetime.now(timezone.utc)
        for partition in list(self.store.partitions):
            if self._backlog(partition):
                continue
            for progress in list(self.store.open_studies(partition)):
                if progress.last_arrival is None:
                    continue
                # state restored after a restart: the quiet period counts from the restart at the earliest
                decide_on = replace(progress, last_arrival=max(progress.last_arrival, self.started_at))
                self._maybe_emit(partition, progress, now, decide_on=decide_on)
        self._produce_state()
