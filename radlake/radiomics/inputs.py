"""Load an image and an ROI mask from files, by format, and check that they share one grid.

Images: NIfTI (``.nii``, ``.nii.gz``) or a DICOM series (folder or file). Masks: NIfTI label maps,
DICOM SEG, RTSTRUCT (rasterised on the image grid). Label-map masks on another grid are rejected.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError

from radlake.imaging.volume import Volume
from radlake.radiomics.dicom_seg import read_seg
from radlake.radiomics.dicom_series import read_series
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason
from radlake.radiomics.geometry import require_same_grid, select_label
from radlake.radiomics.nifti import read_nifti
from radlake.radiomics.rtstruct import read_rtstruct


def _is_nifti(path: Path) -> bool:
    return path.name.endswith((".nii", ".nii.gz"))


def load_image(path: Path | str) -> Volume:
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"{path} does not exist")
    return read_nifti(path) if _is_nifti(path) else read_series(path)


def load_mask(path: Path | str, image: Volume, label: int | None) -> np.ndarray:
    """Boolean (z, y, x) ROI on ``image``'s grid."""
    path = Path(path)
    if not path.exists():
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"{path} does not exist")
    if _is_nifti(path):
        mask = read_nifti(path)
        require_same_grid(image.geometry, mask.geometry)
        return select_label(mask.array, label)
    try:
        modality = pydicom.dcmread(str(path), stop_before_pixels=True).get("Modality")
    except (InvalidDicomError, OSError, IsADirectoryError) as err:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"cannot read mask {path}: {err}") from err
    if modality == "SEG":
        roi = read_seg(path, image, label)
    elif modality == "RTSTRUCT":
        roi = read_rtstruct(path, image, label)
    else:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"{path}: unsupported mask modality {modality}")
    return select_label(roi.astype(np.uint8), None)
