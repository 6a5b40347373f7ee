"""Feature aggregation methods of IBSI 1 (section 3.1.1 and the per-family tables).

Texture matrices are kept as dictionaries of additive arrays (a GLCM, or the counts and sums of an
NGTDM); *merging* sums them over an axis, *averaging* computes features per matrix and takes the
mean of the features. Directional families (GLCM, GLRLM) have six methods, the others three:

=========  ======  =============================================  ==========
label      IBSI    meaning                                        families
=========  ======  =============================================  ==========
2D:avg     BTW3    per slice and direction, averaged              GLCM, GLRLM
2D:mrg     SUJT    directions merged per slice, slices averaged   GLCM, GLRLM
2.5D:avg   JJUI    slices merged per direction, directions avgd.  GLCM, GLRLM
2.5D:mrg   ZW7Z    everything merged                              GLCM, GLRLM
3D:avg     ITBB    per 3D direction, averaged                     GLCM, GLRLM
3D:mrg     IAZD    3D directions merged                           GLCM, GLRLM
2D         8QNN    per slice, averaged                            GLSZM, GLDZM, NGTDM, NGLDM
2.5D       62GR    slices merged                                  GLSZM, GLDZM, NGTDM, NGLDM
3D         KOBO    one 3D matrix                                  GLSZM, GLDZM, NGTDM, NGLDM
=========  ======  =============================================  ==========
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

AGGREGATION_IDS = {
    "": "DHQ4",
    "2D:avg": "BTW3",
    "2D:mrg": "SUJT",
    "2.5D:avg": "JJUI",
    "2.5D:mrg": "ZW7Z",
    "3D:avg": "ITBB",
    "3D:mrg": "IAZD",
    "2D": "8QNN",
    "2.5D": "62GR",
    "3D": "KOBO",
}

Matrices = dict[str, np.ndarray]
FeatureFn = Callable[[Matrices], dict[str, np.ndarray]]
Rows = list[tuple[str, str, float]]


def _sum(matrices: Matrices, axis: int | tuple[int, ...]) -> Matrices:
    return {key: value.sum(axis=axis) for key, value in matrices.items()}


def _average(features: dict[str, np.ndarray], label: str) -> Rows:
    """Mean of each feature over its matrices, skipping NaN (empty matrices)."""
    tags = list(features)
    stacked = np.array([np.asarray(features[t], dtype=np.float64).reshape(-1) for t in tags])
    if stacked.shape[1] == 1:  # one matrix (merged, or 3D): its features as they are
        return [(tag, label, float(value)) for tag, value in zip(tags, stacked[:, 0])]
    finite = ~np.isnan(stacked)
    counts = finite.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(finite, stacked, 0.0).sum(axis=1) / counts
    return [(tag, label, float(value)) for tag, value in zip(tags, means)]


def directional(fn: FeatureFn, per_slice: Matrices | None, volume: Matrices | None) -> Rows:
    """GLCM/GLRLM: ``per_slice`` arrays are (slices, 4 directions, ...), ``volume`` (13 directions, ...)."""
    rows: Rows = []
    if per_slice is not None:
        rows += _average(fn(per_slice), "2D:avg")
        rows += _average(fn(_sum(per_slice, 1)), "2D:mrg")
        rows += _average(fn(_sum(per_slice, 0)), "2.5D:avg")
        rows += _average(fn(_sum(per_slice, (0, 1))), "2.5D:mrg")
    if volume is not None:
        rows += _average(fn(volume), "3D:avg")
        rows += _average(fn(_sum(volume, 0)), "3D:mrg")
    return rows


def slice_wise(fn: FeatureFn, per_slice: Matrices | None, volume: Matrices | None) -> Rows:
    """GLSZM/GLDZM/NGTDM/NGLDM: ``per_slice`` arrays are (slices, ...), ``volume`` one matrix."""
    rows: Rows = []
    if per_slice is not None:
        rows += _average(fn(per_slice), "2D")
        rows += _average(fn(_sum(per_slice, 0)), "2.5D")
    if volume is not None:
        rows += _average(fn(volume), "3D")
    return rows
