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
        self._bootstrap = bootstrap
        self._registry = registry_client(registry_url)
        self._producer = kafka.producer(bootstrap, client_id="radlake-feed")
        self._serdes: dict[str, EventSerde] = {}

    def publish(self, topic: Topic, events: Sequence) -> int:
        """Produce events on ``topic`` (created with its partitions the first time: Kafka never creates a
        topic on first use) in the registry's wire format, and wait until the broker acknowledged each."""
        if topic.name not in self._serdes:
            kafka.ensure_topics(self._bootstrap, [TopicSpec(topic.name, topic.partitions)])
            self._serdes[topic.name] = EventSerde(topic, self._registry)
        serde = self._serdes[topic.name]
        kafka.produce_all(self._producer, (kafka.Outgoing(topic.name, serde.serialize(event), event.key.encode())
                                           for event in events), timeout_s=60)
        return len(events)


def publish(bootstrap: str, registry_url: str, topic: Topic, events: Sequence) -> int:
    """Produce events on ``topic`` in the registry's wire format."""
    return EventPublisher(bootstrap, registry_url).publish(topic, events)


def create_topics(bootstrap: str, topics: Sequence[Topic]) -> None:
    """Create topics with their partitions (a Structured Streaming source fails on a missing topic)."""
    kafka.ensure_topics(bootstrap, [TopicSpec(t.name, t.partitions) for t in topics])
