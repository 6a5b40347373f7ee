"""Publish radlake events to Kafka in the Confluent wire format, validated against the registry, and wait
for every acknowledgement (``acks=all``, idempotent producer). A thin adapter: the edge's NiFi processor
and ``radlake upload``'s tests use it; what to publish is decided in :mod:`nifi.edge.edge`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from pydantic import BaseModel

from lake_schemas.errors import SchemaViolation
from lake_schemas.topics import Topic
from nifi.edge.errors import EdgeUnavailable
from platform_layer import kafka
from platform_layer.errors import DeliveryError
from platform_layer.serde import EventSerde, registry_client


class EventPublisher:
    """One producer, one serde per event class (each bound to its topic)."""

    def __init__(self, bootstrap: str, registry_url: str, topics: Sequence[Topic], *, client_id: str = "radlake-edge",
                 delivery_timeout_ms: int = 30_000, identity: kafka.Identity | None = None,
                 registry_ca_file: str | None = None) -> None:
        registry = registry_client(registry_url, ca_file=registry_ca_file)
        self._serdes: Mapping[type, EventSerde] = {t.event_class: EventSerde(t, registry) for t in topics}
        self._timeout_s = delivery_timeout_ms / 1000
        self._producer = kafka.producer(bootstrap, client_id=client_id, identity=identity,
                                        extra={"delivery.timeout.ms": delivery_timeout_ms})

    def publish(self, events: Sequence[BaseModel]) -> None:
        """Send all, keyed by their study (or input hash); raises :class:`EdgeUnavailable` unless all are acknowledged."""
        try:
            kafka.produce_all(self._producer, (self._message(event) for event in events), timeout_s=self._timeout_s)
        except (DeliveryError, SchemaViolation) as err:
            raise EdgeUnavailable(f"publishing failed: {type(err).__name__}: {err}") from err

    def _message(self, event: BaseModel) -> kafka.Outgoing:
        serde = self._serdes.get(type(event))
        if serde is None:
            raise SchemaViolation(f"no topic of this edge carries {type(event).__name__}")
        return kafka.Outgoing(serde.topic.name, serde.serialize(event), event.key.encode())

    def close(self) -> None:
        self._producer.flush(self._timeout_s)
