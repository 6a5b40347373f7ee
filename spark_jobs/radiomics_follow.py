"""``radlake radiomics follow``: compute features when a study completes or a segmentation is created.

A thin adapter around the batch job, in one of two modes:

* **studies** (:func:`handle_completed`): on ``study completed`` events, keep the newest version of each
  study in the batch, turn the event's claim-checks (in slice order) into series (``series_refs``) and run
  ``spark_jobs.radiomics_job.run`` restricted to those studies with those series;
* **segmentations** (:func:`handle_segmentations`): on ``prediction created`` events that carry a DICOM SEG
  (the inference workers' segmentation of their findings), fetch the SEG by claim-check (SHA-256
  verified), register one ROI per segment in ``silver/rois`` under the model's name and version
  (``nodule-cnn:3/nodule candidate 1#1``), and run the job restricted to those studies;
* **annotations** (:func:`handle_annotations`): on ``annotation received`` events of a SEG or an RTSTRUCT
  (a site's expert annotations, de-identified at the edge), fetch the object the same way, register one ROI
  per segment / structure named after the object (``rtstruct:<its SOP instance UID>/lesion#1``: two objects
  that name a region alike never replace each other's rows; an RTSTRUCT is rasterised on its referenced
  series' grid when features are computed), and run the job restricted to those studies. SR,
  KOS and presentation states carry no region and are skipped.

Either way it then publishes the outbox's ``features computed`` events and only then commits the consumer
offsets. A replayed event finds nothing pending (the job is idempotent; re-registering a SEG replaces its
own rows) and nothing unpublished, so announces nothing again.

Errors (:func:`classify`) are either *transient* — the message is fine, something it needs is not there
right now — or *permanent* — the message itself can never be processed:

* transient: the object store unavailable (an :class:`ObjectStoreError` caused by an ``OSError``, or a
  plain ``OSError``), the schema registry unavailable (:class:`RegistryError`), Kafka not acknowledging
  (:class:`PublishError`, a non-fatal ``KafkaException``). The whole batch is processed again after an
  exponential back-off (:class:`Backoff`), with nothing committed, while the consumer keeps polling
  (its partitions paused) so the group does not rebalance; every failed attempt logs a warning.
  A missing object counts as transient: a claim-check is published only after its object was written,
  and objects are never deleted, so "not found" means the store (mount, bucket) is not reachable.
* permanent: an event that does not match its schema (:class:`SchemaViolation`), a SEG whose bytes do
  not match the claim-check's SHA-256 (an :class:`ObjectStoreError` with no I/O cause), a SEG that is
  not readable DICOM, has no segments or references no series (:class:`InvalidInputError`). The
  message goes, unchanged, to the dead-letter topic with its reason in the headers, and its offset is
  committed with the batch.

Anything else (a Spark failure, a fatal Kafka error, a bug) propagates: the follower stops with the
batch uncommitted, so a restart processes it again.
"""

from __future__ import annotations

import io
import logging
import threading
import time
from collections.abc import Callable, Container, Iterable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import TypeVar

