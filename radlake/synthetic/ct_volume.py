"""Synthetic CT volumes with lesions of known size, for radiomics tests and benchmarks.

A volume is soft tissue (~40 HU) with noise, a body outline in air (-1000 HU), and one lesion:
either a sphere of given radius or an irregular (lobulated) blob, with its own mean HU and
texture. Everything is deterministic for a given seed. Arrays are (z, y, x) int16 HU.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from radlake.synthetic.dicom_series import write_ct_series


@dataclass(frozen=True)
class SyntheticCT:
    image: np.ndarray  # (z, y, x) HU, int16
    mask: np.ndarray  # (z, y, x) uint8, 1 = lesion
    spacing: tuple[float, float, float]  # (dz, dy, dx) mm
    lesion_volume_mm3: float  # voxel-count volume of the lesion
    kind: str


def _grid(shape, spacing, centre):
    z, y, x = np.meshgrid(*[np.arange(n) * s for n, s in zip(shape, spacing)], indexing="ij")
    return z - centre[0], y - centre[1], x - centre[2]


def _background(shape, spacing, rng) -> np.ndarray:
    z, y, x = _grid(shape, spacing, [n * s / 2 for n, s in zip(shape, spacing)])
    ry, rx = shape[1] * spacing[1] * 0.45, shape[2] * spacing[2] * 0.45
    body = (y / ry) ** 2 + (x / rx) ** 2 <= 1.0
    tissue = 40 + ndimage.gaussian_filter(rng.normal(0, 60, shape), 1.0)
    return np.where(body, tissue, -1000 + rng.normal(0, 5, shape))


def spherical_lesion(shape=(64, 128, 128), spacing=(2.0, 0.8, 0.8), radius_mm=15.0, seed=0) -> SyntheticCT:
    rng = np.random.default_rng(seed)
    image = _background(shape, spacing, rng)
    z, y, x = _grid(shape, spacing, [n * s / 2 for n, s in zip(shape, spacing)])
    mask = z**2 + y**2 + x**2 <= radius_mm**2
    lesion = 90 + ndimage.gaussian_filter(rng.normal(0, 80, shape), 1.5) - 0.8 * np.sqrt(z**2 + y**2 + x**2)
    image = np.where(mask, lesion, image)
    return SyntheticCT(image.round().astype(np.int16), mask.astype(np.uint8), spacing,
                       float(mask.sum() * np.prod(spacing)), "sphere")


def irregular_lesion(shape=(64, 128, 128), spacing=(2.0, 0.8, 0.8), radius_mm=15.0, seed=1) -> SyntheticCT:
    """Lobulated lesion: a sphere whose radius is modulated by smooth random noise (+-35 %)."""
    rng = np.random.default_rng(seed)
    image = _background(shape, spacing, rng)
    z, y, x = _grid(shape, spacing, [n * s / 2 for n, s in zip(shape, spacing)])
    r = np.sqrt(z**2 + y**2 + x**2)
    bumps = ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma=[6 / s for s in spacing])
    bumps = bumps / (np.abs(bumps).max() + 1e-12)
    mask = r <= radius_mm * (1 + 0.35 * bumps)
    mask = ndimage.binary_opening(mask, iterations=1)
    labels, n = ndimage.label(mask)
    if n > 1:
        mask = labels == (np.argmax(np.bincount(labels.ravel())[1:]) + 1)
    lesion = 20 + ndimage.gaussian_filter(rng.normal(0, 120, shape), 1.0)
    image = np.where(mask, lesion, image)
    return SyntheticCT(image.round().astype(np.int16), mask.astype(np.uint8), spacing,
                       float(mask.sum() * np.prod(spacing)), "irregular")


def write_dicom_series(ct: SyntheticCT, folder: Path | str, seed: int = 0) -> list[Path]:
    """Write ``ct.image`` (z, y, x HU) with ``ct.spacing`` as a CT series (one file per slice, axial, LPS
    origin at 0, fresh UIDs); return the paths. Any volume with those two attributes will do (e.g. a
    :class:`radlake.synthetic.chest_ct.ChestCT`). The writer is :mod:`radlake.synthetic.dicom_series`."""

    return write_ct_series(ct.image, ct.spacing, folder, patient_id=f"SYNTH{seed}", patient_name="Synthetic^Phantom")
