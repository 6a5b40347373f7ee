"""Delta table schemas, derived from the event contracts so a column cannot drift from its field.

The bronze ``instances`` table holds one row per ``instance received`` event: the envelope, the
payload flattened into typed columns, and where the event came from in Kafka. Schema evolution is
explicit: a new optional field in the event schema becomes a new nullable column (additive), and the
table's ``schema_version`` property records which contract version wrote it.
"""

from __future__ import annotations

from dataclasses import dataclass

from lake_schemas.topics import ANNOTATION_RECEIVED, INSTANCE_RECEIVED, STUDY_COMPLETED, Topic

# JSON Schema scalar type -> Spark SQL type
_SCALARS = {"string": "STRING", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN"}
_FORMATS = {"date-time": "TIMESTAMP"}


def _spark_type(spec: dict) -> str:
    if "enum" in spec:
        return "STRING"
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

BRONZE_STUDY_COMPLETED = DeltaTableSpec(
    name="study_completed",
    topic=STUDY_COMPLETED,
    partition_by=("provider",),
    merge_key=("event_id",),
)

BRONZE_ANNOTATIONS = DeltaTableSpec(
    name="annotations",
    topic=ANNOTATION_RECEIVED,
    partition_by=("provider",),
    merge_key=("event_id",),
)


# -- Tables that are not the mirror of one topic: silver, quality gates, quarantine ---------------------
# Each table lists its schema as a history of additive changes: version n adds columns to version n-1 and
# never drops, renames or retypes one. ``spark_jobs.tables.ensure`` brings an older table forward with
# ALTER TABLE ADD COLUMNS and records the version in the ``radlake.schema_version`` table property.

SCHEMA_VERSION_PROPERTY = "radlake.schema_version"


@dataclass(frozen=True)
class SchemaChange:
    version: int
    columns: tuple[tuple[str, str], ...]
    note: str


@dataclass(frozen=True)
class LakeTableSpec:
    name: str
    layer: str  # the folder under the lake root: bronze, silver, gold, governance
    changes: tuple[SchemaChange, ...]
    partition_by: tuple[str, ...] = ()
    merge_key: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        versions = [c.version for c in self.changes]
        if versions != list(range(1, len(versions) + 1)):
            raise ValueError(f"{self.name}: schema versions must be 1..n in order, got {versions}")
        names = [n for n, _ in self.columns]
        if len(names) != len(set(names)):
            raise ValueError(f"{self.name}: a schema change may only add new columns")
        missing = set(self.partition_by + self.merge_key) - set(names)
        if missing:
            raise ValueError(f"{self.name}: partition/merge columns {sorted(missing)} are not columns")

    @property
    def version(self) -> int:
        return self.changes[-1].version

    @property
    def relative_path(self) -> str:
        return f"{self.layer}/{self.name}"

    def columns_at(self, version: int) -> list[tuple[str, str]]:
        return [col for change in self.changes if change.version <= version for col in change.columns]

    @property
    def columns(self) -> list[tuple[str, str]]:
        return self.columns_at(self.version)

    @property
    def ddl(self) -> str:
        return ", ".join(f"`{n}` {t}" for n, t in self.columns)

    def added_since(self, version: int) -> list[tuple[str, str]]:
        return [col for change in self.changes if change.version > version for col in change.columns]


INSTANCE_REF = ("STRUCT<sop_instance_uid: STRING, object_uri: STRING, sha256: STRING, instance_number: BIGINT, "
                "image_position_patient: ARRAY<DOUBLE>, slice_location: DOUBLE>")

SILVER_SERIES = LakeTableSpec(
    name="series",
    layer="silver",
    partition_by=("provider",),
    merge_key=("study_uid", "series_uid"),
    description="one row per series: deduplicated, gated instances in slice order and the volume geometry",
    changes=(
        SchemaChange(1, (
            ("provider", "STRING"), ("project", "STRING"), ("pseudo_patient_id", "STRING"),
            ("study_uid", "STRING"), ("series_uid", "STRING"), ("modality", "STRING"), ("sop_class_uid", "STRING"),
            ("frame_of_reference_uid", "STRING"),
            ("instance_count", "BIGINT"), ("redelivered_count", "BIGINT"), ("conflict_count", "BIGINT"),
            ("rows", "BIGINT"), ("columns", "BIGINT"), ("pixel_spacing", "ARRAY<DOUBLE>"),
            ("slice_thickness", "DOUBLE"),
            # Volume geometry (patient coordinates, mm): voxel (i, j, k) is at
            # origin + i * spacing[0] * row_direction + j * spacing[1] * column_direction + k * spacing[2] * normal
            ("origin", "ARRAY<DOUBLE>"), ("orientation", "ARRAY<DOUBLE>"), ("slice_normal", "ARRAY<DOUBLE>"),
            ("spacing", "ARRAY<DOUBLE>"), ("dims", "ARRAY<BIGINT>"),
            ("slice_spacing_min", "DOUBLE"), ("slice_spacing_max", "DOUBLE"), ("spacing_consistent", "BOOLEAN"),
            ("gap_count", "BIGINT"), ("missing_slices", "BIGINT"), ("duplicate_positions", "BIGINT"),
            ("geometry_issues", "ARRAY<STRING>"), ("reconstructable", "BOOLEAN"),
            ("instances", f"ARRAY<{INSTANCE_REF}>"),
            ("deid_profile_versions", "ARRAY<STRING>"),
            ("first_event_at", "TIMESTAMP"), ("last_event_at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"),
        ), "initial"),
    ),
)

SILVER_STUDIES = LakeTableSpec(
    name="studies",
    layer="silver",
    partition_by=("provider",),
    merge_key=("study_uid",),
    description="one row per study: its series, its completion (from study completed events) and checks",
    changes=(
        SchemaChange(1, (
            ("provider", "STRING"), ("providers", "ARRAY<STRING>"), ("project", "STRING"),
            ("pseudo_patient_id", "STRING"), ("study_uid", "STRING"), ("modalities", "ARRAY<STRING>"),
            ("series_count", "BIGINT"), ("instance_count", "BIGINT"), ("reconstructable_series", "BIGINT"),
            ("status", "STRING"),  # receiving | complete | updated
            ("study_version", "BIGINT"), ("completion_reason", "STRING"), ("completed_at", "TIMESTAMP"),
            ("completed_event_id", "STRING"), ("completed_instance_count", "BIGINT"),
            ("counts_match", "BOOLEAN"),  # the silver instance count equals the completed event's
            ("first_event_at", "TIMESTAMP"), ("last_event_at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"),
        ), "initial"),
    ),
)

SILVER_ANNOTATIONS = LakeTableSpec(
    name="annotations",
    layer="silver",
    partition_by=("provider",),
    merge_key=("study_uid", "sop_instance_uid"),
    description="one row per annotation object (SEG, RTSTRUCT, SR, KOS, PR): the first arrival of each SOP "
                "instance, its claim-check and the image series it references",
    changes=(
        SchemaChange(1, (
            ("provider", "STRING"), ("project", "STRING"), ("pseudo_patient_id", "STRING"),
            ("study_uid", "STRING"), ("series_uid", "STRING"), ("sop_instance_uid", "STRING"),
            ("sop_class_uid", "STRING"), ("annotation_kind", "STRING"), ("modality", "STRING"),
            ("frame_of_reference_uid", "STRING"), ("referenced_series_uids", "ARRAY<STRING>"),
            ("referenced_instance_count", "BIGINT"), ("object_uri", "STRING"), ("sha256", "STRING"),
            ("size_bytes", "BIGINT"), ("deid_profile_version", "STRING"), ("event_id", "STRING"),
            ("redelivered_count", "BIGINT"), ("conflict_count", "BIGINT"),
            ("received_at", "TIMESTAMP"), ("updated_at", "TIMESTAMP"),
        ), "initial"),
    ),
)

QUARANTINE = LakeTableSpec(
    name="quarantine",
    layer="governance",
    partition_by=("provider",),
    merge_key=("event_id", "check"),
    description="rows held back from promotion, with the expectation or rule they failed",
    changes=(
        SchemaChange(1, (
            ("event_id", "STRING"), ("check", "STRING"), ("stage", "STRING"), ("reason", "STRING"),
            ("suite", "STRING"), ("expectation", "STRING"), ("expectation_kwargs", "STRING"),
            ("provider", "STRING"), ("project", "STRING"), ("study_uid", "STRING"), ("series_uid", "STRING"),
            ("sop_instance_uid", "STRING"), ("sha256", "STRING"), ("source_table", "STRING"),
            ("record", "STRING"), ("gate_run_id", "STRING"), ("quarantined_at", "TIMESTAMP"),
        ), "initial"),
    ),
)

GATE_RESULT = "STRUCT<expectation: STRING, `column`: STRING, success: BOOLEAN, unexpected_count: BIGINT>"

GATE_REPORTS = LakeTableSpec(
    name="gate_reports",
    layer="governance",
    merge_key=("run_id",),
    description="one row per gate run (a micro-batch validated before promotion)",
    changes=(
        SchemaChange(1, (
            ("run_id", "STRING"), ("query", "STRING"), ("batch_id", "BIGINT"), ("suite", "STRING"),
            ("suite_sha256", "STRING"), ("engine", "STRING"), ("started_at", "TIMESTAMP"),
            ("finished_at", "TIMESTAMP"), ("rows_evaluated", "BIGINT"), ("rows_passed", "BIGINT"),
            ("rows_quarantined", "BIGINT"), ("success", "BOOLEAN"), ("results", f"ARRAY<{GATE_RESULT}>"),
        ), "initial"),
    ),
)

AUDIT_TRAIL = LakeTableSpec(
    name="audit",
    layer="governance",
    description="append-only, hash-chained record of every privileged action (platform_layer/audit.py); "
                "written by the platform only, never by a Spark job",
    changes=(
        SchemaChange(1, (
            ("seq", "BIGINT"), ("entry_id", "STRING"), ("recorded_at", "TIMESTAMP"), ("actor", "STRING"),
            ("host_user", "STRING"), ("origin", "STRING"), ("action", "STRING"), ("target", "STRING"),
            ("outcome", "STRING"), ("details", "STRING"), ("prev_hash", "STRING"), ("hash", "STRING"),
        ), "initial"),
    ),
)

DATASETS = LakeTableSpec(
    name="datasets",
    layer="governance",
    merge_key=("dataset",),
    description="named cohorts: a filter over one lake table of one project, pinned to a table version",
    changes=(
        SchemaChange(1, (
            ("dataset", "STRING"), ("project", "STRING"), ("source_table", "STRING"), ("columns", "ARRAY<STRING>"),
            ("filter", "STRING"), ("source_version", "BIGINT"), ("description", "STRING"),
            ("created_by", "STRING"), ("created_at", "TIMESTAMP"),
        ), "initial"),
    ),
)

GRANTS = LakeTableSpec(
    name="grants",
    layer="governance",
    merge_key=("grant_id",),
    description="who may read which dataset until when; a revoked grant keeps its row with revoked_at",
    changes=(
        SchemaChange(1, (
            ("grant_id", "STRING"), ("user", "STRING"), ("dataset", "STRING"), ("granted_by", "STRING"),
            ("granted_at", "TIMESTAMP"), ("until", "TIMESTAMP"), ("revoked_by", "STRING"),
            ("revoked_at", "TIMESTAMP"),
        ), "initial"),
    ),
)

SNAPSHOTS = LakeTableSpec(
    name="snapshots",
    layer="governance",
    merge_key=("pid",),
    description="published, citable datasets: a persistent identifier, the pinned version, a content hash",
    changes=(
        SchemaChange(1, (
            ("pid", "STRING"), ("dataset", "STRING"), ("project", "STRING"), ("source_table", "STRING"),
            ("source_version", "BIGINT"), ("sql", "STRING"), ("rows", "BIGINT"), ("content_sha256", "STRING"),
            ("deid_profile_versions", "ARRAY<STRING>"), ("published_by", "STRING"), ("published_at", "TIMESTAMP"),
            ("metadata", "STRING"),
        ), "initial"),
    ),
)

ERASURES = LakeTableSpec(
    name="erasures",
    layer="governance",
    merge_key=("erasure_id",),
    description="one row per erased patient: what was found (studies, objects), runs, state, the last report; "
                "also the deny list of erased pseudonyms",
    changes=(
        SchemaChange(1, (
            ("erasure_id", "STRING"), ("project", "STRING"), ("provider", "STRING"), ("pseudonym", "STRING"),
            ("studies", "ARRAY<STRING>"), ("objects", "ARRAY<STRING>"), ("runs", "BIGINT"), ("state", "STRING"),
            ("requested_by", "STRING"), ("first_run_at", "TIMESTAMP"), ("last_run_at", "TIMESTAMP"),
            ("report", "STRING"),
        ), "initial"),
    ),
)

LAKE_TABLES: tuple[LakeTableSpec, ...] = (SILVER_SERIES, SILVER_STUDIES, QUARANTINE, GATE_REPORTS, SILVER_ANNOTATIONS)
