"""DICOM image series (one folder, one series): slices sorted along the slice normal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from radlake.radiomics.errors import InvalidInputError, RadiomicsReason
from radlake.radiomics.geometry import Geometry, Volume


def read_series(folder: Path | str) -> Volume:
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    slices = []
    for path in files:
        try:
            ds = pydicom.dcmread(path)
        except (InvalidDicomError, OSError):
            continue
        if "PixelData" in ds and "ImagePositionPatient" in ds and ds.get("Modality") not in {"SEG", "RTSTRUCT"}:
            slices.append(ds)
    if not slices:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"no DICOM image slices under {folder}")
    series = {ds.SeriesInstanceUID for ds in slices}
    if len(series) > 1:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"{folder} holds {len(series)} series; give one")
    row = np.asarray(slices[0].ImageOrientationPatient[:3], dtype=np.float64)
    col = np.asarray(slices[0].ImageOrientationPatient[3:], dtype=np.float64)
    normal = np.cross(row, col)
    slices.sort(key=lambda ds: float(np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=np.float64))))
    positions = np.array([np.dot(normal, np.asarray(ds.ImagePositionPatient, dtype=np.float64)) for ds in slices])
    gaps = np.diff(positions)
    if gaps.size and (np.any(gaps <= 0) or np.ptp(gaps) > 1e-3 * max(1.0, gaps.mean())):
        raise InvalidInputError(RadiomicsReason.GEOMETRY_MISMATCH, f"{folder}: slices are not evenly spaced")
    dz = float(gaps.mean()) if gaps.size else float(slices[0].get("SliceThickness", 1.0))
    dy, dx = (float(v) for v in slices[0].PixelSpacing)
    array = np.stack([
        ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(ds.get("RescaleIntercept", 0))
        for ds in slices
    ])
    geometry = Geometry(
        shape=tuple(int(s) for s in array.shape),
        spacing=(dz, dy, dx),
        origin=tuple(float(v) for v in slices[0].ImagePositionPatient),
        direction=tuple(tuple(float(v) for v in r) for r in np.stack([row, col, normal], axis=1)),
    )
    return Volume(array=array, geometry=geometry, sop_instance_uids=tuple(ds.SOPInstanceUID for ds in slices))
