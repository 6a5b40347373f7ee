"""The one Volume type and the assembly of DICOM slices into it: rescale rules, slice order, regular grid."""

from __future__ import annotations

import random
from io import BytesIO

import numpy as np
import pydicom
import pytest

from radlake.imaging.volume import (
    Geometry,
    GeometryError,
    PixelDataError,
    assemble,
    modality_values,
    volume_from_datasets,
)
from radlake.synthetic.dicom_series import ct_series

SPACING = (2.0, 0.75, 0.5)


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    return np.random.default_rng(3).integers(-1000, 1000, size=(6, 8, 10)).astype(np.int16)


def _datasets(image, **kwargs) -> list[pydicom.Dataset]:
    return [pydicom.dcmread(BytesIO(b)) for b in ct_series(image, SPACING, **kwargs)]


def test_rescale_slope_and_intercept_absent_or_empty_are_one_and_zero(image):
    ds = _datasets(image, rescale_intercept=-1024)[0]
    stored = ds.pixel_array.astype(np.float64)
    np.testing.assert_array_equal(modality_values(ds), stored - 1024)
    ds.RescaleSlope, ds.RescaleIntercept = "2.5", "-10"
    np.testing.assert_array_equal(modality_values(ds), stored * 2.5 - 10)
    ds.RescaleSlope, ds.RescaleIntercept = "", ""
    np.testing.assert_array_equal(modality_values(ds), stored)
    del ds.RescaleSlope, ds.RescaleIntercept
    np.testing.assert_array_equal(modality_values(ds), stored)
    assert modality_values(ds).dtype == np.float64
    ds.PixelData = ds.PixelData[:10]
    with pytest.raises(PixelDataError):
        modality_values(ds)


def test_slices_in_any_order_become_the_volume_in_slice_order(image):
    datasets = _datasets(image, rescale_intercept=-1024)
    shuffled = random.Random(5).sample(datasets, len(datasets))
    volume, ordered = volume_from_datasets(shuffled)
    np.testing.assert_array_equal(volume.array, image)
    assert volume.array.dtype == np.float64
    assert [ds.SOPInstanceUID for ds in ordered] == [ds.SOPInstanceUID for ds in datasets]
    assert volume.sop_instance_uids == tuple(str(ds.SOPInstanceUID) for ds in datasets)
    g = volume.geometry
    assert g.shape == image.shape and g.spacing == SPACING and g.origin == (0.0, 0.0, 0.0)
    assert g.direction == ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    assert volume_from_datasets(datasets, dtype=np.float32)[0].array.dtype == np.float32


def test_rows_stored_reversed_give_a_slice_axis_along_minus_z(image):
    volume, _ = volume_from_datasets(_datasets(image, flip_rows=True))
    np.testing.assert_array_equal(volume.array[::-1, ::-1], image)
    assert volume.geometry.axes_zyx().tolist() == [[0.0, 0.0, -1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]]
    # the same anatomy in patient space: generated voxel (z, y, x) sits at LPS (x dx, y dy, z dz)
    nz, ny, _ = image.shape
    voxel = np.array([3, 5, 7])
    index = np.array([nz - 1 - voxel[0], ny - 1 - voxel[1], voxel[2]])
    dz, dy, dx = SPACING
    assert volume.geometry.index_to_patient(index) == pytest.approx([voxel[2] * dx, voxel[1] * dy, voxel[0] * dz])


def test_index_to_patient_agrees_with_the_affine():
    geometry = Geometry.from_axes((4, 5, 6), (2.0, 0.7, 0.6), (-10.0, 5.0, 3.0), (0.0, 1.0, 0.0), (0.0, 0.0, -1.0),
                                  (-1.0, 0.0, 0.0))
    zyx = np.array([3.0, 1.5, 2.0])
    xyz1 = np.array([zyx[2], zyx[1], zyx[0], 1.0])
    np.testing.assert_allclose(geometry.index_to_patient(zyx), (geometry.affine() @ xyz1)[:3])


def test_a_missing_or_duplicated_slice_is_a_geometry_error(image):
    datasets = _datasets(image)
    with pytest.raises(GeometryError) as info:
        volume_from_datasets(datasets[:2] + datasets[3:])
    assert info.value.issues == ("gaps",)
    with pytest.raises(GeometryError) as info:
        volume_from_datasets([*datasets, datasets[2]])
    assert "duplicate_positions" in info.value.issues
    datasets[4].ImagePositionPatient = [0.0, 0.0, 4 * SPACING[0] + 0.1]  # 5 % off the step
    with pytest.raises(GeometryError) as info:
        volume_from_datasets(datasets)
    assert info.value.issues == ("inconsistent_spacing",)


def test_a_single_slice_needs_a_thickness(image):
    [ds] = _datasets(image[:1])
    volume, _ = volume_from_datasets([ds])
    assert volume.geometry.spacing == SPACING
    del ds.SliceThickness
    with pytest.raises(GeometryError) as info:
        volume_from_datasets([ds])
    assert info.value.issues == ("missing_spacing",)


def test_assemble_stacks_planes_on_a_known_grid_and_refuses_mixed_sizes():
    planes = [np.full((3, 4), float(k)) for k in range(2)]
    volume = assemble(planes, spacing=(2.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), orientation=(1, 0, 0, 0, 1, 0),
                      sop_instance_uids=["2.25.1", "2.25.2"])
    np.testing.assert_array_equal(volume.array, np.stack(planes))
    assert volume.geometry == Geometry.from_axes((2, 3, 4), (2.0, 1.0, 1.0), (0, 0, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1))
    assert volume.sop_instance_uids == ("2.25.1", "2.25.2")
    with pytest.raises(GeometryError):
        assemble([planes[0], np.zeros((3, 5))], spacing=(2.0, 1.0, 1.0), origin=(0, 0, 0),
                 orientation=(1, 0, 0, 0, 1, 0))
    with pytest.raises(GeometryError):
        assemble([np.zeros((2, 3, 4))], spacing=(2.0, 1.0, 1.0), origin=(0, 0, 0), orientation=(1, 0, 0, 0, 1, 0))
