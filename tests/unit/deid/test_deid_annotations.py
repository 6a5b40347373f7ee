"""Annotations (SEG, RTSTRUCT, SR) de-identified with the same key as the images they reference: every
reference becomes the pseudonymous UID of the image it names."""

from __future__ import annotations

import io
import json

import jsonschema
import numpy as np
import pydicom
import pytest

from lake_schemas.events import AnnotationReceived, InstanceReceived
from lake_schemas.topics import ANNOTATION_RECEIVED
from platform_layer.object_store import ObjectStore
from radlake import dicom_io
from radlake.annotations import AnnotationKind, annotation_kind, referenced_series_uids, referenced_sop_instance_uids
from radlake.deid.errors import QuarantineReason
from radlake.deid.instance_result import Status
from radlake.deid.pipeline import deidentify_instances
from radlake.deid.pseudonyms import LocalHmac
from radlake.instance_events import store_and_describe
from radlake.synthetic import annotations
from radlake.synthetic.dicom_series import ct_series

KEY = LocalHmac(b"annotations-test-key")
PHI = {"PatientName": "Doe^Jane", "PatientID": "MRN-0042", "AccessionNumber": "ACC99", "StudyDescription": "CT THORAX"}


@pytest.fixture(scope="module")
def source() -> list[pydicom.Dataset]:
    image = np.full((6, 24, 24), -800, dtype=np.int16)
    return [pydicom.dcmread(io.BytesIO(b)) for b in ct_series(image, (2.0, 0.8, 0.8), attributes=PHI)]


@pytest.fixture(scope="module")
def released(source, default_rules):
    """The images, a SEG, an RTSTRUCT and an SR de-identified in two separate calls with one key."""
    images = [pydicom.dcmread(io.BytesIO(r.encoded)) for r in
              deidentify_instances([_bytes(ds) for ds in source], default_rules, KEY, "st-olav")]
    mask = annotations.sphere_mask(source, (3, 12, 12), 2.5)
    objects = [annotations.seg(source, mask), annotations.rtstruct(source, (3, 12, 12), 2.5),
               annotations.comprehensive_sr(source)]
    results = deidentify_instances(objects, default_rules, KEY, "st-olav")
    assert [r.status for r in results] == [Status.DEIDENTIFIED] * 3, [(r.reason, r.message) for r in results]
    return images, [pydicom.dcmread(io.BytesIO(r.encoded)) for r in results]


def _bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def test_annotation_classes_are_recognised_by_sop_class():
    assert annotation_kind("1.2.840.10008.5.1.4.1.1.66.4") is AnnotationKind.SEG
    assert annotation_kind("1.2.840.10008.5.1.4.1.1.481.3") is AnnotationKind.RTSTRUCT
    assert annotation_kind("1.2.840.10008.5.1.4.1.1.88.33") is AnnotationKind.SR
    assert annotation_kind("1.2.840.10008.5.1.4.1.1.88.59") is AnnotationKind.KOS
    assert annotation_kind("1.2.840.10008.5.1.4.1.1.11.1") is AnnotationKind.PR
    assert annotation_kind("1.2.840.10008.5.1.4.1.1.2") is None  # CT Image Storage


def test_an_rtstruct_or_sr_is_read_without_pixel_data(source):
    for data in (annotations.rtstruct(source, (3, 12, 12), 2.5), annotations.comprehensive_sr(source)):
        assert dicom_io.read_part10(data).ok


def test_an_image_or_a_seg_without_pixel_data_is_still_refused(source, default_rules):
    image = pydicom.dcmread(io.BytesIO(_bytes(source[0])))
    del image.PixelData
    seg = pydicom.dcmread(io.BytesIO(annotations.seg(source, annotations.sphere_mask(source, (3, 12, 12), 2.5))))
    del seg.PixelData
    for ds in (image, seg):
        assert dicom_io.read_part10(_bytes(ds)).reason is QuarantineReason.NO_PIXEL_DATA
        result = deidentify_instances([_bytes(ds)], default_rules, KEY, "st-olav")[0]
        assert result.status is Status.QUARANTINED and result.reason == QuarantineReason.NO_PIXEL_DATA


