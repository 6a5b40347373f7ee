"""The follower's error handling: which errors are transient (retried, nothing committed) and which are
permanent (dead-lettered with their reason, then committed), the back-off, the dead-letter headers, and
the consume loop driven by a scripted consumer (no broker, no Spark)."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field

import pydicom
import pytest
from confluent_kafka import KafkaError, KafkaException

from lake_schemas.errors import RegistryError, SchemaViolation
from lake_schemas.events import StoredDicom
from lake_schemas.topics import (
    DLQ_MESSAGE,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_STAGE,
)
from platform_layer import kafka
from platform_layer.object_store import ObjectStore, ObjectStoreError
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason, SettingsError
from radlake.synthetic import radiomics_lake as rl
from spark_jobs import radiomics_follow as follow

from .test_follow import _prediction


def _store_error(cause: Exception) -> ObjectStoreError:
    try:
        try:
            raise cause
        except OSError as err:
            raise ObjectStoreError(f"reading x failed: {err}") from err
    except ObjectStoreError as wrapped:
        return wrapped


@pytest.mark.parametrize("err,transient,reason", [
    (_store_error(FileNotFoundError("no such file")), True, "OBJECT_STORE_UNAVAILABLE"),
    (_store_error(PermissionError("denied")), True, "OBJECT_STORE_UNAVAILABLE"),
    (_store_error(TimeoutError("timed out")), True, "OBJECT_STORE_UNAVAILABLE"),
    (OSError("Input/output error"), True, "IO_ERROR"),
    (RegistryError("registry unreachable"), True, "REGISTRY_UNAVAILABLE"),
    (follow.PublishError("not acknowledged"), True, "KAFKA_UNAVAILABLE"),
    (KafkaException(KafkaError(KafkaError._TRANSPORT)), True, "KAFKA_UNAVAILABLE"),
    (ObjectStoreError("x does not match its sha256 00"), False, "CLAIM_CHECK_MISMATCH"),
    (SchemaViolation("does not match its schema"), False, "SCHEMA_VIOLATION"),
    (InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, "not DICOM"), False, "UNREADABLE_INPUT"),
])
def test_errors_are_transient_or_permanent(err, transient, reason):
    assert follow.classify(err) == follow.Failure(transient, reason)
    assert follow.is_transient(err) is transient and follow.is_permanent(err) is not transient


@pytest.mark.parametrize("err", [
    ValueError("a bug"),
    KafkaException(KafkaError(KafkaError._FATAL, fatal=True)),
    SettingsError("bad settings file"),  # the follower's configuration, not the message
])
def test_unexpected_errors_are_neither_and_propagate(err):
    assert follow.classify(err) is None
    assert not follow.is_transient(err) and not follow.is_permanent(err)


def test_a_store_that_is_gone_is_transient_and_a_hash_mismatch_permanent(tmp_path):
    """Real failures of the real store: its root moved away, then bytes that are not the claim-checked ones."""
    store = ObjectStore(str(tmp_path / "objects"))
    stored = store.put(b"some bytes", prefix="predictions")
    (tmp_path / "objects").rename(tmp_path / "elsewhere")
    with pytest.raises(ObjectStoreError) as gone:
        store.get(stored.uri, stored.sha256)
    assert follow.classify(gone.value) == follow.Failure(True, "OBJECT_STORE_UNAVAILABLE")
    (tmp_path / "elsewhere").rename(tmp_path / "objects")
    with pytest.raises(ObjectStoreError) as mismatch:
        store.get(stored.uri, "0" * 64)
    assert follow.classify(mismatch.value) == follow.Failure(False, "CLAIM_CHECK_MISMATCH")


def test_the_back_off_doubles_from_half_a_second_up_to_thirty():
    backoff = follow.Backoff()
    assert [backoff.delay(n) for n in range(1, 10)] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    assert follow.Backoff(initial_s=0.1, max_s=0.3).delay(3) == 0.3


def test_transient_errors_are_retried_until_the_attempt_succeeds():
    outcomes = [OSError("store down"), RegistryError("registry down"), "done"]
    waits, retries = [], []

    def attempt():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    result = follow.retry_transient(attempt, waits.append, follow.Backoff(),
                                    lambda n, delay, err: retries.append((n, delay, type(err).__name__)))
    assert result == ("done", 2)
    assert waits == [0.5, 1.0]
    assert retries == [(1, 0.5, "OSError"), (2, 1.0, "RegistryError")]


@pytest.mark.parametrize("err", [SchemaViolation("bad"), ValueError("bug")])
def test_other_errors_are_not_retried(err):
    waits = []

    def attempt():
        raise err

    with pytest.raises(type(err)):
        follow.retry_transient(attempt, waits.append)
    assert waits == []


# -- a scripted consumer ------------------------------------------------------------------------------


@dataclass
class FakeMessage:
    offset_: int
    value_: bytes
    partition_: int = 0
    topic_: str = "radlake.prediction.created.v1"
    key_: bytes | None = b"2.25.1"

    def topic(self):
        return self.topic_

    def partition(self):
        return self.partition_

    def offset(self):
        return self.offset_

    def key(self):
        return self.key_

    def value(self):
        return self.value_

    def error(self):
        return None


@dataclass
class FakeConsumer:
    batches: list
    log: list = field(default_factory=list)
    commits: list = field(default_factory=list)

    def consume(self, num_messages, timeout):
        return self.batches.pop(0) if self.batches else []

    def assignment(self):
        return ["tp0"]

    def pause(self, partitions):
        self.log.append("pause")

    def resume(self, partitions):
        self.log.append("resume")

    def poll(self, timeout):
        self.log.append("poll")
        return None

    def seek(self, tp):
        self.log.append(("seek", tp.offset))

    def commit(self, offsets, asynchronous):
        assert asynchronous is False
        self.log.append("commit")
        self.commits.append([(tp.topic, tp.partition, tp.offset) for tp in offsets])


@dataclass(frozen=True)
class Data:
    study_uid: str


@dataclass(frozen=True)
class Event:
    name: str
    data: Data = Data("2.25.1")


class FakeSerde:
    """b"junk" does not match the schema; anything else decodes to an Event named after its bytes."""

    def deserialize(self, value: bytes):
        if value == b"junk":
            raise SchemaViolation("message is not in the Confluent wire format")
        return Event(value.decode())


def test_a_batch_failing_transiently_is_retried_and_only_then_committed_and_dead_lettered():
    batch = [FakeMessage(10, b"a"), FakeMessage(11, b"junk"), FakeMessage(12, b"b")]
    consumer = FakeConsumer([batch])
    failures = [_store_error(FileNotFoundError("objects/ moved away")), OSError("EIO")]
    dead: list = []

    def handle(spark, job, events, publish):
        consumer.log.append(("handle", [e.name for e in events]))
        if failures:
            raise failures.pop(0)
        return None, ("announced",), []

    def dead_letter(letters):
        consumer.log.append("dead letters")
        dead.extend(letters)

    stats = follow.follow(None, None, consumer, FakeSerde(), lambda events: None, handle=handle,
                          dead_letter=dead_letter, backoff=follow.Backoff(initial_s=0.01, max_s=0.02),
                          max_messages=3)
    assert stats == follow.FollowStats(messages=3, dead_lettered=1, retried=3, retries=2, studies=1, events=1)
    # three attempts; each failure held the consumer (paused, polled); nothing committed or dead-lettered
    # before the attempt that succeeded
    steps = [s for s in consumer.log if s != "poll"]
    first_handle = ("handle", ["a", "b"])
    assert steps[0] == first_handle and steps.count(first_handle) == 3
    assert steps.index("commit") > max(i for i, s in enumerate(steps) if s == first_handle)
    assert steps[-3:] == ["dead letters", "resume", "commit"]
    assert "pause" in steps and "poll" in consumer.log
    assert consumer.commits == [[("radlake.prediction.created.v1", 0, 13)]]
    [letter] = dead
    assert (letter.message.offset(), letter.reason) == (11, "SCHEMA_VIOLATION")


def test_a_permanent_rejection_by_the_handler_is_dead_lettered_with_its_own_message():
    batch = [FakeMessage(0, b"a"), FakeMessage(1, b"b", partition_=1)]
    consumer = FakeConsumer([batch])
    dead: list = []

    def handle(spark, job, events, publish):
        bad = events[1]
        return None, (), [(bad, follow.Failure(False, "CLAIM_CHECK_MISMATCH"), ObjectStoreError("mismatch"))]

    stats = follow.follow(None, None, consumer, FakeSerde(), lambda events: None, handle=handle,
                          dead_letter=dead.extend, max_messages=2)
    assert (stats.dead_lettered, stats.retries) == (1, 0)
    assert [(d.message.partition(), d.message.offset(), d.reason, d.error) for d in dead] == [
        (1, 1, "CLAIM_CHECK_MISMATCH", "mismatch")]
    assert "pause" not in consumer.log and "resume" not in consumer.log
    assert consumer.commits == [[("radlake.prediction.created.v1", 0, 1), ("radlake.prediction.created.v1", 1, 2)]]


def test_a_dead_letter_kafka_does_not_acknowledge_retries_the_batch():
    consumer = FakeConsumer([[FakeMessage(5, b"junk")]])

    class Producer:
        def __init__(self):
            self.produced, self.flushes = [], [1, 0]  # the first flush leaves one message unacknowledged

        def produce(self, topic, key, value, headers, on_delivery):
            self.produced.append((topic, key, value, dict(headers)))

        def poll(self, timeout):
            return 0

        def flush(self, timeout):
            return self.flushes.pop(0)

    producer = Producer()
    stats = follow.follow(None, None, consumer, FakeSerde(), lambda events: None,
                          handle=lambda *a: pytest.fail("nothing decodes"),
                          dead_letter=follow.dead_letter_sink(producer, topic="dlq"),
                          backoff=follow.Backoff(initial_s=0.01), max_messages=1)
    assert (stats.dead_lettered, stats.retries) == (1, 1)
    assert [p[:3] for p in producer.produced] == [("dlq", b"2.25.1", b"junk")] * 2
    assert consumer.commits == [[("radlake.prediction.created.v1", 0, 6)]]


def test_an_unexpected_error_stops_the_follower_with_nothing_committed():
    consumer = FakeConsumer([[FakeMessage(0, b"a")]])

    def handle(spark, job, events, publish):
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        follow.follow(None, None, consumer, FakeSerde(), lambda events: None, handle=handle,
                      dead_letter=lambda letters: None, max_messages=1)
    assert consumer.commits == []


def test_hold_keeps_the_partitions_paused_and_puts_back_a_message_a_rebalance_let_through():
    class Rebalanced(FakeConsumer):
        def poll(self, timeout):
            self.log.append("poll")
            return FakeMessage(42, b"a") if self.log.count("poll") == 1 else None

    consumer = Rebalanced([])
    follow.hold(consumer, 0.05)
    assert consumer.log[:3] == ["pause", "poll", ("seek", 42)]
    assert "commit" not in consumer.log


def test_dead_letter_headers_name_the_reason_and_the_source():
    letter = follow.DeadLetter(FakeMessage(7, b"v", partition_=2, topic_="t"), "SCHEMA_VIOLATION", "x" * 5000)
    headers = follow.dead_letter_headers(letter)
    assert dict(headers) == {DLQ_REASON: b"SCHEMA_VIOLATION", DLQ_MESSAGE: b"x" * 1000, DLQ_SOURCE_TOPIC: b"t",
                             DLQ_SOURCE_PARTITION: b"2", DLQ_SOURCE_OFFSET: b"7", DLQ_STAGE: b"radiomics"}


def test_offsets_to_commit_and_ranges_for_the_logs():
    batch = [FakeMessage(3, b"a"), FakeMessage(9, b"a", partition_=1), FakeMessage(4, b"a"), FakeMessage(2, b"a")]
    assert [(tp.topic, tp.partition, tp.offset) for tp in kafka.next_offsets(batch)] == [
        ("radlake.prediction.created.v1", 0, 5), ("radlake.prediction.created.v1", 1, 10)]
    assert follow.offset_ranges(batch) == \
        "radlake.prediction.created.v1[0]@2..4, radlake.prediction.created.v1[1]@9..9"


# -- the SEG of a prediction ----------------------------------------------------------------------------


def test_a_seg_without_segments_is_refused_and_a_store_outage_is_not_the_segs_fault(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    case = rl.make_case(store, "follow-empty", shape=(6, 24, 24), radius_mm=4.0)
    ds = pydicom.dcmread(io.BytesIO(rl.seg_bytes(case)))
    ds.SegmentSequence = []
    buffer = io.BytesIO()
    ds.save_as(buffer)
    empty = store.put(buffer.getvalue(), prefix="predictions")
    event = _prediction(case, StoredDicom(uri=empty.uri, sha256=empty.sha256, sop_instance_uid="2.25.9"))
    with pytest.raises(InvalidInputError, match="no segments") as refused:
        follow.segmentation_rois(event, store.get)
    assert follow.is_permanent(refused.value)

    (tmp_path / "objects").rename(tmp_path / "away")
    with pytest.raises(ObjectStoreError) as unavailable:
        follow.segmentation_rois(event, store.get)
    assert follow.is_transient(unavailable.value)


def test_handle_segmentations_rejects_permanent_errors_and_lets_transient_ones_through(tmp_path, monkeypatch):
    monkeypatch.setattr(follow.radiomics_job, "publish_outbox", lambda spark, job, publish: ())  # no Spark here
    store = ObjectStore(str(tmp_path / "objects"))
    case = rl.make_case(store, "follow-handle", shape=(6, 24, 24), radius_mm=4.0)
    junk = store.put(b"not a DICOM file", prefix="predictions")
    not_dicom = _prediction(case, StoredDicom(uri=junk.uri, sha256=hashlib.sha256(b"not a DICOM file").hexdigest(),
                                              sop_instance_uid="2.25.9"))
    tampered = _prediction(case, StoredDicom(uri=junk.uri, sha256="0" * 64, sop_instance_uid="2.25.9"))
    result, published, rejected = follow.handle_segmentations(None, None, [not_dicom, tampered], print, store.get)
    assert (result, published) == (None, ())
    assert [(e is ev, f.reason) for (e, f, _), ev in zip(rejected, [not_dicom, tampered])] == [
        (True, "UNREADABLE_INPUT"), (True, "CLAIM_CHECK_MISMATCH")]

    (tmp_path / "objects").rename(tmp_path / "away")
    with pytest.raises(ObjectStoreError):
        follow.handle_segmentations(None, None, [not_dicom], print, store.get)


@dataclass(frozen=True)
class PatientData:
    study_uid: str
    pseudo_patient_id: str


@dataclass(frozen=True)
class PatientEvent:
    name: str
    data: PatientData


class PatientSerde:
    """Each message's bytes are ``<name>:<pseudonym>``."""

    def deserialize(self, value: bytes):
        name, patient = value.decode().split(":")
        return PatientEvent(name, PatientData(f"2.25.{len(name)}", patient))


def test_an_erased_patients_events_are_passed_over_and_committed():
    batch = [FakeMessage(0, b"a:RL-KEPT"), FakeMessage(1, b"b:RL-ERASED"), FakeMessage(2, b"c:RL-KEPT")]
    consumer = FakeConsumer([batch])
    handled: list = []

    def handle(spark, job, events, publish):
        handled.extend(e.name for e in events)
        return None, (), []

    stats = follow.follow(None, None, consumer, PatientSerde(), lambda events: None, handle=handle,
                          dead_letter=lambda letters: None, max_messages=3, erased={"RL-ERASED"})
    assert handled == ["a", "c"] and stats.dead_lettered == 0
    assert consumer.commits == [[("radlake.prediction.created.v1", 0, 3)]]