import pydicom
from confluent_kafka import (
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from pydicom.errors import InvalidDicomError

from lake_schemas.errors import RegistryError, SchemaViolation
from lake_schemas.events import AnnotationReceived, PredictionCreated, StudyCompleted
from lake_schemas.topics import (
    ANNOTATION_RECEIVED,
    DEAD_LETTER,
    FEATURES_COMPUTED,
    PREDICTION_CREATED,
    STUDY_COMPLETED,
    Topic,
)
from lake_schemas.topics import dead_letter_headers as contract_headers
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap, registry_url
from platform_layer.errors import DeliveryError
from platform_layer.kafka import TopicSpec
from platform_layer.object_store import ObjectStore, ObjectStoreError
from platform_layer.serde import EventSerde, registry_client
from platform_layer.settings import Settings
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason
from spark_jobs import radiomics_job
from spark_jobs.radiomics_series import (
    SeriesRef,
    rois_from_dicom_mask,
    series_from_summary,
)
from spark_jobs.telemetry import RadiomicsMetrics

log = logging.getLogger(__name__)

T = TypeVar("T")

STAGE = "radiomics"


class PublishError(RuntimeError):
    """Kafka did not acknowledge every message produced (events or dead letters): transient."""


# -- transient or permanent ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Failure:
    """How the follower treats an error: retried (``transient``) or dead-lettered with ``reason``."""

    transient: bool
    reason: str


def classify(err: BaseException) -> Failure | None:
    """Transient or permanent (see the module docstring for the rule), or None for an error the follower
    does not expect, which must propagate (pure)."""
    if isinstance(err, SchemaViolation):
        return Failure(False, "SCHEMA_VIOLATION")
    if isinstance(err, RegistryError):
        return Failure(True, "REGISTRY_UNAVAILABLE")
    if isinstance(err, ObjectStoreError):
        # ObjectStore raises from the OSError of an I/O failure; a hash mismatch has no cause: the bytes
        # were read and are not the ones the claim-check names, so reading them again cannot help.
        if isinstance(err.__cause__, OSError):
            return Failure(True, "OBJECT_STORE_UNAVAILABLE")
        return Failure(False, "CLAIM_CHECK_MISMATCH")
    if isinstance(err, InvalidInputError):
        return Failure(False, err.reason.value.upper())
    if isinstance(err, PublishError):
        return Failure(True, "KAFKA_UNAVAILABLE")
    if isinstance(err, KafkaException):
        kafka_error = err.args[0] if err.args else None
        if isinstance(kafka_error, KafkaError) and kafka_error.fatal():
            return None  # the client instance is unusable: retrying with it cannot succeed
        return Failure(True, "KAFKA_UNAVAILABLE")
    if isinstance(err, OSError):
        return Failure(True, "IO_ERROR")
    return None


def is_transient(err: BaseException) -> bool:
    failure = classify(err)
    return failure is not None and failure.transient


def is_permanent(err: BaseException) -> bool:
    failure = classify(err)
    return failure is not None and not failure.transient


# -- retry with back-off -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off between attempts: ``initial_s``, doubling (``factor``), at most ``max_s``."""

    initial_s: float = 0.5
    max_s: float = 30.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the ``failures``-th failed attempt in a row (1-based; pure)."""
        return min(self.max_s, self.initial_s * self.factor ** (failures - 1))


def retry_transient(attempt: Callable[[], T], wait: Callable[[float], None], backoff: Backoff = Backoff(),
                    on_retry: Callable[[int, float, BaseException], None] = lambda n, delay, err: None,
                    ) -> tuple[T, int]:
    """``attempt()`` until it returns; after a transient error, ``on_retry(failures, delay, err)`` then
    ``wait(delay)`` and try again, without limit (the message must not be lost; an operator sees the
    warnings). Any other error propagates. Returns (the result, the number of failed attempts)."""
    failures = 0
    while True:
        try:
            return attempt(), failures
        except Exception as err:
            if not is_transient(err):
                raise
            failures += 1
            delay = backoff.delay(failures)
            on_retry(failures, delay, err)
            wait(delay)


def hold(consumer, seconds: float) -> None:
    """Wait ``seconds`` while serving the consumer: its partitions paused, ``poll`` called at least every
    second, so the group sees a live member (``max.poll.interval.ms``) and nothing new is fetched. A
    rebalance during the wait can hand a partition back unpaused; a message polled from it is put back
    (``seek``) so it is read again after the batch."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        consumer.pause(consumer.assignment())
        msg = consumer.poll(min(remaining, 1.0))
        if msg is None or msg.error() is not None:
            continue
        try:
            consumer.seek(TopicPartition(msg.topic(), msg.partition(), msg.offset()))
        except KafkaException as err:  # the partition moved to another member meanwhile: it reads it
            log.info("radiomics follow: not rewinding %s[%d]: %s", msg.topic(), msg.partition(), err)


# -- dead letters --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeadLetter:
    message: Message
    reason: str
    error: str


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    """The headers every radlake component puts on a dead letter (``lake_schemas.topics``; pure)."""
    msg = letter.message
    return contract_headers(letter.reason, letter.error, msg.topic(), msg.partition(), msg.offset(), STAGE)


def dead_letter_sink(producer: Producer, topic: str = DEAD_LETTER,
                     timeout_s: float = 30.0) -> Callable[[Sequence[DeadLetter]], None]:
    """Produce dead letters (the original key and value bytes) and wait until Kafka acknowledged each;
    raise :class:`PublishError` otherwise, so the batch is retried rather than committed."""

    def send(letters: Sequence[DeadLetter]) -> None:
        try:
            kafka.produce_all(producer, (kafka.Outgoing(topic, letter.message.value() or b"", letter.message.key(),
                                                        dead_letter_headers(letter)) for letter in letters),
                              timeout_s=timeout_s)
        except DeliveryError as err:
            raise PublishError(f"dead-lettering on {topic} failed: {err}") from err

    return send


def stack_dead_letters(settings: Settings) -> Callable[[Sequence[DeadLetter]], None]:
    """A dead-letter sink on the stack's Kafka (the topic must exist: :func:`ensure_topics`)."""
    return dead_letter_sink(kafka.producer(kafka_bootstrap(settings), client_id="radlake-radiomics-dead-letters"))


def features_publisher(settings: Settings, topic_name: str | None = None) -> Callable[[list], None]:
    """Publish ``features computed`` events; raises :class:`PublishError` (which the follower retries) unless
    Kafka acknowledged every one."""
    topic = _features(topic_name)
    serde = EventSerde(topic, registry_client(registry_url(settings)))
    producer = kafka.producer(kafka_bootstrap(settings), client_id="radlake-radiomics")

    def publish(events: list) -> None:
        try:
            kafka.produce_all(producer, (kafka.Outgoing(topic.name, serde.serialize(event), event.key.encode())
                                         for event in events), timeout_s=60)
        except DeliveryError as err:
            raise PublishError(f"publishing on {topic.name} failed: {err}") from err

    return publish


def _source(on: str, source_topic: str | None) -> Topic:
    contract = {"segmentations": PREDICTION_CREATED, "annotations": ANNOTATION_RECEIVED}.get(on, STUDY_COMPLETED)
    return contract.with_name(source_topic) if source_topic else contract


def consumer_group(on: str, group: str | None) -> str:
    """The follower's consumer group: ``group``, or the default of what it follows."""
    return group or ("radlake-radiomics-follow" if on == "studies" else f"radlake-radiomics-follow-{on}")


def _features(topic_name: str | None) -> Topic:
    return FEATURES_COMPUTED.with_name(topic_name) if topic_name else FEATURES_COMPUTED


def rights(on: str, *, group: str | None = None, source_topic: str | None = None,
           features_topic: str | None = None) -> kafka.Rights:
    """What the radiomics principal may do on Kafka while it follows: read its source topic in its group, write
    ``features computed`` and dead letters."""
    return kafka.Rights(reads=(_source(on, source_topic).name,), writes=(_features(features_topic).name, DEAD_LETTER),
                        group_prefixes=(consumer_group(on, group),))


def ensure_topics(settings: Settings, features_topic: str | None = None) -> None:
    """Create the topics the follower writes (with the contracts' partition counts) that are missing."""
    features = _features(features_topic)
    kafka.ensure_topics(kafka_bootstrap(settings), [TopicSpec(features.name, features.partitions),
                                                    TopicSpec(DEAD_LETTER, FEATURES_COMPUTED.partitions)])


def follower(settings: Settings, job, on: str, *, group: str | None = None, source_topic: str | None = None):
    """What ``radlake radiomics follow --on ON`` consumes with: a consumer subscribed to the source topic
    (manual commits, ``read_committed``), the topic's serde, and the handler of its events. The follower
    polls while it backs off from a transient error, so the default ``max.poll.interval.ms`` only bounds
    one attempt at a batch (the Spark job of up to 50 events)."""
    if on == "segmentations":
        handle = partial(handle_segmentations, read=ObjectStore(job.object_store_uri).get)
    elif on == "annotations":
        handle = partial(handle_annotations, read=ObjectStore(job.object_store_uri).get)
    else:
        handle = handle_completed
    source = _source(on, source_topic)
    serde = EventSerde(source, registry_client(registry_url(settings)))
    consumer = kafka.consumer(kafka_bootstrap(settings), group_id=consumer_group(on, group))
    consumer.subscribe([source.name])
    return consumer, serde, handle


# -- the two modes -------------------------------------------------------------------------------------


def latest_per_study(events: Iterable[StudyCompleted]) -> dict[str, StudyCompleted]:
    """The highest study version of each study among ``events`` (pure)."""
    latest: dict[str, StudyCompleted] = {}
    for event in events:
        current = latest.get(event.data.study_uid)
        if current is None or event.data.study_version >= current.data.study_version:
            latest[event.data.study_uid] = event
    return latest


def series_refs(event: StudyCompleted) -> list[SeriesRef]:
    return [series_from_summary(event.data.study_uid, s) for s in event.data.series]


def study_filter(studies: Iterable[str], where: str | None) -> str:
    uids = ", ".join(f"'{u}'" for u in sorted(studies) if u.replace(".", "").isdigit())
    clause = f"study_uid IN ({uids})"
    return clause if not where else f"({where}) AND {clause}"


@dataclass(frozen=True)
class FollowStats:
    messages: int = 0
    dead_lettered: int = 0
    retried: int = 0  # messages whose batch failed transiently at least once (then processed)
    retries: int = 0  # failed attempts (each followed by a back-off)
    studies: int = 0
    events: int = 0


# A permanently refused event of a batch, with why: (event, failure, error).
Rejection = tuple[object, Failure, BaseException]


def handle_completed(spark, job, events: list[StudyCompleted], publish: Callable[[list], None]):
    """Run the job for the studies of ``events``, then publish the outbox (what this run staged and
    anything an earlier run staged but could not publish). Returns the RunResult, the published events
    and the rejected events (none: a study completed event is usable once it decodes)."""
    latest = latest_per_study(events)
    refs = [ref for event in latest.values() for ref in series_refs(event)]
    scoped = replace(job, where=study_filter(latest, job.where))
    result = radiomics_job.run(spark, scoped, series=radiomics_job.series_frame_from_refs(spark, refs),
                               source_event_ids={s: e.event_id for s, e in latest.items()})
    return result, radiomics_job.publish_outbox(spark, job, publish), []


def segmentation_rois(event: PredictionCreated, read: Callable[[str, str], bytes]) -> list[dict]:
    """``silver/rois`` rows for the segments of the SEG a prediction carries ([] when it carries none).

    ``read(uri, sha256)`` returns the verified bytes. ROI names carry the model, so two models' segments
    on one series never replace each other's rows. Raises :class:`InvalidInputError` when the SEG is not
    readable DICOM, has no segments or references no series, and the store's error when it cannot be read
    (transient) or fails its claim-check (permanent).
    """
    seg = event.data.seg
    if seg is None:
        return []
    data = read(seg.uri, seg.sha256)  # outside the try below: an I/O error of the store is not the SEG's
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError) as err:  # parsing bytes in memory: the content is bad
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"{seg.uri} is not DICOM: {err}") from err
    model = f"{event.data.model.name}:{event.data.model.version}"
    rows = rois_from_dicom_mask(ds, mask_uri=seg.uri, mask_sha256=seg.sha256, provider=event.provider,
                                project=event.data.project, source=f"prediction:{model}:{event.event_id}")
    if not rows:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"{seg.uri} has no segments")
    return [{**row, "roi": f"{model}/{row['roi']}"} for row in rows]


