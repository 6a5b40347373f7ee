"""Zones of IBSI 1 (sections 4.8 and 4.9): connected voxels that share a grey level.

Zones use 26-connectivity in 3D and 8-connectivity within the slice in 2D.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radlake.radiomics.neighbourhood import DIRECTIONS_2D, DIRECTIONS_3D, centre, pad, shifted


@dataclass(frozen=True)
class Zones:
    labels: np.ndarray  # 0 outside the ROI, 1..n inside
    level: np.ndarray  # grey level of zone k at index k - 1
    size: np.ndarray  # voxel count of zone k
    slice: np.ndarray  # z of zone k (meaningful for in-slice zones)


def find_zones(levels: np.ndarray, n_levels: int, in_slice: bool) -> Zones:
    """Label zones as connected components of a graph: ROI voxels joined to equal-level neighbours.

    Edges come from the 13 (3D) or 4 (in-slice) unique neighbour offsets, found with shifted
    views; scipy's ``connected_components`` then labels the graph in one call.
    """
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    inside = levels > 0
    n = int(inside.sum())
    index = np.full(levels.shape, -1, dtype=np.int32)
    index[inside] = np.arange(n, dtype=np.int32)
    padded_levels = pad(levels, 1)
    padded_index = pad(index, 1)
    a_level = centre(padded_levels, 1)
    rows, cols = [], []
    for offset in DIRECTIONS_2D if in_slice else DIRECTIONS_3D:
        joined = shifted(padded_levels, 1, offset) == a_level
        joined &= inside
        rows.append(index[joined])
        cols.append(shifted(padded_index, 1, offset)[joined])
    rows_all, cols_all = np.concatenate(rows), np.concatenate(cols)
    graph = coo_matrix((np.ones(rows_all.size, dtype=np.int8), (rows_all, cols_all)), shape=(n, n))
    # weak components of the directed edge set = components of the undirected graph, cheaper
    count, component = connected_components(graph.tocsr(), directed=True, connection="weak")
    labels = np.zeros(levels.shape, dtype=np.int64)
    labels[inside] = component + 1
    level = np.zeros(count, dtype=np.int64)
    level[component] = levels[inside]
    z_of = np.zeros(count, dtype=np.int64)
    z_of[component] = np.nonzero(inside)[0]
    size = np.bincount(component, minlength=count)
    return Zones(labels=labels, level=level, size=size, slice=z_of)


def zone_matrix(level: np.ndarray, column: np.ndarray, zone_slice: np.ndarray, n_levels: int,
                n_columns: int, n_slices: int | None) -> np.ndarray:
    """Count zones by (slice,) grey level and column value (size or distance, 1-based)."""
    index = (level - 1) * n_columns + (column - 1)
    if n_slices is None:
        return np.bincount(index, minlength=n_levels * n_columns).reshape(n_levels, n_columns).astype(np.float64)
    index = zone_slice * (n_levels * n_columns) + index
    counts = np.bincount(index, minlength=n_slices * n_levels * n_columns)
    return counts.reshape(n_slices, n_levels, n_columns).astype(np.float64)
