"""Input offsets the worker must handle and did not: find them, read them back from the broker.

faust-streaming 0.15.3 can fail to deliver some input messages to a stream after a restart under load
(messages produced while the worker restores its tables) and then commit past them: its fetcher records
the jump as a "gap" (what it assumes are transaction markers) and commits over it (faust-streaming issues
#216, #221, #312 describe the same class of race). Seeking back does not help, faust's fetcher drops
re-read offsets below its read offset. radlake's input topics are written without transactions, so their
offsets have no holes, and a jump is always a skipped message.

The worker therefore keeps, per input partition, the next offset it must handle: at the first message
of a partition in an assignment that is the group's committed offset (or the partition's earliest offset
when nothing is committed yet); after that it is one past the last offset handled. A message above that
offset means the messages in between never reached the stream: :class:`OffsetReader` reads exactly that
range with a plain confluent-kafka consumer (assigned, never joining the group, never committing) and the
worker handles them, inside the same handler and therefore the same transaction, before the message
that revealed the gap. A gap needs a later message to show; on every tick the worker also compares each
input partition's end offset (from the broker, not from faust's fetcher) with the next offset it must
handle, and reads back what has not arrived for ``stall_s``: the last messages of a partition, and whole
partitions faust assigned but never fetched after a restart (seen in kill -9 runs).

The handlers are idempotent, so a message faust delivers late after all is a no-op.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaError, KafkaException, TopicPartition

from streams.errors import StreamsError


class OffsetReadError(StreamsError):
    """A range of input offsets could not be read back from the broker."""


def missing_offsets(expected: int | None, offset: int) -> range:
    """The offsets between the next one the worker must handle and the one just delivered (empty if none).

    ``expected`` is None when nothing is known yet for the partition; an offset below ``expected`` is a
    redelivery, not a gap."""
    if expected is None or offset <= expected:
        return range(0)
    return range(expected, offset)


@dataclass(frozen=True)
class ReadMessage:
    """A message read back by :class:`OffsetReader`, shaped like the part of faust's ``Message`` the
    handlers use (``topic``, ``partition``, ``offset``, ``key``, ``value``, ``timestamp`` in seconds)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float
    headers: list[tuple[str, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class ReadEvent:
    """What the handlers receive for a message read back: they only look at ``event.message``."""

    message: ReadMessage


class OffsetReader:
    """Reads committed offsets of the worker's consumer group and exact offset ranges of input partitions.

    Blocking (call it from a thread); one instance per worker, used by one handler at a time."""

    def __init__(self, bootstrap: str, group_id: str, timeout_s: float = 30.0) -> None:
        self.timeout_s = timeout_s
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap,
            # the faust app's group id, to read its committed offsets; assign() never joins the group
            "group.id": group_id,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        })

    def start_offset(self, topic: str, partition: int) -> int:
        """The group's committed offset of the partition, or its earliest offset when none is committed."""
        try:
            [committed] = self.consumer.committed([TopicPartition(topic, partition)], timeout=self.timeout_s)
            if committed.error is None and committed.offset != OFFSET_INVALID and committed.offset >= 0:
                return committed.offset
            low, _high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                             timeout=self.timeout_s)
        except KafkaException as err:
            raise OffsetReadError(f"cannot read the committed offset of {topic}[{partition}]: {err}") from err
        return low

    def end_offset(self, topic: str, partition: int) -> int:
        """The offset the next message produced to the partition will get (its high watermark)."""
        try:
            _low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                             timeout=self.timeout_s)
        except KafkaException as err:
            raise OffsetReadError(f"cannot read the end offset of {topic}[{partition}]: {err}") from err
        return high

    def read(self, topic: str, partition: int, offsets: range) -> list[ReadMessage]:
        """Every message of ``offsets`` in ``topic[partition]``, in order; fewer only where the broker has
        none any more (deleted by retention), which the caller reports."""
        if not offsets:
            return []
        self.consumer.assign([TopicPartition(topic, partition, offsets.start)])
        read: list[ReadMessage] = []
        try:
            while True:
                message: Any = self.consumer.poll(self.timeout_s)
                if message is None:
                    raise OffsetReadError(f"{topic}[{partition}]: nothing read for {self.timeout_s} s while "
                                          f"reading back offsets {offsets.start}-{offsets.stop - 1}")
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        return read
                    raise OffsetReadError(f"{topic}[{partition}]: {error}")
                if message.offset() >= offsets.stop:
                    return read
                _kind, timestamp_ms = message.timestamp()
                read.append(ReadMessage(topic, partition, message.offset(), message.key(), message.value(),
                                        timestamp_ms / 1000.0, list(message.headers() or [])))
                if message.offset() == offsets.stop - 1:
                    return read
        finally:
            self.consumer.unassign()

    def close(self) -> None:
        self.consumer.close()
