"""produce_all on a real librdkafka producer whose broker never answers: nothing counts as acknowledged."""

from __future__ import annotations

import pytest
from confluent_kafka import Producer

from lake_schemas.errors import SchemaViolation
from platform_layer.errors import DeliveryError
from platform_layer.kafka import Outgoing, produce_all

NOBODY = "127.0.0.1:9"  # the discard port: nothing listens, every connection is refused


def _producer(**extra) -> Producer:
    return Producer({"bootstrap.servers": NOBODY, "log_level": 0, "reconnect.backoff.ms": 50, **extra})


def test_messages_still_queued_at_the_timeout_are_reported_as_pending():
    producer = _producer()
    with pytest.raises(DeliveryError, match=r"2 of 2 message\(s\) \(2 pending"):
        produce_all(producer, [Outgoing("t", b"a"), Outgoing("t", b"b", b"k")], timeout_s=0.3)


def test_a_message_kafka_gave_up_on_is_reported_as_refused():
    producer = _producer(**{"message.timeout.ms": 100})
    with pytest.raises(DeliveryError, match=r"1 of 1 message\(s\) \(0 pending.*1 refused"):
        produce_all(producer, [Outgoing("t", b"a")], timeout_s=5)


def test_a_full_queue_waits_for_room_instead_of_failing():
    # one message fits; the second waits until the first times out and leaves the queue
    producer = _producer(**{"message.timeout.ms": 100, "queue.buffering.max.messages": 1})
    with pytest.raises(DeliveryError, match=r"2 of 2 message\(s\) \(0 pending.*2 refused"):
        produce_all(producer, [Outgoing("t", b"a"), Outgoing("t", b"b")], timeout_s=5)


def test_a_queue_that_stays_full_past_the_timeout_is_a_delivery_error():
    producer = _producer(**{"queue.buffering.max.messages": 1})
    with pytest.raises(DeliveryError, match="producing failed after 1 message"):
        produce_all(producer, [Outgoing("t", b"a"), Outgoing("t", b"b")], timeout_s=0.3)


def test_an_error_while_building_the_messages_propagates_unchanged():
    def messages():
        yield Outgoing("t", b"a")
        raise SchemaViolation("$.study_uid: required")

    with pytest.raises(SchemaViolation, match="study_uid"):
        produce_all(_producer(**{"message.timeout.ms": 100}), messages(), timeout_s=1)
