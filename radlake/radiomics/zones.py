"""Zones of IBSI 1 (sections 4.8 and 4.9): connected voxels that share a grey level.

Zones are labelled per grey level with scipy (26-connectivity in 3D, 8-connectivity within the
slice in 2D); the loop runs over grey levels, never over voxels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Zones:
    labels: np.ndarray  # 0 outside the ROI, 1..n inside
    level: np.ndarray  # grey level of zone k at index k - 1
    size: np.ndarray  # voxel count of zone k
    slice: np.ndarray  # z of zone k (meaningful for in-slice zones)


def connectivity(in_slice: bool) -> np.ndarray:
    structure = np.ones((3, 3, 3), dtype=bool)
    if in_slice:
        structure[0] = structure[2] = False
    return structure


def find_zones(levels: np.ndarray, n_levels: int, in_slice: bool) -> Zones:
    structure = connectivity(in_slice)
    labels = np.zeros(levels.shape, dtype=np.int64)
    zone_level = []
    offset = 0
    for grey in np.unique(levels[levels > 0]):
        lab, count = ndimage.label(levels == grey, structure=structure)
        labels[lab > 0] = lab[lab > 0] + offset
        zone_level.append(np.full(count, grey, dtype=np.int64))
        offset += count
    level = np.concatenate(zone_level) if zone_level else np.zeros(0, dtype=np.int64)
    size = np.bincount(labels.ravel(), minlength=offset + 1)[1:]
    z_of = np.zeros(offset + 1, dtype=np.int64)
    inside = labels > 0
    z_of[labels[inside]] = np.nonzero(inside)[0]
    return Zones(labels=labels, level=level, size=size, slice=z_of[1:])


def zone_matrix(level: np.ndarray, column: np.ndarray, zone_slice: np.ndarray, n_levels: int,
                n_columns: int, n_slices: int | None) -> np.ndarray:
    """Count zones by (slice,) grey level and column value (size or distance, 1-based)."""
    index = (level - 1) * n_columns + (column - 1)
    if n_slices is None:
        return np.bincount(index, minlength=n_levels * n_columns).reshape(n_levels, n_columns).astype(np.float64)
    index = zone_slice * (n_levels * n_columns) + index
    counts = np.bincount(index, minlength=n_slices * n_levels * n_columns)
    return counts.reshape(n_slices, n_levels, n_columns).astype(np.float64)
