"""Intensity histogram features (IBSI 1, section 4.4; family ZVCW, tag prefix ``ih``).

Computed from the discretised intensities 1..Ng of the 3D intensity mask (aggregation DHQ4).
"""

from __future__ import annotations

import numpy as np

from radlake.radiomics.aggregation import Rows
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.intensity_statistics import summary
from radlake.radiomics.settings import RadiomicsSettings


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> Rows:
    roi = inputs.discretised
    levels, n_levels = roi.levels[roi.int_mask], roi.n_levels
    x = np.asarray(levels, dtype=np.float64)
    stats = summary(x)
    hist = np.bincount(levels.astype(np.int64), minlength=n_levels + 1)[1 : n_levels + 1].astype(np.float64)
    p = hist / hist.sum()
    grey = np.arange(1, n_levels + 1, dtype=np.float64)
    modes = grey[hist == hist.max()]
    stats["mode"] = modes[np.argmin(np.abs(modes - stats["mean"]))]
    nz = p[p > 0]
    stats["entropy"] = -(nz * np.log2(nz)).sum()
    stats["uniformity"] = (p**2).sum()
    gradient = np.gradient(hist) if n_levels > 1 else np.zeros(1)
    stats["max.grad"] = gradient.max()
    stats["max.grad.gl"] = grey[np.argmax(gradient)]
    stats["min.grad"] = gradient.min()
    stats["min.grad.gl"] = grey[np.argmin(gradient)]
    order = ["mean", "var", "skew", "kurt", "median", "min", "p10", "p90", "max", "mode", "iqr", "range",
             "mad", "rmad", "medad", "cov", "qcod", "entropy", "uniformity", "max.grad", "max.grad.gl",
             "min.grad", "min.grad.gl"]
    return [(f"ih.{name}", "", float(stats[name])) for name in order]


FAMILY = Family("intensity_histogram", prefix="ih", compute=compute, needs_discretisation=True)
