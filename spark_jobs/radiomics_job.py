"""``radlake radiomics run``: IBSI features for every registered ROI of the lake that lacks them.

1. **pending**: ``silver/rois`` (optionally filtered by ``--where``), anti-joined with the ROIs that
   already have rows in ``gold/radiomics_features`` for this settings hash, code version and mask
   SHA-256, and with the ROIs that failed permanently for them (``governance/radiomics_failures``;
   transient failures — series not yet complete, object store unavailable — are retried);
2. **series**: each pending ROI's image series — claim-checks in slice order and the volume geometry —
   from ``silver/series`` when that table exists, else derived from bronze ``instances`` with the silver
   job's geometry rules (``radlake.imaging.series_geometry``); the event consumer passes the series of its
   ``study completed`` event instead;
3. **compute**: grouped by series (``applyInPandas``), each task fetches the series' instances and its
   ROIs' masks by claim-check (SHA-256 verified), rebuilds the volume once and calls
   ``compute_features`` once per ROI (``spark_jobs.radiomics_series.process_series``);
4. **write**: features are MERGEd into ``gold/radiomics_features`` on (study, series, roi, settings hash,
   code version, feature), refusals into ``governance/radiomics_failures`` — so a re-run, or a replayed
   task, writes nothing twice;
5. **stage** (transactional outbox): one ``features computed`` event per study whose every ROI now has
   features or a failure, with a deterministic event id, written to ``governance/radiomics_events``.
   Staging does not rely on what this run computed: every study whose newest feature or failure row is
   newer than what its outbox rows cover is re-examined, so a run that died between the gold write and
   the outbox write is made good by the next run (same event id);
6. **publish** (``publish_outbox``, called by the CLI and the follower, not by ``run``): the outbox rows
   of these settings not yet published go to Kafka; once Kafka acknowledged them they are marked
   ``published_at``. A crash between the acknowledgement and the mark publishes them again with the same
   event id: at least once, with ids that let consumers drop the copy.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import pydicom
from delta.tables import DeltaTable as SparkDeltaTable
from pyspark.sql import functions as F
from pyspark.sql.types import StringType

from lake_schemas.events import FeaturesComputed
from lake_schemas.radiomics_tables import (
    RADIOMICS_EVENTS,
    RADIOMICS_FAILURES,
    RADIOMICS_FEATURES,
    RADIOMICS_TABLES,
    ROIS,
)
from lake_schemas.tables import BRONZE_INSTANCES, SILVER_SERIES
from platform_layer.object_store import ObjectStore
from platform_layer.settings import Settings
from radlake.radiomics.features import CODE_VERSION
from radlake.radiomics.settings import RadiomicsSettings, settings_from_mapping
from spark_jobs import radiomics_series as lake
from spark_jobs import tables
from spark_jobs.radiomics_series import (
    RoiStatus,
    finished_study_events,
    rois_from_dicom_mask,
    run_id_for,
    series_to_json,
)

log = logging.getLogger(__name__)

KEY = ["study_uid", "series_uid", "roi"]

_ROI_COLUMNS = ("provider", "project", "pseudo_patient_id", "study_uid", "series_uid", "roi", "mask_kind",
                "mask_uri", "mask_sha256", "label")

OUTPUT_DDL = (
    "provider STRING, project STRING, pseudo_patient_id STRING, study_uid STRING, series_uid STRING, roi STRING, "
    "feature STRING, ibsi_id STRING, family STRING, aggregation_id STRING, value DOUBLE, settings_hash STRING, "
    "code_version STRING, mask_sha256 STRING, run_id STRING, computed_at TIMESTAMP, reason STRING, message STRING, "
    "transient BOOLEAN"
)
_OUTPUT_NAMES = [c.strip().split(" ")[0] for c in OUTPUT_DDL.split(",")]


@dataclass(frozen=True)
class RadiomicsJob:
    lake_uri: str
    object_store_uri: str
    settings: RadiomicsSettings
    where: str | None = None
    geometry: str = "auto"  # silver | bronze | auto (silver when the table exists)
    retry_failed: bool = False
    device: str = "cpu"

    def path(self, spec) -> str:
        return tables.table_path(self.lake_uri, spec)

    @property
    def settings_hash(self) -> str:
        return self.settings.digest()


@dataclass(frozen=True)
class RunResult:
    run_id: str
    pending_rois: int
    computed_rois: int
    failed_rois: int
    feature_rows: int
    table_version: int | None
    events: tuple = field(default=())  # staged in the outbox by this run
    failures: tuple[tuple[str, str, str, str], ...] = ()  # (series, roi, reason, message)
    timings: tuple[tuple[str, float], ...] = ()  # (step, seconds)


def ensure_tables(spark, job: RadiomicsJob) -> None:
    for spec in RADIOMICS_TABLES:
        tables.ensure(spark, job.path(spec), spec)


def register_rois(spark, lake_uri: str, rows: list[dict]) -> None:
    """Add ROIs to ``silver/rois`` (or replace the row of an ROI name already registered on its series).
    Of rows with the same key in one call (e.g. a redelivered event in the batch) the last one counts:
    a MERGE refuses two source rows for one target row."""
    path = tables.table_path(lake_uri, ROIS)
    tables.ensure(spark, path, ROIS)
    now = datetime.now(timezone.utc)
    latest = {tuple(r[k] for k in ROIS.merge_key): r for r in rows}
    frame = tables.frame(spark, [{"registered_at": now, "label": None, "source": "manual", **r}
                                 for r in latest.values()], ROIS)
    tables.merge(spark, frame, path, ROIS)


# -- series ------------------------------------------------------------------------------------------------

def _exists(spark, path: str) -> bool:

    return SparkDeltaTable.isDeltaTable(spark, path)


def series_frame(spark, job: RadiomicsJob, keys):
    """(study_uid, series_uid, series_json) for the series in ``keys``, from silver or bronze."""


    use_silver = job.geometry == "silver" or (job.geometry == "auto" and _exists(spark, job.path(SILVER_SERIES)))
    if use_silver:
        @F.udf(StringType())
        def to_json(study, series, instances, origin, orientation, spacing, issues):
            row = {"instances": [i.asDict() for i in instances], "origin": origin, "orientation": orientation,
                   "spacing": spacing, "geometry_issues": issues}
            return lake.series_to_json(lake.series_from_silver(study, series, row))

        silver = spark.read.format("delta").load(job.path(SILVER_SERIES)).join(F.broadcast(keys), KEY[:2])
        return silver.select(*KEY[:2], to_json(*KEY[:2], "instances", "origin", "orientation", "spacing",
                                               "geometry_issues").alias("series_json"))

    slice_cols = ("sop_instance_uid", "object_uri", "sha256", "instance_number", "image_position_patient",
                  "image_orientation_patient", "pixel_spacing", "rows", "columns", "slice_thickness")

    @F.udf(StringType())
    def from_slices(study, series, slices):
        return lake.series_to_json(lake.series_from_slices(study, series, [s.asDict() for s in slices]))

    bronze = spark.read.format("delta").load(job.path(BRONZE_INSTANCES)).join(F.broadcast(keys), KEY[:2])
    grouped = bronze.groupBy(*KEY[:2]).agg(F.collect_list(F.struct(*slice_cols)).alias("slices"))
    return grouped.select(*KEY[:2], from_slices(*KEY[:2], "slices").alias("series_json"))


# -- pending ROIs and the grouped task ---------------------------------------------------------------------

def pending_rois(spark, job: RadiomicsJob):

    rois = spark.read.format("delta").load(job.path(ROIS))
    if job.where:
        rois = rois.where(job.where)
    same = _same_settings(job)
    done = (spark.read.format("delta").load(job.path(RADIOMICS_FEATURES)).where(same)
            .select(*KEY, "mask_sha256").distinct())
    failed = spark.read.format("delta").load(job.path(RADIOMICS_FAILURES)).where(same)
    if not job.retry_failed:
        failed = failed.where(~F.col("transient"))
    else:
        failed = failed.where(F.lit(False))
    return (rois.join(done, [*KEY, "mask_sha256"], "left_anti")
            .join(failed.select(*KEY, "mask_sha256"), [*KEY, "mask_sha256"], "left_anti")
            .select(*_ROI_COLUMNS))


def series_task(settings_mapping: dict, object_store_uri: str, run_id: str, device: str, now: datetime) -> Callable:
    """The function ``applyInPandas`` runs on the ROIs of one series (settings travel as plain data)."""

    def task(pdf):


        settings = settings_from_mapping(settings_mapping)
        head = pdf.iloc[0]
        series = None if pd.isna(head["series_json"]) else lake.series_from_json(head["series_json"])
        rois = [lake.RoiRef(**{c: (None if pd.isna(r[c]) else r[c]) for c in _ROI_COLUMNS
                               if c != "label"}, label=None if pd.isna(r["label"]) else int(r["label"]))
                for _, r in pdf.iterrows()]
        store = ObjectStore(object_store_uri)  # claim-check URIs are absolute; get() verifies each hash
        outcomes = lake.process_series(series, rois, settings, store.get, device=device)
        rows = []
        for outcome in outcomes:
            features, failure = lake.outcome_rows(outcome, settings_hash=settings.digest(), run_id=run_id, now=now)
            rows += features
            if failure is not None:
                rows.append(failure | {"computed_at": failure["failed_at"]})  # one output schema for both
        return pd.DataFrame([{n: r.get(n) for n in _OUTPUT_NAMES} for r in rows], columns=_OUTPUT_NAMES)

    return task


def roi_statuses(spark, job: RadiomicsJob, studies: list[str]):
    """Every registered ROI of ``studies`` with its feature count and failure reason (for the events)."""


    study_keys = spark.createDataFrame([(s,) for s in studies], "study_uid STRING")
    same = _same_settings(job)
    rois = spark.read.format("delta").load(job.path(ROIS)).join(F.broadcast(study_keys), "study_uid")
    counts = (spark.read.format("delta").load(job.path(RADIOMICS_FEATURES)).where(same)
              .join(F.broadcast(study_keys), "study_uid")
              .groupBy(*KEY, "mask_sha256").agg(F.count("*").alias("feature_count")))
    failed = (spark.read.format("delta").load(job.path(RADIOMICS_FAILURES)).where(same)
              .join(F.broadcast(study_keys), "study_uid").select(*KEY, "mask_sha256", "reason"))
    rows = (rois.join(counts, [*KEY, "mask_sha256"], "left").join(failed, [*KEY, "mask_sha256"], "left")
            .select("provider", "project", "pseudo_patient_id", *KEY, "mask_sha256",
                    F.coalesce("feature_count", F.lit(0)).alias("feature_count"), "reason").collect())
    return [RoiStatus(**r.asDict()) for r in rows]


@contextmanager
def _timed(timings: dict[str, float], name: str):
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start


def run(spark, job: RadiomicsJob, *, series=None, source_event_ids: dict[str, str] | None = None) -> RunResult:
    """Compute what is pending; ``series`` (a DataFrame of study_uid, series_uid, series_json) overrides
    the lake's series, e.g. with the claim-checks of a ``study completed`` event."""


    started = datetime.now(timezone.utc)
    run_id = run_id_for(job.settings_hash, started)
    timings: dict[str, float] = {}
    with _timed(timings, "ensure tables"):
        ensure_tables(spark, job)
    pending = pending_rois(spark, job).persist()
    try:
        with _timed(timings, "pending"):
            count = pending.count()
        if count == 0:
            log.info("radiomics: nothing pending for settings %s", job.settings_hash[:12])
            with _timed(timings, "stage events"):
                staged = stage_events(spark, job, run_id=run_id, source_event_ids=source_event_ids)
            return RunResult(run_id, 0, 0, 0, 0, None, staged, timings=tuple(timings.items()))
        keys = pending.select(*KEY[:2]).distinct()
        series_df = series if series is not None else series_frame(spark, job, keys)
        work = pending.join(series_df, KEY[:2], "left")
        task = series_task(job.settings.model_dump(mode="json"), job.object_store_uri, run_id, job.device, started)
        out = work.groupBy(*KEY[:2]).applyInPandas(task, schema=OUTPUT_DDL).persist()
        try:
            features = out.where("reason IS NULL").select(*[n for n, _ in RADIOMICS_FEATURES.columns])
            failures = out.where("reason IS NOT NULL").withColumnRenamed("computed_at", "failed_at") \
                .select(*[n for n, _ in RADIOMICS_FAILURES.columns])
            with _timed(timings, "compute"):
                summary = out.groupBy(*KEY, "reason", "message").agg(F.count("feature").alias("n")).collect()
            feature_rows = sum(r.n for r in summary if r.reason is None)
            failed = [r for r in summary if r.reason is not None]
            with _timed(timings, "merge"):
                if feature_rows:
                    tables.merge(spark, features, job.path(RADIOMICS_FEATURES), RADIOMICS_FEATURES)
                    _clear_failures(spark, job, out.where("reason IS NULL").select(*KEY).distinct())
                if failed:
                    tables.merge(spark, failures, job.path(RADIOMICS_FAILURES), RADIOMICS_FAILURES)
        finally:
            out.unpersist()
    finally:
        pending.unpersist()
    with _timed(timings, "stage events"):
        version = SparkDeltaTable.forPath(spark, job.path(RADIOMICS_FEATURES)).history(1).first().version
        events = stage_events(spark, job, run_id=run_id, table_version=version, source_event_ids=source_event_ids)
    computed = len({(r.study_uid, r.series_uid, r.roi) for r in summary if r.reason is None})
    log.info("radiomics run %s: %s", run_id, ", ".join(f"{k} {v:.1f}s" for k, v in timings.items()))
    return RunResult(run_id, count, computed, len(failed), feature_rows, version, tuple(events),
                     tuple((r.series_uid, r.roi, r.reason, r.message) for r in failed), tuple(timings.items()))


