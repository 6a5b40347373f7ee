"""NIfTI images and masks (nibabel); RAS affines are converted to the LPS convention of DICOM."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from radlake.imaging.volume import Geometry, Volume
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def read_nifti(path: Path | str) -> Volume:

    try:
        img = nib.load(str(path))
        data = np.asarray(img.dataobj)
    except (OSError, ValueError, EOFError, nib.filebasedimages.ImageFileError) as err:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"cannot read NIfTI {path}: {err}") from err
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"{path}: expected a 3D volume, got {data.shape}")
    affine = np.asarray(img.affine, dtype=np.float64)
    linear = _RAS_TO_LPS @ affine[:3, :3]
    zooms = np.linalg.norm(linear, axis=0)
    direction = linear / zooms[None, :]
    origin = _RAS_TO_LPS @ affine[:3, 3]
    geometry = Geometry(
        shape=tuple(int(s) for s in data.shape[::-1]),
        spacing=tuple(float(z) for z in zooms[::-1]),
        origin=tuple(float(o) for o in origin),
        direction=tuple(tuple(float(v) for v in row) for row in direction),
    )
    return Volume(array=data.transpose(2, 1, 0), geometry=geometry)


def write_nifti(path: Path | str, array: np.ndarray, geometry: Geometry) -> None:

    affine = geometry.affine()
    affine[:3, :] = _RAS_TO_LPS @ affine[:3, :]
    nib.save(nib.Nifti1Image(np.asarray(array).transpose(2, 1, 0), affine), str(path))
