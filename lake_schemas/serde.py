"""Produce and consume radlake events in the Confluent wire format, validated against the registry.

The value of every message is ``0x00 | schema id (4 bytes) | JSON``; the serializer validates the
event against its schema file before it leaves, the deserializer validates what arrives and returns the
typed class. Schemas are registered by ``radlake schemas register`` (never auto-registered by a producer,
so a producer cannot silently change a contract).
"""

from __future__ import annotations

import json

from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.json_schema import JSONDeserializer, JSONSerializer
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError
from pydantic import BaseModel, ValidationError

from lake_schemas.errors import SchemaViolation
from lake_schemas.topics import Topic


def registry_client(url: str) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": url})


class EventSerde:
    """Serializer + deserializer of one topic's events."""

    def __init__(self, topic: Topic, registry: SchemaRegistryClient) -> None:
        self.topic = topic
        self._serializer = JSONSerializer(
            topic.schema_str,
            registry,
            to_dict=lambda event, _ctx: json.loads(event.model_dump_json()),
            conf={"auto.register.schemas": False, "use.latest.version": False},
        )
        self._deserializer = JSONDeserializer(topic.schema_str, schema_registry_client=registry)
        self._ctx = SerializationContext(topic.name, MessageField.VALUE)

    def serialize(self, event: BaseModel) -> bytes:
        if not isinstance(event, self.topic.event_class):
            raise SchemaViolation(f"{type(event).__name__} cannot go on {self.topic.name}")
        try:
            return self._serializer(event, self._ctx)
        except SerializationError as err:
            raise SchemaViolation(f"event does not match {self.topic.schema_file}: {err}") from err

    def deserialize(self, value: bytes) -> BaseModel:
        try:
            as_dict = self._deserializer(value, self._ctx)
            return self.topic.event_class.model_validate(as_dict)
        except (SerializationError, ValidationError, ValueError) as err:
            raise SchemaViolation(f"message on {self.topic.name} does not match its schema: {err}") from err
