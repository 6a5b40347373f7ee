"""Synthetic chest CT with lung nodules of known position, size and label (benign / malignant).

The phantom is a body ellipse of soft tissue with two air-filled lungs, thin vessels running through
them, and 0-2 nodules. A nodule is a sphere whose surface is lobulated and carries spicules; the
*spiculation* s in [0, 1] sets both (benign-looking nodules are smooth, s near 0). The label is drawn,
not set: ``P(malignant) = sigmoid(6 (s - 0.5) + 0.25 (d - 10 mm))``, so the task has an honest Bayes
error (a perfect model does not reach AUC 1) and the model has to learn shape and size.

Everything is deterministic for a seed. Arrays are (z, y, x) int16 HU in an axial, LPS-aligned grid
whose slice 0 is the most inferior; ``spacing`` is (dz, dy, dx) mm.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

DEFAULT_SHAPE = (40, 112, 112)
DEFAULT_SPACING = (2.5, 0.8, 0.8)


@dataclass(frozen=True)
class Nodule:
    centre_vox: tuple[float, float, float]  # (z, y, x) index in the generated grid
    diameter_mm: float  # diameter of the underlying sphere
    spiculation: float  # 0 smooth .. 1 lobulated with many long spicules
    malignant: bool


@dataclass(frozen=True)
class ChestCT:
    image: np.ndarray  # (z, y, x) int16 HU
    labels: np.ndarray  # (z, y, x) uint8: k = voxel of nodule k-1, 0 = none
    spacing: tuple[float, float, float]
    nodules: tuple[Nodule, ...]

    @property
    def malignant(self) -> bool:
        """Study-level label: any malignant nodule."""
        return any(n.malignant for n in self.nodules)


def malignancy_probability(spiculation: float, diameter_mm: float) -> float:
    return float(1.0 / (1.0 + np.exp(-(6.0 * (spiculation - 0.5) + 0.25 * (diameter_mm - 10.0)))))


def _mm_grid(shape, spacing):
    return np.meshgrid(*[np.arange(n, dtype=np.float32) * s for n, s in zip(shape, spacing)], indexing="ij")


def _lungs(shape, spacing) -> tuple[np.ndarray, np.ndarray]:
    z, y, x = _mm_grid(shape, spacing)
    ext = [n * s for n, s in zip(shape, spacing)]
    cz, cy, cx = ext[0] / 2, ext[1] / 2, ext[2] / 2
    body = ((y - cy) / (0.46 * ext[1])) ** 2 + ((x - cx) / (0.48 * ext[2])) ** 2 <= 1.0
    lungs = np.zeros(shape, dtype=bool)
    for side in (-1, 1):
        lx = cx + side * 0.22 * ext[2]
        lungs |= (((z - cz) / (0.62 * ext[0])) ** 2 + ((y - cy) / (0.34 * ext[1])) ** 2
                  + ((x - lx) / (0.17 * ext[2])) ** 2) <= 1.0
    return body, lungs & body


def _vessels(shape, spacing, lungs, rng, count: int) -> np.ndarray:
    """Thin tubes (random smooth curves) inside the lungs."""
    out = np.zeros(shape, dtype=bool)
    where = np.argwhere(lungs)
    if len(where) == 0:
        return out
    sp = np.asarray(spacing)
    for _ in range(count):
        start = where[rng.integers(len(where))] * sp
        direction = rng.normal(size=3)
        direction /= np.linalg.norm(direction)
        radius = rng.uniform(0.7, 1.3)
        bend = rng.normal(scale=4.0, size=3)
        points = [start + direction * t + bend * np.sin(k / 12 * np.pi)
                  for k, t in enumerate(np.linspace(-30, 30, 13))]
        for a, b in zip(points[:-1], points[1:]):
            lo = np.maximum(np.floor((np.minimum(a, b) - radius) / sp).astype(int), 0)
            hi = np.minimum(np.ceil((np.maximum(a, b) + radius) / sp).astype(int) + 1, shape)
            if np.any(hi <= lo):
                continue
            z, y, x = np.meshgrid(*[np.arange(low, high) * s for low, high, s in zip(lo, hi, sp)], indexing="ij")
            seg = b - a
            t = np.clip(((z - a[0]) * seg[0] + (y - a[1]) * seg[1] + (x - a[2]) * seg[2]) / float(seg @ seg), 0, 1)
            d2 = (z - a[0] - t * seg[0]) ** 2 + (y - a[1] - t * seg[1]) ** 2 + (x - a[2] - t * seg[2]) ** 2
            out[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] |= d2 <= radius**2
    return out & lungs


def nodule_mask(shape, spacing, centre_vox, diameter_mm: float, spiculation: float,
                rng: np.random.Generator) -> np.ndarray:
    """Boolean mask of one nodule: lobulated sphere plus tapered spicules, both scaled by spiculation."""
    radius = diameter_mm / 2
    reach = radius * 2.6
    lo = [max(0, int(np.floor(c - reach / s))) for c, s in zip(centre_vox, spacing)]
    hi = [min(n, int(np.ceil(c + reach / s)) + 1) for c, s, n in zip(centre_vox, spacing, shape)]
    axes = [(np.arange(a, b, dtype=np.float32) - c) * s for a, b, c, s in zip(lo, hi, centre_vox, spacing)]
    z, y, x = np.meshgrid(*axes, indexing="ij")
    d = np.sqrt(z**2 + y**2 + x**2) + 1e-6
    u = np.stack([z / d, y / d, x / d])
    lobes = np.zeros_like(d)
    for _ in range(4):
        axis = rng.normal(size=3)
        axis /= np.linalg.norm(axis)
        lobes += np.cos(rng.integers(2, 5) * np.arccos(np.clip(np.tensordot(axis, u, 1), -1, 1)))
    inside = d <= radius * (1 + (0.04 + 0.22 * spiculation) * lobes / 4)
    for _ in range(int(round(spiculation * 12))):
        v = rng.normal(size=3)
        v /= np.linalg.norm(v)
        length = radius * rng.uniform(1.5, 2.5)
        along = z * v[0] + y * v[1] + x * v[2]
        across = np.sqrt(np.maximum(d**2 - along**2, 0))
        half_width = 1.1 * np.clip(1 - along / length, 0, 1)
        inside |= (along > 0) & (along < length) & (across <= half_width)
    mask = np.zeros(shape, dtype=bool)
    mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = inside
    return mask


def chest_ct(seed: int, shape=DEFAULT_SHAPE, spacing=DEFAULT_SPACING, max_nodules: int = 2,
             min_nodules: int = 0) -> ChestCT:
    """One labelled study; nodule count, sizes, spiculation and labels drawn from the seed."""
    rng = np.random.default_rng(seed)
    body, lungs = _lungs(shape, spacing)
    tissue = 40 + ndimage.gaussian_filter(rng.normal(0, 50, shape), 1.0)
    parenchyma = -850 + ndimage.gaussian_filter(rng.normal(0, 60, shape), 1.0)
    image = np.where(body, tissue, -1000 + rng.normal(0, 8, shape))
    image = np.where(lungs, parenchyma, image)
    vessels = _vessels(shape, spacing, ndimage.binary_erosion(lungs, iterations=2), rng, count=int(rng.integers(3, 7)))
    image = np.where(vessels, 30 + rng.normal(0, 25, shape), image)

    labels = np.zeros(shape, dtype=np.uint8)
    nodules: list[Nodule] = []
    margin_mm = 9.0
    inner = ndimage.distance_transform_edt(lungs, sampling=spacing) > margin_mm
    candidates = np.argwhere(inner)
    for _ in range(int(rng.integers(min_nodules, max_nodules + 1))):
        if len(candidates) == 0:
            break
        centre = candidates[rng.integers(len(candidates))].astype(float) + rng.uniform(-0.5, 0.5, 3)
        if any(np.linalg.norm((centre - np.asarray(n.centre_vox)) * spacing) < 20 for n in nodules):
            continue
        diameter = float(rng.uniform(5.0, 14.0))
        spiculation = float(rng.beta(1.2, 1.2))
        malignant = bool(rng.random() < malignancy_probability(spiculation, diameter))
        mask = nodule_mask(shape, spacing, tuple(centre), diameter, spiculation, rng) & (labels == 0)
        texture = 25 + ndimage.gaussian_filter(rng.normal(0, 40, shape), 1.0)
        image = np.where(mask, texture, image)
        labels[mask] = len(nodules) + 1
        nodules.append(Nodule(tuple(float(c) for c in centre), diameter, spiculation, malignant))
    return ChestCT(np.clip(image, -1024, 3071).round().astype(np.int16), labels, tuple(spacing), tuple(nodules))
