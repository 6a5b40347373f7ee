"""Bronze -> silver: gated, deduplicated instances assembled into ``series`` and ``studies``.

One Structured Streaming query reads two Delta streams, bronze ``instances`` and bronze
``study_completed`` (both landed from Kafka by ``spark_jobs.bronze``), so one checkpoint and one writer
own the silver tables. Each micro-batch:

1. **gate**: the new instance rows are validated with the ``silver_instances`` expectation suite
   (``spark_jobs.gates``); each rejected row goes to ``governance/quarantine`` with the expectation it
   failed;
2. **series**: every series the batch touches is rebuilt from all of its bronze rows that passed the
   gate: deduplicated by SOP Instance UID + SHA-256 (a redelivery is counted, a same-UID/different-hash
   arrival after the first is quarantined as ``SOP_UID_HASH_CONFLICT``), ordered along the slice normal,
   with spacing, gaps, duplicated positions and the volume geometry (``radlake.imaging.series_geometry``);
3. the gate run is recorded in ``governance/gate_reports`` (after the series, so it does not delay them);
4. **studies**: every study the batch touches (by an instance or a ``study completed`` event) is rebuilt
   from its silver series and its latest completion event.

Spark reads the two streams and evaluates the gate columns (one job per batch). The rows of the touched
series and studies are read and written on the driver with delta-rs (``_scan``, ``tables.replace_rows``,
``tables.append_rows_once``): a batch touches a few series, and each Spark read or MERGE of them cost
seconds on the shared 2-core machine where delta-rs takes milliseconds (docs/lake.md, Limits).

Rebuilding from bronze makes each step idempotent: a replayed micro-batch writes the same rows again.
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

import pyarrow.compute as pc
from deltalake import DeltaTable
from pyspark.sql import functions as F

from lake_schemas.tables import (
    BRONZE_INSTANCES,
    BRONZE_STUDY_COMPLETED,
    GATE_REPORTS,
    QUARANTINE,
    SILVER_SERIES,
    SILVER_STUDIES,
)
from radlake.imaging.series_geometry import Slice, volume_geometry
from spark_jobs import bronze, gates, tables

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


def series_row(rows: Sequence[dict], now: datetime) -> tuple[dict, list[dict]]:
    """A silver ``series`` row and the conflict quarantine rows from the bronze rows of one series."""
    by_event = {r["event_id"]: r for r in rows}
    resolution = resolve_instances(
        Arrival(r["event_id"], r["sop_instance_uid"], r["sha256"],
                (r["kafka_timestamp"], r["kafka_partition"], r["kafka_offset"]))
        for r in rows
    )
    kept = [by_event[a.event_id] for a in resolution.kept]
    geometry = volume_geometry([Slice.of(r) for r in kept])
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


def _completion_order(row: dict) -> tuple:
    """Latest completion first: highest study version, then latest occurrence, then event id (NULLs last)."""
    return tuple((value is not None, value) for value in (row["study_version"], row["occurred_at"], row["event_id"]))


def study_row(study_uid: str, series: Sequence[dict], completions: Sequence[dict], now: datetime) -> dict | None:
    """A silver ``studies`` row from the study's silver series rows and its ``study completed`` events.

    ``None`` when the study has neither (e.g. every instance it had was quarantined).
    """
    if not series and not completions:
        return None
    done = max(completions, key=_completion_order) if completions else None

    def first(values):
        present = [v for v in values if v is not None]
        return min(present) if present else None

    providers = {s["provider"] for s in series if s["provider"] is not None}
    if done is not None:
        providers |= set(done["providers"] or ())
    instance_count = sum(s["instance_count"] or 0 for s in series)
    completed_count = done["instance_count"] if done is not None else None
    return {
        "provider": first(s["provider"] for s in series) or (done["provider"] if done else None),
        "providers": sorted(providers),
        "project": first(s["project"] for s in series) or (done["project"] if done else None),
        "pseudo_patient_id": (first(s["pseudo_patient_id"] for s in series)
                              or (done["pseudo_patient_id"] if done else None)),
        "study_uid": study_uid,
        "modalities": sorted({s["modality"] for s in series if s["modality"] is not None}) if series else None,
        "series_count": len(series),
        "instance_count": instance_count,
        "reconstructable_series": sum(1 for s in series if s["reconstructable"]),
        "status": ("receiving" if done is None else "updated" if done["event_type"] == "study.updated"
                   else "complete"),
        "study_version": done["study_version"] if done else None,
        "completion_reason": done["completion_reason"] if done else None,
        "completed_at": done["occurred_at"] if done else None,
        "completed_event_id": done["event_id"] if done else None,
        "completed_instance_count": completed_count,
        "counts_match": None if done is None or completed_count is None else instance_count == completed_count,
        "first_event_at": first(s["first_event_at"] for s in series),
        "last_event_at": max((s["last_event_at"] for s in series if s["last_event_at"] is not None), default=None),
        "updated_at": now,
    }


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


def gate_frame(instances, *passthrough: str):
    """The columns the gate suite reads, derived columns included (and ``passthrough``), as a pandas DataFrame."""

    o = [F.col("image_orientation_patient")[i] for i in range(6)]
    row_norm = F.sqrt(o[0] * o[0] + o[1] * o[1] + o[2] * o[2])
    col_norm = F.sqrt(o[3] * o[3] + o[4] * o[4] + o[5] * o[5])
    dot = o[0] * o[3] + o[1] * o[4] + o[2] * o[5]
    orientation_error = F.when(
        F.col("image_orientation_patient").isNull(), F.lit(None).cast("double"),
    ).otherwise(F.greatest(F.abs(row_norm - 1), F.abs(col_norm - 1), F.abs(dot)))
    return instances.select(
        *passthrough, "event_id", "study_uid", "series_uid", "sop_instance_uid", "object_uri", "sha256", "size_bytes",
        "modality", "rows", "columns",
        F.array_min("pixel_spacing").alias("pixel_spacing_min"),
        orientation_error.alias("orientation_norm_error"),
    ).toPandas()


def _quarantine_gate_rejects(spark, instances, result: gates.GateResult, run_id: str, batch_id: int, now: datetime,
                             job: SilverJob):

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


def _scan(path: str, columns: Sequence[str], predicate) -> list[dict]:
    """Rows of a Delta table read on the driver with delta-rs, filtered in the Parquet scan.

    A micro-batch touches a few series and studies; reading their rows this way costs milliseconds, where a
    Spark read (snapshot, plan, job) cost seconds on a loaded 2-core machine.
    """

    return DeltaTable(path).to_pyarrow_dataset().to_table(columns=list(columns), filter=predicate).to_pylist()


def _rebuild_series(spark, keys: set[tuple[str, str]], rejected: set[str], job: SilverJob,
                    now: datetime) -> list[dict]:
    """Rebuild the touched series from their bronze rows that passed the gate, replace them; returns the rows."""

    series_uids = sorted({series for _study, series in keys})
    in_series = pc.field("series_uid").isin(series_uids)
    gated_out = rejected | {r["event_id"] for r in _scan(
        job.path(QUARANTINE), ["event_id"], (pc.field("stage") == GATE_STAGE) & in_series)}
    grouped: dict[tuple[str, str], list[dict]] = {}
    for r in _scan(job.path(BRONZE_INSTANCES), _BRONZE_COLUMNS, in_series):
        key = (r["study_uid"], r["series_uid"])
        if key in keys and r["event_id"] not in gated_out:
            grouped.setdefault(key, []).append(r)
    series, conflicts = [], []
    for rows in grouped.values():
        row, conflict = series_row(rows, now)
        series.append(row)
        conflicts += conflict
    if conflicts:
        # A conflict found again when a later batch rebuilds the series is already there: MERGE, not append.
        tables.merge(spark, tables.frame(spark, conflicts, QUARANTINE), job.path(QUARANTINE), QUARANTINE,
                     update=False)
    tables.replace_rows(job.path(SILVER_SERIES), series, SILVER_SERIES)
    return series


_SERIES_SUMMARY = ("study_uid", "series_uid", "provider", "project", "pseudo_patient_id", "modality",
                   "instance_count", "reconstructable", "first_event_at", "last_event_at")
_COMPLETION_COLUMNS = ("study_uid", "event_id", "event_type", "provider", "providers", "project",
                       "pseudo_patient_id", "study_version", "completion_reason", "occurred_at", "instance_count")


def _rebuild_studies(study_uids: set[str], job: SilverJob, now: datetime) -> None:
    """Rebuild the touched studies from their silver series and their latest completion event, replace them."""

    in_studies = pc.field("study_uid").isin(sorted(study_uids))
    series: dict[str, list[dict]] = {}
    for r in _scan(job.path(SILVER_SERIES), _SERIES_SUMMARY, in_studies):
        series.setdefault(r["study_uid"], []).append(r)
    completions: dict[str, list[dict]] = {}
    for r in _scan(job.path(BRONZE_STUDY_COMPLETED), _COMPLETION_COLUMNS, in_studies):
        completions.setdefault(r["study_uid"], []).append(r)
    studies = [row for uid in sorted(study_uids)
               if (row := study_row(uid, series.get(uid, ()), completions.get(uid, ()), now)) is not None]
    tables.replace_rows(job.path(SILVER_STUDIES), studies, SILVER_STUDIES)


def process_batch(spark, batch, batch_id: int, job: SilverJob, suite: gates.Suite) -> None:
    """Gate, then series (what the latency goal is about), then the gate report and the studies.

    Quarantined rows are committed before the series that leave them out; the gate report and studies
    follow the series commit. A batch replayed after a crash anywhere in between writes the same rows
    again (series and studies are replaced by key) or nothing (appends with transaction ids).
    """

    started = datetime.now(timezone.utc)
    timings: dict[str, float] = {}
    batch = batch.persist()
    run_id = f"{job.query_name}:{job.run_key}:{batch_id}"
    try:
        instances = batch.where("source = 'instance'").select("instance.*")
        with _timed(timings, "gate"):
            # One Spark job for the whole batch: the gate columns of its instances and the study UIDs of its
            # completion events (whose instance struct is NULL; study_uid is the batch's own column).
            columns = [F.col("study_uid") if c == "study_uid" else F.col(f"instance.`{c}`") for c in instances.columns]
            both = gate_frame(batch.select("source", *columns), "source")
            frame = both[both["source"] == "instance"].drop(columns="source").reset_index(drop=True)
            result = gates.validate(frame, suite) if not frame.empty else None
        study_uids = {u for u in both.loc[both["source"] == "completed", "study_uid"] if isinstance(u, str)}
        if result is not None:
            rejected = {event_id for o in result.outcomes for event_id in o.unexpected}
            with _timed(timings, "quarantine"):
                _quarantine_gate_rejects(spark, instances, result, run_id, batch_id, started, job)
            keys = {(st, se) for st, se in zip(frame["study_uid"], frame["series_uid"])
                    if isinstance(st, str) and isinstance(se, str)}
            with _timed(timings, "series"):
                _rebuild_series(spark, keys, rejected, job, started)
            study_uids |= {st for st, _se in keys}
            with _timed(timings, "report"):
                report = gate_report(result, run_id=run_id, query=job.query_name, batch_id=batch_id,
                                     started_at=started, finished_at=datetime.now(timezone.utc))
                # The transaction id makes a replayed batch's report a no-op instead of a second row.
                tables.append_rows_once(job.path(GATE_REPORTS), [report], GATE_REPORTS,
                                        txn=(f"{job.query_name}:{job.run_key}:report", batch_id))
        if study_uids:
            with _timed(timings, "studies"):
                _rebuild_studies(study_uids, job, started)
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

    for spec in (BRONZE_INSTANCES, BRONZE_STUDY_COMPLETED):
        bronze.ensure_table(spark, job.path(spec), spec)
    for spec in (SILVER_SERIES, SILVER_STUDIES, QUARANTINE, GATE_REPORTS):
        tables.ensure(spark, job.path(spec), spec)


def source(spark, job: SilverJob):
    """Both bronze streams as one: (source, study_uid, instance struct or NULL)."""

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
