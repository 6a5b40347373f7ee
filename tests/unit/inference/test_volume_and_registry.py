"""Claim-check loading (hash verified), the Delta model registry, and the DICOM results."""

from __future__ import annotations

import gzip
import io
import time
from dataclasses import replace

import highdicom as hd
import nibabel as nib
import numpy as np
import pytest
import torch

from inference_workers.errors import InferenceReason, ModelRegistryError, StudyRejected
from inference_workers.model_registry import ModelRegistry, RegisteredModel, network_to_bytes
from inference_workers.prediction import Predictor
from inference_workers.synthetic_study import publishable_study
from inference_workers.volume import load_series, select_series
from platform_layer.object_store import ObjectStore


@pytest.fixture
def store(tmp_path):
    return ObjectStore(str(tmp_path / "objects"))


def test_a_series_loads_back_as_the_generated_hu(store, phantom):
    event = publishable_study(store, phantom, name="load")
    volume, datasets = load_series(store, select_series(event.data))
    np.testing.assert_array_equal(volume.array, phantom.image.astype(np.float32))
    assert volume.array.dtype == np.float32
    assert volume.geometry.spacing == pytest.approx(phantom.spacing)
    assert [str(d.SOPInstanceUID) for d in datasets] == [r.sop_instance_uid for r in event.data.series[0].instances]


def test_hash_mismatch_and_missing_objects_are_rejected_with_their_reason(store, phantom):
    event = publishable_study(store, phantom, name="bad")
    series = event.data.series[0]
    tampered = series.model_copy(update={"instances": (series.instances[0].model_copy(update={"sha256": "0" * 64}),
                                                       *series.instances[1:])})
    with pytest.raises(StudyRejected) as info:
        load_series(store, tampered)
    assert info.value.reason is InferenceReason.HASH_MISMATCH
    missing = series.model_copy(update={"instances": (series.instances[0].model_copy(
        update={"object_uri": series.instances[0].object_uri + ".gone"}), *series.instances[1:])})
    with pytest.raises(StudyRejected) as info:
        load_series(store, missing)
    assert info.value.reason is InferenceReason.UNREADABLE_VOLUME


def test_not_dicom_bytes_are_unreadable(store, phantom):
    event = publishable_study(store, phantom, name="garbage")
    junk = store.put(b"not a dicom file", prefix="junk")
    series = event.data.series[0]
    broken = series.model_copy(update={"instances": (series.instances[0].model_copy(
        update={"object_uri": junk.uri, "sha256": junk.sha256}), *series.instances[1:])})
    with pytest.raises(StudyRejected) as info:
        load_series(store, broken)
    assert info.value.reason is InferenceReason.UNREADABLE_VOLUME


