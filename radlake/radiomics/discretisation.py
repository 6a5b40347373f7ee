"""Intensity discretisation (IBSI 1, section 2.7): fixed bin number and fixed bin size.

Discretised levels are integers 1..Ng inside the intensity mask and 0 outside it.
"""

from __future__ import annotations

import numpy as np

from radlake.radiomics.errors import InvalidInputError, RadiomicsReason
from radlake.radiomics.neighbourhood import level_dtype
from radlake.radiomics.settings import Discretisation


def discretise(
    image: np.ndarray, mask: np.ndarray, settings: Discretisation, range_min: float | None = None
) -> tuple[np.ndarray, int]:
    """Return (levels, Ng), levels in the smallest integer type that holds Ng. ``range_min`` is the
    lower re-segmentation bound, used by fixed bin size."""
    values = image[mask]
    if settings.method == "fbn":
        low, high = values.min(), values.max()
        if high > low:
            binned = np.floor(settings.bin_number * (values - low) / (high - low)).astype(np.int64) + 1
            binned = np.minimum(binned, settings.bin_number)
        else:
            binned = np.ones(values.shape, dtype=np.int64)
        n_levels = settings.bin_number
    elif settings.method == "fbs":
        low = values.min() if range_min is None else range_min
        binned = np.floor((values - low) / settings.bin_size).astype(np.int64) + 1
        n_levels = int(binned.max())
    else:
        rounded = np.round(values)
        if not np.allclose(values, rounded) or rounded.min() < 1:
            raise InvalidInputError(
                RadiomicsReason.INVALID_SETTINGS,
                "discretisation 'none' needs integer intensities >= 1 inside the ROI",
            )
        binned = rounded.astype(np.int64)
        n_levels = int(binned.max())
    levels = np.zeros(image.shape, dtype=level_dtype(n_levels))
    levels[mask] = binned
    return levels, n_levels