# The annotation kinds that hold regions (SR, KOS and presentation states do not).
ROI_ANNOTATION_KINDS = frozenset({"seg", "rtstruct"})


def annotation_rois(event: AnnotationReceived, read: Callable[[str, str], bytes]) -> list[dict]:
    """``silver/rois`` rows for the segments of an annotated SEG or the structures of an RTSTRUCT ([] for an
    SR, KOS or presentation state). Same errors as :func:`segmentation_rois`."""
    if event.data.annotation_kind not in ROI_ANNOTATION_KINDS:
        return []
    data = read(event.data.object_uri, event.data.sha256)  # outside the try: an I/O error of the store is not the object's
    try:
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError) as err:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT,
                                f"{event.data.object_uri} is not DICOM: {err}") from err
    rows = rois_from_dicom_mask(ds, mask_uri=event.data.object_uri, mask_sha256=event.data.sha256,
                                provider=event.provider, project=event.data.project,
                                source=f"annotation:{event.event_id}")
    if not rows:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"{event.data.object_uri} has no regions")
    prefix = f"{event.data.annotation_kind}:{event.data.sop_instance_uid}"
    return [{**row, "roi": f"{prefix}/{row['roi']}"} for row in rows]


def handle_annotations(spark, job, events: list[AnnotationReceived], publish: Callable[[list], None],
                       read: Callable[[str, str], bytes]):
    """:func:`handle_segmentations` for ``annotation received`` events (:func:`annotation_rois`)."""
    return _register_and_run(spark, job, events, publish, partial(annotation_rois, read=read), "annotation")


