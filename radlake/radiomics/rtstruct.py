"""RTSTRUCT masks rasterised on the image grid.

Method: each closed planar contour (ContourData, LPS mm) is mapped to continuous voxel indices with
the inverse image affine; its slice is the nearest z index (a contour more than 0.1 slice away from
a slice plane, or off-plane, is a geometry mismatch). The polygon is filled in (row, column)
with scikit-image's ``draw.polygon``: a voxel is inside when its centre is inside the polygon.
Contours of one ROI on the same slice combine by the even-odd rule, so inner contours cut holes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from skimage import draw

from radlake.imaging.volume import Volume
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason


def roi_names(ds: pydicom.Dataset) -> dict[int, str]:
    return {int(r.ROINumber): str(r.ROIName) for r in ds.StructureSetROISequence}


def read_rtstruct(path: Path | str, image: Volume, label: int | None) -> np.ndarray:
    """Rasterise ROI number ``label`` (``None``: the first ROI with contours) on ``image``'s grid."""
    try:
        ds = pydicom.dcmread(str(path))
        contours = {int(c.ReferencedROINumber): c for c in ds.ROIContourSequence}
    except (InvalidDicomError, OSError, AttributeError) as err:
        raise InvalidInputError(RadiomicsReason.UNREADABLE_INPUT, f"cannot read RTSTRUCT {path}: {err}") from err
    names = roi_names(ds)
    if label is None:
        with_contours = [n for n, c in contours.items() if "ContourSequence" in c]
        if not with_contours:
            raise InvalidInputError(RadiomicsReason.EMPTY_MASK, "the RTSTRUCT holds no contour")
        label = with_contours[0]
    if label not in contours:
        raise InvalidInputError(RadiomicsReason.LABEL_NOT_FOUND, f"ROI {label} not in RTSTRUCT (ROIs: {names})")
    to_index = np.linalg.inv(image.geometry.affine())
    mask = np.zeros(image.array.shape, dtype=bool)
    nz, ny, nx = mask.shape
    for contour in getattr(contours[label], "ContourSequence", []):
        points = np.asarray(contour.ContourData, dtype=np.float64).reshape(-1, 3)
        ijk = (to_index @ np.c_[points, np.ones(len(points))].T)[:3].T  # columns: x, y, z index
        k = np.round(ijk[:, 2])
        if np.ptp(ijk[:, 2]) > 0.1 or abs(ijk[0, 2] - k[0]) > 0.1:
            raise InvalidInputError(RadiomicsReason.GEOMETRY_MISMATCH, "an RTSTRUCT contour is not on an image slice")
        z = int(k[0])
        if not 0 <= z < nz:
            raise InvalidInputError(RadiomicsReason.MASK_OUTSIDE_IMAGE, f"contour on slice {z} outside the image")
        rr, cc = draw.polygon(ijk[:, 1], ijk[:, 0], shape=(ny, nx))
        fill = np.zeros((ny, nx), dtype=bool)
        fill[rr, cc] = True
        mask[z] ^= fill
    return mask
