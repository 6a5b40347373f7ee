"""Grey level co-occurrence matrix features (IBSI 1, section 4.6; family LFYI, tag prefix ``cm``)."""

from __future__ import annotations

import numpy as np

from radlake.radiomics import aggregation
from radlake.radiomics.backend import Backend
from radlake.radiomics.neighbourhood import DIRECTIONS_2D, DIRECTIONS_3D, centre, shifted


def matrices(backend: Backend, padded, width: int, n_levels: int, distance: int, in_slice: bool):
    """Symmetric co-occurrence counts: (slices, 4, Ng, Ng) in 2D, (13, Ng, Ng) in 3D, as numpy."""
    directions = DIRECTIONS_2D if in_slice else DIRECTIONS_3D
    a = centre(padded, width)
    n_slices = a.shape[0] if in_slice else 1
    slice_index = backend.asarray(np.broadcast_to(np.arange(a.shape[0])[:, None, None], a.shape).copy())
    out = []
    for direction in directions:
        b = shifted(padded, width, tuple(distance * c for c in direction))
        valid = (a > 0) & (b > 0)
        index = (a[valid] - 1) * n_levels + (b[valid] - 1)
        if in_slice:
            index = slice_index[valid] * (n_levels * n_levels) + index
        counts = backend.bincount(index, minlength=n_slices * n_levels * n_levels)
        out.append(backend.to_numpy(counts).reshape(n_slices, n_levels, n_levels))
    counts = np.stack(out, axis=1).astype(np.float64)
    counts = counts + np.swapaxes(counts, -1, -2)
    return counts if in_slice else counts[0]


def features(mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    counts = mats["glcm"]
    n_g = counts.shape[-1]
    total = counts.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        p = counts / np.where(total > 0, total, np.nan)[..., None, None]
        i = np.arange(1, n_g + 1, dtype=np.float64)[:, None]
        j = i.T
        ax = (-2, -1)
        p_i = p.sum(axis=-1)
        levels = np.arange(1, n_g + 1, dtype=np.float64)
        mu = (p_i * levels).sum(axis=-1)
        var_i = (p_i * (levels - mu[..., None]) ** 2).sum(axis=-1)

        def entropy(q, axes):
            return -np.where(q > 0, q * np.log2(np.where(q > 0, q, 1.0)), 0.0).sum(axis=axes)

        # diagonal (|i-j| = k) and cross-diagonal (i+j = k) probabilities
        k_diff = np.abs(i - j).astype(int)
        k_sum = (i + j).astype(int) - 2
        flat = p.reshape(p.shape[:-2] + (n_g * n_g,))
        p_diff = flat @ (k_diff.ravel()[:, None] == np.arange(n_g)[None, :])
        p_sum = flat @ (k_sum.ravel()[:, None] == np.arange(2 * n_g - 1)[None, :])
        kd = np.arange(n_g, dtype=np.float64)
        ks = np.arange(2, 2 * n_g + 1, dtype=np.float64)
        diff_avg = (p_diff * kd).sum(axis=-1)
        sum_avg = (p_sum * ks).sum(axis=-1)
        hxy = entropy(p, ax)
        hx = entropy(p_i, -1)
        pipj = p_i[..., :, None] * p_i[..., None, :]
        log_pipj = np.log2(np.where(pipj > 0, pipj, 1.0))
        hxy1 = -(p * log_pipj).sum(axis=ax)
        hxy2 = -(pipj * log_pipj).sum(axis=ax)
        ij = (i * j * p).sum(axis=ax)
        dev = i + j - 2 * mu[..., None, None]
        inv_var_w = np.where(kd > 0, 1.0 / np.where(kd > 0, kd, 1.0) ** 2, 0.0)
        return {
            "cm.joint.max": p.max(axis=ax),
            "cm.joint.avg": (i * p).sum(axis=ax),
            "cm.joint.var": ((i - mu[..., None, None]) ** 2 * p).sum(axis=ax),
            "cm.joint.entr": hxy,
            "cm.diff.avg": diff_avg,
            "cm.diff.var": (p_diff * (kd - diff_avg[..., None]) ** 2).sum(axis=-1),
            "cm.diff.entr": entropy(p_diff, -1),
            "cm.sum.avg": sum_avg,
            "cm.sum.var": (p_sum * (ks - sum_avg[..., None]) ** 2).sum(axis=-1),
            "cm.sum.entr": entropy(p_sum, -1),
            "cm.energy": (p**2).sum(axis=ax),
            "cm.contrast": ((i - j) ** 2 * p).sum(axis=ax),
            "cm.dissimilarity": (np.abs(i - j) * p).sum(axis=ax),
            "cm.inv.diff": (p / (1 + np.abs(i - j))).sum(axis=ax),
            "cm.inv.diff.norm": (p / (1 + np.abs(i - j) / n_g)).sum(axis=ax),
            "cm.inv.diff.mom": (p / (1 + (i - j) ** 2)).sum(axis=ax),
            "cm.inv.diff.mom.norm": (p / (1 + (i - j) ** 2 / n_g**2)).sum(axis=ax),
            "cm.inv.var": (p_diff * inv_var_w).sum(axis=-1),
            "cm.corr": (ij - mu**2) / var_i,
            "cm.auto.corr": ij,
            "cm.clust.tend": (dev**2 * p).sum(axis=ax),
            "cm.clust.shade": (dev**3 * p).sum(axis=ax),
            "cm.clust.prom": (dev**4 * p).sum(axis=ax),
            "cm.info.corr.1": (hxy - hxy1) / hx,
            "cm.info.corr.2": np.sqrt(1 - np.exp(-2 * (hxy2 - hxy))),
        }


def compute(backend: Backend, padded, width: int, n_levels: int, distance: int, dims) -> aggregation.Rows:
    per_slice = volume = None
    if "2D" in dims or "2.5D" in dims:
        per_slice = {"glcm": matrices(backend, padded, width, n_levels, distance, in_slice=True)}
    if "3D" in dims:
        volume = {"glcm": matrices(backend, padded, width, n_levels, distance, in_slice=False)}
    return aggregation.directional(features, per_slice, volume)
