"""pre_process / predict / post_process on the CPU, each on its own."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from inference_workers.errors import StudyRejected
from inference_workers.pipeline import ModelSpec, RawPrediction, post_process, pre_process, predict, propose_candidates
from inference_workers.training import phantom_volume
from radlake.imaging.volume import Volume
from radlake.synthetic.chest_ct import chest_ct


def _flipped_rows(volume):
    """The same anatomy stored with rows reversed (column direction -y): what an anterior-up scanner sends."""
    g = volume.geometry
    rows = volume.array.shape[1]
    origin = (g.origin[0], g.origin[1] + (rows - 1) * g.spacing[1], g.origin[2])
    slice_dir, _, row_dir = g.axes_zyx()
    return Volume.from_axes(volume.array[:, ::-1].copy(), g.spacing, origin, row_dir, (0.0, -1.0, 0.0), slice_dir)


def test_pre_process_resamples_to_isotropic_windowed_patches(phantom):
    spec = ModelSpec()
    volume = phantom_volume(phantom)
    before = volume.array.copy()
    prepared = pre_process(volume, spec)
    g = prepared.geometry
    assert g.iso_shape == (round(23 * 2.5 / 1.25) + 1, round(71 * 0.8 / 1.25) + 1, round(71 * 0.8 / 1.25) + 1)
    assert all(abs(s - 1.25) < 0.02 for s in g.iso_spacing)
    assert prepared.patches.shape[1:] == (1, 24, 24, 24) and len(prepared.patches) == len(prepared.centres) > 0
    assert 0.0 <= float(prepared.patches.min()) and float(prepared.patches.max()) <= 1.0
    np.testing.assert_array_equal(volume.array, before)  # the input is not modified


def test_orientation_is_canonical_whatever_the_row_direction(phantom):
    spec = ModelSpec()
    a = pre_process(phantom_volume(phantom), spec)
    b = pre_process(_flipped_rows(phantom_volume(phantom)), spec)
    torch.testing.assert_close(a.image, b.image)
    np.testing.assert_array_equal(a.centres, b.centres)
    # the same iso voxel maps to the same patient point through either geometry
    point = np.array([10.0, 20.0, 30.0])
    np.testing.assert_allclose(a.geometry.iso_to_patient(point), b.geometry.iso_to_patient(point), atol=1e-6)
    source = b.geometry.iso_to_source(point)
    np.testing.assert_allclose(b.geometry.source_to_iso(source), point, atol=1e-9)


def test_oblique_orientation_is_rejected(phantom):
    c = np.cos(np.radians(30))
    axial = phantom_volume(phantom)
    g = axial.geometry
    oblique = Volume.from_axes(axial.array, g.spacing, g.origin, (c, 0.5, 0.0), (-0.5, c, 0.0), g.axes_zyx()[0])
    with pytest.raises(StudyRejected, match="INCONSISTENT_GEOMETRY"):
        pre_process(oblique, ModelSpec())


def test_propose_candidates_finds_a_blob_and_suppresses_neighbours():
    spec = ModelSpec()
    windowed = np.zeros((40, 40, 40), dtype=np.float32)
    z, y, x = np.ogrid[:40, :40, :40]
    windowed[(z - 20) ** 2 + (y - 18) ** 2 + (x - 22) ** 2 <= 16] = spec.windowed(30.0)
    centres = np.array([[18, 18, 24], [24, 18, 24], [6, 6, 6]])
    found = propose_candidates(centres, np.array([0.9, 0.8, 0.7]), windowed, spec)
    assert len(found) == 1  # the second window is the same nodule, the third has no blob
    np.testing.assert_allclose(found[0].centre_iso, (20, 18, 22), atol=0.01)
    assert found[0].mask.sum() == ((z - 20) ** 2 + (y - 18) ** 2 + (x - 22) ** 2 <= 16).sum()


def test_predict_batches_across_studies_without_changing_results(phantom, tiny_model, eager_spec):

    net, _, _ = tiny_model
    other = chest_ct(12, shape=phantom.image.shape, min_nodules=1)
    studies = [pre_process(phantom_volume(ct), eager_spec, key=k) for k, ct in (("a", phantom), ("b", other))]
    together = predict(net, studies, eager_spec, batch_size=16)
    alone = [predict(net, [s], eager_spec, batch_size=7)[0] for s in studies]
    for t, a in zip(together, alone):
        assert t.key == a.key
        np.testing.assert_allclose(t.window_probabilities, a.window_probabilities, atol=1e-5)
        np.testing.assert_allclose(t.malignancy, a.malignancy, atol=1e-5)
        assert t.cams.shape == (len(t.candidates), 24, 24, 24)
        assert (t.cams >= 0).all() and (t.cams <= 1 + 1e-6).all()


def test_post_process_maps_findings_back_to_the_source_series(phantom):
    """Windows on the generated nodules -> findings at the nodules, in the (row-flipped) source grid."""

    spec = ModelSpec()
    volume = _flipped_rows(phantom_volume(phantom))
    truth = phantom.labels[:, ::-1]  # the generator's masks in the flipped storage order
    rows = phantom.image.shape[1]
    prepared = pre_process(volume, spec)
    g = prepared.geometry
    centres_source = [(n.centre_vox[0], rows - 1 - n.centre_vox[1], n.centre_vox[2]) for n in phantom.nodules]
    windows = np.array([np.round(g.source_to_iso(np.array(c))) for c in centres_source], dtype=np.int64)
    half = spec.patch // 2
    unpadded = prepared.image[half:-half, half:-half, half:-half].numpy()
    candidates = propose_candidates(windows, np.array([0.9, 0.8]), unpadded, spec)
    assert len(candidates) == 2
    raw = RawPrediction("k", np.array([0.9, 0.8]), candidates, np.array([0.9, 0.8]), np.array([0.25, 0.5]),
                        np.zeros((2, 24, 24, 24), dtype=np.float32))
    result = post_process(prepared, raw, spec)
    assert result.labels.shape == volume.array.shape
    assert result.malignancy_score == pytest.approx(max(0.9 * 0.25, 0.8 * 0.5))
    for k, (finding, nodule, centre) in enumerate(zip(result.findings, phantom.nodules, centres_source), start=1):
        error_mm = (np.array(finding.centre_voxel) - centre) * np.array(phantom.spacing)
        assert np.linalg.norm(error_mm) < 2.0
        np.testing.assert_allclose(volume.geometry.index_to_patient(np.array(finding.centre_voxel)), finding.centre_mm)
        mine, theirs = result.labels == k, truth == k
        dice = 2 * (mine & theirs).sum() / (mine.sum() + theirs.sum())
        assert dice > 0.6
        assert 0.6 * nodule.diameter_mm < finding.diameter_mm < 1.4 * nodule.diameter_mm


def test_no_findings_gives_an_empty_label_volume_and_zero_score(phantom, tiny_model):
    net, spec, _ = tiny_model
    strict = replace(spec, presence_threshold=1.01)
    prepared = pre_process(phantom_volume(phantom), strict)
    [raw] = predict(net, [prepared], strict)
    result = post_process(prepared, raw, strict)
    assert result.findings == () and result.malignancy_score == 0.0 and not result.labels.any()
