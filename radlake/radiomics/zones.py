"""Zones of IBSI 1 (sections 4.8 and 4.9): connected voxels that share a grey level.

Zones use 26-connectivity in 3D and 8-connectivity within the slice in 2D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radlake.radiomics import kernels
from radlake.radiomics.neighbourhood import direction_rows


@dataclass(frozen=True)
class Zones:
    labels: np.ndarray  # 0 outside the ROI, 1..n inside
    level: np.ndarray  # grey level of zone k at index k - 1
    size: np.ndarray  # voxel count of zone k
    slice: np.ndarray  # z of zone k (meaningful for in-slice zones)


def find_zones(levels: np.ndarray, in_slice: bool) -> Zones:
    """Label zones: connected ROI voxels of one level, joined through the 13 (3D) or 4 (in-slice)
    forward neighbour offsets by the compiled union-find of :func:`radlake.radiomics.kernels.zone_labels`."""
    labels, level, size, first_slice = kernels.zone_labels(np.ascontiguousarray(levels), direction_rows(in_slice))
    return Zones(labels=labels, level=level, size=size, slice=first_slice)


def zone_matrix(level: np.ndarray, column: np.ndarray, zone_slice: np.ndarray, n_levels: int,
                n_columns: int, n_slices: int | None) -> np.ndarray:
    """Count zones by (slice,) grey level and column value (size or distance, 1-based)."""
    index = (level - 1) * n_columns + (column - 1)
    if n_slices is None:
        return np.bincount(index, minlength=n_levels * n_columns).reshape(n_levels, n_columns).astype(np.float64)
    index = zone_slice * (n_levels * n_columns) + index
    counts = np.bincount(index, minlength=n_slices * n_levels * n_columns)
    return counts.reshape(n_slices, n_levels, n_columns).astype(np.float64)
