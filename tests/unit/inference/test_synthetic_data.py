"""The generated data the nodule model is trained on, and the one DICOM CT series writer.

The chest CT hashes pin the generator: they were computed with ``inference_workers/lung_phantom.py`` before
it moved to ``radlake/synthetic/chest_ct.py`` (issue 8) and must not change, or a registered model's
training, validation and test data silently change under it.
"""

from __future__ import annotations

import hashlib
from io import BytesIO

import numpy as np
import pydicom
import pytest

from inference_workers.synthetic_study import ct_slices, pseudonymous_uid
from radlake.imaging.volume import volume_from_datasets
from radlake.synthetic import ct_volume
from radlake.synthetic.chest_ct import chest_ct
from radlake.synthetic.dicom_series import write_ct_series

PINNED = [
    # the first training study at the training shape (40, 112, 112), two malignant nodules
    ((1_000_000,), {}, "823bb7f9b0b66b831c0ea49e764305ed1366881b04a7f045d1adac17c48ef006"),
    # the unit tests' phantom
    ((11,), {"shape": (24, 72, 72), "min_nodules": 2, "max_nodules": 2},
     "e2e00720efeeab93107a29bd9ea053d0c45e4690cbecc60cf721de906ff1ae69"),
]


def _digest(ct) -> str:
    h = hashlib.sha256(ct.image.tobytes())
    h.update(ct.labels.tobytes())
    h.update(repr(ct.nodules).encode())
    return h.hexdigest()


@pytest.mark.parametrize(("args", "kwargs", "digest"), PINNED)
def test_chest_ct_generator_output_is_pinned(args, kwargs, digest):
    ct = chest_ct(*args, **kwargs)
    assert ct.image.dtype == np.int16 and ct.labels.dtype == np.uint8
    assert _digest(ct) == digest


@pytest.mark.parametrize("flip_rows", [False, True])
def test_ct_slices_decode_to_the_generated_volume(phantom, flip_rows):

    blobs = ct_slices(phantom, "2.25.1", "2.25.2", "RL-test", flip_rows=flip_rows)
    datasets = [pydicom.dcmread(BytesIO(b)) for b in blobs]
    assert {ds.SeriesInstanceUID for ds in datasets} == {"2.25.2"}
    assert [ds.SOPInstanceUID for ds in datasets] == [pseudonymous_uid("2.25.2", k) for k in range(len(blobs))]
    assert {ds.FrameOfReferenceUID for ds in datasets} == {pseudonymous_uid("2.25.2", "frame")}
    volume, _ = volume_from_datasets(datasets, dtype=np.float32)
    nz, ny, _ = phantom.image.shape
    slice_dir, col_dir, _ = volume.geometry.axes_zyx().tolist()
    if flip_rows:
        # rows stored along -y make the slice normal -z: the stack runs superior to inferior, rows reversed
        assert col_dir == [0.0, -1.0, 0.0] and slice_dir == [0.0, 0.0, -1.0]
        np.testing.assert_array_equal(volume.array[::-1, ::-1], phantom.image)
    else:
        np.testing.assert_array_equal(volume.array, phantom.image)
    assert volume.geometry.spacing == pytest.approx(phantom.spacing)
    # the same anatomy in patient space whichever way the rows are stored: generated voxel (z, y, x) sits at
    # LPS (x dx, y dy, z dz)
    voxel = np.array([3, 10, 20])
    index = np.array([nz - 1 - voxel[0], ny - 1 - voxel[1], voxel[2]]) if flip_rows else voxel
    dz, dy, dx = phantom.spacing
    assert volume.geometry.index_to_patient(index) == pytest.approx([voxel[2] * dx, voxel[1] * dy, voxel[0] * dz])


def test_write_dicom_series_and_attributes(tmp_path, phantom):

    paths = ct_volume.write_dicom_series(phantom, tmp_path / "a", seed=5)
    assert [p.name for p in paths] == [f"CT_{k:04d}.dcm" for k in range(phantom.image.shape[0])]
    datasets = [pydicom.dcmread(p) for p in paths]
    assert {ds.PatientID for ds in datasets} == {"SYNTH5"} and len({ds.SOPInstanceUID for ds in datasets}) == len(paths)
    np.testing.assert_array_equal(np.stack([ds.pixel_array for ds in datasets]), phantom.image)
    assert [float(ds.ImagePositionPatient[2]) for ds in datasets] == pytest.approx(
        [k * phantom.spacing[0] for k in range(len(paths))])

    paths = write_ct_series(phantom.image, phantom.spacing, tmp_path / "b", study_uid="1.2.3", series_uid="1.2.4",
                            sop_uid=lambda k: f"1.2.5.{k}", attributes={"PatientName": "Nordmann^Ola",
                                                                          "InstitutionName": "Fake Hospital"})
    ds = pydicom.dcmread(paths[3])
    assert (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID) == ("1.2.3", "1.2.4", "1.2.5.3")
    assert ds.file_meta.MediaStorageSOPInstanceUID == "1.2.5.3"
    assert (str(ds.PatientName), ds.InstitutionName) == ("Nordmann^Ola", "Fake Hospital")
