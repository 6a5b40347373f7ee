"""Delta table schemas, derived from the event contracts so a column cannot drift from its field.

The bronze ``instances`` table holds one row per ``instance received`` event: the envelope, the
payload flattened into typed columns, and where the event came from in Kafka. Schema evolution is
explicit: a new optional field in the event schema becomes a new nullable column (additive), and the
table's ``schema_version`` property records which contract version wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lake_schemas.topics import INSTANCE_RECEIVED, Topic

# JSON Schema scalar type -> Spark SQL type
_SCALARS = {"string": "STRING", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
_FORMATS = {"date-time": "TIMESTAMP"}


def _spark_type(spec: dict) -> str:
    if "const" in spec:
        return "BIGINT" if isinstance(spec["const"], int) else "STRING"
    types = spec["type"] if isinstance(spec["type"], list) else [spec["type"]]
    base = next(t for t in types if t != "null")
    if base == "array":
        return f"ARRAY<{_spark_type(spec['items'])}>"
    if base == "object":
        return "STRUCT<" + ", ".join(f"`{n}`: {_spark_type(s)}" for n, s in spec["properties"].items()) + ">"
    if spec.get("format") in _FORMATS:
        return _FORMATS[spec["format"]]
    return _SCALARS[base]


def event_ddl(topic: Topic) -> str:
    """The Spark DDL of a whole event (for ``from_json``)."""
    return ", ".join(f"`{name}` {_spark_type(spec)}" for name, spec in topic.schema["properties"].items())


def flat_columns(topic: Topic) -> list[tuple[str, str]]:
    """(column, Spark type) with the payload's fields flattened next to the envelope's."""
    props = topic.schema["properties"]
    envelope = [(n, _spark_type(s)) for n, s in props.items() if n != "data"]
    payload = [(n, _spark_type(s)) for n, s in props["data"]["properties"].items()]
    return envelope + payload


@dataclass(frozen=True)
class DeltaTableSpec:
    name: str
    topic: Topic
    partition_by: tuple[str, ...]
    merge_key: tuple[str, ...]
    kafka_columns: tuple[tuple[str, str], ...] = (
        ("kafka_topic", "STRING"),
        ("kafka_partition", "INT"),
        ("kafka_offset", "BIGINT"),
        ("kafka_timestamp", "TIMESTAMP"),
        ("schema_id", "INT"),
    )

    @property
    def columns(self) -> list[tuple[str, str]]:
        return [*flat_columns(self.topic), *self.kafka_columns]

    @property
    def ddl(self) -> str:
        return ", ".join(f"`{n}` {t}" for n, t in self.columns)


BRONZE_INSTANCES = DeltaTableSpec(
    name="instances",
    topic=INSTANCE_RECEIVED,
    # Few distinct values and every query filters on them; study-level partitions would be too small.
    partition_by=("provider",),
    # A redelivered event keeps its event id: merging on it makes the bronze write idempotent.
    merge_key=("event_id",),
)
