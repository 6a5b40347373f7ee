"""Put generated lake events (``radlake.synthetic.lake_events``) onto the real stack's Kafka: the feed of the
lake and streams benchmarks and of the integration tests."""

from __future__ import annotations

from collections.abc import Sequence

from lake_schemas.topics import Topic
from platform_layer import kafka
from platform_layer.kafka import TopicSpec
from platform_layer.serde import EventSerde, registry_client


class EventPublisher:
    """One idempotent producer and a serde per topic, for feeding many batches (a producer per batch costs a
    connection and registry look-ups each time, which a busy 2-core machine feels)."""

    def __init__(self, bootstrap: str, registry_url: str) -> None:
        self._registry = registry_client(registry_url)
        self._producer = kafka.producer(bootstrap, client_id="radlake-feed")
        self._serdes: dict[str, EventSerde] = {}

    def publish(self, topic: Topic, events: Sequence) -> int:
        """Produce events on ``topic`` in the registry's wire format and wait for the broker's acknowledgements."""
        if topic.name not in self._serdes:
            self._serdes[topic.name] = EventSerde(topic, self._registry)
        serde = self._serdes[topic.name]
        for event in events:
            self._producer.produce(topic.name, key=event.key.encode(), value=serde.serialize(event))
            self._producer.poll(0)
        if self._producer.flush(60) != 0:
            raise RuntimeError(f"Kafka did not acknowledge every event on {topic.name}")
        return len(events)


def publish(bootstrap: str, registry_url: str, topic: Topic, events: Sequence) -> int:
    """Produce events on ``topic`` in the registry's wire format."""
    return EventPublisher(bootstrap, registry_url).publish(topic, events)


def create_topics(bootstrap: str, topics: Sequence[Topic]) -> None:
    """Create topics with their partitions (a Structured Streaming source fails on a missing topic)."""
    kafka.ensure_topics(bootstrap, [TopicSpec(t.name, t.partitions) for t in topics])