def handle_segmentations(spark, job, events: list[PredictionCreated], publish: Callable[[list], None],
                         read: Callable[[str, str], bytes]):
    """Register the segments of each prediction's SEG as ROIs, run the job for those studies, publish the
    outbox. Returns the RunResult (None when no event carried a usable SEG), the published events and
    the rejected events (:data:`Rejection`: permanent errors). A transient error propagates, so the
    caller retries the batch."""
    return _register_and_run(spark, job, events, publish, partial(segmentation_rois, read=read), "prediction")


def _register_and_run(spark, job, events: list, publish: Callable[[list], None],
                      rois: Callable[[object], list[dict]], what: str):
    rows, source_event_ids, rejected = [], {}, []
    for event in events:
        try:
            found = rois(event)
        except (InvalidInputError, ObjectStoreError, OSError) as err:
            failure = classify(err)
            if failure is None or failure.transient:
                raise
            log.error("radiomics follow: %s %s of study %s: segmentation not usable (%s): %s",
                      what, event.event_id, event.data.study_uid, failure.reason, err)
            rejected.append((event, failure, err))
            continue
        if found:
            rows += found
            source_event_ids[event.data.study_uid] = event.event_id
    if not rows:
        return None, radiomics_job.publish_outbox(spark, job, publish), rejected
    radiomics_job.register_rois(spark, job.lake_uri, rows)
    scoped = replace(job, where=study_filter(source_event_ids, job.where))
    result = radiomics_job.run(spark, scoped, source_event_ids=source_event_ids)
    return result, radiomics_job.publish_outbox(spark, job, publish), rejected


