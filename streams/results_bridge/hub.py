"""One Kafka reader shared by every connected client, and a reader of its own for a client that replays.

The hub's consumer (read_committed, so an aborted transaction's events never reach a browser) reads every
partition of the result topics from the earliest retained offset: on the way it indexes the objects the
predictions name (so ``/objects`` can tell whose an object is), and it is *caught up* (the bridge answers its
health check) once it reached the end of each partition. From then on each batch it reads is handed to the
event loop once, where every subscriber takes the deliveries its scope allows.

A subscriber that replays registers first and buffers live deliveries while its own consumer reads from the
start it asked for to the end; per partition it then sends only offsets above the last one it sent, so the
hand-over neither loses nor repeats an event. A subscriber that cannot keep up (its buffer is full) is ended:
it reconnects with ``Last-Event-ID`` and replays what it missed, instead of slowing everyone down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, OFFSET_END, Consumer, KafkaError, KafkaException, Message, TopicPartition

from platform_layer.serde import EventSerde, SchemaViolation
from streams.errors import StreamsError
from streams.results_bridge.access import Scope
from streams.results_bridge.positions import Coordinates, Start, StartError

log = logging.getLogger(__name__)

# A resumed stream restarts every partition from the time of the event it names, less this margin: events of other
# partitions committed a little before it may have reached the client after it (transactions commit several
# partitions at once; CreateTime is the producer's clock). The cost is a few repeated ids, which clients drop.
RESUME_MARGIN_MS = 30_000
BATCH = 500
POLL_S = 0.1


class HubError(StreamsError):
    """The hub cannot read the result topics."""


@dataclass(frozen=True)
class ObjectRef:
    """An object a prediction names: whose it is and the hash its claim-check carries."""

    uri: str
    sha256: str
    project: str
    kind: str  # seg | sr | gradcam
    study_uid: str


class ObjectIndex:
    """Objects of the predictions read so far, by URI and by hash (written by the hub's thread, read by requests:
    single dict operations, atomic under the GIL)."""

    def __init__(self) -> None:
        self._by_uri: dict[str, ObjectRef] = {}
        self._by_sha: dict[str, ObjectRef] = {}

    def add(self, ref: ObjectRef) -> None:
        self._by_uri[ref.uri] = ref
        self._by_sha[ref.sha256] = ref

    def by_uri(self, uri: str) -> ObjectRef | None:
        return self._by_uri.get(uri)

    def by_sha256(self, sha256: str) -> ObjectRef | None:
        return self._by_sha.get(sha256.lower())

    def __len__(self) -> int:
        return len(self._by_uri)


def prediction_objects(data: Mapping[str, Any]) -> list[ObjectRef]:
    """The SEG, SR and Grad-CAM objects of a prediction's ``data`` (pure)."""
    project, study = str(data["project"]), str(data["study_uid"])
    refs = [ObjectRef(data[kind]["uri"], data[kind]["sha256"], project, kind, study)
            for kind in ("seg", "sr") if data.get(kind)]
    refs += [ObjectRef(c["gradcam_uri"], c["gradcam_sha256"], project, "gradcam", study)
             for c in data.get("candidates") or () if c.get("gradcam_uri") and c.get("gradcam_sha256")]
    return refs


class Delivery:
    """One event as the bridge sends it; its SSE frame is built once, whoever receives it."""

    __slots__ = ("topic", "partition", "offset", "timestamp_ms", "event_type", "project", "payload", "_frame")

    def __init__(self, topic: str, partition: int, offset: int, timestamp_ms: int, event_type: str,
                 project: str | None, payload: bytes) -> None:
        self.topic, self.partition, self.offset = topic, partition, offset
        self.timestamp_ms, self.event_type, self.project, self.payload = timestamp_ms, event_type, project, payload
        self._frame: bytes | None = None

    @property
    def event_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"

    @property
    def frame(self) -> bytes:
        """``id:``, ``event:`` (the event type, e.g. ``prediction.created``) and one ``data:`` line of JSON."""
        if self._frame is None:
            self._frame = (f"id: {self.event_id}\nevent: {self.event_type}\n".encode()
                           + b"data: " + self.payload + b"\n\n")
        return self._frame

    def message(self) -> str:
        """The same for a WebSocket: one JSON text message."""
        return (f'{{"id":"{self.event_id}","type":"{self.event_type}","topic":"{self.topic}",'
                f'"timestamp_ms":{self.timestamp_ms},"data":{self.payload.decode()}}}')


