"""Intensity-based statistical features (IBSI 1, section 4.3; family UHIW, tag prefix ``stat``).

Computed over the 3D intensity mask (aggregation DHQ4). Percentiles use linear interpolation
between order statistics (numpy's default), as the IBSI reference implementations do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from radlake.radiomics.aggregation import Rows
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.settings import RadiomicsSettings

# beyond this many distinct integer values per value, sorting is cheaper than counting
_COUNTING_RANGE_PER_VALUE = 4


def percentiles(x: np.ndarray, q: list[float]) -> np.ndarray:
    """``np.percentile(x, q)`` (linear interpolation between order statistics, numpy's rounding).

    Integer-valued intensities (CT in HU, discretised levels) within a narrow range are counted
    instead of partitioned: the order statistic k is the first value whose cumulative count
    exceeds k, found by binary search, which costs one pass over ``x`` instead of a partition
    per quantile.
    """
    low, high = x.min(), x.max()
    if not (high - low < _COUNTING_RANGE_PER_VALUE * x.size and np.array_equal(x, np.rint(x))):
        return np.percentile(x, q)
    cumulative = np.cumsum(np.bincount((x - low).astype(np.int64)))
    position = np.true_divide(q, 100) * (x.size - 1)
    below = np.floor(position)
    gamma = position - below
    ranks = np.stack([below, np.minimum(below + 1, x.size - 1)]).astype(np.int64)
    a, b = np.searchsorted(cumulative, ranks, side="right") + low
    # numpy's lerp: from the nearer end, so that gamma = 1 gives b exactly
    return np.where(gamma >= 0.5, b - (b - a) * (1 - gamma), a + (b - a) * gamma)


@njit(cache=True, nogil=True, error_model="numpy")
def _sums(x, median, low, high):
    """Mean, central moments 2-4, mean absolute deviations from the mean, the median and (over the
    values within [low, high]) their own mean, sum of squares, min and max: three passes."""
    n = x.size
    total = squares = 0.0
    smallest, largest = np.inf, -np.inf
    for v in x:
        total += v
        squares += v * v
        smallest = min(smallest, v)
        largest = max(largest, v)
    mu = total / n
    m2 = m3 = m4 = mad = medad = central_total = 0.0
    central = 0
    for v in x:
        d = v - mu
        d2 = d * d
        m2 += d2
        m3 += d2 * d
        m4 += d2 * d2
        mad += abs(d)
        medad += abs(v - median)
        if low <= v <= high:
            central_total += v
            central += 1
    rmad = np.nan
    if central > 0:
        central_mu = central_total / central
        spread = 0.0
        for v in x:
            if low <= v <= high:
                spread += abs(v - central_mu)
        rmad = spread / central
    return mu, m2 / n, m3 / n, m4 / n, mad / n, medad / n, rmad, squares, smallest, largest


def summary(x: np.ndarray) -> dict[str, float]:
    """Statistics shared with the intensity histogram family (same formulas, discretised input)."""
    p10, p25, median, p75, p90 = percentiles(x, [10, 25, 50, 75, 90])
    mu, m2, m3, m4, mad, medad, rmad, squares, smallest, largest = _sums(np.ascontiguousarray(x), median, p10, p90)
    return {
        "mean": mu,
        "var": m2,
        "skew": m3 / m2**1.5 if m2 > 0 else 0.0,
        "kurt": m4 / m2**2 - 3.0 if m2 > 0 else 0.0,
        "median": median,
        "min": smallest,
        "p10": p10,
        "p90": p90,
        "max": largest,
        "iqr": p75 - p25,
        "range": largest - smallest,
        "mad": mad,
        "rmad": rmad,
        "medad": medad,
        "cov": np.sqrt(m2) / mu if mu != 0 else np.nan,
        "qcod": (p75 - p25) / (p75 + p25) if (p75 + p25) != 0 else np.nan,
        "energy": squares,
        "rms": np.sqrt(squares / x.size),
    }


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> Rows:
    stats = summary(np.asarray(inputs.values, dtype=np.float64))
    order = ["mean", "var", "skew", "kurt", "median", "min", "p10", "p90", "max", "iqr", "range", "mad", "rmad",
             "medad", "cov", "qcod", "energy", "rms"]
    return [(f"stat.{name}", "", float(stats[name])) for name in order]


FAMILY = Family("intensity_statistics", prefix="stat", compute=compute)