def test_references_resolve_to_the_pseudonymised_images(released, source):
    images, (seg, rtstruct, sr) = released
    series = {str(ds.SeriesInstanceUID) for ds in images}
    sops = {str(ds.SOPInstanceUID) for ds in images}
    study = {str(ds.StudyInstanceUID) for ds in images}
    frame = {str(ds.FrameOfReferenceUID) for ds in images}
    assert len(series) == len(study) == len(frame) == 1 and series.isdisjoint({str(source[0].SeriesInstanceUID)})
    for ds in (seg, rtstruct, sr):
        assert {str(ds.StudyInstanceUID)} == study
        assert set(referenced_series_uids(ds)) == series
        assert set(referenced_sop_instance_uids(ds)) <= sops | study  # RTReferencedStudy names the study
        assert set(referenced_sop_instance_uids(ds)) & sops
        assert str(ds.PatientID) == str(images[0].PatientID) and "Doe" not in str(ds.PatientName)
    assert str(seg.ReferencedSeriesSequence[0].SeriesInstanceUID) in series
    assert {str(f.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID)
            for f in seg.PerFrameFunctionalGroupsSequence} <= sops
    assert {str(seg.FrameOfReferenceUID), str(rtstruct.FrameOfReferenceUID)} == frame
    ref_frame = rtstruct.ReferencedFrameOfReferenceSequence[0]
    assert str(ref_frame.FrameOfReferenceUID) in frame
    assert str(ref_frame.RTReferencedStudySequence[0].ReferencedSOPInstanceUID) in study
    assert str(rtstruct.StructureSetROISequence[0].ReferencedFrameOfReferenceUID) in frame
    contour_images = {str(c.ContourImageSequence[0].ReferencedSOPInstanceUID)
                      for c in rtstruct.ROIContourSequence[0].ContourSequence}
    assert contour_images and contour_images <= sops
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0]
    assert str(evidence.StudyInstanceUID) in study
    assert {str(i.ReferencedSOPInstanceUID) for i in evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence} == sops
    assert str(sr.ContentSequence[1].ReferencedSOPSequence[0].ReferencedSOPInstanceUID) in sops


def test_annotations_leave_no_planted_phi(released):
    _, objects = released
    for ds in objects:
        text = str(ds)
        for value in ("Doe", "MRN-0042", "ACC99", "Annotator", "Contourer"):
            assert value not in text


def test_stored_annotations_are_announced_as_annotations(source, default_rules, tmp_path):
    store = ObjectStore(str(tmp_path))
    images = deidentify_instances([_bytes(ds) for ds in source], default_rules, KEY, "st-olav")
    image_events = [store_and_describe(r.encoded, store, provider="st-olav", project="p1", deid_profile_version="v")
                    for r in images]
    assert all(isinstance(e, InstanceReceived) for e in image_events)
    objects = [annotations.seg(source, annotations.sphere_mask(source, (3, 12, 12), 2.5)),
               annotations.rtstruct(source, (3, 12, 12), 2.5), annotations.comprehensive_sr(source)]
    events = [store_and_describe(r.encoded, store, provider="st-olav", project="p1", deid_profile_version="v")
              for r in deidentify_instances(objects, default_rules, KEY, "st-olav")]
    assert [type(e) for e in events] == [AnnotationReceived] * 3
    assert [e.data.annotation_kind for e in events] == ["seg", "rtstruct", "sr"]
    for event in events:
        jsonschema.validate(json.loads(event.model_dump_json()), ANNOTATION_RECEIVED.schema)
        assert event.data.study_uid == image_events[0].data.study_uid
        assert event.data.referenced_series_uids == (image_events[0].data.series_uid,)
        assert event.data.referenced_instance_count >= 1
        assert "MRN" not in event.model_dump_json() and "Doe" not in event.model_dump_json()
    again = store_and_describe(deidentify_instances(objects[:1], default_rules, KEY, "st-olav")[0].encoded, store,
                               provider="st-olav", project="p1", deid_profile_version="v")
    assert again.event_id == events[0].event_id  # a re-sent annotation is a redelivery
