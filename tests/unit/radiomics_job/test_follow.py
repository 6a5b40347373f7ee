"""The follow consumer's pure parts: newest study version wins, the study filter, the ROIs of a predicted
SEG, and the CLI's usage errors."""

from __future__ import annotations

import hashlib

import pytest

from apps.radiomics import main
from lake_schemas.events import (
    PredictionCreated,
    PredictionCreatedData,
    PredictionInput,
    PredictionModel,
    StoredDicom,
)
from platform_layer.object_store import ObjectStore, ObjectStoreError
from radlake.radiomics.errors import InvalidInputError
from radlake.synthetic import radiomics_lake as rl
from radlake.synthetic.lake_events import SeriesPlan, series_events, study_completed
from spark_jobs import radiomics_follow as follow


def test_the_newest_version_of_each_study_wins():
    a = series_events(SeriesPlan("st-olav", "s1", "a", slices=3))
    b = series_events(SeriesPlan("st-olav", "s2", "b", slices=3))
    v1, v2, other = study_completed(a), study_completed(a, version=2), study_completed(b)
    latest = follow.latest_per_study([v2, other, v1])
    assert latest == {v1.data.study_uid: v2, other.data.study_uid: other}
    assert [r.series_uid for r in follow.series_refs(v2)] == [a[0].data.series_uid]


def test_study_filter_scopes_the_job_and_keeps_the_users_filter():
    assert follow.study_filter(["2.25.2", "2.25.1"], None) == "study_uid IN ('2.25.1', '2.25.2')"
    assert follow.study_filter(["2.25.1"], "project = 'x'") == "(project = 'x') AND study_uid IN ('2.25.1')"
    assert follow.study_filter(["2.25.1", "1' OR '1'='1"], None) == "study_uid IN ('2.25.1')"


def test_run_with_masks_needs_provider_and_project(tmp_path, capsys):
    settings = tmp_path / "s.yaml"
    settings.write_text("aggregations: ['3D']\n")
    assert main(["run", "--settings", str(settings), "--masks", str(tmp_path / "seg.dcm")]) == 2
    assert "--provider" in capsys.readouterr().err


def _prediction(case, seg: StoredDicom | None) -> PredictionCreated:
    return PredictionCreated(provider=case.provider, data=PredictionCreatedData(
        project=case.project, pseudo_patient_id=case.patient, study_uid=case.study_uid, study_version=1,
        series_uid=case.series_uid, source_event_id="e1",
        model=PredictionModel(name="nodule-cnn", version=3, stage="Production", weights_sha256="c" * 64),
        inputs=(PredictionInput(sop_instance_uid=case.events[0].data.sop_instance_uid, sha256="a" * 64),),
        candidates=(), malignancy_score=0.7, threshold=0.5, positive=seg is not None, seg=seg, sr=None,
        latency_ms=5.0, batch_studies=1, worker_id="w", device="cpu"))


def test_the_segments_of_a_predicted_seg_become_rois_named_after_the_model(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    case = rl.make_case(store, "follow-seg", shape=(6, 24, 24), radius_mm=4.0)
    stored = store.put(rl.seg_bytes(case, "nodule candidate 1"), prefix="predictions")
    event = _prediction(case, StoredDicom(uri=stored.uri, sha256=stored.sha256, sop_instance_uid="2.25.9"))
    [row] = follow.segmentation_rois(event, store.get)
    assert (row["roi"], row["mask_kind"], row["label"]) == ("nodule-cnn:3/nodule candidate 1#1", "seg", 1)
    assert (row["study_uid"], row["series_uid"], row["provider"], row["project"]) == (
        case.study_uid, case.series_uid, case.provider, case.project)
    assert (row["mask_uri"], row["mask_sha256"]) == (stored.uri, stored.sha256)
    assert row["source"] == f"prediction:nodule-cnn:3:{event.event_id}"
    assert follow.segmentation_rois(_prediction(case, None), store.get) == []


def test_a_seg_that_fails_its_claim_check_or_is_not_dicom_is_refused(tmp_path):
    store = ObjectStore(str(tmp_path / "objects"))
    case = rl.make_case(store, "follow-bad", shape=(6, 24, 24), radius_mm=4.0)
    stored = store.put(rl.seg_bytes(case), prefix="predictions")
    tampered = _prediction(case, StoredDicom(uri=stored.uri, sha256="0" * 64, sop_instance_uid="2.25.9"))
    with pytest.raises(ObjectStoreError, match="does not match its sha256"):
        follow.segmentation_rois(tampered, store.get)
    junk = store.put(b"not a DICOM file", prefix="predictions")
    not_dicom = _prediction(case, StoredDicom(uri=junk.uri, sha256=hashlib.sha256(b"not a DICOM file").hexdigest(),
                                              sop_instance_uid="2.25.9"))
    with pytest.raises(InvalidInputError, match="unreadable_input"):
        follow.segmentation_rois(not_dicom, store.get)
