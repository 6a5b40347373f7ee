"""Kafka clients and topics, built in one place.

A component asks for a client by its role (an idempotent producer, a transactional producer, a
read-committed consumer, an admin client) and passes only what is its own (group, ids, tuning); the
connection and delivery guarantees are set here. Topics are created here, with their partitions and
configuration, and an existing topic with another partition count is an error, never silently used.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from platform_layer.errors import TopicError
from platform_layer.serde import EventSerde

log = logging.getLogger(__name__)

Config = Mapping[str, Any]


def _connection(bootstrap: str) -> dict[str, Any]:
    return {"bootstrap.servers": bootstrap}


def producer(bootstrap: str, *, client_id: str, extra: Config | None = None) -> Producer:
    """An idempotent producer whose acknowledgement means every in-sync replica has the message."""
    return Producer({
        **_connection(bootstrap), "client.id": client_id,
        "acks": "all", "enable.idempotence": True, "linger.ms": 5,
        **(extra or {}),
    })


def transactional_producer(bootstrap: str, *, transactional_id: str, timeout_ms: int = 60_000,
                           extra: Config | None = None) -> Producer:
    """A producer for read-process-write transactions; a restarted one with the same id fences its predecessor."""
    return producer(bootstrap, client_id=transactional_id, extra={
        "transactional.id": transactional_id, "transaction.timeout.ms": timeout_ms, **(extra or {}),
    })


def consumer(bootstrap: str, *, group_id: str, static_member_id: str | None = None,
             extra: Config | None = None) -> Consumer:
    """A consumer that sees committed messages only and commits its offsets explicitly.

    ``static_member_id`` makes the member static: restarted with the same id, it takes its partitions
    back at once instead of waiting for its predecessor's session to time out.
    """
    config: dict[str, Any] = {
        **_connection(bootstrap), "group.id": group_id,
        "enable.auto.commit": False, "auto.offset.reset": "earliest", "isolation.level": "read_committed",
    }
    if static_member_id is not None:
        config["group.instance.id"] = static_member_id
    return Consumer({**config, **(extra or {})})


def admin(bootstrap: str, *, extra: Config | None = None) -> AdminClient:
    return AdminClient({**_connection(bootstrap), **(extra or {})})


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)
    replication: int = 1


def ensure_topics(bootstrap: str, topics: Sequence[TopicSpec], *, timeout_s: float = 30.0) -> list[str]:
    """Create the topics that are missing; return their names. A topic that exists with another partition
    count raises :class:`TopicError` (keys would land on other partitions than its consumers expect)."""
    client = admin(bootstrap)
    try:
        existing = client.list_topics(timeout=timeout_s).topics
    except KafkaException as err:
        raise TopicError(f"cannot list topics on {bootstrap}: {err}") from err
    wrong = {t.name: len(existing[t.name].partitions) for t in topics
             if t.name in existing and len(existing[t.name].partitions) != t.partitions}
    if wrong:
        wanted = {t.name: t.partitions for t in topics if t.name in wrong}
        raise TopicError(f"topics exist with other partition counts: have {wrong}, want {wanted}")
    missing = [NewTopic(t.name, t.partitions, t.replication, config=dict(t.config))
               for t in topics if t.name not in existing]
    if not missing:
        return []
    for name, future in client.create_topics(missing).items():
        try:
            future.result(timeout_s)
        except KafkaException as err:
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise TopicError(f"cannot create topic {name}: {err}") from err
    return [t.topic for t in missing]


def _coordinates(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed message (an error event has none)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise TopicError(f"not a consumed message (topic {topic}, partition {partition}, offset {offset})")
    return topic, partition, offset


def next_offsets(messages: Iterable[Message]) -> list[TopicPartition]:
    """The offsets to commit once ``messages`` are done: the next one per partition (pure)."""
    top: dict[tuple[str, int], int] = {}
    for m in messages:
        topic, partition, offset = _coordinates(m)
        top[(topic, partition)] = max(top.get((topic, partition), -1), offset)
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(top.items())]


def rewind(consumer: Consumer, messages: Iterable[Message]) -> None:
    """Seek back to the first of ``messages`` per partition, so an aborted batch is read again. A partition
    that moved to another member in a rebalance is skipped: that member reads it from the committed offset."""
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        topic, partition, offset = _coordinates(m)
        first[(topic, partition)] = min(first.get((topic, partition), offset), offset)
    for (topic, partition), offset in first.items():
        try:
            consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as err:
            log.info("not rewinding %s[%d]: %s", topic, partition, err)


def read_to_end(bootstrap: str, serde: EventSerde, *, timeout_s: float = 60.0) -> list:
    """Every committed event of ``serde``'s topic, from the beginning to the end offsets seen at the start
    (typed and validated by ``serde``). Raises :class:`TopicError` when Kafka reports an error or the end is
    not reached within ``timeout_s``."""
    topic = serde.topic.name
    reader = consumer(bootstrap, group_id=f"radlake-reader-{uuid.uuid4().hex[:8]}")
    events = []
    try:
        metadata = reader.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        ends = {}
        for p in metadata.partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        reader.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise TopicError(f"reading {topic} to its end took more than {timeout_s:.0f}s; "
                                 f"partitions left: {sorted(ends)}")
            msg = reader.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise TopicError(f"reading {topic}: {msg.error()}")
            _topic, partition, offset = _coordinates(msg)
            events.append(serde.deserialize(msg.value() or b""))
            if offset + 1 >= ends.get(partition, 0):
                ends.pop(partition, None)
    except KafkaException as err:
        raise TopicError(f"reading {topic}: {err}") from err
    finally:
        reader.close()
    return events
