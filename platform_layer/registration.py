"""Register the contracts of ``lake_schemas`` in the schema registry (idempotent)."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from lake_schemas.errors import RegistryError
from lake_schemas.topics import ALL_TOPICS, Topic


@dataclass(frozen=True)
class Registered:
    subject: str
    schema_id: int
    version: int


def register(registry: SchemaRegistryClient, topics: tuple[Topic, ...] = ALL_TOPICS) -> list[Registered]:
    """Register each topic's schema under its subject; re-registering the same schema returns the same id."""
    done: list[Registered] = []
    for topic in topics:
        try:
            schema_id = registry.register_schema(topic.subject, Schema(topic.schema_str, "JSON"))
            version = registry.lookup_schema(topic.subject, Schema(topic.schema_str, "JSON")).version
        except SchemaRegistryError as err:
            raise RegistryError(f"registering {topic.subject} failed: {err}") from err
        except Exception as err:  # noqa: BLE001 - the client raises its HTTP library's errors unwrapped
            raise RegistryError(f"the registry could not be reached ({type(err).__name__}: {err})") from err
        if version is None:
            raise RegistryError(f"registering {topic.subject}: the registry answered without a version")
        done.append(Registered(topic.subject, schema_id, version))
    return done
