"""Compiled CPU kernels for the texture counts whose array formulations are memory bound.

Run lengths, co-occurrences and zones need one pass over the ROI box per direction; as array code
(shifted views, sheared layouts, a sparse graph) every pass also allocates and rescans arrays
several times the size of the box, which is where most of the CPU time of a lesion went. These
kernels (numba, compiled on first use and cached beside this module) make that single pass and
write the counts directly. The array builders in :mod:`glcm` and :mod:`glrlm` stay: they are the
torch/CUDA path, and the unit tests hold both to the same integer counts.

Levels are ``(z, y, x)`` integer arrays, 0 outside the ROI, 1..Ng inside; directions are rows of
``(dz, dy, dx)`` unit offsets (:data:`radlake.radiomics.neighbourhood.DIRECTIONS_3D` or ``_2D``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _in_box(z, y, x, nz, ny, nx):
    return 0 <= z < nz and 0 <= y < ny and 0 <= x < nx


@njit(cache=True, nogil=True)
def run_counts(levels, directions, n_levels, max_len, in_slice):
    """Runs of equal levels along each direction: int64 ``(slices or 1, directions, Ng, max_len)``.

    A run is counted from its first voxel (whose predecessor along the direction is outside the box
    or has another level) by stepping forward while the level holds.
    """
    nz, ny, nx = levels.shape
    out = np.zeros((nz if in_slice else 1, directions.shape[0], n_levels, max_len), dtype=np.int64)
    for d in range(directions.shape[0]):
        dz, dy, dx = directions[d, 0], directions[d, 1], directions[d, 2]
        for z in range(nz):
            for y in range(ny):
                for x in range(nx):
                    level = levels[z, y, x]
                    if level == 0:
                        continue
                    pz, py, px = z - dz, y - dy, x - dx
                    if _in_box(pz, py, px, nz, ny, nx) and levels[pz, py, px] == level:
                        continue  # inside a run counted from its first voxel
                    length = 1
                    qz, qy, qx = z + dz, y + dy, x + dx
                    while _in_box(qz, qy, qx, nz, ny, nx) and levels[qz, qy, qx] == level:
                        length += 1
                        qz += dz
                        qy += dy
                        qx += dx
                    out[z if in_slice else 0, d, level - 1, length - 1] += 1
    return out


@njit(cache=True, nogil=True)
def cooccurrence_counts(levels, directions, distance, n_levels, in_slice):
    """Co-occurrences at ``distance`` along each direction (one way, not yet symmetric):
    int64 ``(slices or 1, directions, Ng, Ng)``."""
    nz, ny, nx = levels.shape
    out = np.zeros((nz if in_slice else 1, directions.shape[0], n_levels, n_levels), dtype=np.int64)
    for d in range(directions.shape[0]):
        dz, dy, dx = directions[d, 0] * distance, directions[d, 1] * distance, directions[d, 2] * distance
        for z in range(max(0, -dz), min(nz, nz - dz)):
            for y in range(max(0, -dy), min(ny, ny - dy)):
                for x in range(max(0, -dx), min(nx, nx - dx)):
                    a = levels[z, y, x]
                    b = levels[z + dz, y + dy, x + dx]
                    if a > 0 and b > 0:
                        out[z if in_slice else 0, d, a - 1, b - 1] += 1
    return out


@njit(cache=True, nogil=True)
def _root(parent, i):
    root = i
    while parent[root] != root:
        root = parent[root]
    while parent[i] != root:  # path compression
        parent[i], i = root, parent[i]
    return root


@njit(cache=True, nogil=True)
def zone_labels(levels, offsets):
    """Connected components of equal-level ROI voxels joined through ``offsets`` (the forward half of
    the neighbourhood), by union-find. Returns ``(labels, level, size, slice)``: labels 1..n in
    first-voxel (C) order, 0 outside, and per zone its level, voxel count and z of its first voxel."""
    nz, ny, nx = levels.shape
    n = nz * ny * nx
    flat = levels.reshape(n)
    parent = np.arange(n)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                level = levels[z, y, x]
                if level == 0:
                    continue
                root = _root(parent, (z * ny + y) * nx + x)
                for k in range(offsets.shape[0]):
                    qz, qy, qx = z + offsets[k, 0], y + offsets[k, 1], x + offsets[k, 2]
                    if _in_box(qz, qy, qx, nz, ny, nx) and levels[qz, qy, qx] == level:
                        other = _root(parent, (qz * ny + qy) * nx + qx)
                        if other != root:  # join the two trees under the smaller root
                            parent[max(root, other)] = min(root, other)
                            root = min(root, other)
    labels = np.zeros(n, dtype=np.int64)
    zone_of_root = np.zeros(n, dtype=np.int64)
    level_of = np.zeros(n, dtype=np.int64)
    size_of = np.zeros(n, dtype=np.int64)
    slice_of = np.zeros(n, dtype=np.int64)
    count = 0
    for i in range(n):
        if flat[i] == 0:
            continue
        root = _root(parent, i)
        if zone_of_root[root] == 0:
            count += 1
            zone_of_root[root] = count
            level_of[count - 1] = flat[i]
            slice_of[count - 1] = i // (ny * nx)
        zone = zone_of_root[root]
        labels[i] = zone
        size_of[zone - 1] += 1
    return labels.reshape(nz, ny, nx), level_of[:count].copy(), size_of[:count].copy(), slice_of[:count].copy()

