"""The dead-letter topics as the console shows them: the latest messages with where they came from and why
(headers of :func:`lake_schemas.topics.dead_letter_headers`), never their payload beyond its ``event_type``;
and the replay of one letter: its key and value produced unchanged to its source topic, audited first.

A letter without a source-topic header (the inference worker's ``prediction dead letter`` events are typed
events of their own, not copies) is listed and cannot be replayed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from lake_schemas.errors import RadlakeError
from lake_schemas.topics import (
    DEAD_LETTER,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_STAGE,
    PREDICTION_DEAD_LETTER,
)
from platform_layer import audit, kafka
from platform_layer.endpoints import kafka_bootstrap
from platform_layer.errors import DeliveryError
from platform_layer.settings import Settings

TOPICS = (DEAD_LETTER, PREDICTION_DEAD_LETTER.name)
CLIENT_ID = "radlake-console"
TIMEOUT_S = 10.0


class DeadLetterError(RadlakeError):
    """A dead letter cannot be read or replayed."""


@dataclass(frozen=True)
class Letter:
    topic: str
    partition: int
    offset: int
    at: datetime | None
    event_type: str  # from the payload's JSON, "" when it has none (it did not parse: why it is here)
    reason: str
    stage: str
    source_topic: str
    source_partition: str
    source_offset: str

    @property
    def replayable(self) -> bool:
        return bool(self.source_topic)


def _header(headers: list[tuple[str, bytes | None]] | None, name: str) -> str:
    for key, value in headers or []:
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return ""


def _event_type(value: bytes | None) -> str:
    if not value:
        return ""
    body = value[5:] if value[:1] == b"\x00" else value  # the registry's framing
    try:
        kind = json.loads(body).get("event_type")
    except (ValueError, AttributeError):
        return ""
    return kind if isinstance(kind, str) else ""


def _letter(msg) -> Letter:  # noqa: ANN001 - a confluent_kafka Message
    kind, stamp = msg.timestamp()
    headers = msg.headers()
    return Letter(msg.topic(), msg.partition(), msg.offset(),
                  datetime.fromtimestamp(stamp / 1000, UTC) if kind and stamp > 0 else None,
                  _event_type(msg.value()), _header(headers, DLQ_REASON), _header(headers, DLQ_STAGE),
                  _header(headers, DLQ_SOURCE_TOPIC), _header(headers, DLQ_SOURCE_PARTITION),
                  _header(headers, DLQ_SOURCE_OFFSET))


def _consumer(settings: Settings):  # noqa: ANN202
    return kafka.consumer(kafka_bootstrap(settings), group_id=CLIENT_ID,
                          extra={"enable.partition.eof": True, "client.id": CLIENT_ID})


def recent(settings: Settings, topic: str, limit: int = 50) -> list[Letter]:
    """The last ``limit`` letters of each partition of ``topic``, newest first (none when it does not exist)."""
    consumer = _consumer(settings)
    try:
        metadata = consumer.list_topics(topic, timeout=TIMEOUT_S).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        assigned = []
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=TIMEOUT_S)
            if high > low:
                assigned.append(TopicPartition(topic, partition, max(low, high - limit)))
        if not assigned:
            return []
        consumer.assign(assigned)
        pending, found = {tp.partition for tp in assigned}, []
        while pending:
            batch = consumer.consume(500, timeout=TIMEOUT_S)
            if not batch:
                break  # aborted or uncommitted tail: nothing more will come
            for msg in batch:
                error = msg.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard(msg.partition())
                        continue
                    raise KafkaException(error)
                found.append(_letter(msg))
    except KafkaException as err:
        raise DeadLetterError(f"the dead letters of {topic} cannot be read: {err}") from err
    finally:
        consumer.close()
    return sorted(found, key=lambda letter: (letter.at or datetime.min.replace(tzinfo=UTC), letter.offset),
                  reverse=True)


def _read_one(settings: Settings, topic: str, partition: int, offset: int):  # noqa: ANN202
    consumer = _consumer(settings)
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        for _ in range(5):
            for msg in consumer.consume(1, timeout=TIMEOUT_S):
                if msg.error() is None and msg.offset() == offset:
                    return msg
                if msg.error() is None:
                    break  # past it: it was deleted or compacted away
        raise DeadLetterError(f"{topic}[{partition}]@{offset} cannot be read (deleted by retention?)")
    except KafkaException as err:
        raise DeadLetterError(f"{topic}[{partition}]@{offset} cannot be read: {err}") from err
    finally:
        consumer.close()


def replay(settings: Settings, topic: str, partition: int, offset: int, *, actor: str | None = None) -> Letter:
    """Produce the letter at ``topic[partition]@offset`` to its source topic, key and value unchanged."""
    if topic not in TOPICS:
        raise DeadLetterError(f"{topic} is not a dead-letter topic ({', '.join(TOPICS)})")
    msg = _read_one(settings, topic, partition, offset)
    letter = _letter(msg)
    if not letter.replayable:
        raise DeadLetterError(f"{topic}[{partition}]@{offset} names no source topic: nothing to replay it to")
    with audit.recorded(settings, "dead_letter.replay", f"{topic}[{partition}]@{offset}", actor=actor,
                        details={"to": letter.source_topic, "reason": letter.reason,
                                 "source": f"{letter.source_topic}[{letter.source_partition}]@"
                                           f"{letter.source_offset}"}):
        producer = kafka.producer(kafka_bootstrap(settings), client_id=CLIENT_ID)
        try:
            kafka.produce_all(producer, [kafka.Outgoing(letter.source_topic, msg.value(), msg.key())],
                              timeout_s=30)
        except (KafkaException, DeliveryError) as err:
            raise DeadLetterError(f"replaying to {letter.source_topic} failed: {err}") from err
    return letter
