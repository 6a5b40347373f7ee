"""Silver's pure rules: one instance per SOP UID, conflicts kept aside, series rows and gate reports."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from spark_jobs.silver import Arrival, resolve_instances, series_row, study_row

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def test_first_arrival_wins_redeliveries_are_counted_conflicts_are_kept_aside():
    arrivals = [
        Arrival("e3", "2.25.1", "bb", (3,)),
        Arrival("e1", "2.25.1", "aa", (1,)),
        Arrival("e2", "2.25.1", "aa", (2,)),
        Arrival("e4", "2.25.2", "cc", (4,)),
    ]
    r = resolve_instances(arrivals)
    assert [a.event_id for a in r.kept] == ["e1", "e4"]
    assert [a.event_id for a in r.redelivered] == ["e2"]
    assert [(a.event_id, kept.event_id) for a, kept in r.conflicts] == [("e3", "e1")]


def _row(i, z, *, event_id=None, sha=None, ts=0):
    return {
        "event_id": event_id or f"e{i}", "provider": "p", "project": "proj", "pseudo_patient_id": "RL1",
        "study_uid": "2.25.10", "series_uid": "2.25.20", "sop_instance_uid": f"2.25.{100 + i}",
        "modality": "CT", "sop_class_uid": "1.2", "frame_of_reference_uid": "2.25.30",
        "sha256": sha or f"{i:064x}", "object_uri": f"file:///{i}", "instance_number": i + 1, "rows": 16,
        "columns": 16, "pixel_spacing": [0.8, 0.8], "slice_thickness": 2.0,
        "image_position_patient": [0.0, 0.0, z], "image_orientation_patient": [1.0, 0, 0, 0, 1.0, 0],
        "deid_profile_version": "v", "occurred_at": datetime(2026, 1, 1, 0, 0, i), "kafka_timestamp": ts + i,
        "kafka_partition": 0, "kafka_offset": i,
    }


def test_series_row_orders_dedupes_and_quarantines_conflicts():
    rows = [_row(2, 4.0), _row(0, 0.0), _row(1, 2.0),
            _row(1, 2.0, event_id="again", ts=100),                 # the same object announced again
            _row(0, 0.0, event_id="other", sha="f" * 64, ts=100)]   # the same SOP UID, other bytes
    row, conflicts = series_row(rows, NOW)
    assert row["instance_count"] == 3 and row["redelivered_count"] == 1 and row["conflict_count"] == 1
    assert [i[0] for i in row["instances"]] == ["2.25.100", "2.25.101", "2.25.102"]
    assert row["spacing"] == [0.8, 0.8, 2.0] and row["dims"] == [16, 16, 3] and row["reconstructable"]
    assert row["first_event_at"] == datetime(2026, 1, 1, 0, 0, 0) and row["updated_at"] == NOW
    (conflict,) = conflicts
    assert (conflict["event_id"], conflict["reason"], conflict["check"]) == ("other", "SOP_UID_HASH_CONFLICT",
                                                                          "sop_uid_hash_conflict")
    assert json.loads(conflict["expectation_kwargs"]) == {"kept_event_id": "e0", "kept_sha256": f"{0:064x}"}
    assert json.loads(conflict["record"])["sha256"] == "f" * 64
    assert rows[3]["event_id"] == "again"  # inputs are not modified


def _series(uid, provider, *, count, reconstructable=True, modality="CT", first=1, last=2):
    return {"study_uid": "2.25.10", "series_uid": uid, "provider": provider, "project": "proj",
            "pseudo_patient_id": "RL1", "modality": modality, "instance_count": count,
            "reconstructable": reconstructable, "first_event_at": datetime(2026, 1, 1, 0, 0, first),
            "last_event_at": datetime(2026, 1, 1, 0, 0, last)}


def _completion(event_id, version, *, count, event_type="study.completed", providers=("p",), second=0):
    return {"study_uid": "2.25.10", "event_id": event_id, "event_type": event_type, "provider": "p",
            "providers": list(providers), "project": "proj", "pseudo_patient_id": "RL1", "study_version": version,
            "completion_reason": "manifest", "occurred_at": datetime(2026, 1, 1, 0, 1, second),
            "instance_count": count}


def test_study_row_summarises_series_and_takes_the_latest_completion():
    series = [_series("2.25.20", "p", count=12, first=3, last=9),
              _series("2.25.21", "q", count=10, reconstructable=False, modality="PT", first=1, last=5)]
    completions = [_completion("c1", 1, count=21), _completion("c2", 2, count=22, event_type="study.updated"),
                   _completion("c0", None, count=1, second=30)]
    row = study_row("2.25.10", series, completions, NOW)
    assert (row["provider"], row["providers"], row["modalities"]) == ("p", ["p", "q"], ["CT", "PT"])
    assert (row["series_count"], row["instance_count"], row["reconstructable_series"]) == (2, 22, 1)
    assert (row["status"], row["study_version"], row["completed_event_id"]) == ("updated", 2, "c2")
    assert row["completed_instance_count"] == 22 and row["counts_match"] is True
    assert row["first_event_at"] == datetime(2026, 1, 1, 0, 0, 1)
    assert row["last_event_at"] == datetime(2026, 1, 1, 0, 0, 9) and row["updated_at"] == NOW


def test_study_row_before_completion_and_without_series():
    receiving = study_row("2.25.10", [_series("2.25.20", "p", count=3)], [], NOW)
    assert (receiving["status"], receiving["study_version"], receiving["counts_match"]) == ("receiving", None, None)
    only_completed = study_row("2.25.10", [], [_completion("c1", 1, count=5, providers=("p", "r"))], NOW)
    assert (only_completed["status"], only_completed["series_count"], only_completed["instance_count"]) == \
        ("complete", 0, 0)
    assert only_completed["modalities"] is None and only_completed["counts_match"] is False
    assert only_completed["providers"] == ["p", "r"] and only_completed["first_event_at"] is None
    assert study_row("2.25.10", [], [], NOW) is None
