"""The exact integer hull has Qhull's volume, area and vertices, on the degenerate inputs voxel
surfaces are made of (many coplanar and collinear points) and on random ones; the one-pass mask
sums equal numpy's."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist

from radlake.radiomics.convex_hull import hull_faces, hull_measures
from radlake.radiomics.kernels import mask_moments

UNIT = np.ones(3)


def _points(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    kind = seed % 3
    if kind == 0:  # a small lattice: most points coplanar with a face, many on edges
        points = rng.integers(0, 4, (int(rng.integers(8, 80)), 3))
    elif kind == 1:  # every point of a box's surface, so that each face is one plane of many points
        n = rng.integers(2, 6, 3)
        grid = np.stack(np.meshgrid(*(np.arange(k + 1) for k in n), indexing="ij"), -1).reshape(-1, 3)
        points = grid[((grid == 0) | (grid == n)).any(axis=1)]
    else:  # spread out, few degeneracies
        points = rng.integers(-1000, 1000, (int(rng.integers(4, 300)), 3))
    return np.unique(points, axis=0).astype(np.int64)


@pytest.mark.parametrize("seed", range(30))
def test_hull_equals_qhull(seed):
    points = _points(seed)
    faces = hull_faces(points)
    reference = ConvexHull(points.astype(np.float64))
    volume, area, diameter = hull_measures(points, faces, UNIT)
    assert (volume, area) == pytest.approx((reference.volume, reference.area), rel=1e-12)
    assert diameter == pytest.approx(pdist(points[reference.vertices]).max(), rel=1e-12)
    # every extreme point is a vertex; a vertex that a later face made coplanar stays one (on the boundary)
    vertices = np.unique(faces)
    assert set(reference.vertices) <= set(vertices)
    assert (reference.equations[:, :3] @ points[vertices].T + reference.equations[:, 3:] <= 1e-9).all()
    # a closed, consistently oriented surface: each directed edge once, and its reverse once
    edges = {(int(f[k]), int(f[(k + 1) % 3])) for f in faces for k in range(3)}
    assert len(edges) == 3 * len(faces)
    assert all((b, a) in edges for a, b in edges)


def test_scaling_after_the_hull_equals_the_hull_of_scaled_points():
    points = _points(2)
    scale = np.array([2.5, 0.7, 1.3])
    reference = ConvexHull(points * scale)
    volume, area, diameter = hull_measures(points, hull_faces(points), scale)
    assert (volume, area) == pytest.approx((reference.volume, reference.area), rel=1e-12)
    assert diameter == pytest.approx(pdist(points * scale).max(), rel=1e-12)


@pytest.mark.parametrize("points", [
    np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0], [2, 3, 0]]),  # coplanar
    np.array([[0, 0, 0], [1, 1, 1], [2, 2, 2], [3, 3, 3]]),  # collinear
    np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0]]),  # too few
])
def test_flat_point_sets_have_no_hull(points):
    assert hull_faces(points.astype(np.int64)).shape == (0, 3)


@pytest.mark.parametrize("seed", range(6))
def test_mask_moments_equal_numpy(seed):
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(2, 15, 3))
    morph = rng.random(shape) < 0.6
    morph.flat[0] = morph.flat[-1] = True
    intensity = morph & (rng.random(shape) < 0.8)
    intensity.flat[0] = True
    image = rng.normal(40, 30, shape)
    spacing = rng.uniform(0.5, 3, 3)
    n, centre, covariance, total, n_int, weighted = mask_moments(image, morph, intensity, spacing)
    positions = np.argwhere(morph) * spacing
    int_positions = np.argwhere(intensity) * spacing
    values = image[intensity]
    offset = (np.asarray(shape) - 1) / 2 * spacing  # the kernel measures from the box centre
    assert n == morph.sum() and n_int == intensity.sum()
    np.testing.assert_allclose(centre + offset, positions.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(covariance, np.cov(positions.T), rtol=1e-10, atol=1e-12)
    assert total == pytest.approx(values.sum(), rel=1e-12)
    np.testing.assert_allclose(weighted + offset, (int_positions * values[:, None]).sum(0) / values.sum(), rtol=1e-10)
