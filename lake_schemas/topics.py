"""Every topic declared once: its name, its schema file, its event class and its partition key."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from pydantic import BaseModel

from lake_schemas.events import (
    AnnotationReceived,
    FeaturesComputed,
    InstanceReceived,
    PredictionCreated,
    Quarantined,
    StudyCompleted,
    StudyManifest,
)

SCHEMA_DIR = Path(__file__).parent / "events"


@dataclass(frozen=True)
class Topic:
    name: str
    schema_file: str
    event_class: type[BaseModel]
    partitions: int = 3

    @property
    def subject(self) -> str:
        """Registry subject under the TopicNameStrategy (what Confluent serializers use by default)."""
        return f"{self.name}-value"

    @cached_property
    def schema(self) -> dict:
        return json.loads((SCHEMA_DIR / self.schema_file).read_text())

    @property
    def schema_str(self) -> str:
        return (SCHEMA_DIR / self.schema_file).read_text()

    def with_name(self, name: str) -> Topic:
        """The same contract on another topic name (tests use unique topics)."""
        return Topic(name, self.schema_file, self.event_class, self.partitions)


INSTANCE_RECEIVED = Topic("radlake.instance.received.v1", "instance_received.v1.schema.json", InstanceReceived)
STUDY_MANIFEST = Topic("radlake.study.manifest.v1", "study_manifest.v1.schema.json", StudyManifest)
STUDY_COMPLETED = Topic("radlake.study.completed.v1", "study_completed.v1.schema.json", StudyCompleted)
QUARANTINED = Topic("radlake.quarantined.v1", "quarantined.v1.schema.json", Quarantined)
PREDICTION_CREATED = Topic("radlake.prediction.created.v1", "prediction_created.v1.schema.json", PredictionCreated)
# Studies the inference workers cannot read (unreadable volume, hash mismatch), with the reason.
PREDICTION_DEAD_LETTER = Topic("radlake.prediction.dead_letter.v1", "quarantined.v1.schema.json", Quarantined)
# De-identified annotations (SEG, RTSTRUCT, SR, KOS, PR) stored by an edge; key: the study they annotate.
ANNOTATION_RECEIVED = Topic("radlake.annotation.received.v1", "annotation_received.v1.schema.json",
                            AnnotationReceived)
FEATURES_COMPUTED = Topic("radlake.features.computed.v1", "features_computed.v1.schema.json", FeaturesComputed)

ALL_TOPICS: tuple[Topic, ...] = (
    INSTANCE_RECEIVED, STUDY_MANIFEST, STUDY_COMPLETED, QUARANTINED, PREDICTION_CREATED, PREDICTION_DEAD_LETTER,
    FEATURES_COMPUTED, ANNOTATION_RECEIVED,
)

# Messages a consumer could not read (e.g. failing schema validation): the original key and value bytes,
# unchanged, with why and where from in these headers. No schema: what lands here did not match one.
DEAD_LETTER = "radlake.dead-letter.v1"
DLQ_REASON = "radlake.dlq.reason"  # a reason code, e.g. SCHEMA_VIOLATION
DLQ_MESSAGE = "radlake.dlq.message"  # the error, at most DLQ_MESSAGE_MAX characters
DLQ_SOURCE_TOPIC = "radlake.dlq.source.topic"
DLQ_SOURCE_PARTITION = "radlake.dlq.source.partition"
DLQ_SOURCE_OFFSET = "radlake.dlq.source.offset"
DLQ_STAGE = "radlake.dlq.stage"  # which part of radlake dead-lettered it, e.g. streams
DLQ_MESSAGE_MAX = 1000


def dead_letter_headers(reason: str, error: str, topic: str, partition: int, offset: int,
                        stage: str) -> list[tuple[str, bytes]]:
    """The headers of a dead letter: why (a reason code and the error, cut to DLQ_MESSAGE_MAX characters),
    where from, and which part of radlake sent it."""
    return [
        (DLQ_REASON, reason.encode()),
        (DLQ_MESSAGE, error[:DLQ_MESSAGE_MAX].encode()),
        (DLQ_SOURCE_TOPIC, topic.encode()),
        (DLQ_SOURCE_PARTITION, str(partition).encode()),
        (DLQ_SOURCE_OFFSET, str(offset).encode()),
        (DLQ_STAGE, stage.encode()),
    ]

