"""Typed event classes. Each mirrors one JSON Schema file under ``lake_schemas/events/``.

The schema files are the contract (registered in the schema registry, validated at produce and
consume); these pydantic classes are what Python code builds and reads. ``tests/unit/test_lake_schemas.py``
checks every class against its schema file so the two cannot drift.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


def _new_event_id() -> str:
    return str(uuid.uuid4())


def _now() -> datetime:
    return datetime.now(timezone.utc)


class Envelope(BaseModel):
    """Fields every radlake event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str = Field(default_factory=_new_event_id)
    schema_version: int = 1
    provider: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    occurred_at: datetime = Field(default_factory=_now)
    trace_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1)


class InstanceReceivedData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=1)
    pseudo_patient_id: str = Field(min_length=1)
    study_uid: str = Field(pattern=r"^2\.25\.[0-9]+$")
    series_uid: str = Field(pattern=r"^2\.25\.[0-9]+$")
    sop_instance_uid: str = Field(pattern=r"^2\.25\.[0-9]+$")
    frame_of_reference_uid: str | None = None
    sop_class_uid: str = Field(pattern=r"^[0-9.]+$")
    modality: str = Field(min_length=1, max_length=16)
    transfer_syntax_uid: str = Field(pattern=r"^[0-9.]+$")
    instance_number: int | None = None
    rows: int | None = Field(default=None, ge=0)
    columns: int | None = Field(default=None, ge=0)
    pixel_spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None
    image_position_patient: tuple[float, float, float] | None = None
    image_orientation_patient: tuple[float, float, float, float, float, float] | None = None
    object_uri: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    deid_profile_version: str = Field(min_length=1)


class InstanceReceived(Envelope):
    """A de-identified instance is in the object store (topic ``radlake.instance.received.v1``)."""

    event_type: Literal["instance.received"] = "instance.received"
    data: InstanceReceivedData

    @property
    def key(self) -> str:
        return self.data.study_uid
