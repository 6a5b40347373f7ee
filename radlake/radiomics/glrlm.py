"""Grey level run length matrix features (IBSI 1, section 4.7; family TP0I, tag prefix ``rlm``).

On the CPU (numpy backend) runs are counted by the compiled kernel
:func:`radlake.radiomics.kernels.run_counts`. The torch path (CPU or CUDA) finds them without
walking the image: for each direction the ROI levels are scattered into a sheared array in which
every line along that direction is one contiguous row (rows separated by a zero); a run is then a
maximal stretch of equal non-zero values of the flattened array.
"""

from __future__ import annotations

import numpy as np

from radlake.radiomics import aggregation, kernels, matrix_statistics
from radlake.radiomics.backend import Backend
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.neighbourhood import (
    DIRECTIONS_2D,
    DIRECTIONS_3D,
    direction_rows,
    level_dtype,
)
from radlake.radiomics.settings import RadiomicsSettings

NAMES = {
    "short": "rlm.sre",
    "long": "rlm.lre",
    "low_gl": "rlm.lgre",
    "high_gl": "rlm.hgre",
    "short_low": "rlm.srlge",
    "short_high": "rlm.srhge",
    "long_low": "rlm.lrlge",
    "long_high": "rlm.lrhge",
    "glnu": "rlm.glnu",
    "glnu_norm": "rlm.glnu.norm",
    "jnu": "rlm.rlnu",
    "jnu_norm": "rlm.rlnu.norm",
    "perc": "rlm.r.perc",
    "gl_var": "rlm.gl.var",
    "j_var": "rlm.rl.var",
    "entropy": "rlm.rl.entr",
}


def _line_layout(backend: Backend, coords, level, shape, direction, n_levels: int):
    """Scatter ROI levels into an array where the lines along ``direction`` are contiguous rows.

    The first non-zero component k0 of ``direction`` is +1; every other axis k is sheared by
    ``-d_k * c_k0`` so that it is constant along the line, then k0 becomes the last axis and one
    zero column is appended so that runs cannot continue from one line into the next.
    """
    k0 = next(k for k, c in enumerate(direction) if c != 0)
    others = [k for k in range(3) if k != k0]
    new_coords, new_shape = [], []
    for k in others:
        shift = shape[k0] - 1 if direction[k] > 0 else 0
        new_coords.append(coords[k] - direction[k] * coords[k0] + shift if direction[k] else coords[k])
        new_shape.append(shape[k] + (shape[k0] - 1 if direction[k] else 0))
    new_coords.append(coords[k0])
    new_shape.append(shape[k0] + 1)
    flat_index = (new_coords[0] * new_shape[1] + new_coords[1]) * new_shape[2] + new_coords[2]
    lines = backend.asarray(np.zeros(int(np.prod(new_shape)), dtype=level_dtype(n_levels)))
    lines[flat_index] = level
    return lines, new_shape, others


def _runs(backend: Backend, lines):
    """(start offsets, lengths, levels) of the runs of equal non-zero values in a 1D array."""
    change = backend.nonzero(lines[1:] != lines[:-1]) + 1
    zero = backend.asarray(np.zeros(1, dtype=np.int64))
    end = backend.asarray(np.array([lines.shape[0]], dtype=np.int64))
    bounds = backend.concat([zero, change, end])
    starts, lengths = bounds[:-1], bounds[1:] - bounds[:-1]
    values = lines[starts]
    keep = values > 0
    return starts[keep], lengths[keep], values[keep]


def matrices(backend: Backend, levels: np.ndarray, n_levels: int, in_slice: bool) -> np.ndarray:
    """Run counts: (slices, 4, Ng, Lmax) in 2D, (13, Ng, Lmax) in 3D, as numpy."""
    if backend.is_torch:
        return array_matrices(backend, levels, n_levels, in_slice)
    counts = kernels.run_counts(np.ascontiguousarray(levels), direction_rows(in_slice), n_levels, max(levels.shape),
                                in_slice).astype(np.float64)
    return counts if in_slice else counts[0]


def array_matrices(backend: Backend, levels: np.ndarray, n_levels: int, in_slice: bool) -> np.ndarray:
    """:func:`matrices` as array code (sheared layouts), for torch on the CPU or CUDA."""
    directions = DIRECTIONS_2D if in_slice else DIRECTIONS_3D
    shape = levels.shape
    z, y, x = np.nonzero(levels)
    coords = [backend.asarray(c.astype(np.int64)) for c in (z, y, x)]
    level = backend.asarray(levels[z, y, x].astype(level_dtype(n_levels)))
    n_slices = shape[0] if in_slice else 1
    max_len = max(shape)
    out = []
    for direction in directions:
        lines, new_shape, _ = _line_layout(backend, coords, level, shape, direction, n_levels)
        starts, lengths, run_level = _runs(backend, lines)
        index = (backend.int64(run_level) - 1) * max_len + (lengths - 1)
        if in_slice:  # z stays the first axis of the layout for in-slice directions
            index = (starts // (new_shape[1] * new_shape[2])) * (n_levels * max_len) + index
        counts = backend.bincount(index, minlength=n_slices * n_levels * max_len)
        out.append(backend.to_numpy(counts).reshape(n_slices, n_levels, max_len))
    counts = np.stack(out, axis=1).astype(np.float64)
    return counts if in_slice else counts[0]


def features(mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    runs = mats["glrlm"]
    lengths = np.arange(1, runs.shape[-1] + 1, dtype=np.float64)
    n_voxels = (runs * lengths).sum(axis=(-2, -1))
    return matrix_statistics.named(matrix_statistics.statistics(runs, n_voxels), NAMES)


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> aggregation.Rows:
    roi, backend, dims = inputs.discretised, inputs.backend, settings.aggregations
    per_slice = volume = None
    if "2D" in dims or "2.5D" in dims:
        per_slice = {"glrlm": matrices(backend, roi.levels, roi.n_levels, in_slice=True)}
    if "3D" in dims:
        volume = {"glrlm": matrices(backend, roi.levels, roi.n_levels, in_slice=False)}
    return aggregation.directional(features, per_slice, volume)


FAMILY = Family("glrlm", prefix="rlm", compute=compute, needs_discretisation=True)
