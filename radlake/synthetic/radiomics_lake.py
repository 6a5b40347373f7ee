"""A generated radiomics cohort for the lake: CT series in an object store, their events, and ROI masks.

Each case is a synthetic CT (``ct_volume``) with one lesion, written as a DICOM series with pseudonymous
``2.25`` UIDs, stored in an :class:`~radlake.claim_check.ObjectSink` (claim-checks: URI + SHA-256) and described by
``instance received`` events; its lesion mask is stored as a DICOM SEG (highdicom) or a NIfTI label map
and described as a ``silver/rois`` row. Used by the radiomics job's integration test and its benchmark.
"""

from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
from pydicom.sr.codedict import codes

from lake_schemas.events import InstanceReceived
from radlake.claim_check import ObjectSink
from radlake.imaging.volume import Geometry
from radlake.instance_events import store_and_describe
from radlake.radiomics.nifti import write_nifti
from radlake.synthetic import ct_volume
from radlake.synthetic.lake_events import uid


@dataclass(frozen=True)
class Case:
    name: str
    provider: str
    project: str
    patient: str
    image: np.ndarray  # (z, y, x) HU as stored
    mask: np.ndarray  # (z, y, x) bool
    spacing: tuple[float, float, float]
    events: tuple[InstanceReceived, ...]  # in slice order
    datasets: tuple  # pydicom datasets, in slice order

    @property
    def study_uid(self) -> str:
        return self.events[0].data.study_uid

    @property
    def series_uid(self) -> str:
        return self.events[0].data.series_uid


def make_case(store: ObjectSink, name: str, *, provider: str = "st-olav", project: str = "radiomics-test",
              kind: str = "sphere", shape=(12, 40, 40), spacing=(2.0, 0.75, 0.75), radius_mm: float = 5.0,
              seed: int = 0) -> Case:


    make = ct_volume.spherical_lesion if kind == "sphere" else ct_volume.irregular_lesion
    ct = make(shape=shape, spacing=spacing, radius_mm=radius_mm, seed=seed)
    patient = f"RL-{name}"
    events, datasets = [], []
    with tempfile.TemporaryDirectory(prefix="radlake-case-") as tmp:
        for k, path in enumerate(ct_volume.write_dicom_series(ct, tmp, seed=seed)):
            ds = pydicom.dcmread(path)
            ds.StudyInstanceUID, ds.SeriesInstanceUID = uid(name, "study"), uid(name, "series")
            ds.FrameOfReferenceUID = uid(name, "for")
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid(name, "sop", k)
            ds.PatientID, ds.PatientName = patient, f"{patient}^"
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            events.append(store_and_describe(buffer.getvalue(), store, provider=provider, project=project,
                                             deid_profile_version="ps3.15-test"))
            datasets.append(pydicom.dcmread(io.BytesIO(buffer.getvalue())))
    return Case(name, provider, project, patient, ct.image, ct.mask.astype(bool), tuple(ct.spacing), tuple(events),
                tuple(datasets))


def seg_bytes(case: Case, label: str = "nodule") -> bytes:
    """A binary DICOM SEG of the case's lesion (one segment) on its source series."""

    description = hd.seg.SegmentDescription(
        segment_number=1, segment_label=label,
        segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
        segmented_property_type=codes.SCT.Nodule,
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=list(case.datasets), pixel_array=case.mask.astype(np.uint8),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY, segment_descriptions=[description],
        series_instance_uid=uid(case.name, "seg-series"), series_number=900,
        sop_instance_uid=uid(case.name, "seg"), instance_number=1, manufacturer="radlake-synthetic",
        manufacturer_model_name="test", software_versions="1", device_serial_number="0",
    )
    buffer = io.BytesIO()
    seg.save_as(buffer)
    return buffer.getvalue()


def nifti_bytes(case: Case, *, spacing: tuple[float, float, float] | None = None) -> bytes:
    """The lesion as a NIfTI label map on the case's grid (another ``spacing`` puts it on another grid)."""

    geometry = Geometry(shape=case.mask.shape, spacing=spacing or case.spacing,
                        origin=tuple(float(v) for v in case.datasets[0].ImagePositionPatient),
                        direction=((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))
    with tempfile.TemporaryDirectory(prefix="radlake-nifti-") as tmp:
        path = Path(tmp) / "mask.nii.gz"
        write_nifti(path, case.mask.astype(np.uint8), geometry)
        return path.read_bytes()


def roi_row(case: Case, roi: str, kind: str, data: bytes, store: ObjectSink, label: int | None = None) -> dict:
    stored = store.put(data, prefix=f"masks/{case.study_uid}", suffix=".nii.gz" if kind == "nifti" else ".dcm")
    return {"provider": case.provider, "project": case.project, "pseudo_patient_id": case.patient,
            "study_uid": case.study_uid, "series_uid": case.series_uid, "roi": roi, "mask_kind": kind,
            "mask_uri": stored.uri, "mask_sha256": stored.sha256, "label": label, "source": "synthetic"}
