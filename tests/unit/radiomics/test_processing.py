"""IBSI image processing steps, settings and the torch path."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy import ndimage, stats
from scipy.spatial import ConvexHull
from scipy.spatial.distance import pdist

from radlake.radiomics import (
    IBSI_DIGITAL_PHANTOM,
    SettingsError,
    compute_features,
    load_settings,
)
from radlake.radiomics.convex_hull import hull_faces, hull_measures
from radlake.radiomics.discretisation import discretise
from radlake.radiomics.intensity_statistics import percentiles, summary
from radlake.radiomics.interpolation import interpolate, target_grid
from radlake.radiomics.kernels import column_end_corners
from radlake.radiomics.morphology import (
    hull_candidates,
    mesh,
    mesh_volume_area,
    mesh_volume_area_of_mask,
    moran_geary,
    moran_geary_grid,
)
from radlake.radiomics.resegmentation import resegment
from radlake.radiomics.settings import (
    Discretisation,
    Interpolation,
    Resegmentation,
    settings_from_mapping,
)
from radlake.synthetic.ct_volume import irregular_lesion, spherical_lesion


def test_interpolation_grid_is_centre_aligned():
    shape, spacing, axes = target_grid((10, 10, 10), (1.0, 1.0, 1.0), Interpolation(spacing=(3.0, 3.0, 3.0)))
    assert shape == (4, 4, 4) and spacing == (3.0, 3.0, 3.0)
    for axis in axes:
        assert np.isclose(axis.mean(), 4.5)  # centre of the original grid (0..9)


def test_fixed_bin_number_and_size():
    image = np.array([[[0.0, 5.0, 10.0, 99.0]]])
    mask = np.array([[[True, True, True, False]]])
    levels, n = discretise(image, mask, Discretisation(method="fbn", bin_number=4))
    assert n == 4 and levels.tolist() == [[[1, 3, 4, 0]]]
    levels, n = discretise(image, mask, Discretisation(method="fbs", bin_size=2.5), range_min=-5.0)
    assert levels.tolist() == [[[3, 5, 7, 0]]] and n == 7


def test_resegmentation_range_and_outliers_leave_input_alone():
    image = np.arange(10.0).reshape(1, 1, 10)
    mask = np.ones_like(image, dtype=bool)
    kept = resegment(image, mask, Resegmentation(range=(2.0, None)))
    assert kept.sum() == 8 and mask.all()
    image_out = image.copy()
    image_out[0, 0, 9] = 1000.0
    kept = resegment(image_out, mask, Resegmentation(outlier_sigma=2.0))
    assert not kept[0, 0, 9] and kept[0, 0, :9].all()


def test_settings_file_and_hash(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("discretisation: {method: fbs, bin_size: 25}\nresegmentation: {range: [-1000, 400]}\n")
    settings = load_settings(path)
    assert settings.discretisation.bin_size == 25
    assert settings.digest() == load_settings(path).digest()
    assert settings.digest() != load_settings(None).digest()
    path.write_text("discretisation: {method: nope}\n")
    with pytest.raises(SettingsError):
        load_settings(path)


def test_results_carry_settings_hash_and_code_version(phantom):
    image, mask, spacing = phantom
    values = compute_features(image, mask, spacing, IBSI_DIGITAL_PHANTOM)
    assert {v.settings_hash for v in values} == {IBSI_DIGITAL_PHANTOM.digest()}
    assert all(v.code_version.startswith("radlake-") for v in values)
    assert len({v.name for v in values}) == len(values)


def test_sphere_volume_is_close_to_known_size():
    ct = spherical_lesion(shape=(24, 48, 48), spacing=(2.0, 1.0, 1.0), radius_mm=10.0)
    settings = settings_from_mapping({"families": ["morphology"], "moran_geary_max_voxels": 0})
    values = {v.tag: v.value for v in compute_features(ct.image, ct.mask, ct.spacing, settings)}
    assert values["morph.approx.vol"] == pytest.approx(ct.lesion_volume_mm3)
    assert values["morph.vol"] == pytest.approx(4 / 3 * np.pi * 10**3, rel=0.05)
    assert values["morph.sphericity"] > 0.85  # a voxelised sphere meshes at ~0.88, not 1


@pytest.mark.parametrize("make", [spherical_lesion, irregular_lesion], ids=["sphere", "irregular"])
def test_torch_path_agrees_with_numpy(make):
    pytest.importorskip("torch")
    ct = make(shape=(20, 40, 40), spacing=(2.0, 1.0, 1.0), radius_mm=9.0)
    settings = settings_from_mapping({"discretisation": {"method": "fbn", "bin_number": 16},
                                      "interpolation": {"spacing": [2.0, 2.0, 2.0]}})
    cpu = {v.name: v.value for v in compute_features(ct.image, ct.mask, ct.spacing, settings)}
    torch_cpu = {v.name: v.value for v in compute_features(ct.image, ct.mask, ct.spacing, settings, device="torch-cpu")}
    assert cpu.keys() == torch_cpu.keys()
    for name, value in cpu.items():
        assert torch_cpu[name] == pytest.approx(value, rel=1e-9, abs=1e-12, nan_ok=True), name


@pytest.mark.gpu
def test_cuda_path_agrees_with_numpy(phantom):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    image, mask, spacing = phantom
    cpu = {v.name: v.value for v in compute_features(image, mask, spacing, IBSI_DIGITAL_PHANTOM)}
    gpu = {v.name: v.value for v in compute_features(image, mask, spacing, IBSI_DIGITAL_PHANTOM, device="cuda")}
    for name, value in cpu.items():
        assert gpu[name] == pytest.approx(value, rel=1e-6, abs=1e-9, nan_ok=True), name


def _degenerate_rois(shape):
    two = np.zeros(shape, bool)
    two[5, 5, 5:7] = True
    line = np.zeros(shape, bool)
    line[5, 2:10, 5] = True
    flat = np.zeros(shape, bool)
    flat[5, 2:10, 2:10] = True
    return {"two-voxels": two, "line": line, "one-slice": flat}


@pytest.mark.parametrize("name", ["two-voxels", "line", "one-slice"])
@pytest.mark.parametrize("constant", [False, True], ids=["textured", "constant"])
def test_degenerate_rois_compute_without_errors(name, constant):
    """Flat, linear and constant ROIs give values (NaN where a feature is undefined), never a crash."""
    rng = np.random.default_rng(0)
    image = np.full((10, 12, 12), 7.0) if constant else rng.normal(0, 50, (10, 12, 12)).round()
    mask = _degenerate_rois(image.shape)[name]
    settings = settings_from_mapping({"discretisation": {"method": "fbn", "bin_number": 8}})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        values = compute_features(image, mask, (2.0, 1.0, 1.0), settings)
    assert len(values) == 483
    assert np.isfinite([v.value for v in values if v.tag in {"morph.vol", "stat.mean", "ih.entropy"}]).all()


@pytest.mark.parametrize(("method", "rtol"), [("linear", 1e-12), ("cubic", 1e-5)])
def test_interpolation_near_the_roi_matches_whole_image_interpolation(method, rtol):


    ct = irregular_lesion(shape=(20, 48, 48), spacing=(3.0, 0.9, 0.9), radius_mm=8.0)
    settings = Interpolation(spacing=(2.0, 2.0, 2.0), method=method)
    image, mask, _ = interpolate(ct.image, ct.mask.astype(bool), ct.spacing, settings, margin_mm=6.2)
    shape, _, axes = target_grid(ct.image.shape, ct.spacing, settings)
    coords = np.meshgrid(*axes, indexing="ij")
    order = {"linear": 1, "cubic": 3}[method]
    full_image = ndimage.map_coordinates(ct.image.astype(float), coords, order=order, mode="nearest")
    full_mask = ndimage.map_coordinates(ct.mask.astype(float), coords, order=1, mode="constant")
    full_mask = np.round(full_mask, 6) >= 0.5
    assert mask.sum() == full_mask.sum()
    assert image[mask].sum() == pytest.approx(full_image[full_mask].sum(), rel=rtol)


def test_moran_geary_by_fft_equals_the_pairwise_sums():

    ct = irregular_lesion(shape=(16, 40, 40), spacing=(3.0, 0.9, 0.9), radius_mm=7.0, seed=4)
    mask = ct.mask.astype(bool)
    pairwise = moran_geary(np.argwhere(mask) * np.asarray(ct.spacing), ct.image[mask])
    assert moran_geary_grid(ct.image, mask, ct.spacing) == pytest.approx(pairwise, rel=1e-9)


@pytest.mark.parametrize("seed", range(11))
def test_mesh_volume_area_by_table_and_hull_of_candidates_equal_the_marching_cubes_mesh(seed):
    """Random masks (in 10 seeds) hit every kind of cube configuration, the ambiguous ones included, and
    masks with holes and several parts; the lesion is the benchmark's kind of ROI."""


    rng = np.random.default_rng(seed)
    if seed == 10:
        ct = irregular_lesion(shape=(16, 40, 40), spacing=(3.0, 0.9, 0.9), radius_mm=7.0, seed=4)
        mask, spacing = ct.mask.astype(bool), ct.spacing
    else:
        mask = rng.random(tuple(rng.integers(3, 12, 3))) < rng.uniform(0.2, 0.8)
        spacing = tuple(rng.uniform(0.4, 3.0, 3))
    mask = mask[tuple(slice(int(i.min()), int(i.max()) + 1) for i in np.nonzero(mask))]  # as morphology crops
    vertices, faces = mesh(mask, spacing)
    assert mesh_volume_area_of_mask(mask, spacing) == pytest.approx(mesh_volume_area(vertices, faces), rel=1e-12)
    # the hull candidates are a subset of the mesh's vertices with the same hull and diameter
    candidates = hull_candidates(mask, spacing)
    as_rows = [("", float)] * 3
    assert np.isin(np.round(candidates, 9).view(as_rows), np.round(vertices, 9).view(as_rows)).all()
    hull, reference = ConvexHull(candidates), ConvexHull(vertices)
    assert (hull.volume, hull.area) == pytest.approx((reference.volume, reference.area), rel=1e-12)
    assert pdist(candidates[hull.vertices]).max() == pytest.approx(pdist(vertices[reference.vertices]).max(), rel=1e-12)
    # what the morphology uses: the exact hull of the candidates in doubled index coordinates
    doubled = column_end_corners(mask)
    measures = hull_measures(doubled, hull_faces(doubled), np.asarray(spacing) / 2)
    assert measures == pytest.approx((reference.volume, reference.area, pdist(vertices[reference.vertices]).max()),
                                     rel=1e-12)
    assert np.allclose(vertices.max(axis=0) - vertices.min(axis=0), np.asarray(mask.shape) * spacing)


