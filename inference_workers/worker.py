"""The inference worker: a consume-process-produce loop with Kafka transactions.

Per batch (up to ``max_batch`` study events from the partitions this worker owns):

1. decode each message (a message that does not match the contract is dead-lettered);
2. drop studies whose prediction id is already known (the ``predictions`` table, or committed by this
   worker) — a replayed ``study completed`` event yields no second prediction;
3. :class:`~inference_workers.prediction.Predictor` runs the batch (one model batch across studies);
   results (SEG, SR, Grad-CAM) are written content-addressed to the object store, so a retry rewrites
   the same objects;
4. in one Kafka transaction: the ``prediction created`` events, the dead letters, and the consumer
   offsets of the batch (``send_offsets_to_transaction``); commit.

A worker killed before step 4 commits leaves an open transaction that the broker aborts when the same
worker id restarts (``init_transactions`` fences the old producer), and uncommitted offsets, so the
batch is processed again: nothing lost, and read-committed consumers see each prediction once.
Several workers with one ``group_id`` and distinct ``worker_id`` split the partitions between them.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Container
from dataclasses import dataclass, field
from datetime import datetime, timezone

from confluent_kafka import (
    KafkaError,
    KafkaException,
    Message,
)

from inference_workers.errors import InferenceError
from inference_workers.prediction import Predictor, prediction_event_id
from inference_workers.telemetry import InferenceMetrics
from lake_schemas.errors import SchemaViolation
from lake_schemas.events import Quarantined, QuarantinedData, StudyCompleted
from lake_schemas.topics import (
    PREDICTION_CREATED,
    PREDICTION_DEAD_LETTER,
    STUDY_COMPLETED,
)
from platform_layer import kafka
from platform_layer.serde import EventSerde

log = logging.getLogger(__name__)

CRASH_POINTS = ("after_predict", "before_commit")


@dataclass(frozen=True)
class WorkerConfig:
    bootstrap: str
    worker_id: str
    group_id: str = "radlake-inference"
    input_topic: str = STUDY_COMPLETED.name
    output_topic: str = PREDICTION_CREATED.name
    dead_letter_topic: str = PREDICTION_DEAD_LETTER.name
    max_batch: int = 4
    batch_wait_s: float = 0.5
    transaction_timeout_ms: int = 60_000
    # Fault injection for the kill-mid-batch test: the process SIGKILLs itself at this point.
    crash_at: str | None = None

    @property
    def transactional_id(self) -> str:
        return f"{self.group_id}.{self.worker_id}"


@dataclass
class WorkerStats:
    batches: int = 0
    predictions: int = 0
    dead_letters: int = 0
    duplicates_dropped: int = 0
    aborted: int = 0
    studies_per_batch: list[int] = field(default_factory=list)
    first_arrival: float | None = None  # time.monotonic() of the first processed batch's arrival
    last_commit: float | None = None  # time.monotonic() of the last committed transaction
    erased_skipped: int = 0  # studies of erased patients (replayed from the topic), never predicted


class Worker:
    def __init__(self, cfg: WorkerConfig, predictor: Predictor, input_serde: EventSerde, output_serde: EventSerde,
                 dead_letter_serde: EventSerde, known: Callable[[list[str]], set[str]] | None = None,
                 after_commit: Callable[[], None] | None = None, metrics: InferenceMetrics | None = None,
                 erased: Container[str] = frozenset()) -> None:
        self.cfg = cfg
        self.predictor = predictor
        self.input_serde = input_serde
        self.output_serde = output_serde
        self.dead_letter_serde = dead_letter_serde
        self.known = known or (lambda ids: set())
        self.erased = erased  # the deny list: a replayed study of an erased patient is never predicted again
        self.after_commit = after_commit
        self.metrics = metrics
        self.committed_ids: set[str] = set()
        self.stats = WorkerStats()
        self.consumer = kafka.consumer(cfg.bootstrap, group_id=cfg.group_id, static_member_id=cfg.worker_id, extra={
            "partition.assignment.strategy": "cooperative-sticky",
            "session.timeout.ms": 45_000,
            "max.poll.interval.ms": 600_000,
        })
        self.producer = kafka.transactional_producer(cfg.bootstrap, transactional_id=cfg.transactional_id,
                                                     timeout_ms=cfg.transaction_timeout_ms)

    def _crash(self, point: str) -> None:
        if self.cfg.crash_at == point:
            log.error("fault injection: killing worker %s at %s", self.cfg.worker_id, point)
            os.kill(os.getpid(), signal.SIGKILL)

    def _dead_letter_undecodable(self, msg: Message, err: Exception) -> Quarantined:
        return Quarantined(provider="unknown", data=QuarantinedData(
            stage="inference", reason="UNDECODABLE_EVENT",
            message=f"{msg.topic()}[{msg.partition()}]@{msg.offset()}: {err}"[:2000]))

    def run(self, stop: threading.Event | None = None, max_idle_s: float | None = None,
            max_predictions: int | None = None) -> WorkerStats:
        """Process until ``stop`` is set, nothing arrived for ``max_idle_s`` (after joining the group), or
        ``max_predictions`` were made."""
        stop = stop or threading.Event()
        self.producer.init_transactions(30)
        assigned: list[float] = []  # idle time counts from the first partition assignment (group join)
        self.consumer.subscribe([self.cfg.input_topic],
                                on_assign=lambda _c, parts: assigned.append(time.monotonic()) if parts else None)
        idle_since = time.monotonic()
        try:
            while not stop.is_set():
                if max_predictions is not None and self.stats.predictions >= max_predictions:
                    break
                messages = [m for m in self.consumer.consume(self.cfg.max_batch, self.cfg.batch_wait_s)
                            if self._usable(m)]
                if not messages:
                    if max_idle_s is not None and assigned and \
                            time.monotonic() - max(idle_since, assigned[-1]) > max_idle_s:
                        break
                    continue
                self._process(messages)
                idle_since = time.monotonic()
        finally:
            self.consumer.close()
            self.producer.flush(10)
        return self.stats

    @staticmethod
    def _usable(msg: Message) -> bool:
        if msg.error() is None:
            return True
        if msg.error().code() != KafkaError._PARTITION_EOF:
            log.warning("consumer error: %s", msg.error())
        return False

    def _process(self, messages: list[Message]) -> None:
        arrived = time.monotonic()
        if self.stats.first_arrival is None:
            self.stats.first_arrival = arrived
        studies: list[tuple[StudyCompleted, float]] = []
        dead: list[Quarantined] = []
        for msg in messages:
            try:
                studies.append((self.input_serde.deserialize(msg.value()), arrived))
            except SchemaViolation as err:  # includes a schema id the registry does not hold
                dead.append(self._dead_letter_undecodable(msg, err))
        wanted = {prediction_event_id(s.data.study_uid, s.data.study_version, self.predictor.model.name,
                                      self.predictor.model.version): s for s, _ in studies}
        already = (set(wanted) & self.committed_ids) | self.known(sorted(set(wanted) - self.committed_ids))
        fresh, seen_in_batch, duplicates = [], set(), []
        for study, at in studies:
            event_id = self.predictor.event_id(study)
            if event_id in already or event_id in seen_in_batch:
                self.stats.duplicates_dropped += 1
                duplicates.append(study.provider)
                continue
            if study.data.pseudo_patient_id in self.erased:
                self.stats.erased_skipped += 1
                continue
            seen_in_batch.add(event_id)
            fresh.append((study, at))
        predict_started = time.monotonic()
        outcomes = self.predictor.run(fresh) if fresh else []
        predict_s = time.monotonic() - predict_started
        self._crash("after_predict")
        try:
            self.producer.begin_transaction()
            for outcome in outcomes:
                if outcome.prediction is not None:
                    event = outcome.prediction
                    self.producer.produce(self.cfg.output_topic, key=event.key.encode(),
                                          value=self.output_serde.serialize(event))
                else:
                    dead.append(outcome.rejection)
            for letter in dead:
                self.producer.produce(self.cfg.dead_letter_topic, key=letter.key.encode(),
                                      value=self.dead_letter_serde.serialize(letter))
            self.producer.flush(30)
            self._crash("before_commit")
            self.producer.send_offsets_to_transaction(kafka.next_offsets(messages), self.consumer.consumer_group_metadata(), 30)
            self.producer.commit_transaction(30)
        except KafkaException as err:
            kafka_error = err.args[0] if err.args else None
            if kafka_error is not None and getattr(kafka_error, "fatal", lambda: False)():
                raise
            log.warning("transaction aborted, the batch will be processed again: %s", err)
            try:
                self.producer.abort_transaction(30)
            except KafkaException as abort_err:
                raise InferenceError(f"worker {self.cfg.worker_id}: aborting failed: {abort_err}") from abort_err
            self.stats.aborted += 1
            if self.metrics is not None:
                self.metrics.aborted.labels(self.metrics.model).inc()
            kafka.rewind(self.consumer, messages)
            return
        made = [o.event_id for o in outcomes if o.prediction is not None]
        self.committed_ids.update(made)
        self.stats.batches += 1
        self.stats.predictions += len(made)
        self.stats.dead_letters += len(dead)
        self.stats.studies_per_batch.append(len(fresh))
        self.stats.last_commit = time.monotonic()
        log.info("batch: %d studies, %d predictions, %d dead letters, %d duplicates dropped",
                 len(fresh), len(made), len(dead), len(studies) - len(fresh))
        if self.metrics is not None:
            done = time.monotonic()
            self.metrics.committed(
                batch=len(fresh), predict_s=predict_s, latencies_s=[done - at for _, at in fresh],
                outcomes=[(o.source.provider, "predicted" if o.prediction is not None else "rejected")
                          for o in outcomes] + [(p, "duplicate") for p in duplicates],
                completed_at=[(o.source.provider, o.source.occurred_at) for o in outcomes if o.prediction is not None],
                now=datetime.now(timezone.utc))
        if self.after_commit is not None:
            self.after_commit()
