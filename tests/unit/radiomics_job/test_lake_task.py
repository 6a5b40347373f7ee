"""The radiomics job's unit of work without Spark: series geometry, volume assembly, outcomes, rows, events."""

from __future__ import annotations

import io
import json
from datetime import datetime, timezone

import jsonschema
import numpy as np
import pydicom
import pytest

from lake_schemas.events import InstanceRef
from lake_schemas.radiomics_tables import RADIOMICS_FAILURES, RADIOMICS_FEATURES, ROIS
from lake_schemas.topics import FEATURES_COMPUTED
from platform_layer.object_store import ObjectStore
from radlake.radiomics import compute_features
from radlake.radiomics.dicom_series import read_series
from radlake.radiomics.errors import InvalidInputError
from radlake.radiomics.settings import settings_from_mapping
from radlake.synthetic import radiomics_lake as rl
from radlake.synthetic.lake_events import study_completed
from spark_jobs import radiomics_series as lake

SETTINGS = settings_from_mapping({"aggregations": ["3D"], "families": ["morphology", "intensity_statistics", "glcm"]})
NOW = datetime(2026, 11, 23, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return ObjectStore(str(tmp_path_factory.mktemp("objects")))


@pytest.fixture(scope="module")
def case(store):
    return rl.make_case(store, "unit-a", shape=(8, 32, 32), radius_mm=4.0, seed=3)


def _roi(row: dict) -> lake.RoiRef:
    return lake.RoiRef(**{k: v for k, v in row.items() if k != "source"})


def _series(case) -> lake.SeriesRef:
    return lake.series_from_slices(case.study_uid, case.series_uid, [e.data.model_dump() for e in reversed(case.events)])


def test_series_from_bronze_rows_is_ordered_along_the_normal_with_zyx_spacing(case):
    series = _series(case)  # given in reverse order
    assert [c.sop_instance_uid for c in series.instances] == [e.data.sop_instance_uid for e in case.events]
    assert series.spacing == (2.0, 0.75, 0.75) and series.origin == (0.0, 0.0, 0.0) and series.issues == ()
    assert all(isinstance(c, InstanceRef) for c in series.instances)  # claim-checks as the events carry them
    assert lake.series_from_json(lake.series_to_json(series)) == series


def test_redelivered_bronze_rows_count_once(case):
    rows = [e.data.model_dump() for e in case.events]
    assert _series(case) == lake.series_from_slices(case.study_uid, case.series_uid, rows + rows[:3])


def test_a_gap_makes_the_series_not_reconstructable(case, store):
    rows = [e.data.model_dump() for k, e in enumerate(case.events) if k != 3]
    series = lake.series_from_slices(case.study_uid, case.series_uid, rows)
    assert "gaps" in series.issues
    [outcome] = lake.process_series(series, [_roi(rl.roi_row(case, "n", "nifti", rl.nifti_bytes(case), store))],
                                    SETTINGS, store.get)
    assert outcome.reason == lake.SERIES_NOT_RECONSTRUCTABLE and outcome.transient


def test_series_from_silver_row_and_from_a_study_completed_event_agree(case):
    series = _series(case)
    silver = {"instances": [{"sop_instance_uid": c.sop_instance_uid, "object_uri": c.object_uri, "sha256": c.sha256}
                            for c in series.instances],
              "origin": [0.0, 0.0, 0.0], "orientation": [1.0, 0.0, 0.0, 0.0, 1.0, 0.0],
              "spacing": [0.75, 0.75, 2.0], "geometry_issues": []}  # silver: column, row, slice spacing
    assert lake.series_from_silver(case.study_uid, case.series_uid, silver) == series
    [summary] = study_completed(list(case.events)).data.series
    assert lake.series_from_summary(case.study_uid, summary) == series


def test_assembled_volume_equals_the_series_read_from_files(case, tmp_path):
    for k, ds in enumerate(case.datasets):
        ds.save_as(tmp_path / f"{k}.dcm", enforce_file_format=True)
    from_files = read_series(tmp_path)
    assembled = lake.assemble_volume(_series(case), list(case.datasets))
    assert assembled.geometry == from_files.geometry
    np.testing.assert_array_equal(assembled.array, from_files.array)
    assert assembled.sop_instance_uids == from_files.sop_instance_uids


def test_an_object_that_is_not_the_claimed_instance_is_refused(case):
    swapped = [case.datasets[1], case.datasets[0], *case.datasets[2:]]
    with pytest.raises(InvalidInputError, match="unreadable_input"):
        lake.assemble_volume(_series(case), swapped)


def test_process_series_matches_compute_features_and_reports_refusals(case, store):
    seg = rl.seg_bytes(case)
    good = _roi(rl.roi_row(case, "nodule#1", "seg", seg, store, label=1))
    nifti = _roi(rl.roi_row(case, "nifti", "nifti", rl.nifti_bytes(case), store))
    other_grid = _roi(rl.roi_row(case, "other", "nifti", rl.nifti_bytes(case, spacing=(2.0, 0.8, 0.8)), store))
    tampered = lake.RoiRef(**{**good.__dict__, "roi": "tampered", "mask_sha256": "0" * 64})
    outcomes = {o.roi.roi: o for o in lake.process_series(_series(case), [good, nifti, other_grid, tampered],
                                                          SETTINGS, store.get)}
    direct = compute_features(case.image.astype(float), case.mask, case.spacing, SETTINGS)
    for name in ("nodule#1", "nifti"):
        assert [(v.name, v.value) for v in outcomes[name].values] == [(v.name, v.value) for v in direct]
    assert (outcomes["other"].reason, outcomes["other"].transient) == ("geometry_mismatch", False)
    assert (outcomes["tampered"].reason, outcomes["tampered"].transient) == (lake.OBJECT_STORE_ERROR, True)


def test_a_missing_series_is_reported_for_every_roi(case, store):
    rois = [_roi(rl.roi_row(case, f"r{k}", "nifti", rl.nifti_bytes(case), store)) for k in range(2)]
    assert [o.reason for o in lake.process_series(None, rois, SETTINGS, store.get)] == [lake.SERIES_NOT_FOUND] * 2


def test_rows_have_exactly_the_table_columns(case, store):
    roi = _roi(rl.roi_row(case, "nifti", "nifti", rl.nifti_bytes(case), store))
    [ok] = lake.process_series(_series(case), [roi], SETTINGS, store.get)
    features, failure = lake.outcome_rows(ok, settings_hash=SETTINGS.digest(), run_id="r", now=NOW)
    assert failure is None and len(features) == len(ok.values)
    assert set(features[0]) == {n for n, _ in RADIOMICS_FEATURES.columns}
    bad = lake.RoiOutcome(roi, reason="empty_mask", message="x")
    assert lake.outcome_rows(bad, settings_hash="h", run_id="r", now=NOW)[0] == []
    assert set(lake.outcome_rows(bad, settings_hash="h", run_id="r", now=NOW)[1]) == {
        n for n, _ in RADIOMICS_FAILURES.columns}


def test_registering_a_seg_gives_one_roi_row_per_segment_on_its_source_series(case):
    rows = lake.rois_from_dicom_mask(pydicom.dcmread(io.BytesIO(rl.seg_bytes(case))), mask_uri="file:///m.dcm",
                                     mask_sha256="a" * 64, provider="st-olav", project="p")
    assert [(r["series_uid"], r["roi"], r["label"], r["mask_kind"]) for r in rows] == [
        (case.series_uid, "nodule#1", 1, "seg")]
    assert set(rows[0]) | {"registered_at"} == {n for n, _ in ROIS.columns}
    with pytest.raises(InvalidInputError):
        lake.rois_from_dicom_mask(case.datasets[0], mask_uri="u", mask_sha256="a" * 64, provider="s", project="p")


def _status(roi: str, count: int, reason: str | None = None, study: str = "2.25.1") -> lake.RoiStatus:
    return lake.RoiStatus("st-olav", "p", "RL1", study, "2.25.2", roi, "b" * 64, count, reason)


def test_events_only_for_finished_studies_and_valid_against_the_schema():
    statuses = [_status("n1", 100), _status("n2", 0, "geometry_mismatch"),
                _status("n3", 100, study="2.25.7"), _status("n4", 0, study="2.25.7")]  # n4 still pending
    events = lake.finished_study_events(statuses, studies=["2.25.1", "2.25.7", "2.25.9"], settings_hash="c" * 64,
                                        run_id="r", table_version=3)
    assert [e.data.study_uid for e in events] == ["2.25.1"]

    jsonschema.validate(json.loads(events[0].model_dump_json()), FEATURES_COMPUTED.schema,
                        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    assert [(r.roi, r.status, r.reason) for r in events[0].data.rois] == [
        ("n1", "computed", None), ("n2", "failed", "geometry_mismatch")]


def test_event_ids_are_deterministic_in_what_they_announce():
    a = lake.features_event_id("2.25.1", "c" * 64, "v1", [_status("n1", 5), _status("n2", 5)])
    assert a == lake.features_event_id("2.25.1", "c" * 64, "v1", [_status("n2", 9), _status("n1", 5)])
    assert a != lake.features_event_id("2.25.1", "d" * 64, "v1", [_status("n1", 5), _status("n2", 5)])
    assert a != lake.features_event_id("2.25.1", "c" * 64, "v1", [_status("n1", 5), _status("n2", 0, "empty_mask")])