# -- the consume loop ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BatchOutcome:
    result: object  # the job's RunResult, or None
    published: tuple
    studies: int
    dead_letters: tuple[DeadLetter, ...]
    handled_providers: tuple[str, ...] = ()  # of each decoded event not dead-lettered
    dead_providers: tuple[str, ...] = ()  # of each dead-lettered message ("unknown" when it did not decode)


def process_batch(spark, job, messages: Sequence[Message], serde, publish: Callable[[list], None], handle,
                  dead_letter: Callable[[Sequence[DeadLetter]], None],
                  erased: Container[str] = frozenset()) -> BatchOutcome:
    """One attempt at a batch: decode, handle, dead-letter what is permanently unusable. Raises on a
    transient error, before anything is dead-lettered, so a retry starts from scratch (the job, the
    outbox and ROI registration are idempotent). Events of an erased patient (``erased``: the deny list; the
    topics keep them until retention) are passed over: committed with the batch, never computed again."""
    decoded, letters = [], []
    for msg in messages:
        try:
            event = serde.deserialize(msg.value())
        except SchemaViolation as err:
            letters.append(DeadLetter(msg, classify(err).reason, str(err)))
            continue
        if getattr(event.data, "pseudo_patient_id", None) in erased:
            log.info("radiomics follow: %s[%d]@%d is of an erased patient: passed over", msg.topic(),
                     msg.partition(), msg.offset())
            continue
        decoded.append((msg, event))
    dead_providers = ["unknown"] * len(letters)
    result, published, studies, handled_providers = None, (), 0, []
    if decoded:
        events = [event for _, event in decoded]
        result, published, rejected = handle(spark, job, events, publish)
        source = {id(event): msg for msg, event in decoded}
        letters += [DeadLetter(source[id(event)], failure.reason, str(err)) for event, failure, err in rejected]
        dead_providers += [getattr(event, "provider", "unknown") for event, _, _ in rejected]
        refused = {id(event) for event, _, _ in rejected}
        handled_providers = [getattr(event, "provider", "unknown") for event in events if id(event) not in refused]
        studies = len({event.data.study_uid for event in events})
    dead_letter(letters)
    for letter in letters:
        m = letter.message
        log.warning("radiomics follow: dead-lettered %s[%d]@%d: %s: %s", m.topic(), m.partition(), m.offset(),
                    letter.reason, letter.error[:200])
    return BatchOutcome(result, tuple(published), studies, tuple(letters), tuple(handled_providers),
                        tuple(dead_providers))


def offset_ranges(messages: Iterable[Message]) -> str:
    """``topic[partition]@first..last`` per partition of ``messages``, for the logs (pure)."""
    ranges: dict[tuple[str, int], tuple[int, int]] = {}
    for m in messages:
        key = (m.topic(), m.partition())
        lo, hi = ranges.get(key, (m.offset(), m.offset()))
        ranges[key] = (min(lo, m.offset()), max(hi, m.offset()))
    return ", ".join(f"{t}[{p}]@{lo}..{hi}" for (t, p), (lo, hi) in sorted(ranges.items()))


