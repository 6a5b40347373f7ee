"""The silver annotations rule without Spark: one row per annotation object, redeliveries and conflicts counted."""

from __future__ import annotations

from datetime import datetime, timezone

from lake_schemas.tables import BRONZE_ANNOTATIONS, SILVER_ANNOTATIONS
from spark_jobs.silver_annotations import annotation_rows

NOW = datetime(2026, 12, 8, tzinfo=timezone.utc)


def _row(event_id: str, sop: str, sha: str, offset: int) -> dict:
    return {"event_id": event_id, "provider": "p", "project": "x", "pseudo_patient_id": "RL1", "study_uid": "2.25.1",
            "series_uid": "2.25.9", "sop_instance_uid": sop, "sop_class_uid": "1.2.840.10008.5.1.4.1.1.66.4",
            "annotation_kind": "seg", "modality": "SEG", "frame_of_reference_uid": "2.25.4",
            "referenced_series_uids": ["2.25.2"], "referenced_instance_count": 12, "object_uri": f"file:///{sha}",
            "sha256": sha, "size_bytes": 10, "deid_profile_version": "v", "occurred_at": NOW,
            "kafka_timestamp": NOW, "kafka_partition": 0, "kafka_offset": offset}


def test_first_arrival_is_kept_and_repeats_are_counted():
    rows = annotation_rows([_row("e2", "2.25.10", "b" * 64, 2), _row("e1", "2.25.10", "a" * 64, 1),
                            _row("e3", "2.25.10", "a" * 64, 3), _row("e4", "2.25.11", "c" * 64, 4)], NOW)
    assert [(r["sop_instance_uid"], r["event_id"], r["redelivered_count"], r["conflict_count"]) for r in rows] == [
        ("2.25.10", "e1", 1, 1), ("2.25.11", "e4", 0, 0)]
    assert rows[0]["referenced_series_uids"] == ["2.25.2"]
    assert set(rows[0]) == {n for n, _ in SILVER_ANNOTATIONS.columns}


def test_bronze_annotations_mirror_the_contract():
    columns = dict(BRONZE_ANNOTATIONS.columns)
    assert columns["referenced_series_uids"] == "ARRAY<STRING>" and columns["annotation_kind"] == "STRING"
