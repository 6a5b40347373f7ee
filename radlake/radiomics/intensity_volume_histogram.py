"""Intensity-volume histogram features (IBSI 1, section 4.5; family P88C, tag prefix ``ivh``).

With discretised intensities the IVH runs over the levels 1..Ng; with ``none`` it runs over the
distinct intensities present, between their minimum and maximum. The fractional intensity of a
level is (i - i_min) / (i_max - i_min) and nu(i) is the volume fraction with intensity >= i.
"""

from __future__ import annotations

import numpy as np


def compute(values: np.ndarray, grid: np.ndarray) -> list[tuple[str, float]]:
    """``values``: intensities in the ROI; ``grid``: the sorted intensity levels the IVH is taken on."""
    x = np.asarray(values, dtype=np.float64)
    grid = np.asarray(grid, dtype=np.float64)
    sorted_x = np.sort(x)
    nu = 1.0 - np.searchsorted(sorted_x, grid, side="left") / x.size  # fraction with x >= level
    low, high = grid[0], grid[-1]
    gamma = (grid - low) / (high - low) if high > low else np.zeros_like(grid)

    def volume_at(fraction: float) -> float:
        above = nu[gamma >= fraction]
        return float(above[0]) if above.size else 0.0

    def intensity_at(fraction: float) -> float:
        candidates = grid[nu <= fraction]
        return float(candidates[0]) if candidates.size else float(high + 1)

    v10, v90 = volume_at(0.10), volume_at(0.90)
    i10, i90 = intensity_at(0.10), intensity_at(0.90)
    auc = float(np.trapezoid(nu, gamma)) if grid.size > 1 else 0.0
    return [
        ("ivh.v10", v10),
        ("ivh.v90", v90),
        ("ivh.i10", i10),
        ("ivh.i90", i90),
        ("ivh.v10minusv90", v10 - v90),
        ("ivh.i10minusi90", i10 - i90),
        ("ivh.auc", auc),
    ]
