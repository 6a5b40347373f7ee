"""Intensity-based statistical features (IBSI 1, section 4.3; family UHIW, tag prefix ``stat``).

Computed over the 3D intensity mask (aggregation DHQ4). Percentiles use linear interpolation
between order statistics (numpy's default), as the IBSI reference implementations do.
"""

from __future__ import annotations

import numpy as np


def moments(x: np.ndarray) -> dict[str, float]:
    mu = x.mean()
    dev = x - mu
    dev2 = dev * dev
    m2 = dev2.mean()
    m3 = (dev2 * dev).mean()
    m4 = (dev2 * dev2).mean()
    return {
        "mean": mu,
        "var": m2,
        "skew": m3 / m2**1.5 if m2 > 0 else 0.0,
        "kurt": m4 / m2**2 - 3.0 if m2 > 0 else 0.0,
    }


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


def dispersion(x: np.ndarray) -> dict[str, float]:
    """Statistics shared with the intensity histogram family (same formulas, discretised input)."""
    p10, p25, median, p75, p90 = percentiles(x, [10, 25, 50, 75, 90])
    mu = x.mean()
    central = x[(x >= p10) & (x <= p90)]
    return {
        "median": median,
        "min": x.min(),
        "p10": p10,
        "p90": p90,
        "max": x.max(),
        "iqr": p75 - p25,
        "range": x.max() - x.min(),
        "mad": np.abs(x - mu).mean(),
        "rmad": np.abs(central - central.mean()).mean() if central.size else np.nan,
        "medad": np.abs(x - median).mean(),
        "cov": np.sqrt(((x - mu) ** 2).mean()) / mu if mu != 0 else np.nan,
        "qcod": (p75 - p25) / (p75 + p25) if (p75 + p25) != 0 else np.nan,
    }


def compute(values: np.ndarray) -> list[tuple[str, float]]:
    x = np.asarray(values, dtype=np.float64)
    stats = {**moments(x), **dispersion(x)}
    stats["energy"] = (x**2).sum()
    stats["rms"] = np.sqrt((x**2).mean())
    return [(f"stat.{name}", float(value)) for name, value in stats.items()]
