"""The mask-vs-image geometry check, label selection and the ROI's bounding box.

The voxel grid is :class:`radlake.imaging.volume.Geometry`. A mask on another grid is reported, never
resampled.
"""

from __future__ import annotations

import numpy as np

from radlake.imaging.volume import Geometry
from radlake.radiomics.errors import InvalidInputError, RadiomicsReason


def world_bounds(geometry: Geometry) -> tuple[np.ndarray, np.ndarray]:
    nz, ny, nx = geometry.shape
    corners = np.array([[x, y, z, 1.0] for x in (0, nx - 1) for y in (0, ny - 1) for z in (0, nz - 1)])
    world = (geometry.affine() @ corners.T)[:3].T
    return world.min(axis=0), world.max(axis=0)


def require_same_grid(image: Geometry, mask: Geometry) -> None:
    problems = image.differences(mask)
    if problems:
        (ilo, ihi), (mlo, mhi) = world_bounds(image), world_bounds(mask)
        if np.any(mlo > ihi + 1e-3) or np.any(mhi < ilo - 1e-3):
            raise InvalidInputError(
                RadiomicsReason.MASK_OUTSIDE_IMAGE,
                f"the mask grid (LPS {mlo.round(1).tolist()}..{mhi.round(1).tolist()}) lies outside the image "
                f"(LPS {ilo.round(1).tolist()}..{ihi.round(1).tolist()})",
            )
        raise InvalidInputError(
            RadiomicsReason.GEOMETRY_MISMATCH,
            "mask and image grids differ (" + "; ".join(problems) + "); resample the mask explicitly",
        )


def select_label(mask: np.ndarray, label: int | None) -> np.ndarray:
    """Boolean ROI of ``label`` (``None``: every non-zero voxel)."""
    if label is None:
        roi = mask != 0
    else:
        roi = mask == label
        if not roi.any() and np.any(mask):
            present = sorted(int(v) for v in np.unique(mask) if v != 0)[:20]
            raise InvalidInputError(
                RadiomicsReason.LABEL_NOT_FOUND, f"label {label} is not in the mask (labels present: {present})"
            )
    if not roi.any():
        raise InvalidInputError(RadiomicsReason.EMPTY_MASK, "the ROI mask holds no voxel")
    return roi


def roi_box(mask: np.ndarray, margin: tuple[int, int, int] = (0, 0, 0)) -> tuple[slice, slice, slice]:
    """The smallest box holding every voxel of a non-empty (z, y, x) ``mask``, widened by ``margin``
    voxels per axis within the array. Two projections (whole slices first, then the in-plane
    footprint of the occupied slab) instead of ``np.nonzero``, which lists every voxel."""
    occupied = np.flatnonzero(mask.any(axis=(1, 2)))
    footprint = mask[occupied[0]:occupied[-1] + 1].any(axis=0)
    ends = [(occupied[0], occupied[-1])]
    for axis in (1, 0):  # rows (y) hold a voxel where any x does, and vice versa
        present = np.flatnonzero(footprint.any(axis=axis))
        ends.append((present[0], present[-1]))
    return tuple(slice(max(int(low) - m, 0), min(int(high) + 1 + m, n))
                 for (low, high), m, n in zip(ends, margin, mask.shape))
