"""Grey level run length matrix features (IBSI 1, section 4.7; family TP0I, tag prefix ``rlm``).

Runs are found without walking the image: every ROI voxel gets the id of the line it lies on for
a direction and its position along that line; after one sort, a run starts wherever the line,
the position (a gap) or the grey level changes.
"""

from __future__ import annotations

import numpy as np

from radlake.radiomics import aggregation, matrix_statistics
from radlake.radiomics.backend import Backend
from radlake.radiomics.neighbourhood import DIRECTIONS_2D, DIRECTIONS_3D

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


def _runs(backend: Backend, coords, level, shape, direction):
    """(start positions in sorted order, run lengths, sort order) of runs along ``direction``."""
    reach = max(shape)
    k0 = next(k for k, c in enumerate(direction) if c != 0)
    t = coords[k0] * direction[k0]
    line = 0
    for k, c in enumerate(direction):
        base = coords[k] - t * c + reach  # in [0, shape[k] + 2 * reach)
        line = line * (shape[k] + 2 * reach) + base
    key = line * (2 * reach + 1) + (t + reach)
    order = backend.argsort(key)
    key_sorted = key[order]
    level_sorted = level[order]
    n = key_sorted.shape[0]
    breaks = (key_sorted[1:] != key_sorted[:-1] + 1) | (level_sorted[1:] != level_sorted[:-1])
    first = backend.asarray(np.ones(1, dtype=bool))
    starts = backend.nonzero(backend.concat([first, breaks]))
    ends = backend.concat([starts[1:], backend.asarray(np.array([n], dtype=np.int64))])
    return starts, ends - starts, order


def matrices(backend: Backend, levels: np.ndarray, n_levels: int, in_slice: bool) -> np.ndarray:
    """Run counts: (slices, 4, Ng, Lmax) in 2D, (13, Ng, Lmax) in 3D, as numpy."""
    directions = DIRECTIONS_2D if in_slice else DIRECTIONS_3D
    shape = levels.shape
    z, y, x = np.nonzero(levels)
    coords = [backend.asarray(c.astype(np.int64)) for c in (z, y, x)]
    level = backend.asarray(levels[z, y, x].astype(np.int64))
    n_slices = shape[0] if in_slice else 1
    max_len = max(shape)
    out = []
    for direction in directions:
        starts, lengths, order = _runs(backend, coords, level, shape, direction)
        run_level = level[order][starts]
        index = (run_level - 1) * max_len + (lengths - 1)
        if in_slice:
            index = coords[0][order][starts] * (n_levels * max_len) + index
        counts = backend.bincount(index, minlength=n_slices * n_levels * max_len)
        out.append(backend.to_numpy(counts).reshape(n_slices, n_levels, max_len))
    counts = np.stack(out, axis=1).astype(np.float64)
    return counts if in_slice else counts[0]


def features(mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    runs = mats["glrlm"]
    lengths = np.arange(1, runs.shape[-1] + 1, dtype=np.float64)
    n_voxels = (runs * lengths).sum(axis=(-2, -1))
    return matrix_statistics.named(matrix_statistics.statistics(runs, n_voxels), NAMES)


def compute(backend: Backend, levels: np.ndarray, n_levels: int, dims) -> aggregation.Rows:
    per_slice = volume = None
    if "2D" in dims or "2.5D" in dims:
        per_slice = {"glrlm": matrices(backend, levels, n_levels, in_slice=True)}
    if "3D" in dims:
        volume = {"glrlm": matrices(backend, levels, n_levels, in_slice=False)}
    return aggregation.directional(features, per_slice, volume)
