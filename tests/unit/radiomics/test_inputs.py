"""Image/mask loading: NIfTI, DICOM series, DICOM SEG and RTSTRUCT round trips, and invalid inputs."""

from __future__ import annotations

import highdicom as hd
import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileDataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, RTStructureSetStorage, generate_uid

from radlake.imaging.volume import Geometry
from radlake.radiomics import IBSI_DIGITAL_PHANTOM, InvalidInputError, RadiomicsReason, compute_features
from radlake.radiomics.inputs import load_image, load_mask
from radlake.radiomics.nifti import write_nifti
from radlake.synthetic.ct_volume import spherical_lesion, write_dicom_series

from .conftest import IBSI_DIR

SMALL = dict(shape=(12, 32, 32), spacing=(2.0, 1.0, 1.0), radius_mm=7.0)


@pytest.fixture(scope="module")
def small_ct():
    return spherical_lesion(**SMALL, seed=3)


@pytest.fixture(scope="module")
def dicom_folder(small_ct, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ct")
    write_dicom_series(small_ct, folder)
    return folder


def _geometry(ct, origin=(0.0, 0.0, 0.0)) -> Geometry:
    return Geometry(ct.image.shape, ct.spacing, origin, ((1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)))


def test_phantom_nifti_is_read_in_zyx_order():
    image = load_image(IBSI_DIR / "phantom.nii.gz")
    assert image.array.shape == (4, 4, 5)
    assert image.geometry.spacing == (2.0, 2.0, 2.0)
    roi = load_mask(IBSI_DIR / "mask.nii.gz", image, None)
    assert int(roi.sum()) == 74


def test_nifti_round_trip_keeps_geometry(small_ct, tmp_path):
    geometry = _geometry(small_ct, origin=(-10.0, 5.0, 2.5))
    write_nifti(tmp_path / "img.nii.gz", small_ct.image, geometry)
    image = load_image(tmp_path / "img.nii.gz")
    assert np.array_equal(image.array, small_ct.image)
    assert image.geometry.differences(geometry) == []


def test_mismatched_geometry_is_reported_not_resampled(small_ct, tmp_path):
    write_nifti(tmp_path / "img.nii.gz", small_ct.image, _geometry(small_ct))
    shifted = _geometry(small_ct, origin=(3.0, 0.0, 0.0))
    write_nifti(tmp_path / "mask.nii.gz", small_ct.mask, shifted)
    image = load_image(tmp_path / "img.nii.gz")
    with pytest.raises(InvalidInputError) as info:
        load_mask(tmp_path / "mask.nii.gz", image, 1)
    assert info.value.reason is RadiomicsReason.GEOMETRY_MISMATCH
    assert "origin" in str(info.value)


def test_mask_outside_image_is_reported(small_ct, tmp_path):
    write_nifti(tmp_path / "img.nii.gz", small_ct.image, _geometry(small_ct))
    write_nifti(tmp_path / "mask.nii.gz", small_ct.mask, _geometry(small_ct, origin=(500.0, 0.0, 0.0)))
    with pytest.raises(InvalidInputError) as info:
        load_mask(tmp_path / "mask.nii.gz", load_image(tmp_path / "img.nii.gz"), 1)
    assert info.value.reason is RadiomicsReason.MASK_OUTSIDE_IMAGE


def test_missing_label_and_empty_mask(small_ct, tmp_path):
    write_nifti(tmp_path / "img.nii.gz", small_ct.image, _geometry(small_ct))
    write_nifti(tmp_path / "mask.nii.gz", small_ct.mask, _geometry(small_ct))
    write_nifti(tmp_path / "empty.nii.gz", np.zeros_like(small_ct.mask), _geometry(small_ct))
    image = load_image(tmp_path / "img.nii.gz")
    with pytest.raises(InvalidInputError) as info:
        load_mask(tmp_path / "mask.nii.gz", image, 7)
    assert info.value.reason is RadiomicsReason.LABEL_NOT_FOUND
    with pytest.raises(InvalidInputError) as info:
        load_mask(tmp_path / "empty.nii.gz", image, None)
    assert info.value.reason is RadiomicsReason.EMPTY_MASK


@pytest.mark.parametrize(
    ("mask_fn", "reason"),
    [
        (lambda m: np.zeros_like(m), RadiomicsReason.EMPTY_MASK),
        (lambda m: np.pad(np.ones((1, 1, 1)), [(0, n - 1) for n in m.shape]), RadiomicsReason.SINGLE_VOXEL_ROI),
        (lambda m: m[:-1], RadiomicsReason.GEOMETRY_MISMATCH),
    ],
    ids=["empty", "single-voxel", "shape-mismatch"],
)
def test_compute_features_rejects_invalid_rois(phantom, mask_fn, reason):
    image, mask, spacing = phantom
    with pytest.raises(InvalidInputError) as info:
        compute_features(image, mask_fn(mask), spacing, IBSI_DIGITAL_PHANTOM)
    assert info.value.reason is reason


def test_compute_features_does_not_modify_inputs(phantom):
    image, mask, spacing = phantom
    before = image.copy(), mask.copy()
    compute_features(image, mask, spacing, IBSI_DIGITAL_PHANTOM)
    assert np.array_equal(before[0], image) and np.array_equal(before[1], mask)


def test_dicom_series_matches_array(small_ct, dicom_folder):
    image = load_image(dicom_folder)
    assert np.array_equal(image.array, small_ct.image)
    assert image.geometry.spacing == small_ct.spacing
    assert len(image.sop_instance_uids) == small_ct.image.shape[0]


def test_dicom_seg_round_trip(small_ct, dicom_folder, tmp_path):

    sources = sorted((pydicom.dcmread(p) for p in dicom_folder.iterdir()), key=lambda d: d.InstanceNumber)
    description = hd.seg.SegmentDescription(
        segment_number=1,
        segment_label="lesion",
        segmented_property_category=hd.sr.CodedConcept("49755003", "SCT", "Morphologically Altered Structure"),
        segmented_property_type=hd.sr.CodedConcept("4147007", "SCT", "Mass"),
        algorithm_type=hd.seg.SegmentAlgorithmTypeValues.MANUAL,
    )
    seg = hd.seg.Segmentation(
        source_images=sources,
        pixel_array=small_ct.mask.astype(bool),
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=[description],
        series_instance_uid=hd.UID(),
        series_number=2,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="radlake",
        manufacturer_model_name="tests",
        software_versions="0",
        device_serial_number="0",
    )
    seg.save_as(tmp_path / "seg.dcm")
    image = load_image(dicom_folder)
    roi = load_mask(tmp_path / "seg.dcm", image, 1)
    assert np.array_equal(roi, small_ct.mask.astype(bool))
    with pytest.raises(InvalidInputError) as info:
        load_mask(tmp_path / "seg.dcm", image, 2)
    assert info.value.reason is RadiomicsReason.LABEL_NOT_FOUND


def _rtstruct(path, image, centre_xy, radius, slices, points=90):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = RTStructureSetStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = RTStructureSetStorage, meta.MediaStorageSOPInstanceUID, "RTSTRUCT"
    roi = Dataset()
    roi.ROINumber, roi.ROIName = 1, "disk"
    ds.StructureSetROISequence = Sequence([roi])
    contours = []
    angles = np.linspace(0, 2 * np.pi, points, endpoint=False)
    dz = image.geometry.spacing[0]
    for k in slices:
        c = Dataset()
        c.ContourGeometricType = "CLOSED_PLANAR"
        xyz = np.c_[centre_xy[0] + radius * np.cos(angles), centre_xy[1] + radius * np.sin(angles),
                    np.full(points, image.geometry.origin[2] + k * dz)]
        c.NumberOfContourPoints = points
        c.ContourData = [f"{v:.4f}" for v in xyz.ravel()]
        contours.append(c)
    rc = Dataset()
    rc.ReferencedROINumber = 1
    rc.ContourSequence = Sequence(contours)
    ds.ROIContourSequence = Sequence([rc])
    pydicom.dcmwrite(path, ds, enforce_file_format=True)


def test_rtstruct_is_rasterised_by_voxel_centres(dicom_folder, tmp_path):
    image = load_image(dicom_folder)
    centre, radius = (15.5, 14.2), 6.3
    _rtstruct(tmp_path / "rs.dcm", image, centre, radius, slices=[3, 4, 5])
    roi = load_mask(tmp_path / "rs.dcm", image, 1)
    _, ny, nx = roi.shape
    yy, xx = np.mgrid[0:ny, 0:nx].astype(float)
    disk = (xx - centre[0]) ** 2 + (yy - centre[1]) ** 2 <= radius**2
    assert set(np.flatnonzero(roi.any(axis=(1, 2)))) == {3, 4, 5}
    for k in (3, 4, 5):
        dice = 2 * (roi[k] & disk).sum() / (roi[k].sum() + disk.sum())
        assert dice > 0.97


def test_rtstruct_contour_off_the_image_is_reported(dicom_folder, tmp_path):
    image = load_image(dicom_folder)
    _rtstruct(tmp_path / "rs.dcm", image, (15.0, 15.0), 5.0, slices=[40])
    with pytest.raises(InvalidInputError) as info:
        load_mask(tmp_path / "rs.dcm", image, 1)
    assert info.value.reason is RadiomicsReason.MASK_OUTSIDE_IMAGE
