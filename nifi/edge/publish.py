"""Publish radlake events to Kafka in the Confluent wire format, validated against the registry, and wait
for every acknowledgement (``acks=all``, idempotent producer). A thin adapter: the edge's NiFi processor
and ``radlake upload``'s tests use it; what to publish is decided in :mod:`nifi.edge.edge`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from confluent_kafka import KafkaException
from pydantic import BaseModel

from lake_schemas.errors import SchemaViolation
from lake_schemas.topics import Topic
from nifi.edge.errors import EdgeUnavailable
from platform_layer import kafka
from platform_layer.serde import EventSerde, registry_client


class EventPublisher:
    """One producer, one serde per event class (each bound to its topic)."""

    def __init__(self, bootstrap: str, registry_url: str, topics: Sequence[Topic], *, client_id: str = "radlake-edge",
                 delivery_timeout_ms: int = 30_000, identity: kafka.Identity | None = None) -> None:
        registry = registry_client(registry_url)
        self._serdes: Mapping[type, EventSerde] = {t.event_class: EventSerde(t, registry) for t in topics}
        self._timeout_s = delivery_timeout_ms / 1000
        self._producer = kafka.producer(bootstrap, client_id=client_id, identity=identity,
                                        extra={"delivery.timeout.ms": delivery_timeout_ms})

    def publish(self, events: Sequence[BaseModel]) -> None:
        """Send all, keyed by their study (or input hash); raises :class:`EdgeUnavailable` unless all are acknowledged."""
        failures: list[str] = []

        def delivered(err, _msg) -> None:
            if err is not None:
                failures.append(str(err))

        try:
            for event in events:
                serde = self._serdes[type(event)]
                self._producer.produce(serde.topic.name, key=event.key.encode(), value=serde.serialize(event),
                                       on_delivery=delivered)
                self._producer.poll(0)
        except (KafkaException, BufferError, SchemaViolation, KeyError) as err:
            self._producer.flush(self._timeout_s)
            raise EdgeUnavailable(f"publishing failed: {type(err).__name__}: {err}") from err
        remaining = self._producer.flush(self._timeout_s)
        if remaining or failures:
            raise EdgeUnavailable(f"{remaining} event(s) unacknowledged, {len(failures)} failed: {failures[:3]}")

    def close(self) -> None:
        self._producer.flush(self._timeout_s)