def _same_settings(job: RadiomicsJob):

    return (F.col("settings_hash") == job.settings_hash) & (F.col("code_version") == CODE_VERSION)


def stage_events(spark, job: RadiomicsJob, *, run_id: str, table_version: int | None = None,
                 source_event_ids: dict[str, str] | None = None) -> tuple:
    """Write to the outbox the ``features computed`` events not staged yet; return them.

    The studies examined are those whose newest feature or failure row (these settings) is newer than the
    ``source_computed_at`` of their outbox rows, or that have none: found with two aggregations and a
    join, so only those studies' ROI statuses are collected."""


    same = _same_settings(job)
    newest = (spark.read.format("delta").load(job.path(RADIOMICS_FEATURES)).where(same)
              .select("study_uid", F.col("computed_at").alias("newest"))
              .unionByName(spark.read.format("delta").load(job.path(RADIOMICS_FAILURES)).where(same)
                           .select("study_uid", F.col("failed_at").alias("newest")))
              .groupBy("study_uid").agg(F.max("newest").alias("newest")))
    staged = (spark.read.format("delta").load(job.path(RADIOMICS_EVENTS)).where(same)
              .groupBy("study_uid").agg(F.max("source_computed_at").alias("staged")))
    marks = {r.study_uid: r.newest for r in newest.join(staged, "study_uid", "left")
             .where("staged IS NULL OR newest > staged").collect()}
    if not marks:
        return ()
    events = finished_study_events(roi_statuses(spark, job, sorted(marks)), studies=marks,
                                   settings_hash=job.settings_hash, run_id=run_id, table_version=table_version,
                                   source_event_ids=source_event_ids)
    if not events:
        return ()  # studies with an ROI still pending: examined again next run
    outbox = SparkDeltaTable.forPath(spark, job.path(RADIOMICS_EVENTS))
    ids = [e.event_id for e in events]
    known = {r.event_id for r in outbox.toDF().where(F.col("event_id").isin(ids)).select("event_id").collect()}
    now = datetime.now(timezone.utc)
    rows = tables.frame(spark, [{
        "event_id": e.event_id, "provider": e.provider, "study_uid": e.data.study_uid,
        "settings_hash": job.settings_hash, "code_version": CODE_VERSION,
        "source_computed_at": marks[e.data.study_uid], "payload": e.model_dump_json(), "created_at": now,
    } for e in events], RADIOMICS_EVENTS)
    # an event already staged (same ROI statuses) only moves its mark forward; its payload and state stay
    (outbox.alias("t").merge(rows.alias("s"), "t.event_id = s.event_id")
     .whenMatchedUpdate(set={"source_computed_at": "s.source_computed_at"})
     .whenNotMatchedInsertAll().execute())
    return tuple(e for e in events if e.event_id not in known)


