"""Bronze -> silver: gated, deduplicated instances assembled into ``series`` and ``studies``.

One Structured Streaming query reads two Delta streams, bronze ``instances`` and bronze
``study_completed`` (both landed from Kafka by ``spark_jobs.bronze``), so one checkpoint and one writer
own the silver tables. Each micro-batch:

1. **gate**: the new instance rows are validated with the ``silver_instances`` expectation suite
   (``spark_jobs.gates``); each rejected row goes to ``governance/quarantine`` with the expectation it
   failed, and the run is recorded in ``governance/gate_reports``;
2. **series**: every series the batch touches is rebuilt from all of its bronze rows that passed the
   gate: deduplicated by SOP Instance UID + SHA-256 (a redelivery is counted, a same-UID/different-hash
   arrival after the first is quarantined as ``SOP_UID_HASH_CONFLICT``), ordered along the slice normal,
   with spacing, gaps, duplicated positions and the volume geometry (``spark_jobs.image_plane``);
3. **studies**: every study the batch touches (by an instance or a ``study completed`` event) is rebuilt
   from its silver series and its latest completion event.

Rebuilding from bronze makes each step idempotent: a replayed micro-batch MERGEs the same rows again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone

from lake_schemas.tables import (
    BRONZE_INSTANCES, BRONZE_STUDY_COMPLETED, GATE_REPORTS, QUARANTINE, SILVER_SERIES, SILVER_STUDIES,
)
from spark_jobs import gates, tables
from spark_jobs.image_plane import Slice, volume_geometry

log = logging.getLogger(__name__)

DEFAULT_TRIGGER = "5 seconds"
GATE_STAGE = "bronze_to_silver"
CONFLICT_CHECK = "sop_uid_hash_conflict"


# -- pure rules -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Arrival:
    event_id: str
    sop_instance_uid: str
    sha256: str
    order: tuple  # arrival order: (kafka timestamp, partition, offset)


@dataclass(frozen=True)
class Resolution:
    kept: tuple[Arrival, ...]
    redelivered: tuple[Arrival, ...]  # same UID, same hash as a kept arrival: the same object again
    conflicts: tuple[tuple[Arrival, Arrival], ...]  # (arrival, the kept arrival whose hash it contradicts)


def resolve_instances(arrivals: Iterable[Arrival]) -> Resolution:
    """One arrival per SOP Instance UID: the first; later ones are redeliveries or conflicts."""
    first: dict[str, Arrival] = {}
    redelivered, conflicts = [], []
    for arrival in sorted(arrivals, key=lambda a: (a.order, a.event_id)):
        kept = first.setdefault(arrival.sop_instance_uid, arrival)
        if kept is arrival:
            continue
        if arrival.sha256 == kept.sha256:
            redelivered.append(arrival)
        else:
            conflicts.append((arrival, kept))
    return Resolution(tuple(first.values()), tuple(redelivered), tuple(conflicts))


def _tuple(value) -> tuple | None:
    return None if value is None else tuple(value)


def series_row(rows: Sequence[dict], now: datetime) -> tuple[dict, list[dict]]:
    """A silver ``series`` row and the conflict quarantine rows from the bronze rows of one series."""
    by_event = {r["event_id"]: r for r in rows}
    resolution = resolve_instances(
        Arrival(r["event_id"], r["sop_instance_uid"], r["sha256"],
                (r["kafka_timestamp"], r["kafka_partition"], r["kafka_offset"]))
        for r in rows
    )
    kept = [by_event[a.event_id] for a in resolution.kept]
    geometry = volume_geometry([
        Slice(r["sop_instance_uid"], r["object_uri"], r["sha256"], r["instance_number"],
              _tuple(r["image_position_patient"]), _tuple(r["image_orientation_patient"]),
              _tuple(r["pixel_spacing"]), r["rows"], r["columns"], r["slice_thickness"])
        for r in kept
    ])
    head = kept[0]
    row = {
        **{k: head[k] for k in ("provider", "project", "pseudo_patient_id", "study_uid", "series_uid", "modality",
                                "sop_class_uid", "frame_of_reference_uid", "rows", "columns", "slice_thickness")},
        "pixel_spacing": _list(head["pixel_spacing"]),
        "instance_count": len(kept),
        "redelivered_count": len(resolution.redelivered),
        "conflict_count": len(resolution.conflicts),
        "origin": _list(geometry.origin),
        "orientation": _list(geometry.orientation),
        "slice_normal": _list(geometry.normal),
        "spacing": _list(geometry.spacing),
        "dims": _list(geometry.dims),
        "slice_spacing_min": geometry.slice_spacing_min,
        "slice_spacing_max": geometry.slice_spacing_max,
        "spacing_consistent": geometry.spacing_consistent,
        "gap_count": geometry.gap_count,
        "missing_slices": geometry.missing_slices,
        "duplicate_positions": geometry.duplicate_positions,
        "geometry_issues": list(geometry.issues),
        "reconstructable": geometry.reconstructable,
        "instances": [
            (o.slice.sop_instance_uid, o.slice.object_uri, o.slice.sha256, o.slice.instance_number,
             _list(o.slice.image_position_patient), o.location)
            for o in geometry.ordered
        ],
        "deid_profile_versions": sorted({r["deid_profile_version"] for r in kept}),
        "first_event_at": min(r["occurred_at"] for r in kept),
        "last_event_at": max(r["occurred_at"] for r in kept),
        "updated_at": now,
    }
    conflicts = [
        quarantine_record(
            by_event[arrival.event_id], check=CONFLICT_CHECK, stage="silver", reason="SOP_UID_HASH_CONFLICT",
            detail={"kept_event_id": first.event_id, "kept_sha256": first.sha256}, now=now,
        )
        for arrival, first in resolution.conflicts
    ]
    return row, conflicts


def _list(value) -> list | None:
    return None if value is None else list(value)


def quarantine_record(row: dict, *, check: str, stage: str, reason: str, detail: dict, now: datetime,
                      suite: str | None = None, expectation: str | None = None, gate_run_id: str | None = None,
                      source_table: str = "bronze/instances") -> dict:
    return {
        "event_id": row["event_id"], "check": check, "stage": stage, "reason": reason, "suite": suite,
        "expectation": expectation, "expectation_kwargs": json.dumps(detail, sort_keys=True),
        **{k: row.get(k) for k in ("provider", "project", "study_uid", "series_uid", "sop_instance_uid", "sha256")},
        "source_table": source_table, "record": json.dumps(row, sort_keys=True, default=str),
        "gate_run_id": gate_run_id, "quarantined_at": now,
    }


def gate_report(result: gates.GateResult, *, run_id: str, query: str, batch_id: int,
                started_at: datetime, finished_at: datetime) -> dict:
    return {
        "run_id": run_id, "query": query, "batch_id": batch_id, "suite": result.suite.name,
        "suite_sha256": result.suite.sha256, "engine": result.engine, "started_at": started_at,
        "finished_at": finished_at, "rows_evaluated": result.rows_evaluated,
        "rows_passed": result.rows_evaluated - len(result.rejected), "rows_quarantined": len(result.rejected),
        "success": result.success,
        "results": [(o.check, o.column, o.success, len(o.unexpected)) for o in result.outcomes],
    }


# -- Spark adapter ----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SilverJob:
    lake_uri: str
    checkpoint_path: str
    suite: str = "silver_instances"
    query_name: str = "silver"

    def path(self, spec) -> str:
        return tables.table_path(self.lake_uri, spec)

    @property
    def run_key(self) -> str:
        """Stable per checkpoint, so a replayed batch gets the same gate run id."""
        return hashlib.sha256(self.checkpoint_path.encode()).hexdigest()[:12]


_BRONZE_COLUMNS = (
    "event_id", "provider", "project", "pseudo_patient_id", "study_uid", "series_uid", "sop_instance_uid",
    "modality", "sop_class_uid", "frame_of_reference_uid", "sha256", "object_uri", "instance_number", "rows",
    "columns", "pixel_spacing", "slice_thickness", "image_position_patient", "image_orientation_patient",
    "deid_profile_version", "occurred_at", "kafka_timestamp", "kafka_partition", "kafka_offset",
)


def gate_frame(instances):
    """The columns the gate suite reads, derived columns included, as a pandas DataFrame."""
    from pyspark.sql import functions as F

    o = [F.col("image_orientation_patient")[i] for i in range(6)]
    row_norm = F.sqrt(o[0] * o[0] + o[1] * o[1] + o[2] * o[2])
    col_norm = F.sqrt(o[3] * o[3] + o[4] * o[4] + o[5] * o[5])
    dot = o[0] * o[3] + o[1] * o[4] + o[2] * o[5]
    orientation_error = F.when(
        F.col("image_orientation_patient").isNull(), F.lit(None).cast("double"),
    ).otherwise(F.greatest(F.abs(row_norm - 1), F.abs(col_norm - 1), F.abs(dot)))
    return instances.select(
        "event_id", "study_uid", "series_uid", "sop_instance_uid", "object_uri", "sha256", "size_bytes",
        "modality", "rows", "columns",
        F.array_min("pixel_spacing").alias("pixel_spacing_min"),
        orientation_error.alias("orientation_norm_error"),
    ).toPandas()


def _quarantine_gate_rejects(spark, instances, result: gates.GateResult, run_id: str, batch_id: int, now: datetime,
                             job: SilverJob):
    from pyspark.sql import functions as F

    failed = [(event_id, o.check, o.expectation, o.kwargs_json if o.error is None else json.dumps(
               {"kwargs": json.loads(o.kwargs_json), "error": o.error}), o.reason)
              for o in result.outcomes for event_id in o.unexpected]
    if not failed:
        return
    failures = spark.createDataFrame(failed, "event_id STRING, check STRING, expectation STRING, "
                                             "expectation_kwargs STRING, reason STRING")
    rows = instances.join(F.broadcast(failures), "event_id").select(
        "event_id", "check", F.lit(GATE_STAGE).alias("stage"), "reason", F.lit(result.suite.name).alias("suite"),
        "expectation", "expectation_kwargs", "provider", "project", "study_uid", "series_uid", "sop_instance_uid",
        "sha256", F.lit(result.suite.source_table).alias("source_table"),
        F.to_json(F.struct(*[c for c in instances.columns])).alias("record"),
        F.lit(run_id).alias("gate_run_id"), F.lit(now).cast("timestamp").alias("quarantined_at"),
    )
    tables.append_once(rows, job.path(QUARANTINE), txn=(f"{job.query_name}:{job.run_key}:gate", batch_id))


def _rebuild_series(spark, keys, job: SilverJob, now: datetime) -> None:
    from pyspark.sql import functions as F

    gated_out = (spark.read.format("delta").load(job.path(QUARANTINE))
                 .where(F.col("stage") == GATE_STAGE).select("event_id").distinct())
    bronze_rows = (
        spark.read.format("delta").load(job.path(BRONZE_INSTANCES))
        .join(F.broadcast(keys), ["study_uid", "series_uid"])
        .join(gated_out, "event_id", "left_anti")
        .select(*_BRONZE_COLUMNS)
        .collect()
    )
    grouped: dict[tuple[str, str], list[dict]] = {}
    for r in bronze_rows:
        grouped.setdefault((r.study_uid, r.series_uid), []).append(r.asDict())
    series, conflicts = [], []
    for rows in grouped.values():
        row, conflict = series_row(rows, now)
        series.append(row)
        conflicts += conflict
    if conflicts:
        # A conflict found again when a later batch rebuilds the series is already there: MERGE, not append.
        tables.merge(spark, tables.frame(spark, conflicts, QUARANTINE), job.path(QUARANTINE), QUARANTINE,
                     update=False)
    if series:
        tables.merge(spark, tables.frame(spark, series, SILVER_SERIES), job.path(SILVER_SERIES), SILVER_SERIES)


def _rebuild_studies(spark, study_keys, job: SilverJob, now: datetime) -> None:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    series = spark.read.format("delta").load(job.path(SILVER_SERIES)).join(F.broadcast(study_keys), "study_uid")
    summary = series.groupBy("study_uid").agg(
        F.min("provider").alias("s_provider"), F.array_sort(F.collect_set("provider")).alias("s_providers"),
        F.min("project").alias("s_project"), F.min("pseudo_patient_id").alias("s_patient"),
        F.array_sort(F.collect_set("modality")).alias("modalities"), F.count("*").alias("series_count"),
        F.sum("instance_count").alias("instance_count"),
        F.sum(F.col("reconstructable").cast("bigint")).alias("reconstructable_series"),
        F.min("first_event_at").alias("first_event_at"), F.max("last_event_at").alias("last_event_at"),
    )
    latest = Window.partitionBy("study_uid").orderBy(F.desc("study_version"), F.desc("occurred_at"), F.desc("event_id"))
    completion = (
        spark.read.format("delta").load(job.path(BRONZE_STUDY_COMPLETED)).join(F.broadcast(study_keys), "study_uid")
        .withColumn("rank", F.row_number().over(latest)).where("rank = 1")
        .select("study_uid", "event_type", "study_version", "completion_reason",
                F.col("occurred_at").alias("completed_at"), F.col("event_id").alias("completed_event_id"),
                F.col("instance_count").alias("completed_instance_count"), F.col("provider").alias("c_provider"),
                F.col("providers").alias("c_providers"), F.col("project").alias("c_project"),
                F.col("pseudo_patient_id").alias("c_patient"))
    )
    studies = summary.join(completion, "study_uid", "full_outer").select(
        F.coalesce("s_provider", "c_provider").alias("provider"),
        F.array_sort(F.array_distinct(F.concat(F.coalesce("s_providers", F.array()),
                                               F.coalesce("c_providers", F.array())))).alias("providers"),
        F.coalesce("s_project", "c_project").alias("project"),
        F.coalesce("s_patient", "c_patient").alias("pseudo_patient_id"),
        "study_uid", "modalities",
        F.coalesce("series_count", F.lit(0)).alias("series_count"),
        F.coalesce("instance_count", F.lit(0)).alias("instance_count"),
        F.coalesce("reconstructable_series", F.lit(0)).alias("reconstructable_series"),
        F.when(F.col("completed_event_id").isNull(), "receiving")
         .when(F.col("event_type") == "study.updated", "updated").otherwise("complete").alias("status"),
        "study_version", "completion_reason", "completed_at", "completed_event_id", "completed_instance_count",
        F.when(F.col("completed_event_id").isNull(), F.lit(None).cast("boolean"))
         .otherwise(F.coalesce("instance_count", F.lit(0)) == F.col("completed_instance_count")).alias("counts_match"),
        "first_event_at", "last_event_at", F.lit(now).cast("timestamp").alias("updated_at"),
    )
    tables.merge(spark, studies.select(*[n for n, _ in SILVER_STUDIES.columns]), job.path(SILVER_STUDIES),
                 SILVER_STUDIES)


def process_batch(spark, batch, batch_id: int, job: SilverJob, suite: gates.Suite) -> None:
    started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    batch = batch.persist()
    run_id = f"{job.query_name}:{job.run_key}:{batch_id}"
    try:
        instances = batch.where("source = 'instance'").select("instance.*")
        with _timed(timings, "gate"):
            frame = gate_frame(instances)
            result = gates.validate(frame, suite) if not frame.empty else None
        if result is not None:
            with _timed(timings, "quarantine"):
                _quarantine_gate_rejects(spark, instances, result, run_id, batch_id, started, job)
                report = gate_report(result, run_id=run_id, query=job.query_name, batch_id=batch_id,
                                     started_at=started, finished_at=datetime.now(timezone.utc))
                # The transaction id makes a replayed batch's report a no-op instead of a second row.
                tables.append_once(tables.frame(spark, [report], GATE_REPORTS), job.path(GATE_REPORTS),
                                   txn=(f"{job.query_name}:{job.run_key}:report", batch_id))
            with _timed(timings, "series"):
                keys = instances.where("study_uid IS NOT NULL AND series_uid IS NOT NULL") \
                    .select("study_uid", "series_uid").distinct()
                _rebuild_series(spark, keys, job, started)
        with _timed(timings, "studies"):
            study_uids = [r.study_uid for r in batch.select("study_uid").where("study_uid IS NOT NULL")
                          .distinct().collect()]
            if study_uids:
                _rebuild_studies(spark, spark.createDataFrame([(u,) for u in study_uids], "study_uid STRING"),
                                 job, started)
    finally:
        batch.unpersist()
    log.info("silver batch %d: %s", batch_id, ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))


@contextmanager
def _timed(timings: dict[str, float], name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = time.perf_counter() - start


def ensure_tables(spark, job: SilverJob) -> None:
    from spark_jobs import bronze

    for spec in (BRONZE_INSTANCES, BRONZE_STUDY_COMPLETED):
        bronze.ensure_table(spark, job.path(spec), spec)
    for spec in (SILVER_SERIES, SILVER_STUDIES, QUARANTINE, GATE_REPORTS):
        tables.ensure(spark, job.path(spec), spec)


def source(spark, job: SilverJob):
    """Both bronze streams as one: (source, study_uid, instance struct or NULL)."""
    from pyspark.sql import functions as F

    instances = spark.readStream.format("delta").load(job.path(BRONZE_INSTANCES))
    completed = spark.readStream.format("delta").load(job.path(BRONZE_STUDY_COMPLETED))
    as_struct = F.struct(*[F.col(c) for c in instances.columns])
    left = instances.select(F.lit("instance").alias("source"), "study_uid", as_struct.alias("instance"))
    right = completed.select(F.lit("completed").alias("source"), "study_uid",
                             F.lit(None).cast(left.schema["instance"].dataType).alias("instance"))
    return left.unionByName(right)


def start(spark, job: SilverJob, *, available_now: bool = False, processing_time: str = DEFAULT_TRIGGER):
    ensure_tables(spark, job)
    suite = gates.load_suite(job.suite)
    gates.warm_up()  # importing great-expectations takes seconds: not inside the first micro-batch
    writer = (
        source(spark, job).writeStream
        .foreachBatch(lambda df, batch_id: process_batch(spark, df, batch_id, job, suite))
        .option("checkpointLocation", job.checkpoint_path)
        .queryName(job.query_name)
    )
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=processing_time)
    return writer.start()
