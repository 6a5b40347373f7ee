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
test that pins this). The convex hull and the maximum diameter need only the vertices that can be
corners of the hull, which :func:`hull_candidates` finds from the mask (the mesh's few extra
vertices inside ambiguous cubes are averages of edge midpoints, never corners).

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

from radlake.radiomics.neighbourhood import pad


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
    padded = pad(mask.astype(np.uint8), 1)
    cubes = tuple(n - 1 for n in padded.shape)
    config = np.zeros(cubes, dtype=np.uint8)
    for bit, (z, y, x) in enumerate(_CORNERS):
        config |= padded[z:z + cubes[0], y:y + cubes[1], x:x + cubes[2]] << bit
    flat = config.reshape(-1)
    surface = np.flatnonzero((flat != 0) & (flat != 255))
    kinds = flat[surface]
    area, det, normal_sum = _configuration_tables(spacing)
    origins = np.stack(np.unravel_index(surface, cubes), axis=1) * np.asarray(spacing)
    volume = abs(det[kinds].sum() + np.einsum("ij,ij->", origins, normal_sum[kinds])) / 6.0
    return float(volume), float(area[kinds].sum())


# pairs of opposite in-plane neighbours of a column; a surface point at their midpoint that is not
# above their mean height lies on a segment between other points and so is no corner of the hull
_OPPOSITE_NEIGHBOURS = (((1, 0), (-1, 0)), ((0, 1), (0, -1)), ((1, 1), (-1, -1)), ((1, -1), (-1, 1)))


def hull_candidates(mask: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """Mesh vertices that may be corners of the mesh's convex hull, in world units (padded grid, as :func:`mesh`).

    Every vertex is the midpoint of a grid edge between an inside and an outside voxel. A corner of
    the hull is extreme on every line through it, so along each axis only the two end vertices of
    each column of the mask qualify; of those, a column end that is not strictly above the mean of
    an opposite pair of neighbouring column ends is dropped too. The hull of what is left is the
    hull of the whole mesh (the unit test compares them), from about a fifth of the points.
    """
    padded = pad(mask, 1)
    candidates = []
    for axis in range(3):
        columns = np.moveaxis(padded, axis, -1)
        present = columns.any(axis=-1)
        first = np.argmax(columns, axis=-1) - 0.5
        last = columns.shape[-1] - 1 - np.argmax(columns[..., ::-1], axis=-1) + 0.5
        across = [k for k in range(3) if k != axis]
        for height, sign in ((last, 1.0), (-first, -1.0)):  # the far ends, then the near ends (negated)
            surface = pad(np.where(present, height, -np.inf), 1, fill=-np.inf)
            centre = surface[1:-1, 1:-1]
            corner = present.copy()
            for (y1, x1), (y2, x2) in _OPPOSITE_NEIGHBOURS:
                one = surface[1 + y1:surface.shape[0] - 1 + y1, 1 + x1:surface.shape[1] - 1 + x1]
                other = surface[1 + y2:surface.shape[0] - 1 + y2, 1 + x2:surface.shape[1] - 1 + x2]
                corner &= centre > (one + other) / 2  # a missing neighbour (-inf) never drops a point
            at = np.argwhere(corner)
            points = np.empty((len(at), 3))
            points[:, across[0]], points[:, across[1]] = at[:, 0], at[:, 1]
            points[:, axis] = sign * centre[corner]
            candidates.append(points)
    return np.concatenate(candidates) * np.asarray(spacing)


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
    volume, area = (np.float64(v) for v in mesh_volume_area_of_mask(morph_mask, spacing))
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

    candidates = hull_candidates(morph_mask, spacing)
    hull = spatial.ConvexHull(candidates)
    hull_points = candidates[hull.vertices]
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
    extent = np.asarray(morph_mask.shape) * np.asarray(spacing)  # the mesh's box: half a voxel beyond the mask's
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