def test_registry_versions_stages_and_verified_loading(tmp_path, store, tiny_model):
    net, spec, metrics = tiny_model
    registry = ModelRegistry(str(tmp_path / "registry"), store)
    first = registry.register("nodule", network_to_bytes(net), spec, {"epochs": 1}, {"auc": 0.5}, stage="Production")
    second = registry.register("nodule", network_to_bytes(net), spec, {"epochs": 1}, {"auc": 0.6}, stage="Staging")
    assert (first.version, second.version) == (1, 2)
    assert registry.get("nodule", stage="Production").version == 1
    registry.set_stage("nodule", 2, "Production")
    assert registry.get("nodule", stage="Production").version == 2
    assert registry.get("nodule", version=1).stage == "Archived"
    assert registry.record_metrics("nodule", 2, {"test_auc": 0.7}).metrics == {"auc": 0.6, "test_auc": 0.7}
    loaded = registry.load(registry.get("nodule", version=2))
    for a, b in zip(loaded.state_dict().values(), net.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert registry.get("nodule", version=2).spec == spec
    with pytest.raises(ModelRegistryError):
        registry.get("nodule", stage="Staging")
    forged = registry.get("nodule", version=2).__class__(**{**registry.get("nodule", version=2).__dict__,
                                                           "weights_sha256": "1" * 64})
    with pytest.raises(ModelRegistryError, match="unusable"):
        registry.load(forged)


def test_predictor_writes_seg_sr_and_gradcam_that_reference_the_source(store, phantom, tiny_model, eager_spec):



    net, _, _ = tiny_model
    event = publishable_study(store, phantom, name="outputs", flip_rows=True)
    model = RegisteredModel("nodule", 1, "Production", "file:///w.pt", "a" * 64, eager_spec, {}, {})
    [outcome] = Predictor(model, net, store, torch.device("cpu"), "unit").run([(event, time.monotonic())])
    prediction = outcome.prediction.data
    sources = {r.sop_instance_uid for r in event.data.series[0].instances}
    assert {i.sop_instance_uid for i in prediction.inputs} == sources
    seg = hd.seg.segread(io.BytesIO(store.get(prediction.seg.uri, prediction.seg.sha256)))
    assert seg.StudyInstanceUID == event.data.study_uid and seg.PatientID == event.data.pseudo_patient_id
    assert seg.SOPInstanceUID == prediction.seg.sop_instance_uid and seg.SOPInstanceUID.startswith("2.25.")
    assert {uid for _, _, uid in seg.get_source_image_uids()} <= sources
    assert list(seg.segment_numbers) == [c.segment_number for c in prediction.candidates]
    sr = hd.sr.srread(io.BytesIO(store.get(prediction.sr.uri, prediction.sr.sha256)))
    assert sr.StudyInstanceUID == event.data.study_uid and sr.SOPInstanceUID.startswith("2.25.")
    groups = sr.content.get_volumetric_roi_measurement_groups()
    assert len(groups) == len(prediction.candidates)
    for k, group in enumerate(groups, start=1):
        assert group.referenced_segment.referenced_sop_instance_uid == seg.SOPInstanceUID
        assert list(group.referenced_segment.referenced_segment_numbers) == [k]
        assert group.referenced_segment.source_series_for_segmentation.value == \
            event.data.series[0].series_uid
        assert {m.name.meaning for m in group.get_measurements()} >= {"Diameter", "Probability of cancer"}
    for candidate in prediction.candidates:
        data = store.get(candidate.gradcam_uri, candidate.gradcam_sha256)
        cam = nib.Nifti1Image.from_bytes(gzip.decompress(data))
        assert cam.shape == (24, 24, 24)
        # the map's centre voxel lies at the candidate's centre (RAS = LPS with x, y negated)
        centre_ras = cam.affine @ np.array([12, 12, 12, 1.0])
        lps = np.array([-centre_ras[0], -centre_ras[1], centre_ras[2]])
        assert np.linalg.norm(lps - np.array(candidate.centre_mm)) < 2.5


def test_a_study_without_findings_still_gets_an_sr_and_no_seg(store, phantom, tiny_model):



    net, spec, _ = tiny_model
    strict = replace(spec, presence_threshold=1.01)
    event = publishable_study(store, phantom, name="negative")
    model = RegisteredModel("nodule", 1, "Production", "file:///w.pt", "a" * 64, strict, {}, {})
    [outcome] = Predictor(model, net, store, torch.device("cpu"), "unit").run([(event, time.monotonic())])
    assert outcome.rejection is None
    prediction = outcome.prediction.data
    assert prediction.candidates == () and prediction.seg is None and prediction.malignancy_score == 0.0
    assert not prediction.positive or prediction.threshold == 0.0
    sr = hd.sr.srread(io.BytesIO(store.get(prediction.sr.uri, prediction.sr.sha256)))
    assert sr.StudyInstanceUID == event.data.study_uid
    assert sr.content.get_volumetric_roi_measurement_groups() == []
    [study_level] = sr.content.get_image_measurement_groups()
    assert [m.value for m in study_level.get_measurements()] == [0.0]
