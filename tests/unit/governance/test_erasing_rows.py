"""Erasure of one patient from real Delta tables (delta-rs) and a local object store: rows by pseudonym and by
study, the objects they point at, old versions and log statistics purged, the scan, and a second run."""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from spark_jobs.erasure import Key, erase, find

GONE, KEPT_PATIENT = "RL000000000000000000000001", "RL000000000000000000000002"


@pytest.fixture()
def lake(tmp_path):
    root, objects = tmp_path / "lake", tmp_path / "objects"
    objects.mkdir()

    def obj(name):
        path = objects / name
        path.write_bytes(b"DICM" + name.encode())
        return f"file://{path}"

    for patient, study in ((GONE, "2.25.1"), (GONE, "2.25.2"), (KEPT_PATIENT, "2.25.3")):
        uri = obj(f"{study}.dcm")
        write_deltalake(root / "bronze/instances", pa.Table.from_pylist(
            [{"pseudo_patient_id": patient, "study_uid": study, "object_uri": uri}]), mode="append")
        write_deltalake(root / "silver/series", pa.Table.from_pylist(
            [{"pseudo_patient_id": patient, "study_uid": study,
              "instances": [{"object_uri": uri, "sha256": "x"}]}]), mode="append")
        write_deltalake(root / "gold/predictions", pa.Table.from_pylist(
            [{"pseudo_patient_id": patient, "study_uid": study, "seg_uri": obj(f"{study}.seg"),
              "candidates_json": json.dumps([{"gradcam_uri": obj(f"{study}.cam.png")}])}]), mode="append")
        write_deltalake(root / "governance/radiomics_events", pa.Table.from_pylist(
            [{"study_uid": study, "outcome": "ok"}]), mode="append")
    return root, objects


def test_one_patient_is_erased_everywhere_and_the_others_are_untouched(lake):
    root, objects = lake
    studies, found = find(str(root), Key.patient(GONE))
    assert studies == {"2.25.1", "2.25.2"} and len(found) == 6  # 2 instances, 2 SEG, 2 Grad-CAM
    report = erase(str(root), Key.patient(GONE), studies, found)
    assert report.complete, report.as_text()
    assert {t.table: t.rows_deleted for t in report.tables} == {
        "bronze/instances": 2, "silver/series": 2, "gold/predictions": 2, "governance/radiomics_events": 2}
    assert report.objects_deleted == 6
    assert sorted(p.name for p in objects.iterdir()) == ["2.25.3.cam.png", "2.25.3.dcm", "2.25.3.seg"]
    for name in ("bronze/instances", "silver/series", "gold/predictions", "governance/radiomics_events"):
        table = DeltaTable(root / name)
        assert [r["study_uid"] for r in table.to_pyarrow_table().to_pylist()] == ["2.25.3"]
        with pytest.raises(Exception):  # noqa: B017 - older versions are gone: no time travel back to the rows
            DeltaTable(root / name, version=0).to_pyarrow_table()
        log = "".join(p.read_text(errors="replace") for p in (root / name / "_delta_log").glob("*.json"))
        assert GONE not in log and "2.25.1" not in log
    assert "no reference left" in report.as_text()


def test_a_second_run_deletes_nothing_and_an_unknown_patient_is_a_report_not_an_error(lake):
    root, _ = lake
    studies, found = find(str(root), Key.patient(GONE))
    erase(str(root), Key.patient(GONE), studies, found)
    again = erase(str(root), Key.patient(GONE), studies, found)
    assert again.complete and again.tables == [] and again.objects_deleted == 0
    nobody = erase(str(root), Key.patient("RL999"), *find(str(root), Key.patient("RL999")))
    assert nobody.complete and nobody.studies == [] and "nothing was found" in nobody.as_text()


def test_an_interrupted_run_is_finished_with_what_the_first_found(lake):
    root, objects = lake
    studies, found = find(str(root), Key.patient(GONE))
    DeltaTable(root / "bronze/instances").delete(f"pseudo_patient_id = '{GONE}'")  # rows gone, objects left
    DeltaTable(root / "silver/series").delete(f"pseudo_patient_id = '{GONE}'")
    assert len(find(str(root), Key.patient(GONE))[1]) < len(found)  # the rows that named two objects are gone
    report = erase(str(root), Key.patient(GONE), studies, found)
    assert report.complete and report.objects_deleted == 6


def test_files_that_store_strings_as_string_view_are_searched_too(tmp_path):
    root = tmp_path / "lake"
    view = pa.schema([("pseudo_patient_id", pa.string_view()), ("study_uid", pa.string_view())])
    write_deltalake(root / "gold/predictions", pa.Table.from_pylist(
        [{"pseudo_patient_id": GONE, "study_uid": "2.25.9"}, {"pseudo_patient_id": KEPT_PATIENT,
                                                              "study_uid": "2.25.8"}], schema=view))
    studies, _ = find(str(root), Key.patient(GONE))
    assert studies == {"2.25.9"}
