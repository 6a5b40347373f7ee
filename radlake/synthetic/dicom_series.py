"""One writer of a generated CT volume as a DICOM CT series (one Part-10 instance per axial slice).

Used by :func:`radlake.synthetic.ct_volume.write_dicom_series` (radiomics tests, benchmarks, the lake's
radiomics sample), ``inference_workers.synthetic_study`` (studies fed straight to the inference workers)
and ``radlake demo`` (the chest CTs uploaded through the edges).

The volume is (z, y, x) HU with ``spacing`` (dz, dy, dx) mm; slice k lies at z = k * dz (slice 0 most
inferior), rows along +y and columns along +x of an LPS-aligned grid with its origin at 0. With
``flip_rows`` the rows are stored reversed (column direction -y, first row at the largest y), which is
what an anterior-up scanner sends; the anatomy in patient space is the same.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian, generate_uid


def ct_series(image: np.ndarray, spacing: Sequence[float], *, study_uid: str | None = None,
              series_uid: str | None = None, frame_uid: str | None = None,
              sop_uid: Callable[[int], str] | None = None, patient_id: str = "SYNTH0",
              patient_name: str = "Synthetic^Phantom", rescale_intercept: int = 0, flip_rows: bool = False,
              attributes: Mapping[str, Any] | None = None) -> list[bytes]:
    """The series as Part-10 bytes, one per slice in slice order.

    UIDs not given are fresh random ones (``sop_uid(k)`` names slice k's instance). Pixels are stored as
    int16 ``HU - rescale_intercept`` with RescaleSlope 1. ``attributes`` (keyword -> value) are set on every
    instance last, e.g. the fake PHI of a sample upload.
    """

    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    dz, dy, dx = (float(s) for s in spacing)
    rows = image.shape[1]
    out = []
    for k, plane in enumerate(image):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = sop_uid(k) if sop_uid else generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.PatientID, ds.PatientName = patient_id, patient_name
        ds.PatientBirthDate, ds.PatientSex, ds.AccessionNumber, ds.ReferringPhysicianName = "", "O", "", ""
        ds.StudyDate, ds.StudyTime, ds.StudyID = "20260101", "120000", "1"
        ds.Modality, ds.SeriesNumber, ds.InstanceNumber = "CT", 1, k + 1
        ds.Manufacturer = "radlake-synthetic"
        pixels = plane[::-1] if flip_rows else plane
        if flip_rows:
            ds.ImagePositionPatient = [0.0, float((rows - 1) * dy), float(k * dz)]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, -1.0, 0.0]
        else:
            ds.ImagePositionPatient = [0.0, 0.0, float(k * dz)]
            ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
        ds.PixelSpacing = [dy, dx]
        ds.SliceThickness = dz
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.Rows, ds.Columns = pixels.shape
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = rescale_intercept, 1, "HU"
        ds.PositionReferenceIndicator = ""
        stored = np.ascontiguousarray(pixels).astype(np.int32) - rescale_intercept
        ds.PixelData = stored.astype(np.int16).tobytes()
        for keyword, value in (attributes or {}).items():
            setattr(ds, keyword, value)
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
        out.append(buffer.getvalue())
    return out


def write_ct_series(image: np.ndarray, spacing: Sequence[float], folder: Path | str, **kwargs: Any) -> list[Path]:
    """:func:`ct_series` written to ``folder/CT_0000.dcm``, ... in slice order; returns the paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, blob in enumerate(ct_series(image, spacing, **kwargs)):
        path = folder / f"CT_{k:04d}.dcm"
        path.write_bytes(blob)
        paths.append(path)
    return paths
