"""Re-segmentation of the intensity mask (IBSI 1, section 2.5): range and outlier filtering.

The morphological mask is left as it is; only the intensity mask shrinks.
"""

from __future__ import annotations

import numpy as np

from radlake.radiomics.settings import Resegmentation


def resegment(image: np.ndarray, mask: np.ndarray, settings: Resegmentation) -> np.ndarray:
    """Return a new intensity mask: ``mask`` minus the voxels outside the range or the mu +- k sigma band."""
    low, high = settings.range
    keep = mask.copy()
    if low is not None:
        keep &= image >= low
    if high is not None:
        keep &= image <= high
    if settings.outlier_sigma is not None:
        values = image[keep]  # outliers are judged among the voxels the range kept
        if values.size:
            mu, sigma = values.mean(), values.std()
            band = settings.outlier_sigma * sigma
            keep &= (image >= mu - band) & (image <= mu + band)
    return keep
