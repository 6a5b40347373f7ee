"""Morphological features (IBSI 1, section 4.1; family HCUG, tag prefix ``morph``).

Mesh-based features use the triangle mesh of the morphological mask that marching cubes
(scikit-image's Lewiner variant, iso-level 0.5, on the mask zero-padded by one voxel, with world
spacing) builds; the mesh volume is the absolute sum of the signed tetrahedra spanned by the origin
and each face, the area is the sum of the face areas. Intensity-weighted features use the
intensity mask.

The mesh is never built. On a binary mask every vertex is the midpoint of a grid edge between an
inside and an outside voxel, and the triangles of a 2x2x2 cube depend on its 8 corners only, so
the area of each of the 256 cube configurations is a constant of the spacing, and a face's signed
tetrahedron splits into a constant of its configuration plus the cube's origin dotted with the
face's normal (det(o+a, o+b, o+c) = det(a, b, c) + o . (b-a)x(c-a)). Volume and area are then
sums of table look-ups over the surface cubes (:func:`mesh_volume_area_of_mask`), equal to the
mesh's to rounding (:func:`mesh` and :func:`mesh_volume_area` are the reference, kept for the
test that pins this); a compiled pass over the cubes sums them. The convex hull and the maximum
diameter need only the vertices that can be corners of the hull, which :func:`hull_candidates`
finds from the mask (the mesh's few extra vertices inside ambiguous cubes are averages of edge
midpoints, never corners); their hull is built exactly on integer coordinates
(:mod:`radlake.radiomics.convex_hull`). Centroids and the covariance of the voxel positions come
from one compiled pass of sums (:func:`radlake.radiomics.kernels.mask_moments`).

Not implemented (IBSI gives no digital-phantom reference values for them): volume and area
density of the oriented minimum bounding box and of the minimum-volume enclosing ellipsoid.
Moran's I and Geary's C sum over all voxel pairs; on the regular grid that is an exact FFT
correlation (:func:`moran_geary_grid`), so any ROI size is affordable; ``max_pair_voxels`` can
still switch them off (0) for speed.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft, spatial, special
from skimage import measure

from radlake.radiomics.aggregation import Rows
from radlake.radiomics.convex_hull import hull_faces, hull_measures
from radlake.radiomics.family import Family, FamilyInputs
from radlake.radiomics.geometry import roi_box
from radlake.radiomics.kernels import column_end_corners, mask_moments, mesh_sums
from radlake.radiomics.settings import RadiomicsSettings


def mesh(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """The marching-cubes mesh (the reference for :func:`mesh_volume_area_of_mask` and :func:`hull_candidates`)."""
    padded = np.pad(mask.astype(np.float64), 1)
    vertices, faces, _, _ = measure.marching_cubes(padded, level=0.5, spacing=spacing)
    return vertices, faces


def mesh_volume_area(vertices: np.ndarray, faces: np.ndarray) -> tuple[float, float]:
    a, b, c = (vertices[faces[:, k]] for k in range(3))
    volume = abs(np.einsum("ij,ij->i", a, np.cross(b, c)).sum()) / 6.0
    area = np.linalg.norm(np.cross(b - a, c - a), axis=1).sum() / 2.0
    return float(volume), float(area)


# corner k of a 2x2x2 cube, as its (z, y, x) offset; bit k of a cube's configuration is that corner
_CORNERS = tuple((z, y, x) for z in (0, 1) for y in (0, 1) for x in (0, 1))


@lru_cache(maxsize=1)
def _unit_faces() -> tuple[np.ndarray, np.ndarray]:
    """Every configuration's faces in unit-cube coordinates, (F, 3, 3), and their configuration, (F,)."""
    faces, configs = [], []
    for config in range(1, 255):
        cube = np.zeros((2, 2, 2))
        for bit, corner in enumerate(_CORNERS):
            cube[corner] = config >> bit & 1
        vertices, triangles, _, _ = measure.marching_cubes(cube, level=0.5)
        faces.append(vertices[triangles])
        configs.append(np.full(len(triangles), config))
    return np.concatenate(faces), np.concatenate(configs)