def publish_outbox(spark, job: RadiomicsJob, publish: Callable[[list], None]) -> tuple:
    """Publish the outbox's unpublished events of these settings, then mark them; return them.

    ``publish`` must raise unless Kafka acknowledged every event; the rows then stay unpublished and the
    next call publishes them again."""


    ensure_tables(spark, job)
    unpublished = (spark.read.format("delta").load(job.path(RADIOMICS_EVENTS))
                   .where(_same_settings(job) & F.col("published_at").isNull())
                   .orderBy("created_at", "event_id").select("event_id", "payload").collect())
    if not unpublished:
        return ()
    events = [FeaturesComputed.model_validate_json(r.payload) for r in unpublished]
    publish(events)
    ids = spark.createDataFrame([(e.event_id,) for e in events], "event_id STRING")
    (SparkDeltaTable.forPath(spark, job.path(RADIOMICS_EVENTS)).alias("t")
     .merge(ids.alias("s"), "t.event_id = s.event_id")
     .whenMatchedUpdate(condition="t.published_at IS NULL", set={"published_at": F.current_timestamp()})
     .execute())
    log.info("radiomics: published %d features computed events", len(events))
    return tuple(events)


def _clear_failures(spark, job: RadiomicsJob, succeeded) -> None:
    """A failure row goes once its ROI has features for these settings (e.g. after a transient error)."""

    same = _same_settings(job)
    if spark.read.format("delta").load(job.path(RADIOMICS_FAILURES)).where(same).isEmpty():
        return
    condition = (" AND ".join(f"t.{k} = s.{k}" for k in KEY)
                 + f" AND t.settings_hash = '{job.settings_hash}' AND t.code_version = '{CODE_VERSION}'")
    (SparkDeltaTable.forPath(spark, job.path(RADIOMICS_FAILURES)).alias("t").merge(succeeded.alias("s"), condition)
     .whenMatchedDelete().execute())


def series_frame_from_refs(spark, refs):
    """A ``series`` override from :class:`spark_jobs.radiomics_series.SeriesRef` values."""

    return spark.createDataFrame([(r.study_uid, r.series_uid, series_to_json(r)) for r in refs],
                                 "study_uid STRING, series_uid STRING, series_json STRING")


def register_mask_files(spark, settings: Settings, paths: list[Path], provider: str, project: str) -> int:
    """Store DICOM SEG / RTSTRUCT files in the object store and register one ROI per segment / structure."""
    store = ObjectStore(settings.resolved_object_store_uri)
    rows = []
    for path in paths:
        data = path.read_bytes()
        stored = store.put(data, prefix="masks")
        rows += rois_from_dicom_mask(pydicom.dcmread(path, stop_before_pixels=True), mask_uri=stored.uri,
                                     mask_sha256=stored.sha256, provider=provider, project=project,
                                     source=f"import:{path.name}")
    register_rois(spark, settings.resolved_lake_uri, rows)
    return len(rows)
