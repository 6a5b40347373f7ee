"""Neighbouring grey level dependence matrix features (IBSI 1, section 4.11; REK0, ``ngl``).

The dependence count of an ROI voxel is 1 plus the number of ROI voxels within Chebyshev distance
delta (in-slice in 2D) whose grey level differs from its own by at most alpha.
"""

from __future__ import annotations

import numpy as np

from radlake.radiomics import aggregation, kernels, matrix_statistics
from radlake.radiomics.backend import Backend
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.neighbourhood import centre, neighbours, shifted
from radlake.radiomics.settings import RadiomicsSettings

NAMES = {
    "short": "ngl.lde",
    "long": "ngl.hde",
    "low_gl": "ngl.lgce",
    "high_gl": "ngl.hgce",
    "short_low": "ngl.ldlge",
    "short_high": "ngl.ldhge",
    "long_low": "ngl.hdlge",
    "long_high": "ngl.hdhge",
    "glnu": "ngl.glnu",
    "glnu_norm": "ngl.glnu.norm",
    "jnu": "ngl.dcnu",
    "jnu_norm": "ngl.dcnu.norm",
    "perc": "ngl.dc.perc",
    "gl_var": "ngl.gl.var",
    "j_var": "ngl.dc.var",
    "entropy": "ngl.dc.entr",
    "energy": "ngl.dc.energy",
}


def matrices(backend: Backend, padded, width: int, n_levels: int, distance: int, alpha: int,
             in_slice: bool) -> dict[str, np.ndarray]:
    """Dependence counts by (slice,) grey level and dependence. On the CPU (numpy backend) the
    compiled kernel :func:`radlake.radiomics.kernels.dependence_counts` makes one pass; torch (CPU
    or CUDA) runs :func:`array_matrices`."""
    if backend.is_torch:
        return array_matrices(backend, padded, width, n_levels, distance, alpha, in_slice)
    offsets = np.array(neighbours(distance, in_slice), dtype=np.int64)
    counts = kernels.dependence_counts(np.ascontiguousarray(padded), width, offsets, n_levels, alpha, in_slice)
    counts = counts if in_slice else counts[0]
    return {"ngldm": counts, "n_voxels": counts.sum(axis=(-2, -1))}


def array_matrices(backend: Backend, padded, width: int, n_levels: int, distance: int, alpha: int,
                   in_slice: bool) -> dict[str, np.ndarray]:
    """:func:`matrices` as array code (comparisons of shifted views), for torch on the CPU or CUDA."""
    a = centre(padded, width)
    offsets = neighbours(distance, in_slice)
    dependence = backend.int32(backend.zeros_like(a))
    for offset in offsets:
        b = shifted(padded, width, offset)
        if alpha == 0:
            dependence += b == a  # counted only where a > 0, so b > 0 too
        else:
            dependence += (b > 0) & (backend.abs(b - a) <= alpha)
    valid = a > 0
    n_cols = len(offsets) + 1
    index = (backend.int64(a[valid]) - 1) * n_cols + backend.int64(dependence[valid])
    n_slices = a.shape[0] if in_slice else 1
    if in_slice:
        z = backend.asarray(np.broadcast_to(np.arange(a.shape[0])[:, None, None], a.shape).copy())
        index = z[valid] * (n_levels * n_cols) + index
    counts = backend.to_numpy(backend.bincount(index, minlength=n_slices * n_levels * n_cols)).astype(np.float64)
    shape = (n_slices, n_levels, n_cols) if in_slice else (n_levels, n_cols)
    counts = counts.reshape(shape)
    return {"ngldm": counts, "n_voxels": counts.sum(axis=(-2, -1))}


def features(mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return matrix_statistics.named(matrix_statistics.statistics(mats["ngldm"], mats["n_voxels"]), NAMES)


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> aggregation.Rows:
    roi, backend, dims = inputs.discretised, inputs.backend, settings.aggregations
    distance, alpha = settings.texture.distance, settings.texture.ngldm_alpha
    per_slice = volume = None
    if "2D" in dims or "2.5D" in dims:
        per_slice = matrices(backend, roi.padded, roi.width, roi.n_levels, distance, alpha, in_slice=True)
    if "3D" in dims:
        volume = matrices(backend, roi.padded, roi.width, roi.n_levels, distance, alpha, in_slice=False)
    return aggregation.slice_wise(features, per_slice, volume)


FAMILY = Family("ngldm", prefix="ngl", compute=compute, needs_discretisation=True)
