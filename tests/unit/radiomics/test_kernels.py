"""The compiled CPU kernels count exactly what the array code (the torch path) and scipy count."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from radlake.radiomics import glcm, glrlm, ngldm, ngtdm
from radlake.radiomics.backend import Backend
from radlake.radiomics.neighbourhood import pad
from radlake.radiomics.zones import find_zones

ARRAYS = Backend("numpy")


def _levels(seed: int) -> tuple[np.ndarray, int]:
    """Random levels with runs and zones of every size: smoothed noise, a ragged ROI, thin shapes too."""
    rng = np.random.default_rng(seed)
    shape = tuple(int(n) for n in rng.integers(1, 14, 3))
    n_levels = int(rng.integers(1, 9))
    smooth = ndimage.gaussian_filter(rng.random(shape), sigma=float(rng.uniform(0, 1.5)))
    levels = np.digitize(smooth, np.quantile(smooth, np.linspace(0, 1, n_levels + 1)[1:-1])) + 1
    levels[rng.random(shape) < rng.uniform(0, 0.4)] = 0  # outside the ROI
    return levels.astype(np.int16), n_levels


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("in_slice", [False, True])
def test_run_counts_equal_the_sheared_layouts(seed, in_slice):
    levels, n_levels = _levels(seed)
    compiled = glrlm.matrices(ARRAYS, levels, n_levels, in_slice)
    np.testing.assert_array_equal(compiled, glrlm.array_matrices(ARRAYS, levels, n_levels, in_slice))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("in_slice", [False, True])
@pytest.mark.parametrize("distance", [1, 2])
def test_cooccurrence_counts_equal_the_shifted_views(seed, in_slice, distance):
    levels, n_levels = _levels(seed)
    padded = pad(levels, distance)
    compiled = glcm.matrices(ARRAYS, padded, distance, n_levels, distance, in_slice)
    np.testing.assert_array_equal(compiled, glcm.array_matrices(ARRAYS, padded, distance, n_levels, distance, in_slice))


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("in_slice", [False, True])
@pytest.mark.parametrize("distance", [1, 2])
def test_neighbourhood_differences_equal_the_shifted_views(seed, in_slice, distance):
    levels, n_levels = _levels(seed)
    padded = pad(levels, distance)
    compiled = ngtdm.matrices(ARRAYS, padded, distance, n_levels, distance, in_slice)
    arrays = ngtdm.array_matrices(ARRAYS, padded, distance, n_levels, distance, in_slice)
    np.testing.assert_array_equal(compiled["n"], arrays["n"])
    np.testing.assert_allclose(compiled["s"], arrays["s"], rtol=1e-12)


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("in_slice", [False, True])
@pytest.mark.parametrize(("distance", "alpha"), [(1, 0), (1, 1), (2, 0), (2, 2)])
def test_dependence_counts_equal_the_shifted_views(seed, in_slice, distance, alpha):
    levels, n_levels = _levels(seed)
    padded = pad(levels, distance)
    compiled = ngldm.matrices(ARRAYS, padded, distance, n_levels, distance, alpha, in_slice)
    arrays = ngldm.array_matrices(ARRAYS, padded, distance, n_levels, distance, alpha, in_slice)
    np.testing.assert_array_equal(compiled["ngldm"], arrays["ngldm"])
    np.testing.assert_array_equal(compiled["n_voxels"], arrays["n_voxels"])


@pytest.mark.parametrize("seed", range(12))
@pytest.mark.parametrize("in_slice", [False, True])
def test_zones_are_the_connected_components_of_each_level(seed, in_slice):
    """scipy labels each level on its own (26-connectivity, or 8 within the slice)."""
    levels, n_levels = _levels(seed)
    zones = find_zones(levels, in_slice)
    structure = np.ones((3, 3, 3), dtype=bool)
    if in_slice:
        structure[0] = structure[2] = False
    expected = []
    for level in range(1, n_levels + 1):
        labels, count = ndimage.label(levels == level, structure=structure)
        for k in range(1, count + 1):
            voxels = np.argwhere(labels == k)
            expected.append((level, len(voxels), int(voxels[0, 0])))
            assert len(np.unique(zones.labels[labels == k])) == 1  # one zone is one component
    found = list(zip(zones.level.tolist(), zones.size.tolist(), zones.slice.tolist()))
    assert sorted(found) == sorted(expected)
    assert ((zones.labels > 0) == (levels > 0)).all()

