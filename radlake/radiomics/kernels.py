"""Compiled CPU kernels (numba, compiled on first use and cached beside this module) for the passes
over a ROI box: texture counts and morphology sums.

As array code (shifted views, sheared layouts, a sparse graph) each of these passes allocates and
rescans arrays several times the size of the box, which is where most of the CPU time of a lesion
went; a kernel makes the pass once and writes its counts or sums directly. The texture kernels read
the levels padded with zeros and flattened, so that a neighbour is a fixed offset and needs no
bounds check. The array builders in :mod:`glcm`, :mod:`glrlm`, :mod:`ngtdm` and :mod:`ngldm` stay:
they are the torch/CUDA path, and the unit tests hold both to the same counts.

Levels are ``(z, y, x)`` integer arrays, 0 outside the ROI, 1..Ng inside; directions are rows of
``(dz, dy, dx)`` unit offsets (:data:`radlake.radiomics.neighbourhood.DIRECTIONS_3D` or ``_2D``),
each a forward step in C order.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _padded(levels, width):
    """``levels`` in a zero border of ``width``, flattened: a step of up to ``width`` voxels off the
    box lands on 0 (outside the ROI), so the loops below need no bounds checks."""
    nz, ny, nx = levels.shape
    out = np.zeros((nz + 2 * width, ny + 2 * width, nx + 2 * width), dtype=levels.dtype)
    out[width:width + nz, width:width + ny, width:width + nx] = levels
    return out.reshape(-1)


@njit(cache=True, nogil=True, inline="always")
def _step(directions, d, scale, ny, nx, width):
    """Flat offset of direction ``d`` times ``scale`` in a grid padded by ``width``."""
    row = nx + 2 * width
    plane = (ny + 2 * width) * row
    return (directions[d, 0] * plane + directions[d, 1] * row + directions[d, 2]) * scale


@njit(cache=True, nogil=True)
def run_counts(levels, directions, n_levels, max_len, in_slice):
    """Runs of equal levels along each direction: int64 ``(slices or 1, directions, Ng, max_len)``.

    Every direction is a forward step in C order, so one sweep over the ROI voxels finds, for each
    voxel and direction, the length of the run that ends there (one more than its predecessor's
    when the level holds, else 1) and counts it where the run ends (the next voxel has another
    level). The directions are the inner loop: independent of each other, and free of branches.
    """
    nz, ny, nx = levels.shape
    flat = _padded(levels, 1)
    n_dir = directions.shape[0]
    steps = np.array([_step(directions, d, 1, ny, nx, 1) for d in range(n_dir)])
    length = np.zeros((flat.shape[0], n_dir), dtype=np.int32)
    out = np.zeros((nz if in_slice else 1, n_dir, n_levels, max_len), dtype=np.int64)
    for z in range(nz):
        row = z if in_slice else 0
        for y in range(ny):
            start = ((z + 1) * (ny + 2) + y + 1) * (nx + 2) + 1
            for i in range(start, start + nx):
                level = flat[i]
                if level == 0:
                    continue
                for d in range(n_dir):
                    step = steps[d]
                    run = (level == flat[i - step]) * length[i - step, d] + 1
                    length[i, d] = run
                    out[row, d, level - 1, run - 1] += level != flat[i + step]
    return out


@njit(cache=True, nogil=True)
def cooccurrence_counts(levels, directions, distance, n_levels, in_slice):
    """Co-occurrences at ``distance`` along each direction (one way, not yet symmetric):
    int64 ``(slices or 1, directions, Ng, Ng)``. One sweep over the ROI voxels with the directions
    as the inner loop; a neighbour outside the ROI is counted in a column that is dropped."""
    nz, ny, nx = levels.shape
    flat = _padded(levels, distance)
    n_dir = directions.shape[0]
    steps = np.array([_step(directions, d, distance, ny, nx, distance) for d in range(n_dir)])
    out = np.zeros((nz if in_slice else 1, n_dir, n_levels, n_levels + 1), dtype=np.int64)
    for z in range(nz):
        row = z if in_slice else 0
        for y in range(ny):
            start = ((z + distance) * (ny + 2 * distance) + y + distance) * (nx + 2 * distance) + distance
            for i in range(start, start + nx):
                a = flat[i]
                if a == 0:
                    continue
                for d in range(n_dir):
                    out[row, d, a - 1, flat[i + steps[d]]] += 1
    return out[:, :, :, 1:].copy()


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
    flat = _padded(levels, 1)
    steps = np.array([_step(offsets, k, 1, ny, nx, 1) for k in range(offsets.shape[0])])
    parent = np.arange(flat.shape[0])
    for z in range(nz):
        for y in range(ny):
            start = ((z + 1) * (ny + 2) + y + 1) * (nx + 2) + 1
            for i in range(start, start + nx):
                level = flat[i]
                if level == 0:
                    continue
                # join i to its earlier neighbours (offsets point forward, so i - step came before):
                # i is still a tree of its own, every tree met so far has a smaller root
                root = i
                for k in range(steps.shape[0]):
                    j = i - steps[k]
                    if flat[j] == level:
                        other = _root(parent, j)
                        if other != root:  # join the two trees under the smaller root
                            parent[max(root, other)] = min(root, other)
                            root = min(root, other)
    labels = np.zeros((nz, ny, nx), dtype=np.int64)
    zone_of_root = np.zeros(flat.shape[0], dtype=np.int64)
    n = nz * ny * nx
    level_of = np.zeros(n, dtype=np.int64)
    size_of = np.zeros(n, dtype=np.int64)
    slice_of = np.zeros(n, dtype=np.int64)
    count = 0
    for z in range(nz):
        for y in range(ny):
            start = ((z + 1) * (ny + 2) + y + 1) * (nx + 2) + 1
            for x in range(nx):
                level = flat[start + x]
                if level == 0:
                    continue
                # every parent precedes its child (a tree hangs under its smallest index), so in
                # C order the parent already points at its root
                i = start + x
                root = parent[i] = parent[parent[i]]
                if zone_of_root[root] == 0:
                    count += 1
                    zone_of_root[root] = count
                    level_of[count - 1] = level
                    slice_of[count - 1] = z
                zone = zone_of_root[root]
                labels[z, y, x] = zone
                size_of[zone - 1] += 1
    return labels, level_of[:count].copy(), size_of[:count].copy(), slice_of[:count].copy()


@njit(cache=True, nogil=True)
def mesh_sums(mask, area, det, normal_sum, spacing):
    """Volume and area of the marching-cubes mesh of ``mask`` from the per-configuration tables of
    :func:`radlake.radiomics.morphology.mesh_volume_area_of_mask`, in one pass over the cubes of
    the mask padded by one voxel. Corner k of a cube is bit k = 4z + 2y + x of its configuration;
    stepping one cube along x keeps the four x = 1 corners as the new x = 0 ones, so each cube
    reads only its four new corners."""
    nz, ny, nx = mask.shape
    padded = np.zeros((nz + 2, ny + 2, nx + 2), dtype=np.uint8)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                padded[z + 1, y + 1, x + 1] = mask[z, y, x]
    signed = 0.0
    total_area = 0.0
    for cz in range(nz + 1):
        for cy in range(ny + 1):
            config = 0
            for cx in range(nx + 1):
                config = (((config & 0xAA) >> 1) | (padded[cz, cy, cx + 1] << 1) | (padded[cz, cy + 1, cx + 1] << 3)
                          | (padded[cz + 1, cy, cx + 1] << 5) | (padded[cz + 1, cy + 1, cx + 1] << 7))
                if config == 0 or config == 255:
                    continue
                total_area += area[config]
                signed += det[config] + (cz * spacing[0] * normal_sum[config, 0]
                                         + cy * spacing[1] * normal_sum[config, 1]
                                         + cx * spacing[2] * normal_sum[config, 2])
    return abs(signed) / 6.0, total_area


_MISSING = -(1 << 40)  # the height of an absent neighbouring column: below any real one


@njit(cache=True, nogil=True, inline="always")
def _height_at(heights, i, j):
    if 0 <= i < heights.shape[0] and 0 <= j < heights.shape[1]:
        return heights[i, j]
    return _MISSING


@njit(cache=True, nogil=True)
def column_end_corners(mask):
    """The hull candidates of :func:`radlake.radiomics.morphology.hull_candidates` in doubled index
    coordinates (int64 ``(k, 3)``, integers: mesh vertices lie half a voxel off the voxel centres)."""
    nz, ny, nx = mask.shape
    # per axis, the first and last mask index of every column along it (-1: empty column)
    first_z, last_z = np.full((ny, nx), -1, np.int64), np.full((ny, nx), -1, np.int64)
    first_y, last_y = np.full((nz, nx), -1, np.int64), np.full((nz, nx), -1, np.int64)
    first_x, last_x = np.full((nz, ny), -1, np.int64), np.full((nz, ny), -1, np.int64)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                if mask[z, y, x]:
                    if first_z[y, x] < 0:
                        first_z[y, x] = z
                    last_z[y, x] = z
                    if first_y[z, x] < 0:
                        first_y[z, x] = y
                    last_y[z, x] = y
                    if first_x[z, y] < 0:
                        first_x[z, y] = x
                    last_x[z, y] = x
    out = np.empty((2 * (ny * nx + nz * nx + nz * ny), 3), dtype=np.int64)
    count = 0
    for axis in range(3):
        first, last = (first_z, last_z) if axis == 0 else ((first_y, last_y) if axis == 1 else (first_x, last_x))
        n1, n2 = first.shape
        for end in range(2):  # the far ends (+), then the near ends (negated, so that "higher" is outward)
            heights = np.full((n1, n2), _MISSING, np.int64)
            for i in range(n1):
                for j in range(n2):
                    if first[i, j] >= 0:
                        heights[i, j] = 2 * last[i, j] + 1 if end == 0 else -(2 * first[i, j] - 1)
            for i in range(n1):
                for j in range(n2):
                    h = heights[i, j]
                    if h == _MISSING:
                        continue
                    # a column end not strictly above the mean of an opposite pair of neighbours lies on
                    # a segment between other vertices, so it is no corner of the hull
                    if (2 * h <= _height_at(heights, i + 1, j) + _height_at(heights, i - 1, j)
                            or 2 * h <= _height_at(heights, i, j + 1) + _height_at(heights, i, j - 1)
                            or 2 * h <= _height_at(heights, i + 1, j + 1) + _height_at(heights, i - 1, j - 1)
                            or 2 * h <= _height_at(heights, i + 1, j - 1) + _height_at(heights, i - 1, j + 1)):
                        continue
                    along = h if end == 0 else -h
                    if axis == 0:
                        out[count, 0], out[count, 1], out[count, 2] = along, 2 * i, 2 * j
                    elif axis == 1:
                        out[count, 0], out[count, 1], out[count, 2] = 2 * i, along, 2 * j
                    else:
                        out[count, 0], out[count, 1], out[count, 2] = 2 * i, 2 * j, along
                    count += 1
    return out[:count]


@njit(cache=True, nogil=True)
def mask_moments(image, morph_mask, int_mask, spacing):
    """In one pass: the morphological mask's voxel count, centroid and covariance of voxel positions
    (world units, ``n - 1`` normalised), and the intensity mask's intensity sum, count and
    intensity-weighted centroid. Positions are taken from the box centre, so that the raw second
    moments stay small beside the covariance they give."""
    nz, ny, nx = morph_mask.shape
    n = n_int = 0
    sz = sy = sx = szz = szy = szx = syy = syx = sxx = 0.0
    weight = wz = wy = wx = 0.0
    for z in range(nz):
        pz = (z - (nz - 1) / 2.0) * spacing[0]
        for y in range(ny):
            py = (y - (ny - 1) / 2.0) * spacing[1]
            for x in range(nx):
                px = (x - (nx - 1) / 2.0) * spacing[2]
                if morph_mask[z, y, x]:
                    n += 1
                    sz += pz
                    sy += py
                    sx += px
                    szz += pz * pz
                    szy += pz * py
                    szx += pz * px
                    syy += py * py
                    syx += py * px
                    sxx += px * px
                if int_mask[z, y, x]:
                    value = image[z, y, x]
                    n_int += 1
                    weight += value
                    wz += value * pz
                    wy += value * py
                    wx += value * px
    centre = np.array([sz, sy, sx]) / n
    covariance = np.zeros((3, 3))
    if n > 1:
        raw = np.array([[szz, szy, szx], [szy, syy, syx], [szx, syx, sxx]])
        for a in range(3):
            for b in range(3):
                covariance[a, b] = (raw[a, b] - n * centre[a] * centre[b]) / (n - 1)
    return n, centre, covariance, weight, n_int, np.array([wz, wy, wx]) / weight


@njit(cache=True, nogil=True)
def _neighbour_steps(shape, offsets):
    """Flat offsets in an array of ``shape`` of the ``(dz, dy, dx)`` rows of ``offsets``."""
    steps = np.empty(offsets.shape[0], dtype=np.int64)
    for k in range(offsets.shape[0]):
        steps[k] = (offsets[k, 0] * shape[1] + offsets[k, 1]) * shape[2] + offsets[k, 2]
    return steps


@njit(cache=True, nogil=True)
def neighbourhood_differences(padded, width, distance, n_levels, in_slice):
    """NGTDM counts and sums: per (slice,) level, the number of ROI voxels with an ROI neighbour
    within Chebyshev ``distance`` (in-slice: same z) and the sum of |level - mean neighbouring
    level|. float64 ``(slices or 1, Ng)`` each, summed in C order of the voxels.

    The neighbourhood is a box, so its sums are separable: running sums along x, then y, then z
    (contiguous, no gathers). Level and ROI membership travel together as ``level + 2**32`` per
    ROI voxel, so one set of sums gives both the neighbour sum and the neighbour count.
    """
    pz, py, px = padded.shape
    nz, ny, nx = pz - 2 * width, py - 2 * width, px - 2 * width
    packed = np.empty(padded.shape, dtype=np.int64)
    for z in range(pz):
        for y in range(py):
            for x in range(px):
                level = padded[z, y, x]
                packed[z, y, x] = level + (np.int64(1) << 32) * (level > 0)
    # box sums over x, then y (then z), each kept only where the next pass reads it
    along_x = np.zeros(padded.shape, dtype=np.int64)
    for z in range(pz):
        for y in range(py):
            for x in range(width, width + nx):
                total = 0
                for k in range(-distance, distance + 1):
                    total += packed[z, y, x + k]
                along_x[z, y, x] = total
    box = np.zeros(padded.shape, dtype=np.int64)
    for z in range(pz):
        for y in range(width, width + ny):
            for x in range(width, width + nx):
                total = 0
                for k in range(-distance, distance + 1):
                    total += along_x[z, y + k, x]
                box[z, y, x] = total
    if not in_slice:
        along_yx = box
        box = np.zeros(padded.shape, dtype=np.int64)
        for z in range(width, width + nz):
            for y in range(width, width + ny):
                for x in range(width, width + nx):
                    total = 0
                    for k in range(-distance, distance + 1):
                        total += along_yx[z + k, y, x]
                    box[z, y, x] = total
    count = np.zeros((nz if in_slice else 1, n_levels))
    total_difference = np.zeros((nz if in_slice else 1, n_levels))
    low = (np.int64(1) << 32) - 1
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                level = padded[z + width, y + width, x + width]
                if level == 0:
                    continue
                around = box[z + width, y + width, x + width] - packed[z + width, y + width, x + width]
                neighbour_count = around >> 32
                if neighbour_count == 0:
                    continue
                neighbour_sum = around & low
                row = z if in_slice else 0
                count[row, level - 1] += 1.0
                total_difference[row, level - 1] += abs(float(level) - float(neighbour_sum) / float(neighbour_count))
    return count, total_difference


@njit(cache=True, nogil=True)
def dependence_counts(padded, width, offsets, n_levels, alpha, in_slice):
    """NGLDM counts: per (slice,) level, ROI voxels by the number of ROI neighbours (``offsets``)
    whose level differs by at most ``alpha`` (column k: k dependent neighbours, i.e. dependence
    k + 1). float64 ``(slices or 1, Ng, len(offsets) + 1)``."""
    pz, py, px = padded.shape
    nz, ny, nx = pz - 2 * width, py - 2 * width, px - 2 * width
    flat = padded.reshape(-1)
    steps = _neighbour_steps(padded.shape, offsets)
    out = np.zeros((nz if in_slice else 1, n_levels, steps.shape[0] + 1))
    for z in range(nz):
        for y in range(ny):
            start = ((z + width) * py + y + width) * px + width
            for i in range(start, start + nx):
                level = flat[i]
                if level == 0:
                    continue
                dependent = 0
                for k in range(steps.shape[0]):
                    other = flat[i + steps[k]]
                    dependent += other > 0 and abs(other - level) <= alpha
                out[z if in_slice else 0, level - 1, dependent] += 1.0
    return out
