"""Neighbourhood grey tone difference matrix features (IBSI 1, section 4.10; IPET, ``ngt``).

The neighbourhood of a voxel is every ROI voxel within Chebyshev distance delta (in-slice in 2D),
the centre excluded; voxels whose neighbourhood holds no ROI voxel are left out (N_v,c counts the
others). Sums and counts over the neighbourhood come from a compiled pass on the CPU and from
shifted views (array code) on torch.
"""

from __future__ import annotations

import numpy as np

from radlake.radiomics import aggregation, kernels
from radlake.radiomics.backend import Backend
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.neighbourhood import centre, neighbours, shifted
from radlake.radiomics.settings import RadiomicsSettings


def matrices(backend: Backend, padded, width: int, n_levels: int, distance: int, in_slice: bool):
    """Per (slice,) grey level: ``n``, the voxels with a neighbour, and ``s``, their summed absolute
    difference to the mean neighbouring level. On the CPU (numpy backend) the compiled kernel
    :func:`radlake.radiomics.kernels.neighbourhood_differences` makes one pass; torch (CPU or CUDA)
    runs :func:`array_matrices`."""
    if backend.is_torch:
        return array_matrices(backend, padded, width, n_levels, distance, in_slice)
    n, s = kernels.neighbourhood_differences(np.ascontiguousarray(padded), width, distance, n_levels, in_slice)
    return {"n": n if in_slice else n[0], "s": s if in_slice else s[0]}


def array_matrices(backend: Backend, padded, width: int, n_levels: int, distance: int, in_slice: bool):
    """:func:`matrices` as array code (sums of shifted views), for torch on the CPU or CUDA."""
    a = centre(padded, width)
    total = backend.int32(backend.zeros_like(a))
    count = backend.int32(backend.zeros_like(a))
    for offset in neighbours(distance, in_slice):
        b = shifted(padded, width, offset)
        total += b
        count += b > 0
    valid = (a > 0) & (count > 0)
    level = backend.int64(a[valid])
    diff = backend.abs(backend.float64(level) - backend.float64(total[valid]) / backend.float64(count[valid]))
    index = level - 1
    n_slices = a.shape[0] if in_slice else 1
    if in_slice:
        z = backend.asarray(np.broadcast_to(np.arange(a.shape[0])[:, None, None], a.shape).copy())
        index = z[valid] * n_levels + index
    n = backend.to_numpy(backend.bincount(index, minlength=n_slices * n_levels)).astype(np.float64)
    s = backend.to_numpy(backend.bincount(index, minlength=n_slices * n_levels, weights=diff)).astype(np.float64)
    shape = (n_slices, n_levels) if in_slice else (n_levels,)
    return {"n": n.reshape(shape), "s": s.reshape(shape)}


def features(mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    n, s = mats["n"], mats["s"]
    n_g = n.shape[-1]
    levels = np.arange(1, n_g + 1, dtype=np.float64)
    n_vc = n.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = n / np.where(n_vc > 0, n_vc, np.nan)[..., None]
        present = p > 0
        n_gp = present.sum(axis=-1).astype(np.float64)
        pair = present[..., :, None] & present[..., None, :]
        p1, p2 = p[..., :, None], p[..., None, :]
        s1, s2 = s[..., :, None], s[..., None, :]
        i1, i2 = levels[:, None], levels[None, :]
        ps = (p * s).sum(axis=-1)
        s_sum = s.sum(axis=-1)
        contrast = (np.where(pair, p1 * p2 * (i1 - i2) ** 2, 0.0).sum(axis=(-2, -1))
                    / (n_gp * (n_gp - 1)) * s_sum / n_vc)
        busy_den = np.where(pair, np.abs(i1 * p1 - i2 * p2), 0.0).sum(axis=(-2, -1))
        complexity = np.where(
            pair, np.abs(i1 - i2) * (p1 * s1 + p2 * s2) / np.where(pair, p1 + p2, 1.0), 0.0
        ).sum(axis=(-2, -1)) / n_vc
        strength = np.where(pair, (p1 + p2) * (i1 - i2) ** 2, 0.0).sum(axis=(-2, -1)) / s_sum
        single = n_gp <= 1
        return {
            "ngt.coarseness": np.where(ps > 0, 1.0 / ps, 1e6),
            "ngt.contrast": np.where(single, 0.0, contrast),
            "ngt.busyness": np.where(single, 0.0, ps / busy_den),
            "ngt.complexity": complexity,
            "ngt.strength": np.where(s_sum > 0, strength, 0.0),
        }


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> aggregation.Rows:
    roi, backend, distance, dims = inputs.discretised, inputs.backend, settings.texture.distance, settings.aggregations
    per_slice = volume = None
    if "2D" in dims or "2.5D" in dims:
        per_slice = matrices(backend, roi.padded, roi.width, roi.n_levels, distance, in_slice=True)
    if "3D" in dims:
        volume = matrices(backend, roi.padded, roi.width, roi.n_levels, distance, in_slice=False)
    return aggregation.slice_wise(features, per_slice, volume)


FAMILY = Family("ngtdm", prefix="ngt", compute=compute, needs_discretisation=True)
