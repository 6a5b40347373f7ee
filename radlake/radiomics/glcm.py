"""Grey level co-occurrence matrix features (IBSI 1, section 4.6; family LFYI, tag prefix ``cm``)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from radlake.radiomics import aggregation, kernels
from radlake.radiomics.backend import Backend
from radlake.radiomics.neighbourhood import (
    DIRECTIONS_2D,
    DIRECTIONS_3D,
    centre,
    direction_rows,
    shifted,
)


def matrices(backend: Backend, padded, width: int, n_levels: int, distance: int, in_slice: bool):
    """Symmetric co-occurrence counts: (slices, 4, Ng, Ng) in 2D, (13, Ng, Ng) in 3D, as numpy.

    On the CPU (numpy backend) the compiled kernel :func:`radlake.radiomics.kernels.cooccurrence_counts`
    counts them; torch (CPU or CUDA) runs :func:`array_matrices`.
    """
    if backend.is_torch:
        return array_matrices(backend, padded, width, n_levels, distance, in_slice)
    levels = np.ascontiguousarray(centre(padded, width))
    counts = kernels.cooccurrence_counts(levels, direction_rows(in_slice), distance, n_levels, in_slice)
    counts = counts.astype(np.float64)
    counts = counts + np.swapaxes(counts, -1, -2)
    return counts if in_slice else counts[0]


def array_matrices(backend: Backend, padded, width: int, n_levels: int, distance: int, in_slice: bool):
    """:func:`matrices` as array code (shifted views of the padded levels), for torch on the CPU or CUDA."""
    directions = DIRECTIONS_2D if in_slice else DIRECTIONS_3D
    a = centre(padded, width)
    n_slices = a.shape[0] if in_slice else 1
    slice_index = backend.asarray(np.broadcast_to(np.arange(a.shape[0])[:, None, None], a.shape).copy())
    out = []
    for direction in directions:
        b = shifted(padded, width, tuple(distance * c for c in direction))
        valid = (a > 0) & (b > 0)
        index = (backend.int64(a[valid]) - 1) * n_levels + (backend.int64(b[valid]) - 1)
        if in_slice:
            index = slice_index[valid] * (n_levels * n_levels) + index
        counts = backend.bincount(index, minlength=n_slices * n_levels * n_levels)
        out.append(backend.to_numpy(counts).reshape(n_slices, n_levels, n_levels))
    counts = np.stack(out, axis=1).astype(np.float64)
    counts = counts + np.swapaxes(counts, -1, -2)
    return counts if in_slice else counts[0]


@lru_cache(maxsize=16)
def _weights(n_g: int) -> dict[str, np.ndarray]:
    """Per-cell weights (Ng*Ng, k) of the features that are linear in p, and the diagonal maps."""
    i = np.repeat(np.arange(1, n_g + 1, dtype=np.float64), n_g)
    j = np.tile(np.arange(1, n_g + 1, dtype=np.float64), n_g)
    d = np.abs(i - j)
    linear = np.stack([
        i,  # joint average
        d**2,  # contrast
        d,  # dissimilarity
        1 / (1 + d),
        1 / (1 + d / n_g),
        1 / (1 + d**2),
        1 / (1 + d**2 / n_g**2),
        i * j,  # autocorrelation
    ], axis=1)
    diff_map = (d[:, None] == np.arange(n_g)[None, :]).astype(np.float64)
    sum_map = ((i + j)[:, None] == np.arange(2, 2 * n_g + 1)[None, :]).astype(np.float64)
    return {"linear": linear, "diff": diff_map, "sum": sum_map}


def _entropy(q: np.ndarray) -> np.ndarray:
    return -np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0)), 0.0).sum(axis=-1)


def features(mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """IBSI GLCM features of a batch of symmetric matrices (..., Ng, Ng).

    Symmetry lets every feature come from p itself (max, entropy, energy), the marginal p_i, the
    diagonal and cross-diagonal distributions p_{i-j} and p_{i+j}, or a product with fixed weights;
    HXY1 = HXY2 = 2 HX for a symmetric matrix.
    """
    counts = mats["glcm"]
    n_g = counts.shape[-1]
    batch = counts.shape[:-2]
    flat = counts.reshape(batch + (n_g * n_g,))
    total = flat.sum(axis=-1)
    w = _weights(n_g)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = flat / np.where(total > 0, total, np.nan)[..., None]
        lin = p @ w["linear"]
        p_diff = p @ w["diff"]
        p_sum = p @ w["sum"]
        p_i = p.reshape(batch + (n_g, n_g)).sum(axis=-1)
        levels = np.arange(1, n_g + 1, dtype=np.float64)
        kd = np.arange(n_g, dtype=np.float64)
        ks = np.arange(2, 2 * n_g + 1, dtype=np.float64)
        mu = lin[..., 0]
        dev_i = levels - mu[..., None]
        joint_var = (p_i * dev_i * dev_i).sum(axis=-1)
        diff_avg = p_diff @ kd
        sum_avg = p_sum @ ks
        dev_d = kd - diff_avg[..., None]
        dev_s = ks - sum_avg[..., None]
        dev_c = ks - 2 * mu[..., None]
        dev_c2 = dev_c * dev_c
        hxy = _entropy(p)
        hx = _entropy(p_i)
        inv_var_w = np.concatenate([[0.0], 1.0 / kd[1:] ** 2])
        return {
            "cm.joint.max": p.max(axis=-1),
            "cm.joint.avg": mu,
            "cm.joint.var": joint_var,
            "cm.joint.entr": hxy,
            "cm.diff.avg": diff_avg,
            "cm.diff.var": (p_diff * dev_d * dev_d).sum(axis=-1),
            "cm.diff.entr": _entropy(p_diff),
            "cm.sum.avg": sum_avg,
            "cm.sum.var": (p_sum * dev_s * dev_s).sum(axis=-1),
            "cm.sum.entr": _entropy(p_sum),
            "cm.energy": (p * p).sum(axis=-1),
            "cm.contrast": lin[..., 1],
            "cm.dissimilarity": lin[..., 2],
            "cm.inv.diff": lin[..., 3],
            "cm.inv.diff.norm": lin[..., 4],
            "cm.inv.diff.mom": lin[..., 5],
            "cm.inv.diff.mom.norm": lin[..., 6],
            "cm.inv.var": p_diff @ inv_var_w,
            "cm.corr": (lin[..., 7] - mu**2) / joint_var,
            "cm.auto.corr": lin[..., 7],
            "cm.clust.tend": (p_sum * dev_c2).sum(axis=-1),
            "cm.clust.shade": (p_sum * dev_c2 * dev_c).sum(axis=-1),
            "cm.clust.prom": (p_sum * dev_c2 * dev_c2).sum(axis=-1),
            "cm.info.corr.1": (hxy - 2 * hx) / hx,
            "cm.info.corr.2": np.sqrt(1 - np.exp(-2 * (2 * hx - hxy))),
        }


def compute(backend: Backend, padded, width: int, n_levels: int, distance: int, dims) -> aggregation.Rows:
    per_slice = volume = None
    if "2D" in dims or "2.5D" in dims:
        per_slice = {"glcm": matrices(backend, padded, width, n_levels, distance, in_slice=True)}
    if "3D" in dims:
        volume = {"glcm": matrices(backend, padded, width, n_levels, distance, in_slice=False)}
    return aggregation.directional(features, per_slice, volume)
