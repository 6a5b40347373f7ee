"""``radlake demo``'s sample: chest CTs from the generator the nodule model is trained on, with fake PHI and
known ground truth (no stack needed)."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest

from apps import demo
from inference_workers.training import TEST_SEEDS
from radlake.synthetic.chest_ct import chest_ct
from radlake.synthetic.phi_dicom import Patient

SHAPE = (24, 72, 72)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-sample")
    return root, demo.generate_sample(root, SHAPE)


def test_each_study_is_a_chest_ct_with_one_nodule_of_the_planned_label(sample):
    root, truths = sample
    planned = sorted((p, "malignant" if m else "benign") for p, labels in demo.PROVIDERS.items() for m in labels)
    assert sorted((t.provider, t.kind) for t in truths.values()) == planned
    for provider, labels in demo.PROVIDERS.items():
        for s_index in range(len(labels)):
            datasets = [pydicom.dcmread(p) for p in sorted((root / provider / f"study{s_index}").glob("*.dcm"))]
            assert len(datasets) == SHAPE[0]
            volume = np.stack([ds.pixel_array * int(ds.RescaleSlope) + int(ds.RescaleIntercept) for ds in datasets])
            truth = truths[demo._volume_hash(volume)]  # the uploaded pixels are the generated volume
            assert truth.provider == provider
            # the ground truth is the generator's: mask = the nodule's voxels, centre inside it
            assert truth.mask.shape == SHAPE and truth.mask.any()
            assert truth.mask[tuple(round(c) for c in truth.centre_vox)]
            assert 5.0 <= truth.diameter_mm <= 14.0 and truth.spacing == (2.5, 0.8, 0.8)
            ds = datasets[0]
            assert (str(ds.PatientName), ds.InstitutionName) == (Patient().name, Patient().institution)
            assert str(ds.PatientID).startswith(Patient().patient_id) and ds.AccessionNumber.startswith("ACC")
            assert len({d.SOPInstanceUID for d in datasets}) == len(datasets)
            assert len({(d.StudyInstanceUID, d.SeriesInstanceUID, d.FrameOfReferenceUID) for d in datasets}) == 1


def test_seeds_are_outside_the_models_seed_ranges_and_labels_come_from_the_generator(sample):

    _, truths = sample
    for truth in truths.values():
        # find the seed back: the demo draws from DEMO_SEEDS on
        for seed in range(demo.DEMO_SEEDS, demo.DEMO_SEEDS + 500):
            ct = chest_ct(seed, shape=SHAPE, min_nodules=1, max_nodules=1)
            if demo._volume_hash(ct.image) == truth.volume_sha256:
                break
        else:
            pytest.fail("demo study not from the chest CT generator")
        assert seed > TEST_SEEDS + 1_000_000
        assert truth.kind == ("malignant" if ct.nodules[0].malignant else "benign")


def test_sample_is_deterministic_and_has_the_bad_inputs(sample, tmp_path):
    root, truths = sample
    again = demo.generate_sample(tmp_path, SHAPE)
    assert again.keys() == truths.keys()
    first = sorted((root / "st-olav" / "study0").glob("*.dcm"))[0]
    assert (tmp_path / "st-olav" / "study0" / first.name).read_bytes() == first.read_bytes()  # same UIDs on a re-run
    for provider in demo.PROVIDERS:
        assert sorted(p.name for p in (root / provider / "bad").iterdir()) == ["notes.txt", "traversal.zip",
                                                                              "truncated.dcm"]


def test_findings_are_printed_beside_the_truth(sample):
    _, truths = sample
    truth = next(iter(truths.values()))
    z, y, x = truth.centre_vox
    lines = demo.describe_findings(
        [{"centre_voxel": [z, y + 5, x], "diameter_mm": 6.0, "probability": 0.9, "malignancy_probability": 0.2},
         {"centre_voxel": [z, y, x], "diameter_mm": 9.0, "probability": 0.8, "malignancy_probability": 0.7}], truth)
    assert lines[0].startswith(f"found: nodule at (z,y,x)=({round(z)},{round(y)},{round(x)}) (0.0 mm from")
    assert "(4.0 mm from the true centre)" in lines[1]  # 5 rows x 0.8 mm: within max(radius, 5 mm), a hit
    assert len(lines) == 2
    far = demo.describe_findings(
        [{"centre_voxel": [z, y + 20, x], "diameter_mm": 4.0, "probability": 0.6, "malignancy_probability": 0.4}], truth)
    assert far[0].endswith("P(nodule)=0.60 P(malignant)=0.40") and "mm from the true centre: a false positive" in far[0]
    assert far[1:] == ["the true nodule was missed"]
    assert demo.describe_findings([], truth) == ["found: nothing", "the true nodule was missed"]
