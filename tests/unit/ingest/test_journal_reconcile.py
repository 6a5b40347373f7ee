"""Upload journal (resume) and reconciliation (journal vs store vs topics): pure parts."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta

from lake_schemas.events import InstanceReceived, InstanceReceivedData, Quarantined, QuarantinedData
from nifi.edge import journal
from nifi.edge.client import plan, study_report
from nifi.edge.reconcile import reconcile
from radlake.synthetic import phi_dicom

SHA = "a" * 64
UID = "2.25.1"


def test_unit_ids_depend_on_content_not_order():
    assert journal.unit_id("stow", ["b", "a"]) == journal.unit_id("stow", ["a", "b"])
    assert journal.unit_id("stow", ["a"]) != journal.unit_id("archive", ["a"])


def test_the_journal_is_private_and_forgets_what_is_older_than_its_retention(tmp_path):
    path = tmp_path / "uploads" / "j.jsonl"
    journal.append(path, journal.ack_record("old", "stow", "up", 200, [], 1, 10, "1.2"))
    lines = path.read_text().splitlines()
    aged = json.loads(lines[0]) | {"at": (datetime.now(UTC) - timedelta(days=40)).isoformat()}
    path.write_text(json.dumps(aged) + "\n")
    journal.append(path, journal.ack_record("new", "stow", "up", 200, [], 1, 10, "1.3"))
    with path.open("a") as handle:
        handle.write('{"type": "ack", "unit_id": "torn", "outc')
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert journal.expire(path, datetime.now(UTC) - timedelta(days=30)) == 2  # the old line and the torn one
    state = journal.load(path)
    assert list(state.acks) == ["new"] and state.skipped_lines == 0
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert journal.expire(path, datetime.now(UTC) - timedelta(days=30)) == 0
    assert journal.expire(tmp_path / "none.jsonl", datetime.now(UTC)) == 0


def test_journal_round_trip_and_torn_last_line(tmp_path):
    path = tmp_path / "j.jsonl"
    journal.append(path, journal.ack_record("u1", "stow", "up", 200, [{"status": "accepted"}], 1, 10, "1.2"))
    journal.append(path, journal.manifest_record("1.2", "up", {"study_uid": UID, "event_id": "e",
                                                                "expected_instances": 3}))
    with path.open("a") as handle:
        handle.write('{"type": "ack", "unit_id": "u2", "outc')  # killed mid-write
    state = journal.load(path)
    assert state.acknowledged("u1") and not state.acknowledged("u2")
    assert state.skipped_lines == 1
    assert state.manifests["1.2"]["study_uid"] == UID
    assert state.outcomes() == [{"status": "accepted"}]


def _event(event_id: str, sop: str, sha: str = SHA) -> InstanceReceived:
    data = InstanceReceivedData(project="p", pseudo_patient_id="RL1", study_uid=UID, series_uid="2.25.2",
                                sop_instance_uid=sop, sop_class_uid="1.2", modality="CT", transfer_syntax_uid="1.2",
                                object_uri=f"file:///o/{sop}", sha256=sha, size_bytes=1, deid_profile_version="v")
    return InstanceReceived(event_id=event_id, provider="h", data=data)


def _accepted(event_id: str, sop: str) -> dict:
    return {"status": "accepted", "event_id": event_id, "sop_instance_uid": sop, "object_uri": f"file:///o/{sop}",
            "study_uid": UID}


def test_reconcile_clean_with_redelivery():
    events = [_event("e1", "2.25.10"), _event("e1", "2.25.10"), _event("e2", "2.25.11")]
    result = reconcile([_accepted("e1", "2.25.10"), _accepted("e2", "2.25.11")],
                       [{"study_uid": UID, "expected_instances": 2}], events, [], lambda uri: True)
    assert result.ok
    assert result.duplicate_events == [{"event_id": "e1", "copies": 2}]
    assert result.incomplete_studies == []


def test_reconcile_finds_missing_and_conflicts():
    quarantined = {"status": "quarantined", "event_id": "q1", "reason": "NOT_DICOM", "input_sha256": SHA}
    events = [_event("e1", "2.25.10"), _event("e9", "2.25.10", "b" * 64)]
    result = reconcile([_accepted("e1", "2.25.10"), _accepted("e2", "2.25.11"), quarantined],
                       [{"study_uid": UID, "expected_instances": 3}], events, [],
                       lambda uri: not uri.endswith("2.25.10"))
    assert not result.ok
    assert [m["event_id"] for m in result.missing_events] == ["e2"]
    assert [m["event_id"] for m in result.missing_objects] == ["e1"]
    assert [m["event_id"] for m in result.missing_quarantine_events] == ["q1"]
    assert result.conflicting_events[0]["sop_instance_uid"] == "2.25.10"
    assert [u["event_id"] for u in result.unexpected_events] == ["e9"]
    assert result.incomplete_studies[0]["released"] == 1


def test_reconcile_quarantine_events_count():
    q = Quarantined(event_id="q1", provider="h", data=QuarantinedData(stage="edge", reason="NOT_DICOM", message="m"))
    result = reconcile([{"status": "quarantined", "event_id": "q1"}], [], [], [q], lambda uri: True)
    assert result.ok and result.quarantine_events == 1


def test_plan_groups_by_study_and_keeps_unreadable_files(tmp_path):
    first, _ = phi_dicom.ct_series(3, size=16, study=1)
    second, _ = phi_dicom.ct_series(2, size=16, study=2)
    for n, ds in enumerate([*first, *second]):
        (tmp_path / f"{n}.dcm").write_bytes(phi_dicom.to_bytes(ds))
    (tmp_path / "notes.txt").write_text("not an image")
    (tmp_path / "a.zip").write_bytes(phi_dicom.zip_archive([("x.dcm", phi_dicom.to_bytes(first[0]))]))
    the_plan = plan([tmp_path], max_instances=2)
    kinds = sorted((u.kind, len(u.paths)) for u in the_plan.units)
    assert kinds == [("archive", 1), ("stow", 1), ("stow", 1), ("stow", 2), ("stow", 2)]
    assert sorted(sum(len(s) for s in series.values()) for series in the_plan.studies.values()) == [2, 3]
    assert the_plan.instances == 7
    again = plan([tmp_path], max_instances=2)
    assert [u.unit_id for u in again.units] == [u.unit_id for u in the_plan.units]


def test_study_report():
    records = [{"original_study_uid": "1.2", "outcomes": [
        {"status": "accepted", "original_study_uid": "1.2", "study_uid": UID},
        {"status": "quarantined", "reason": "TRUNCATED_FILE", "original_study_uid": "1.2"}]},
        {"original_study_uid": None, "outcomes": [{"status": "quarantined", "reason": "NOT_DICOM"}]}]
    rows = {row["study"]: row for row in study_report(records)}
    assert rows["1.2"]["accepted"] == 1 and rows["1.2"]["reasons"] == {"TRUNCATED_FILE": 1}
    assert rows["1.2"]["pseudonymous_study"] == UID
    assert rows["(not readable as DICOM)"]["reasons"] == {"NOT_DICOM": 1}