@lru_cache(maxsize=64)
def _configuration_tables(spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per configuration at this spacing: face area, sum of det(a, b, c), sum of (b - a) x (c - a)."""
    faces, configs = _unit_faces()
    a, b, c = (faces[:, k] * np.asarray(spacing) for k in range(3))
    normal = np.cross(b - a, c - a)
    area = np.bincount(configs, np.linalg.norm(normal, axis=1) / 2.0, minlength=256)
    det = np.bincount(configs, np.einsum("ij,ij->i", a, np.cross(b, c)), minlength=256)
    normal_sum = np.stack([np.bincount(configs, normal[:, k], minlength=256) for k in range(3)], axis=1)
    return area, det, normal_sum


def mesh_volume_area_of_mask(mask: np.ndarray, spacing: tuple[float, float, float]) -> tuple[float, float]:
    """Volume and area of the marching-cubes mesh of ``mask`` (see the module docstring), without the mesh."""
    area, det, normal_sum = _configuration_tables(spacing)
    volume, total_area = mesh_sums(mask, area, det, normal_sum, np.asarray(spacing, dtype=np.float64))
    return float(volume), float(total_area)


def hull_candidates(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Mesh vertices that may be corners of the mesh's convex hull, in world units (padded grid, as :func:`mesh`).

    Every vertex is the midpoint of a grid edge between an inside and an outside voxel. A corner of
    the hull is extreme on every line through it, so along each axis only the two end vertices of
    each column of the mask qualify; of those, a column end that is not strictly above the mean of
    an opposite pair of neighbouring column ends is dropped too. The hull of what is left is the
    hull of the whole mesh (the unit test compares them), from about a fifth of the points.
    The compiled :func:`radlake.radiomics.kernels.column_end_corners` finds them, in doubled index
    coordinates, which is what the morphology uses.
    """
    return (column_end_corners(mask) / 2.0 + 1.0) * np.asarray(spacing)


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


def compute(inputs: FamilyInputs, settings: RadiomicsSettings) -> Rows:
    with np.errstate(divide="ignore", invalid="ignore"):
        return _compute(inputs.image, inputs.morph_mask, inputs.int_mask, inputs.spacing,
                        settings.moran_geary_max_voxels)


def _compute(image, morph_mask, int_mask, spacing, max_pair_voxels) -> Rows:
    """Degenerate ROIs (flat, linear) give NaN or inf where a ratio has a zero denominator."""
    spacing = tuple(float(s) for s in spacing)
    # every morphological feature is translation invariant: work on the morphological mask's box
    box = roi_box(morph_mask)
    image, morph_mask, int_mask = image[box], morph_mask[box], int_mask[box]
    volume, area = (np.float64(v) for v in mesh_volume_area_of_mask(morph_mask, spacing))
    voxel_volume = float(np.prod(spacing))
    n_voxels, centre, covariance, intensity_sum, n_int, weighted_centre = mask_moments(
        image, morph_mask, int_mask, np.asarray(spacing, dtype=np.float64))

    sph = (36 * np.pi * volume**2) ** (1 / 3)
    rows: list[tuple[str, float]] = [
        ("morph.vol", volume),
        ("morph.approx.vol", n_voxels * voxel_volume),
        ("morph.area", area),
        ("morph.av", area / volume),
        ("morph.comp.1", volume / (np.pi**0.5 * area**1.5)),
        ("morph.comp.2", 36 * np.pi * volume**2 / area**3),
        ("morph.sph.dispr", area / sph),
        ("morph.sphericity", sph / area),
        ("morph.asphericity", (area**3 / (36 * np.pi * volume**2)) ** (1 / 3) - 1),
        ("morph.com", float(np.linalg.norm(centre - weighted_centre))),
    ]

    # the hull of the candidates in doubled index coordinates is exact; half the spacing scales it
    candidates = column_end_corners(morph_mask)
    hull_volume, hull_area, diameter = hull_measures(candidates, hull_faces(candidates),
                                                     np.asarray(spacing, dtype=np.float64) / 2.0)
    rows.append(("morph.diam", diameter))

    eigen = np.sort(np.linalg.eigvalsh(covariance))[::-1]
    major, minor, least = (np.float64(max(v, 0.0)) for v in eigen)
    rows += [
        ("morph.pca.major", 4 * np.sqrt(major)),
        ("morph.pca.minor", 4 * np.sqrt(minor)),
        ("morph.pca.least", 4 * np.sqrt(least)),
        ("morph.pca.elongation", np.sqrt(minor / major) if major > 0 else np.nan),
        ("morph.pca.flatness", np.sqrt(least / major) if major > 0 else np.nan),
    ]
    extent = np.asarray(morph_mask.shape) * np.asarray(spacing)  # the mesh's box: half a voxel beyond the mask's
    aabb_volume = float(np.prod(extent))
    aabb_area = float(2 * (extent[0] * extent[1] + extent[0] * extent[2] + extent[1] * extent[2]))
    rows += [("morph.v.dens.aabb", volume / aabb_volume), ("morph.a.dens.aabb", area / aabb_area)]
    a, b, c = (2 * np.sqrt(v) for v in (major, minor, least))
    rows += [
        ("morph.v.dens.aee", volume / (4 * np.pi / 3 * a * b * c)),
        ("morph.a.dens.aee", area / ellipsoid_area(a, b, c)),
        ("morph.v.dens.conv.hull", volume / hull_volume),
        ("morph.a.dens.conv.hull", area / hull_area),
        ("morph.integ.int", volume * intensity_sum / n_int),
    ]
    if max_pair_voxels is None or n_int <= max_pair_voxels:
        moran, geary = moran_geary_grid(image, int_mask, spacing)
        rows += [("morph.moran.i", moran), ("morph.geary.c", geary)]
    return [(tag, "", float(value)) for tag, value in rows]


FAMILY = Family("morphology", prefix="morph", compute=compute)