@pytest.mark.parametrize("seed", range(40))
def test_percentiles_by_counting_equal_numpy_bit_for_bit(seed):
    """Integer intensities (HU, levels) are counted; anything else falls back to numpy's partition."""

    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 500))
    kind = seed % 4
    if kind == 0:
        x = np.round(rng.normal(rng.uniform(-800, 800), rng.uniform(0.2, 300), n))  # HU
    elif kind == 1:
        x = rng.integers(1, 6, n).astype(np.float64)  # discretised levels
    elif kind == 2:
        x = rng.normal(0, 1, n)  # not integers: numpy's path
    else:
        x = np.round(rng.normal(0, 1e6, n))  # integers too spread to count
    q = [10, 25, 50, 75, 90]
    np.testing.assert_array_equal(percentiles(x, q), np.percentile(x, q))


@pytest.mark.parametrize("seed", range(6))
def test_intensity_summary_in_three_passes_equals_the_numpy_formulas(seed):


    rng = np.random.default_rng(seed)
    x = np.round(rng.gamma(2.0, 40.0, int(rng.integers(2, 3000))) - 50)
    got = summary(x)
    p10, p90, median = np.percentile(x, [10, 90, 50])
    central = x[(x >= p10) & (x <= p90)]
    expected = {
        "mean": x.mean(), "var": x.var(), "skew": stats.skew(x), "kurt": stats.kurtosis(x),
        "min": x.min(), "max": x.max(), "mad": np.abs(x - x.mean()).mean(),
        "medad": np.abs(x - median).mean(), "rmad": np.abs(central - central.mean()).mean(),
        "energy": (x**2).sum(), "rms": np.sqrt((x**2).mean()), "cov": x.std() / x.mean(),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9), name
