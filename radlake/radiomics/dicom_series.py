"""DICOM image series (one folder, one series) as a volume: slices ordered along the slice normal on one
regular grid (:func:`radlake.imaging.volume.volume_from_datasets`)."""

from __future__ import annotations

from pathlib import Path

import pydicom
from pydicom.errors import InvalidDicomError

from radlake.imaging.volume import GeometryError, PixelDataError, Volume, volume_from_datasets
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason


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
    try:
        volume, _ = volume_from_datasets(slices)
    except GeometryError as err:
        raise InvalidInputError(RadiomicsReason.GEOMETRY_MISMATCH, f"{folder}: {err}") from err
    except PixelDataError as err:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT,
                                f"{folder}: pixel data cannot be decoded: {err}") from err
    return volume
