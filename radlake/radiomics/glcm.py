"""Grey level co-occurrence matrix features (IBSI 1, section 4.6; family LFYI, tag prefix ``cm``)."""

from __future__ import annotations

import numpy as np
from numba import njit

from radlake.radiomics import aggregation, kernels
from radlake.radiomics.backend import Backend
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.neighbourhood import (
    DIRECTIONS_2D,
    DIRECTIONS_3D,
    centre,
    direction_rows,
    shifted,
)
from radlake.radiomics.settings import RadiomicsSettings


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


FEATURES = ("cm.joint.max", "cm.joint.avg", "cm.joint.var", "cm.joint.entr", "cm.diff.avg", "cm.diff.var",
            "cm.diff.entr", "cm.sum.avg", "cm.sum.var", "cm.sum.entr", "cm.energy", "cm.contrast",
            "cm.dissimilarity", "cm.inv.diff", "cm.inv.diff.norm", "cm.inv.diff.mom", "cm.inv.diff.mom.norm",
            "cm.inv.var", "cm.corr", "cm.auto.corr", "cm.clust.tend", "cm.clust.shade", "cm.clust.prom",
            "cm.info.corr.1", "cm.info.corr.2")


@njit(cache=True, nogil=True, inline="always")
def _entropy_term(q):
    return -q * np.log2(q) if q > 0 else 0.0


@njit(cache=True, nogil=True, error_model="numpy")
def _features(counts):
    """:data:`FEATURES` of each symmetric matrix of ``counts`` (float64 ``(B, Ng, Ng)``), ``(B, 25)``.

    Symmetry lets every feature come from p itself (max, entropy, energy), the marginal p_i, the
    diagonal and cross-diagonal distributions p_{i-j} and p_{i+j}, or a sum with fixed weights;
    HXY1 = HXY2 = 2 HX for a symmetric matrix. An empty matrix gives NaN (skipped when averaging),
    its entropies being empty sums (0).
    """
    batch, n_g = counts.shape[0], counts.shape[1]
    out = np.empty((batch, len(FEATURES)))
    p_i = np.empty(n_g)
    p_diff = np.empty(n_g)
    p_sum = np.empty(2 * n_g + 1)  # index i + j (2..2Ng)
    for b in range(batch):
        total = counts[b].sum()
        if total == 0:
            out[b, :] = np.nan
            out[b, 3] = out[b, 6] = out[b, 9] = out[b, 24] = 0.0
            continue
        p_i[:] = 0.0
        p_diff[:] = 0.0
        p_sum[:] = 0.0
        peak = mu = hxy = energy = auto = 0.0
        contrast = dissimilarity = inv_diff = inv_diff_norm = inv_diff_mom = inv_diff_mom_norm = 0.0
        for i in range(n_g):
            for j in range(n_g):
                c = counts[b, i, j]
                if c == 0:
                    continue
                p = c / total
                gi, gj = float(i + 1), float(j + 1)
                d = abs(gi - gj)
                peak = max(peak, p)
                mu += p * gi
                hxy += _entropy_term(p)
                energy += p * p
                auto += p * gi * gj
                contrast += p * d * d
                dissimilarity += p * d
                inv_diff += p / (1 + d)
                inv_diff_norm += p / (1 + d / n_g)
                inv_diff_mom += p / (1 + d * d)
                inv_diff_mom_norm += p / (1 + d * d / (n_g * n_g))
                p_i[i] += p
                p_diff[abs(i - j)] += p
                p_sum[i + j + 2] += p
        joint_var = hx = 0.0
        for i in range(n_g):
            joint_var += p_i[i] * (i + 1 - mu) ** 2
            hx += _entropy_term(p_i[i])
        diff_avg = diff_entr = inv_var = 0.0
        for k in range(n_g):
            diff_avg += p_diff[k] * k
            diff_entr += _entropy_term(p_diff[k])
            if k > 0:
                inv_var += p_diff[k] / (k * k)
        diff_var = 0.0
        for k in range(n_g):
            diff_var += p_diff[k] * (k - diff_avg) ** 2
        sum_avg = sum_entr = 0.0
        for k in range(2, 2 * n_g + 1):
            sum_avg += p_sum[k] * k
            sum_entr += _entropy_term(p_sum[k])
        sum_var = tend = shade = prom = 0.0
        for k in range(2, 2 * n_g + 1):
            sum_var += p_sum[k] * (k - sum_avg) ** 2
            dev = k - 2 * mu
            tend += p_sum[k] * dev * dev
            shade += p_sum[k] * dev * dev * dev
            prom += p_sum[k] * dev * dev * dev * dev
        values = (peak, mu, joint_var, hxy, diff_avg, diff_var, diff_entr, sum_avg, sum_var, sum_entr, energy,
                  contrast, dissimilarity, inv_diff, inv_diff_norm, inv_diff_mom, inv_diff_mom_norm, inv_var,
                  (auto - mu * mu) / joint_var, auto, tend, shade, prom, (hxy - 2 * hx) / hx,
                  np.sqrt(1 - np.exp(-2 * (2 * hx - hxy))))
        for k in range(len(FEATURES)):
            out[b, k] = values[k]
    return out


def features(mats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """IBSI GLCM features of a batch of symmetric matrices (..., Ng, Ng) (compiled: :func:`_features`)."""
    counts = np.asarray(mats["glcm"], dtype=np.float64)
    batch = counts.shape[:-2]
    values = _features(np.ascontiguousarray(counts.reshape((-1,) + counts.shape[-2:])))
    return {tag: values[:, k].reshape(batch) for k, tag in enumerate(FEATURES)}


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> aggregation.Rows:
    roi, backend, distance, dims = inputs.discretised, inputs.backend, settings.texture.distance, settings.aggregations
    per_slice = volume = None
    if "2D" in dims or "2.5D" in dims:
        per_slice = {"glcm": matrices(backend, roi.padded, roi.width, roi.n_levels, distance, in_slice=True)}
    if "3D" in dims:
        volume = {"glcm": matrices(backend, roi.padded, roi.width, roi.n_levels, distance, in_slice=False)}
    return aggregation.directional(features, per_slice, volume)


FAMILY = Family("glcm", prefix="cm", compute=compute, needs_discretisation=True)
