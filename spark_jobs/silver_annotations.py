"""Bronze ``annotations`` -> silver ``annotations``: one row per annotation object, exactly once.

A Structured Streaming query over the bronze Delta table (landed from ``annotation received`` by
``spark_jobs.bronze``). Each micro-batch names the annotations it touches; each of them is rebuilt from all of
its bronze rows (:func:`annotation_rows`: the first arrival of a SOP Instance UID is kept, a later one with the
same hash is a redelivery, with another hash a conflict, counted) and replaced by key. Rebuilding from bronze
makes a replayed micro-batch write the same rows again: no loss, no duplicate.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

import pyarrow.compute as pc
from deltalake import DeltaTable

from lake_schemas.tables import BRONZE_ANNOTATIONS, SILVER_ANNOTATIONS
from spark_jobs import bronze, tables
from spark_jobs.silver import DEFAULT_TRIGGER, Arrival, resolve_instances

log = logging.getLogger(__name__)

_BRONZE_COLUMNS = (
    "event_id", "provider", "project", "pseudo_patient_id", "study_uid", "series_uid", "sop_instance_uid",
    "sop_class_uid", "annotation_kind", "modality", "frame_of_reference_uid", "referenced_series_uids",
    "referenced_instance_count", "object_uri", "sha256", "size_bytes", "deid_profile_version", "occurred_at",
    "kafka_timestamp", "kafka_partition", "kafka_offset",
)
_KEPT = ("provider", "project", "pseudo_patient_id", "study_uid", "series_uid", "sop_instance_uid", "sop_class_uid",
         "annotation_kind", "modality", "frame_of_reference_uid", "referenced_instance_count", "object_uri",
         "sha256", "size_bytes", "deid_profile_version", "event_id")


def annotation_rows(rows: Sequence[dict], now: datetime) -> list[dict]:
    """Silver rows from bronze rows (pure): one per (study, SOP instance), the first arrival's."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        grouped.setdefault((r["study_uid"], r["sop_instance_uid"]), []).append(r)
    out = []
    for group in grouped.values():
        by_event = {r["event_id"]: r for r in group}
        resolution = resolve_instances(
            Arrival(r["event_id"], r["sop_instance_uid"], r["sha256"],
                    (r["kafka_timestamp"], r["kafka_partition"], r["kafka_offset"])) for r in group)
        [kept] = [by_event[a.event_id] for a in resolution.kept]
        out.append({**{k: kept[k] for k in _KEPT},
                    "referenced_series_uids": list(kept["referenced_series_uids"] or []),
                    "redelivered_count": len(resolution.redelivered), "conflict_count": len(resolution.conflicts),
                    "received_at": kept["occurred_at"], "updated_at": now})
    return sorted(out, key=lambda r: (r["study_uid"], r["sop_instance_uid"]))


@dataclass(frozen=True)
class SilverAnnotationsJob:
    lake_uri: str
    checkpoint_path: str
    query_name: str = "silver-annotations"

    def path(self, spec) -> str:
        return tables.table_path(self.lake_uri, spec)


def process_batch(batch, batch_id: int, job: SilverAnnotationsJob) -> None:
    """Rebuild the annotations the batch touches from bronze and replace them."""
    touched = {(r["study_uid"], r["sop_instance_uid"]) for r in
               batch.select("study_uid", "sop_instance_uid").dropna().distinct().toArrow().to_pylist()}
    if not touched:
        return
    predicate = pc.field("sop_instance_uid").isin(sorted({sop for _, sop in touched}))
    bronze_rows = [r for r in DeltaTable(job.path(BRONZE_ANNOTATIONS)).to_pyarrow_dataset().to_table(
        columns=list(_BRONZE_COLUMNS), filter=predicate).to_pylist()
        if (r["study_uid"], r["sop_instance_uid"]) in touched]
    rows = annotation_rows(bronze_rows, datetime.now(timezone.utc))
    tables.replace_rows(job.path(SILVER_ANNOTATIONS), rows, SILVER_ANNOTATIONS)
    log.info("silver annotations batch %d: %d annotations rebuilt", batch_id, len(rows))


def ensure_tables(spark, job: SilverAnnotationsJob) -> None:
    bronze.ensure_table(spark, job.path(BRONZE_ANNOTATIONS), BRONZE_ANNOTATIONS)
    tables.ensure(spark, job.path(SILVER_ANNOTATIONS), SILVER_ANNOTATIONS)


def start(spark, job: SilverAnnotationsJob, *, available_now: bool = False, processing_time: str = DEFAULT_TRIGGER):
    ensure_tables(spark, job)
    writer = (
        spark.readStream.format("delta").load(job.path(BRONZE_ANNOTATIONS)).writeStream
        .foreachBatch(lambda df, batch_id: process_batch(df, batch_id, job))
        .option("checkpointLocation", job.checkpoint_path)
        .queryName(job.query_name)
    )
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=processing_time)
    return writer.start()
