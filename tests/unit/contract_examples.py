"""Valid events of every contract, shared by the contract tests."""

from __future__ import annotations

from collections.abc import Iterator

from pydantic import BaseModel

from lake_schemas.events import (
    AnnotationReceived,
    AnnotationReceivedData,
    FeaturesComputed,
    FeaturesComputedData,
    FeaturesComputedRoi,
    InstanceReceived,
    InstanceReceivedData,
    InstanceRef,
    ManifestSeries,
    PredictionCandidate,
    PredictionCreated,
    PredictionCreatedData,
    PredictionInput,
    PredictionModel,
    Quarantined,
    QuarantinedData,
    SeriesSummary,
    StoredDicom,
    StudyCompleted,
    StudyCompletedData,
    StudyManifest,
    StudyManifestData,
)


def contract_examples() -> Iterator[BaseModel]:
    """One valid event of every contract, each with its optional parts filled."""
    yield InstanceReceived(provider="site-a", data=InstanceReceivedData(
        project="p1", pseudo_patient_id="PX", study_uid="2.25.1", series_uid="2.25.2", sop_instance_uid="2.25.3",
        frame_of_reference_uid="2.25.4", sop_class_uid="1.2.840.10008.5.1.4.1.1.2", modality="CT",
        transfer_syntax_uid="1.2.840.10008.1.2.1", instance_number=7, rows=512, columns=512,
        pixel_spacing=(0.7, 0.7), slice_thickness=1.25, image_position_patient=(-100.0, -120.5, 33.25),
        image_orientation_patient=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0), object_uri="file:///x.dcm", sha256="0" * 64,
        size_bytes=10, deid_profile_version="v1"))
    ref = InstanceRef(sop_instance_uid="2.25.3", object_uri="file:///o/3.dcm", sha256="a" * 64,
                      image_position_patient=(0, 0, 1))
    yield StudyManifest(provider="s", data=StudyManifestData(
        project="p", study_uid="2.25.1", upload_id="u1", expected_instances=2,
        series=(ManifestSeries(series_uid="2.25.2", expected_instances=2),)))
    yield StudyCompleted(provider="s", event_type="study.updated", data=StudyCompletedData(
        project="p", pseudo_patient_id="RL1", study_uid="2.25.1", study_version=2, completion_reason="quiet_period",
        providers=("s",), instance_count=1, event_ids=("e1",),
        series=(SeriesSummary(series_uid="2.25.2", modality="CT", instance_count=1, instances=(ref,),
                              first_position=(0, 0, 1), last_position=(0, 0, 1)),)))
    yield Quarantined(provider="s", data=QuarantinedData(stage="deid", reason="TRUNCATED_FILE", message="truncated",
                                                         input_sha256="b" * 64))
    yield PredictionCreated(provider="s", data=PredictionCreatedData(
        project="p", pseudo_patient_id="RL1", study_uid="2.25.1", study_version=1, series_uid="2.25.2",
        source_event_id="e9", model=PredictionModel(name="nodule-cnn", version=3, stage="Production",
                                                    weights_sha256="c" * 64),
        inputs=(PredictionInput(sop_instance_uid="2.25.3", sha256="a" * 64),),
        candidates=(PredictionCandidate(finding_id=1, centre_mm=(1.0, 2.0, 3.0), centre_voxel=(4.0, 5.0, 6.0),
                                        diameter_mm=8.5, probability=0.9, malignancy_probability=0.7, segment_number=1,
                                        gradcam_uri="file:///o/cam.nii.gz", gradcam_sha256="d" * 64),),
        malignancy_score=0.63, threshold=0.4, positive=True,
        seg=StoredDicom(uri="file:///o/seg.dcm", sha256="e" * 64, sop_instance_uid="2.25.4"),
        sr=StoredDicom(uri="file:///o/sr.dcm", sha256="f" * 64, sop_instance_uid="2.25.5"),
        latency_ms=812.5, batch_studies=4, worker_id="w1", device="cpu"))
    yield FeaturesComputed(provider="s", data=FeaturesComputedData(
        project="p", pseudo_patient_id="RL1", study_uid="2.25.1", settings_hash="1" * 64,
        code_version="radlake-0.1.0+features.2", table="gold/radiomics_features", table_version=7, run_id="r1",
        source_event_id=None,
        rois=(FeaturesComputedRoi(series_uid="2.25.2", roi="nodule-1", mask_sha256="2" * 64, status="computed",
                                  feature_count=483, reason=None),
              FeaturesComputedRoi(series_uid="2.25.2", roi="nodule-2", mask_sha256="3" * 64, status="failed",
                                  feature_count=0, reason="geometry_mismatch"))))
    yield AnnotationReceived(provider="s", data=AnnotationReceivedData(
        project="p", pseudo_patient_id="RL1", study_uid="2.25.1", series_uid="2.25.9", sop_instance_uid="2.25.10",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.481.3", annotation_kind="rtstruct", modality="RTSTRUCT",
        transfer_syntax_uid="1.2.840.10008.1.2.1", frame_of_reference_uid="2.25.4", referenced_series_uids=("2.25.2",),
        referenced_instance_count=12, object_uri="file:///o/rt.dcm", sha256="4" * 64, size_bytes=2048,
        deid_profile_version="v1"))
