"""Intensity-volume histogram features (IBSI 1, section 4.5; family P88C, tag prefix ``ivh``).

The IVH is evaluated on a grid G of intensities with step w_d (IBSI 4.5):

* discrete calibrated intensities (``none``, e.g. CT): the intensities themselves, G = the
  re-segmentation range (upper bound max(X) if open) or [min(X), max(X)], w_d = 1;
* continuous calibrated (``fbs``): bin numbers converted to bin centres X_min + (X_d - 0.5) w,
  G = [X_min + w/2, X_max - w/2], X_min/X_max the re-segmentation bounds or the ROI extremes;
* arbitrary units (``fbn``): the bin numbers 1..Ng, G = [1, Ng], w_d = 1.

nu(i) is the volume fraction with intensity >= i, gamma(i) = (i - min G) / (max G - min G).
"""

from __future__ import annotations

import numpy as np

from radlake.radiomics.aggregation import Rows
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.settings import Discretisation, RadiomicsSettings


def ivh_values_and_grid(values: np.ndarray, settings: Discretisation,
                        resegmentation_range: tuple[float | None, float | None]) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(values, dtype=np.float64)
    low, high = resegmentation_range
    if settings.method == "none":
        g_min = x.min() if low is None else low
        g_max = x.max() if high is None else high
        return x, np.arange(g_min, g_max + 0.5)
    if settings.method == "fbs":
        x_min = x.min() if low is None else low
        x_max = x.max() if high is None else high
        w = settings.bin_size
        centres = x_min + (np.floor((x - x_min) / w) + 1 - 0.5) * w
        return centres, np.arange(x_min + 0.5 * w, x_max - 0.5 * w + 1e-9 * w, w)
    n = settings.bin_number
    levels = np.floor(n * (x - x.min()) / (x.max() - x.min())) + 1 if x.max() > x.min() else np.ones_like(x)
    return np.minimum(levels, n), np.arange(1, n + 1, dtype=np.float64)


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> Rows:
    """IVH features of the ROI intensities, discretised by ``settings.ivh_discretisation`` on its grid G."""
    values, grid = ivh_values_and_grid(inputs.values, settings.ivh_discretisation, settings.resegmentation.range)
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
        step = grid[1] - grid[0] if grid.size > 1 else 1.0
        return float(candidates[0]) if candidates.size else float(high + step)

    v10, v90 = volume_at(0.10), volume_at(0.90)
    i10, i90 = intensity_at(0.10), intensity_at(0.90)
    auc = float(np.trapezoid(nu, gamma)) if grid.size > 1 else 0.0
    return [
        ("ivh.v10", "", v10),
        ("ivh.v90", "", v90),
        ("ivh.i10", "", i10),
        ("ivh.i90", "", i90),
        ("ivh.v10minusv90", "", v10 - v90),
        ("ivh.i10minusi90", "", i10 - i90),
        ("ivh.auc", "", auc),
    ]


FAMILY = Family("intensity_volume_histogram", prefix="ivh", compute=compute)
