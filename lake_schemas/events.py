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


_UID = r"^2\.25\.[0-9]+$"
_SHA256 = r"^[0-9a-f]{64}$"


class AnnotationReceivedData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=1)
    pseudo_patient_id: str = Field(min_length=1)
    study_uid: str = Field(pattern=_UID)
    series_uid: str = Field(pattern=_UID)
    sop_instance_uid: str = Field(pattern=_UID)
    sop_class_uid: str = Field(pattern=r"^[0-9.]+$")
    annotation_kind: Literal["seg", "rtstruct", "sr", "kos", "pr"]
    modality: str = Field(min_length=1, max_length=16)
    transfer_syntax_uid: str = Field(pattern=r"^[0-9.]+$")
    frame_of_reference_uid: str | None = None
    referenced_series_uids: tuple[str, ...]
    referenced_instance_count: int = Field(ge=0)
    object_uri: str = Field(min_length=1)
    sha256: str = Field(pattern=_SHA256)
    size_bytes: int = Field(ge=0)
    deid_profile_version: str = Field(min_length=1)


class AnnotationReceived(Envelope):
    """A de-identified annotation (SEG, RTSTRUCT, SR, KOS, presentation state) is in the object store (topic
    ``radlake.annotation.received.v1``); its references are the pseudonymous UIDs of the images it annotates."""

    event_type: Literal["annotation.received"] = "annotation.received"
    data: AnnotationReceivedData

    @property
    def key(self) -> str:
        return self.data.study_uid


class ManifestSeries(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    series_uid: str = Field(pattern=_UID)
    expected_instances: int = Field(ge=1)


class StudyManifestData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=1)
    study_uid: str = Field(pattern=_UID)
    upload_id: str = Field(min_length=1)
    expected_instances: int = Field(ge=1)
    series: tuple[ManifestSeries, ...]


class StudyManifest(Envelope):
    """A provider announces a study's instance counts (topic ``radlake.study.manifest.v1``)."""

    event_type: Literal["study.manifest"] = "study.manifest"
    data: StudyManifestData

    @property
    def key(self) -> str:
        return self.data.study_uid


class InstanceRef(BaseModel):
    """A claim-check of one instance inside a study event."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    sop_instance_uid: str = Field(pattern=_UID)
    object_uri: str = Field(min_length=1)
    sha256: str = Field(pattern=_SHA256)
    instance_number: int | None = None
    image_position_patient: tuple[float, float, float] | None = None


class SeriesSummary(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    series_uid: str = Field(pattern=_UID)
    modality: str = Field(min_length=1)
    frame_of_reference_uid: str | None = None
    instance_count: int = Field(ge=1)
    rows: int | None = None
    columns: int | None = None
    pixel_spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None
    image_orientation_patient: tuple[float, float, float, float, float, float] | None = None
    first_position: tuple[float, float, float] | None = None
    last_position: tuple[float, float, float] | None = None
    instances: tuple[InstanceRef, ...] = Field(min_length=1)


class StudyCompletedData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=1)
    pseudo_patient_id: str = Field(min_length=1)
    study_uid: str = Field(pattern=_UID)
    study_version: int = Field(ge=1)
    completion_reason: Literal["manifest", "quiet_period"]
    providers: tuple[str, ...] = Field(min_length=1)
    instance_count: int = Field(ge=1)
    series: tuple[SeriesSummary, ...] = Field(min_length=1)
    event_ids: tuple[str, ...]


class StudyCompleted(Envelope):
    """A study (version) is complete (topic ``radlake.study.completed.v1``); ``study.updated`` for later versions."""

    event_type: Literal["study.completed", "study.updated"] = "study.completed"
    data: StudyCompletedData

    @property
    def key(self) -> str:
        return self.data.study_uid


class QuarantinedData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str | None = None
    stage: Literal["upload", "edge", "deid", "streams", "lake", "radiomics", "inference"]
    reason: str = Field(pattern=r"^[A-Z][A-Z0-9_]*$")
    message: str = Field(max_length=2000)
    input_sha256: str | None = Field(default=None, pattern=_SHA256)
    study_uid: str | None = None
    sop_instance_uid: str | None = None
    quarantine_uri: str | None = None


class Quarantined(Envelope):
    """Something was rejected with a reason code (topic ``radlake.quarantined.v1``); no PHI."""

    event_type: Literal["quarantined"] = "quarantined"
    data: QuarantinedData

    @property
    def key(self) -> str:
        return self.data.input_sha256 or self.data.study_uid or self.event_id


class PredictionModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    name: str = Field(min_length=1)
    version: int = Field(ge=1)
    stage: str = Field(min_length=1)
    weights_sha256: str = Field(pattern=_SHA256)


class PredictionInput(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sop_instance_uid: str = Field(pattern=_UID)
    sha256: str = Field(pattern=_SHA256)


class PredictionCandidate(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    finding_id: int = Field(ge=1)
    centre_mm: tuple[float, float, float]
    centre_voxel: tuple[float, float, float]
    diameter_mm: float = Field(ge=0)
    probability: float = Field(ge=0, le=1)
    malignancy_probability: float = Field(ge=0, le=1)
    segment_number: int | None = Field(ge=1)
    gradcam_uri: str | None
    gradcam_sha256: str | None = Field(pattern=_SHA256)


class StoredDicom(BaseModel):
    """A DICOM object the worker wrote to the object store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    uri: str = Field(min_length=1)
    sha256: str = Field(pattern=_SHA256)
    sop_instance_uid: str = Field(pattern=_UID)


class PredictionCreatedData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", protected_namespaces=())

    project: str = Field(min_length=1)
    pseudo_patient_id: str = Field(min_length=1)
    study_uid: str = Field(pattern=_UID)
    study_version: int = Field(ge=1)
    series_uid: str = Field(pattern=_UID)
    source_event_id: str = Field(min_length=1)
    model: PredictionModel
    inputs: tuple[PredictionInput, ...] = Field(min_length=1)
    candidates: tuple[PredictionCandidate, ...]
    malignancy_score: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)
    positive: bool
    seg: StoredDicom | None
    sr: StoredDicom | None
    latency_ms: float = Field(ge=0)
    batch_studies: int = Field(ge=1)
    worker_id: str = Field(min_length=1)
    device: str = Field(min_length=1)


class PredictionCreated(Envelope):
    """A model version's prediction for one study version (topic ``radlake.prediction.created.v1``)."""

    event_type: Literal["prediction.created"] = "prediction.created"
    data: PredictionCreatedData

    @property
    def key(self) -> str:
        return self.data.study_uid


class FeaturesComputedRoi(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    series_uid: str = Field(pattern=_UID)
    roi: str = Field(min_length=1)
    mask_sha256: str = Field(pattern=_SHA256)
    status: Literal["computed", "failed"]
    feature_count: int = Field(ge=0)
    reason: str | None


class FeaturesComputedData(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    project: str = Field(min_length=1)
    pseudo_patient_id: str = Field(min_length=1)
    study_uid: str = Field(pattern=_UID)
    settings_hash: str = Field(pattern=_SHA256)
    code_version: str = Field(min_length=1)
    table: str = Field(min_length=1)
    table_version: int | None = Field(ge=0)
    run_id: str = Field(min_length=1)
    source_event_id: str | None
    rois: tuple[FeaturesComputedRoi, ...] = Field(min_length=1)


class FeaturesComputed(Envelope):
    """A study's ROIs have radiomic features for one settings hash (topic ``radlake.features.computed.v1``)."""

    event_type: Literal["features.computed"] = "features.computed"
    data: FeaturesComputedData

    @property
    def key(self) -> str:
        return self.data.study_uid