def run_batch(messages: Sequence[Message], attempt: Callable[[], BatchOutcome], consumer,
              backoff: Backoff) -> tuple[BatchOutcome, int]:
    """``attempt`` the batch until it succeeds, holding the consumer (partitions paused, polled) during each
    back-off, then resume and commit the batch's offsets. Returns (the outcome, failed attempts)."""
    where = offset_ranges(messages)

    def retrying(failures: int, delay: float, err: BaseException) -> None:
        log.warning("radiomics follow: attempt %d on %s failed, transient (%s): %s; retrying in %.1f s, "
                    "nothing committed", failures, where, classify(err).reason, err, delay)

    outcome, failures = retry_transient(attempt, lambda delay: hold(consumer, delay), backoff, retrying)
    if failures:
        consumer.resume(consumer.assignment())
    # Only now, with the batch done and its dead letters acknowledged: nothing at or after a failing
    # message is committed before it succeeded.
    try:
        consumer.commit(offsets=kafka.next_offsets(messages), asynchronous=False)
    except KafkaException as err:  # e.g. a rebalance took the partition: its new owner reads the batch again
        log.warning("radiomics follow: committing %s failed, it may be processed again: %s", where, err)
    return outcome, failures


def follow(spark, job, consumer, serde, publish: Callable[[list], None], *, handle=handle_completed,
           dead_letter: Callable[[Sequence[DeadLetter]], None], backoff: Backoff = Backoff(),
           batch_size: int = 50, idle_exit_s: float | None = None, max_messages: int | None = None,
           metrics: RadiomicsMetrics | None = None, stop: threading.Event | None = None,
           erased: Container[str] = frozenset()) -> FollowStats:
    """Consume until idle for ``idle_exit_s`` (None: forever) or ``max_messages`` were read. ``handle``:
    :func:`handle_completed` for ``study completed`` events, or :func:`handle_segmentations` (its ``read``
    bound) for ``prediction created`` events. ``dead_letter``: where permanently unusable messages go
    (:func:`stack_dead_letters`). A batch that fails transiently is retried (``backoff``)
    until it succeeds; its offsets are committed only then. ``stop``: return after the batch in hand."""
    stats = FollowStats()
    idle_since = time.monotonic()
    while stop is None or not stop.is_set():
        messages = []
        for msg in consumer.consume(num_messages=batch_size, timeout=1.0):
            if msg.error():  # e.g. the topic does not exist yet: nothing to commit for it
                log.warning("radiomics follow: consumer error %s", msg.error())
                continue
            messages.append(msg)
        if messages:
            batch_started = time.monotonic()
            outcome, failures = run_batch(
                messages, partial(process_batch, spark, job, messages, serde, publish, handle, dead_letter, erased),
                consumer, backoff)
            result = outcome.result
            if metrics is not None:
                metrics.batch(seconds=time.monotonic() - batch_started, computed=result.computed_rois if result else 0,
                              failures=[reason for _, _, reason, _ in result.failures] if result else [],
                              compute_s=dict(result.timings).get("compute", 0.0) if result else 0.0,
                              handled=outcome.handled_providers, dead_lettered=outcome.dead_providers,
                              published=len(outcome.published), failed_attempts=failures, now=time.time())
            stats = replace(stats, messages=stats.messages + len(messages),
                            studies=stats.studies + outcome.studies, events=stats.events + len(outcome.published),
                            dead_lettered=stats.dead_lettered + len(outcome.dead_letters),
                            retried=stats.retried + (len(messages) if failures else 0),
                            retries=stats.retries + failures)
            log.info("radiomics follow: %d messages, %d studies, %d ROIs computed, %d failed, %d events published, "
                     "%d dead-lettered, %d retried (%d failed attempts)", len(messages), outcome.studies,
                     result.computed_rois if result else 0, result.failed_rois if result else 0,
                     len(outcome.published), len(outcome.dead_letters), len(messages) if failures else 0, failures)
            idle_since = time.monotonic()
        elif idle_exit_s is not None and time.monotonic() - idle_since > idle_exit_s:
            return stats
        if max_messages is not None and stats.messages >= max_messages:
            return stats
    return stats