def decode(message: Message, serdes: Mapping[str, EventSerde], index: ObjectIndex | None = None,
           erased: Container[str] = frozenset()) -> Delivery | None:
    """A consumed message as a delivery (validated against the schema it names), or None when it does not match
    its contract (logged with its coordinates; the producers' dead-letter topics are theirs, not the bridge's)
    or is about an erased patient (``erased``: the deny list; the topics keep such events until retention)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    value = message.value()
    if topic is None or partition is None or offset is None or value is None:
        return None
    try:
        event = serdes[topic].read(value)
    except (SchemaViolation, KeyError) as err:
        log.warning("skipping %s[%d]@%d: %s", topic, partition, offset, err)
        return None
    if getattr(event.data, "pseudo_patient_id", None) in erased:
        return None
    payload = bytes(memoryview(value)[5:])
    if b"\n" in payload:  # a producer that pretty-printed: one SSE data line needs compact JSON
        payload = json.dumps(json.loads(payload), separators=(",", ":")).encode()
    if index is not None and event.event_type == "prediction.created":
        for ref in prediction_objects(json.loads(payload)["data"]):
            index.add(ref)
    return Delivery(topic, partition, offset, message.timestamp()[1], event.event_type, event.data.project, payload)


class Subscriber:
    """One client's stream: its scope and topics, a bounded buffer the event loop fills, and the last offset sent
    per partition."""

    def __init__(self, scope: Scope, topics: frozenset[str], max_buffer: int) -> None:
        self.scope, self.topics, self.max_buffer = scope, topics, max_buffer
        self.buffer: deque[Delivery] = deque()
        self.ready = asyncio.Event()
        self.overflowed = False
        self.sent: dict[tuple[str, int], int] = {}
        # only a stream that replayed can be handed an event twice (by its replay and by the hub): a live-only
        # stream takes the hub's batches as they are, in order, without the per-event bookkeeping
        self.deduplicate = False

    def offer(self, deliveries: list[Delivery]) -> None:
        """Called on the event loop with each batch the hub read."""
        if self.overflowed:
            return
        if self.scope.everything and all(d.topic in self.topics for d in deliveries):
            self.buffer.extend(deliveries)
        else:
            self.buffer.extend(d for d in deliveries if d.topic in self.topics and self.scope.may_read(d.project))
        if len(self.buffer) > self.max_buffer:
            self.overflowed = True
            self.buffer.clear()
        if self.buffer or self.overflowed:
            self.ready.set()

    def fresh(self, deliveries: Iterable[Delivery]) -> list[Delivery]:
        """Those of ``deliveries`` above the last offset sent on their partition (marked as sent); from now on
        every batch taken is checked the same way."""
        self.deduplicate = True
        out = []
        for d in deliveries:
            key = (d.topic, d.partition)
            if d.offset > self.sent.get(key, -1):
                self.sent[key] = d.offset
                out.append(d)
        return out

    def take(self) -> list[Delivery]:
        taken = list(self.buffer)
        self.buffer.clear()
        self.ready.clear()
        return self.fresh(taken) if self.deduplicate else taken


@dataclass
class HubStats:
    read: int = 0
    skipped: int = 0
    caught_up_at: float | None = None
    partitions: dict[str, int] = field(default_factory=dict)


class Hub:
    """The shared reader (a daemon thread) and its subscribers (touched on the event loop only)."""

    def __init__(self, consumer_factory: Callable[[str], Consumer], serdes: Mapping[str, EventSerde],
                 index: ObjectIndex, erased: Container[str] = frozenset()) -> None:
        self._new_consumer, self.serdes, self.index, self.erased = consumer_factory, serdes, index, erased
        self.subscribers: set[Subscriber] = set()
        self.caught_up = threading.Event()
        self.stats = HubStats()
        self._stop = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.failure: BaseException | None = None

    @property
    def topics(self) -> tuple[str, ...]:
        return tuple(self.serdes)

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._run, name="results-hub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _dispatch(self, deliveries: list[Delivery]) -> None:
        for subscriber in list(self.subscribers):
            subscriber.offer(deliveries)

    def _run(self) -> None:
        consumer = self._new_consumer("hub")
        try:
            parts = partitions(consumer, self.topics)
            self.stats.partitions = {t: sum(1 for p in parts if p.topic == t) for t in self.topics}
            consumer.assign([TopicPartition(p.topic, p.partition, OFFSET_BEGINNING) for p in parts])
            pending = {(p.topic, p.partition) for p in parts}
            if not pending:
                self._caught_up()
            while not self._stop.is_set():
                batch = []
                for message in consumer.consume(BATCH, POLL_S):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard((message.topic(), message.partition()))
                            if not pending and not self.caught_up.is_set():
                                self._caught_up()
                            continue
                        log.warning("kafka: %s", error)
                        continue
                    delivery = decode(message, self.serdes, self.index, self.erased)
                    self.stats.read += 1
                    if delivery is None:
                        self.stats.skipped += 1
                    else:
                        batch.append(delivery)
                if batch and self._loop is not None:
                    self._loop.call_soon_threadsafe(self._dispatch, batch)
        except KafkaException as err:
            self.failure = err
            log.error("the results hub stopped reading: %s", err)
        finally:
            consumer.close()

    def _caught_up(self) -> None:
        self.stats.caught_up_at = time.time()
        self.caught_up.set()
        log.info("results hub caught up: %d events read, %d objects indexed", self.stats.read, len(self.index))

    # --- replay (runs in a worker thread, one consumer per replaying client) -------------------------------
    def replay(self, start: Start, topics: frozenset[str], scope: Scope, limit: int) -> list[Delivery]:
        """The events of ``topics`` that ``scope`` may read from ``start`` to the end of each partition (at most
        ``limit``: a client that needs more resumes from the last one it received)."""
        consumer = self._new_consumer(f"replay-{uuid.uuid4().hex[:8]}")
        try:
            parts = [p for p in partitions(consumer, tuple(t for t in self.topics if t in topics))]
            offsets = start_offsets(consumer, parts, start)
            consumer.assign(offsets)
            pending = {(p.topic, p.partition) for p in offsets}
            out: list[Delivery] = []
            deadline = time.monotonic() + 120
            while pending and len(out) < limit:
                if time.monotonic() > deadline:
                    raise HubError(f"replay did not reach the end of {sorted(pending)} in 120 s")
                for message in consumer.consume(BATCH, POLL_S):
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            pending.discard((message.topic(), message.partition()))
                        else:
                            log.warning("kafka (replay): %s", error)
                        continue
                    delivery = decode(message, self.serdes, erased=self.erased)
                    if delivery is not None and scope.may_read(delivery.project):
                        if start.after is None or not _at_or_before(delivery, start.after):
                            out.append(delivery)
            return out[:limit]
        except KafkaException as err:
            raise HubError(f"replay: {err}") from err
        finally:
            consumer.close()


def _at_or_before(delivery: Delivery, after: Coordinates) -> bool:
    return delivery.topic == after.topic and delivery.partition == after.partition and delivery.offset <= after.offset


def partitions(consumer: Consumer, topics: Iterable[str]) -> list[TopicPartition]:
    out = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            raise HubError(f"topic {topic} cannot be read: {metadata.error if metadata else 'missing'}")
        out += [TopicPartition(topic, p) for p in sorted(metadata.partitions)]
    return out


def start_offsets(consumer: Consumer, parts: list[TopicPartition], start: Start) -> list[TopicPartition]:
    """The offset each partition's replay starts at: the first event at or after the start time (the end where
    there is none); for a resumed stream, the time of the event it names less :data:`RESUME_MARGIN_MS`."""
    since = start.since_ms
    if start.after is not None:
        since = event_time(consumer, start.after) - RESUME_MARGIN_MS
    if since is None:
        return [TopicPartition(p.topic, p.partition, OFFSET_END) for p in parts]
    found = consumer.offsets_for_times([TopicPartition(p.topic, p.partition, max(0, since)) for p in parts],
                                       timeout=10)
    return [TopicPartition(p.topic, p.partition, p.offset if p.offset >= 0 else OFFSET_END) for p in found]


def event_time(consumer: Consumer, at: Coordinates) -> int:
    """CreateTime of the event at ``at`` (epoch ms); an offset no longer retained: 0 (replay everything kept)."""
    low, high = consumer.get_watermark_offsets(TopicPartition(at.topic, at.partition), timeout=10)
    if at.offset < low:
        return 0
    if at.offset >= high:
        raise StartError(f"{at.event_id} is beyond the end of its partition")
    consumer.assign([TopicPartition(at.topic, at.partition, at.offset)])
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                return int(message.timestamp()[1])
    finally:
        consumer.unassign()
    raise StartError(f"the event {at.event_id} could not be read")
