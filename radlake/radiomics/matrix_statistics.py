"""Statistics shared by the GLRLM, GLSZM, GLDZM and NGLDM families (IBSI 1, sections 4.7-4.11).

These four families compute the same emphasis, non-uniformity, variance and entropy statistics
of a matrix M[..., i, j] whose rows are grey levels i = 1..Ng and whose columns are run lengths,
zone sizes, zone distances or dependence counts j = 1..Nj. Leading axes are batches; an empty
matrix gives NaN so that averaging can skip it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

STATISTICS = ("short", "long", "low_gl", "high_gl", "short_low", "short_high", "long_low", "long_high",
              "glnu", "glnu_norm", "jnu", "jnu_norm", "perc", "gl_var", "j_var", "entropy", "energy")


@njit(cache=True, nogil=True)
def _statistics(m, n_voxels, columns):
    """The :data:`STATISTICS` of each matrix of ``m`` (float64 ``(B, Ng, Nj)``, column k standing for
    the value ``columns[k]``), as ``(B, 17)``, in two passes per matrix that skip its empty cells."""
    batch, n_g, n_j = m.shape
    out = np.empty((batch, len(STATISTICS)))
    rows = np.empty(n_g)
    cols = np.empty(n_j)
    for b in range(batch):
        rows[:] = 0.0
        cols[:] = 0.0
        total = 0.0
        short = long = low = high = short_low = short_high = long_low = long_high = 0.0
        mu_i = mu_j = 0.0
        for i in range(n_g):
            gi = float(i + 1)
            gi2 = gi * gi
            for j in range(n_j):
                v = m[b, i, j]
                if v == 0.0:
                    continue
                gj = columns[j]
                gj2 = gj * gj
                total += v
                rows[i] += v
                cols[j] += v
                short += v / gj2
                long += v * gj2
                low += v / gi2
                high += v * gi2
                short_low += v / (gi2 * gj2)
                short_high += v * gi2 / gj2
                long_low += v * gj2 / gi2
                long_high += v * gi2 * gj2
                mu_i += v * gi
                mu_j += v * gj
        if total == 0.0:  # an empty matrix: NaN, skipped when averaging (entropy 0, as an empty sum)
            out[b, :] = np.nan
            out[b, 12] = 0.0 / n_voxels[b] if n_voxels[b] != 0 else np.nan
            out[b, 15] = 0.0
            continue
        mu_i /= total
        mu_j /= total
        gl_var = j_var = entropy = energy = 0.0
        for i in range(n_g):
            for j in range(n_j):
                v = m[b, i, j]
                if v == 0.0:
                    continue
                p = v / total
                gl_var += p * (i + 1 - mu_i) ** 2
                j_var += p * (columns[j] - mu_j) ** 2
                entropy -= p * np.log2(p)
                energy += p * p
        glnu = (rows * rows).sum()
        jnu = (cols * cols).sum()
        out[b, 0], out[b, 1], out[b, 2], out[b, 3] = short / total, long / total, low / total, high / total
        out[b, 4], out[b, 5] = short_low / total, short_high / total
        out[b, 6], out[b, 7] = long_low / total, long_high / total
        out[b, 8], out[b, 9], out[b, 10], out[b, 11] = glnu / total, glnu / total**2, jnu / total, jnu / total**2
        out[b, 12] = total / n_voxels[b] if n_voxels[b] != 0 else np.inf
        out[b, 13], out[b, 14], out[b, 15], out[b, 16] = gl_var, j_var, entropy, energy
    return out


def statistics(matrix: np.ndarray, n_voxels: np.ndarray | float, columns: np.ndarray | None = None
               ) -> dict[str, np.ndarray]:
    """``columns``: the value j of each column (default 1..Nj), for matrices kept to the columns
    that occur (zone sizes: a few hundred distinct ones up to the size of the largest zone)."""
    m = np.asarray(matrix, dtype=np.float64)
    batch = m.shape[:-2]
    flat = np.ascontiguousarray(m.reshape((-1,) + m.shape[-2:]))
    voxels = np.broadcast_to(np.asarray(n_voxels, dtype=np.float64), batch).reshape(-1)
    j = np.arange(1.0, m.shape[-1] + 1) if columns is None else np.asarray(columns, dtype=np.float64)
    values = _statistics(flat, np.ascontiguousarray(voxels), j)
    return {name: values[:, k].reshape(batch) for k, name in enumerate(STATISTICS)}


def named(stats: dict[str, np.ndarray], names: dict[str, str]) -> dict[str, np.ndarray]:
    """Rename generic statistics to a family's IBSI tags (``names``: generic -> tag)."""
    return {tag: stats[key] for key, tag in names.items()}

