"""Statistics shared by the GLRLM, GLSZM, GLDZM and NGLDM families (IBSI 1, sections 4.7-4.11).

These four families compute the same emphasis, non-uniformity, variance and entropy statistics
of a matrix M[..., i, j] whose rows are grey levels i = 1..Ng and whose columns are run lengths,
zone sizes, zone distances or dependence counts j = 1..Nj. Leading axes are batches; an empty
matrix gives NaN so that averaging can skip it.
"""

from __future__ import annotations

import numpy as np


def statistics(matrix: np.ndarray, n_voxels: np.ndarray | float) -> dict[str, np.ndarray]:
    m = np.asarray(matrix, dtype=np.float64)
    n_g, n_j = m.shape[-2:]
    i = np.arange(1, n_g + 1, dtype=np.float64)[:, None]
    # zone-size matrices are wide and sparse in j: keep only the columns that occur anywhere
    used = m.reshape(-1, n_g, n_j).any(axis=(0, 1))
    m = m[..., used]
    j = np.arange(1, n_j + 1, dtype=np.float64)[used][None, :]
    n_s = m.sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        total = np.where(n_s > 0, n_s, np.nan)

        def weighted(weight: np.ndarray) -> np.ndarray:
            return (m * weight).sum(axis=(-2, -1)) / total

        rows = m.sum(axis=-1)
        cols = m.sum(axis=-2)
        p = m / total[..., None, None]
        mu_i = (p * i).sum(axis=(-2, -1))
        mu_j = (p * j).sum(axis=(-2, -1))
        plogp = np.where(p > 0, p * np.log2(np.where(p > 0, p, 1.0)), 0.0)
        return {
            "short": weighted(1.0 / j**2),
            "long": weighted(j**2),
            "low_gl": weighted(1.0 / i**2),
            "high_gl": weighted(i**2),
            "short_low": weighted(1.0 / (i**2 * j**2)),
            "short_high": weighted(i**2 / j**2),
            "long_low": weighted(j**2 / i**2),
            "long_high": weighted(i**2 * j**2),
            "glnu": (rows**2).sum(axis=-1) / total,
            "glnu_norm": (rows**2).sum(axis=-1) / total**2,
            "jnu": (cols**2).sum(axis=-1) / total,
            "jnu_norm": (cols**2).sum(axis=-1) / total**2,
            "perc": n_s / np.asarray(n_voxels, dtype=np.float64),
            "gl_var": (p * (i - mu_i[..., None, None]) ** 2).sum(axis=(-2, -1)),
            "j_var": (p * (j - mu_j[..., None, None]) ** 2).sum(axis=(-2, -1)),
            "entropy": -plogp.sum(axis=(-2, -1)),
            "energy": (p**2).sum(axis=(-2, -1)),
        }


def named(stats: dict[str, np.ndarray], names: dict[str, str]) -> dict[str, np.ndarray]:
    """Rename generic statistics to a family's IBSI tags (``names``: generic -> tag)."""
    return {tag: stats[key] for key, tag in names.items()}

