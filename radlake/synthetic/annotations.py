"""Generated annotations on a generated image series, as a site's expert workflow would send them.

Each takes the source series as it was sent (provider UIDs, fake PHI in the header) and references it
the way the standard says: a DICOM SEG (highdicom) with a Referenced Series Sequence and per-frame source
image references; an RTSTRUCT (pydicom) with a Referenced Frame of Reference Sequence down to its RT Referenced
Series and Contour Image Sequence; a Comprehensive SR with its evidence sequence and an image reference in
its content tree. The patient and study attributes are copied from the source, as a PACS does.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import highdicom as hd
import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sr.codedict import codes
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

RT_STRUCTURE_SET_STORAGE = "1.2.840.10008.5.1.4.1.1.481.3"
COMPREHENSIVE_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.33"
_PATIENT_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyInstanceUID", "StudyDate",
                  "StudyTime", "StudyID", "AccessionNumber", "ReferringPhysicianName", "StudyDescription")


def _sorted(source: Sequence[Dataset]) -> list[Dataset]:
    return sorted(source, key=lambda ds: float(ds.ImagePositionPatient[2]))


def sphere_mask(source: Sequence[Dataset], centre: tuple[int, int, int], radius_vox: float) -> np.ndarray:
    """A (z, y, x) ball on the source grid, slices in the order of :func:`_sorted`."""
    first = source[0]
    shape = (len(source), int(first.Rows), int(first.Columns))
    z, y, x = np.ogrid[: shape[0], : shape[1], : shape[2]]
    return (z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius_vox**2


def seg(source: Sequence[Dataset], mask: np.ndarray, *, label: str = "lesion", sop_uid: str | None = None,
        series_uid: str | None = None) -> bytes:
    """A binary DICOM SEG of ``mask`` (z, y, x, slices in ascending z) on the source series."""
    ordered = _sorted(source)
    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    result = hd.seg.Segmentation(
        source_images=ordered, pixel_array=mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[description],
        series_instance_uid=series_uid or generate_uid(), series_number=901,
        sop_instance_uid=sop_uid or generate_uid(), instance_number=1, manufacturer="radlake-synthetic",
        manufacturer_model_name="seg-writer", software_versions="1", device_serial_number="0",
        content_creator_name="Annotator^Expert",
    )
    buffer = io.BytesIO()
    result.save_as(buffer)
    return buffer.getvalue()


def _copy_patient_study(target: Dataset, source: Dataset) -> None:
    for keyword in _PATIENT_STUDY:
        if keyword in source:
            setattr(target, keyword, source.data_element(keyword).value)


def _file(sop_class: str, sop_uid: str) -> FileDataset:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = sop_class, sop_uid
    return ds


def _bytes(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def _image_ref(ds: Dataset) -> Dataset:
    item = Dataset()
    item.ReferencedSOPClassUID = ds.SOPClassUID
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    return item


def circle_contours(source: Sequence[Dataset], centre: tuple[int, int, int], radius_vox: float,
                    points: int = 32) -> list[tuple[Dataset, np.ndarray]]:
    """Per slice that the ball crosses: (its image, a closed planar contour in patient mm, shape (n, 3))."""
    out = []
    for k, image in enumerate(_sorted(source)):
        r2 = radius_vox**2 - (k - centre[0]) ** 2
        if r2 <= 0:
            continue
        r = float(np.sqrt(r2))
        dy, dx = (float(v) for v in image.PixelSpacing)
        x0, y0, z0 = (float(v) for v in image.ImagePositionPatient)
        angles = np.linspace(0.0, 2 * np.pi, points, endpoint=False)
        cols = centre[2] + r * np.cos(angles)
        rows = centre[1] + r * np.sin(angles)
        out.append((image, np.c_[x0 + cols * dx, y0 + rows * dy, np.full(points, z0)]))
    return out


def rtstruct(source: Sequence[Dataset], centre: tuple[int, int, int], radius_vox: float, *,
             roi_name: str = "lesion", sop_uid: str | None = None, series_uid: str | None = None) -> bytes:
    """An RT Structure Set with one closed-planar ROI (a ball) on the source series."""
    ordered = _sorted(source)
    first = ordered[0]
    ds = _file(RT_STRUCTURE_SET_STORAGE, sop_uid or generate_uid())
    _copy_patient_study(ds, first)
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "RTSTRUCT", series_uid or generate_uid(), 902, 1
    ds.Manufacturer, ds.OperatorsName = "radlake-synthetic", "Contourer^Expert"
    ds.StructureSetLabel, ds.StructureSetDate, ds.StructureSetTime = "lesion", first.get("StudyDate", ""), "120000"
    ds.FrameOfReferenceUID = first.FrameOfReferenceUID

    series_item = Dataset()
    series_item.SeriesInstanceUID = first.SeriesInstanceUID
    series_item.ContourImageSequence = [_image_ref(image) for image in ordered]
    study_item = Dataset()
    study_item.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"  # Detached Study Management (retired, as used)
    study_item.ReferencedSOPInstanceUID = first.StudyInstanceUID
    study_item.RTReferencedSeriesSequence = [series_item]
    frame_item = Dataset()
    frame_item.FrameOfReferenceUID = first.FrameOfReferenceUID
    frame_item.RTReferencedStudySequence = [study_item]
    ds.ReferencedFrameOfReferenceSequence = [frame_item]

    roi = Dataset()
    roi.ROINumber, roi.ReferencedFrameOfReferenceUID, roi.ROIName = 1, first.FrameOfReferenceUID, roi_name
    roi.ROIGenerationAlgorithm = "MANUAL"
    ds.StructureSetROISequence = [roi]
    contours = []
    for image, points in circle_contours(ordered, centre, radius_vox):
        contour = Dataset()
        contour.ContourImageSequence = [_image_ref(image)]
        contour.ContourGeometricType = "CLOSED_PLANAR"
        contour.NumberOfContourPoints = len(points)
        contour.ContourData = [f"{v:.4f}" for v in points.ravel()]
        contours.append(contour)
    roi_contour = Dataset()
    roi_contour.ReferencedROINumber, roi_contour.ROIDisplayColor = 1, [255, 0, 0]
    roi_contour.ContourSequence = contours
    ds.ROIContourSequence = [roi_contour]
    observation = Dataset()
    observation.ObservationNumber, observation.ReferencedROINumber = 1, 1
    observation.RTROIInterpretedType, observation.ROIInterpreter = "ORGAN", ""
    ds.RTROIObservationsSequence = [observation]
    return _bytes(ds)


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue, item.CodingSchemeDesignator, item.CodeMeaning = value, scheme, meaning
    return item


def comprehensive_sr(source: Sequence[Dataset], *, sop_uid: str | None = None, series_uid: str | None = None,
                     finding: str = "Nodule") -> bytes:
    """A small Comprehensive SR: a finding with an image reference, and the evidence sequence naming the series."""
    ordered = _sorted(source)
    first = ordered[len(ordered) // 2]
    ds = _file(COMPREHENSIVE_SR_STORAGE, sop_uid or generate_uid())
    _copy_patient_study(ds, first)
    ds.Modality, ds.SeriesInstanceUID, ds.SeriesNumber, ds.InstanceNumber = "SR", series_uid or generate_uid(), 903, 1
    ds.Manufacturer = "radlake-synthetic"
    ds.ContentDate, ds.ContentTime = first.get("StudyDate", ""), "120000"
    ds.ValueType, ds.ContinuityOfContent = "CONTAINER", "SEPARATE"
    ds.ConceptNameCodeSequence = [_code("126000", "DCM", "Imaging Measurement Report")]
    ds.CompletionFlag, ds.VerificationFlag = "COMPLETE", "UNVERIFIED"
    finding_item = Dataset()
    finding_item.RelationshipType, finding_item.ValueType = "CONTAINS", "CODE"
    finding_item.ConceptNameCodeSequence = [_code("121071", "DCM", "Finding")]
    finding_item.ConceptCodeSequence = [_code("27925004", "SCT", finding)]
    image_item = Dataset()
    image_item.RelationshipType, image_item.ValueType = "CONTAINS", "IMAGE"
    image_item.ConceptNameCodeSequence = [_code("121112", "DCM", "Source of Measurement")]
    image_item.ReferencedSOPSequence = [_image_ref(first)]
    ds.ContentSequence = [finding_item, image_item]
    evidence_series = Dataset()
    evidence_series.SeriesInstanceUID = first.SeriesInstanceUID
    evidence_series.ReferencedSOPSequence = [_image_ref(image) for image in ordered]
    evidence_study = Dataset()
    evidence_study.StudyInstanceUID = first.StudyInstanceUID
    evidence_study.ReferencedSeriesSequence = [evidence_series]
    ds.CurrentRequestedProcedureEvidenceSequence = [evidence_study]
    return _bytes(ds)
