"""Local intensity features (IBSI 1, section 4.2; family 9ST6, tag prefix ``loc``).

The mean intensity in a 1 cm^3 sphere (radius 6.2 mm, world spacing) is computed for every voxel
by FFT convolution with a spherical mean filter; image voxels outside the ROI count, voxels
outside the image do not (the mean is over the voxels that exist).
"""

from __future__ import annotations

import numpy as np
from scipy import signal

from radlake.radiomics.aggregation import Rows
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.settings import RadiomicsSettings

RADIUS_MM = (3.0 / (4.0 * np.pi)) ** (1.0 / 3.0) * 10.0


def sphere(spacing: tuple[float, float, float]) -> np.ndarray:
    half = [int(np.floor(RADIUS_MM / s)) for s in spacing]
    grids = np.meshgrid(*[np.arange(-h, h + 1) * s for h, s in zip(half, spacing)], indexing="ij")
    return (sum(g**2 for g in grids) <= RADIUS_MM**2).astype(np.float64)


def peak_means(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Spherical means at every voxel (only meaningful inside ``mask``)."""
    kernel = sphere(spacing)
    total = signal.fftconvolve(image.astype(np.float64), kernel, mode="same")
    half = np.asarray(kernel.shape) // 2
    index = np.argwhere(mask)
    if np.all(index.min(axis=0) >= half) and np.all(index.max(axis=0) + half < image.shape):
        return total / kernel.sum()  # every ROI voxel's sphere lies inside the image
    count = signal.fftconvolve(np.ones(image.shape), kernel, mode="same")
    return total / np.round(count)


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> Rows:
    image, mask = inputs.image, inputs.int_mask
    means = peak_means(image, mask, inputs.spacing)
    roi_values = image[mask]
    local = means[mask & (image == roi_values.max())].max()
    return [("loc.peak.local", "", float(local)), ("loc.peak.global", "", float(means[mask].max()))]


# the only family that reads beyond the ROI: the sphere around each voxel
FAMILY = Family("local_intensity", prefix="loc", compute=compute, margin_mm=RADIUS_MM)
