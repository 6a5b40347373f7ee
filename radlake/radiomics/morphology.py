"""Morphological features (IBSI 1, section 4.1; family HCUG, tag prefix ``morph``).

Mesh-based features use a triangle mesh of the morphological mask from marching cubes
(scikit-image, iso-level 0.5, on the mask zero-padded by one voxel, with world spacing); the mesh
volume is the absolute sum of the signed tetrahedra spanned by the origin and each face, the area
is the sum of the face areas. Intensity-weighted features use the intensity mask.

Not implemented (IBSI gives no digital-phantom reference values for them): volume and area
density of the oriented minimum bounding box and of the minimum-volume enclosing ellipsoid.
Moran's I and Geary's C sum over all voxel pairs; on the regular grid that is an exact FFT
correlation (:func:`moran_geary_grid`), so any ROI size is affordable; ``max_pair_voxels`` can
still switch them off (0) for speed.
"""

from __future__ import annotations

import numpy as np
from scipy import fft, spatial, special
from skimage import measure


def mesh(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    padded = np.pad(mask.astype(np.float64), 1)
    vertices, faces, _, _ = measure.marching_cubes(padded, level=0.5, spacing=spacing)
    return vertices, faces


def mesh_volume_area(vertices: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    volume = abs(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2.0
    return float(volume), float(area)


def ellipsoid_area(a: float, b: float, c: float, terms: int = 20) -> float:
    """Surface area of an ellipsoid with semi-axes a >= b >= c (Legendre series of IBSI 4.1.20)."""
    if not c > 0:
        return float("nan")  # degenerate (flat or linear) ROI
    alpha = np.sqrt(1 - b**2 / a**2)
    beta = np.sqrt(1 - c**2 / a**2)
    if alpha * beta == 0:
        x = 1.0
    else:
        x = (alpha**2 + beta**2) / (2 * alpha * beta)
    nu = np.arange(terms + 1)
    series = ((alpha * beta) ** nu / (1 - 4 * nu**2) * special.eval_legendre(nu, x)).sum()
    return float(4 * np.pi * a * b * series)


def moran_geary(positions: np.ndarray, values: np.ndarray, chunk: int = 2048) -> tuple[float, float]:
    """Moran's I and Geary's C with inverse-distance weights over all voxel pairs, in row chunks.

    Reference implementation (O(N^2)); :func:`moran_geary_grid` gives the same values via FFT.
    """
    x = values.astype(np.float64)
    n = x.size
    dev = x - x.mean()
    w_sum = cross = geary = 0.0
    for start in range(0, n, chunk):
        d = spatial.distance.cdist(positions[start : start + chunk], positions)
        with np.errstate(divide="ignore"):
            w = np.where(d > 0, 1.0 / d, 0.0)
        xs = x[start : start + chunk]
        w_sum += w.sum()
        cross += (dev[start : start + chunk] * (w @ dev)).sum()
        geary += (xs**2 * w.sum(axis=1) - 2 * xs * (w @ x) + w @ x**2).sum()
    ss = (dev**2).sum()
    if w_sum == 0 or ss == 0:
        return float("nan"), float("nan")
    return float(n / w_sum * cross / ss), float((n - 1) * geary / (2 * w_sum * ss))


def moran_geary_grid(image: np.ndarray, mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float]:
    """Moran's I and Geary's C over all voxel pairs of ``mask``, exactly, in O(M log M).

    On a regular grid the weight 1/|r_k - r_l| depends only on the offset, so every pair sum is a
    correlation with the kernel W(r) = 1/|r| (W(0) = 0), done by FFT over the mask's box:
    sum w = <m, W*m>, sum w dev dev = <dev, W*dev>, and
    sum w (x_k - x_l)^2 = 2 <dev^2, W*m> - 2 <dev, W*dev>.
    """
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))
    m = mask[box].astype(np.float64)
    x = image[box].astype(np.float64)
    n = int(m.sum())
    dev = np.where(m > 0, x - x[m > 0].mean(), 0.0)
    # circular correlation of length >= 2a - 1 per axis sees every offset once and never wraps
    size = [fft.next_fast_len(2 * a - 1, real=True) for a in m.shape]
    offsets = [np.where(np.arange(n) < a, np.arange(n), np.arange(n) - n) * sp
               for n, a, sp in zip(size, m.shape, spacing)]
    grids = np.meshgrid(*offsets, indexing="ij", sparse=True)
    distance = np.sqrt(sum(g * g for g in grids))
    kernel = np.divide(1.0, distance, out=np.zeros(distance.shape), where=distance > 0)
    kernel_f = fft.rfftn(kernel, size)
    crop = tuple(slice(0, a) for a in m.shape)
    w_m = fft.irfftn(fft.rfftn(m, size) * kernel_f, size)[crop]
    w_dev = fft.irfftn(fft.rfftn(dev, size) * kernel_f, size)[crop]
    w_sum = float((m * w_m).sum())
    cross = float((dev * w_dev).sum())
    ss = float((dev * dev).sum())
    if w_sum <= 0 or ss == 0:
        return float("nan"), float("nan")
    geary = 2 * float((dev * dev * w_m).sum()) - 2 * cross
    return n / w_sum * cross / ss, (n - 1) * geary / (2 * w_sum * ss)


def compute(
    image: np.ndarray,
    morph_mask: np.ndarray,
    int_mask: np.ndarray,
    spacing: tuple[float, float, float],
    max_pair_voxels: int,
) -> list[tuple[str, float]]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _compute(image, morph_mask, int_mask, spacing, max_pair_voxels)


def _compute(image, morph_mask, int_mask, spacing, max_pair_voxels) -> list[tuple[str, float]]:
    """Degenerate ROIs (flat, linear) give NaN or inf where a ratio has a zero denominator."""
    spacing = tuple(float(s) for s in spacing)
    # every morphological feature is translation invariant: work on the morphological mask's box
    box = tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(morph_mask))
    image, morph_mask, int_mask = image[box], morph_mask[box], int_mask[box]
    vertices, faces = mesh(morph_mask, spacing)
    volume, area = (np.float64(v) for v in mesh_volume_area(vertices, faces))
    voxel_volume = float(np.prod(spacing))
    positions = np.argwhere(morph_mask) * np.asarray(spacing)
    same_masks = int_mask is morph_mask or np.array_equal(int_mask, morph_mask)
    int_positions = positions if same_masks else np.argwhere(int_mask) * np.asarray(spacing)
    intensities = image[int_mask].astype(np.float64)

    sph = (36 * np.pi * volume**2) ** (1 / 3)
    rows: list[tuple[str, float]] = [
        ("morph.vol", volume),
        ("morph.approx.vol", morph_mask.sum() * voxel_volume),
        ("morph.area", area),
        ("morph.av", area / volume),
        ("morph.comp.1", volume / (np.pi**0.5 * area**1.5)),
        ("morph.comp.2", 36 * np.pi * volume**2 / area**3),
        ("morph.sph.dispr", area / sph),
        ("morph.sphericity", sph / area),
        ("morph.asphericity", (area**3 / (36 * np.pi * volume**2)) ** (1 / 3) - 1),
    ]
    weighted_centre = (int_positions * intensities[:, None]).sum(axis=0) / intensities.sum()
    rows.append(("morph.com", float(np.linalg.norm(positions.mean(axis=0) - weighted_centre))))

    hull = spatial.ConvexHull(vertices)
    hull_points = vertices[hull.vertices]
    rows.append(("morph.diam", float(spatial.distance.pdist(hull_points).max())))

    eigen = np.sort(np.linalg.eigvalsh(np.cov(positions.T, bias=False)))[::-1] if len(positions) > 1 else np.zeros(3)
    major, minor, least = (np.float64(max(v, 0.0)) for v in eigen)
    rows += [
        ("morph.pca.major", 4 * np.sqrt(major)),
        ("morph.pca.minor", 4 * np.sqrt(minor)),
        ("morph.pca.least", 4 * np.sqrt(least)),
        ("morph.pca.elongation", np.sqrt(minor / major) if major > 0 else np.nan),
        ("morph.pca.flatness", np.sqrt(least / major) if major > 0 else np.nan),
    ]
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    aabb_volume = float(np.prod(extent))
    aabb_area = float(2 * (extent[0] * extent[1] + extent[0] * extent[2] + extent[1] * extent[2]))
    rows += [("morph.v.dens.aabb", volume / aabb_volume), ("morph.a.dens.aabb", area / aabb_area)]
    a, b, c = (2 * np.sqrt(v) for v in (major, minor, least))
    rows += [
        ("morph.v.dens.aee", volume / (4 * np.pi / 3 * a * b * c)),
        ("morph.a.dens.aee", area / ellipsoid_area(a, b, c)),
        ("morph.v.dens.conv.hull", volume / hull.volume),
        ("morph.a.dens.conv.hull", area / hull.area),
        ("morph.integ.int", volume * intensities.mean()),
    ]
    if max_pair_voxels is None or intensities.size <= max_pair_voxels:
        moran, geary = moran_geary_grid(image, int_mask, spacing)
        rows += [("morph.moran.i", moran), ("morph.geary.c", geary)]
    return [(tag, float(value)) for tag, value in rows]
