"""Annotations as ROIs: an edge-de-identified SEG and RTSTRUCT become ``silver/rois`` rows on the pseudonymous
image series, and their masks land on that series' grid where the sphere was drawn."""

from __future__ import annotations

import io

import numpy as np
import pydicom
import pytest

from platform_layer.object_store import ObjectStore
from radlake.deid.confidentiality_profile import Profile, compile_rules
from radlake.deid.pipeline import deidentify_instances
from radlake.deid.pseudonyms import LocalHmac
from radlake.instance_events import store_and_describe
from radlake.radiomics.dicom_series import read_series
from radlake.radiomics.inputs import load_mask
from radlake.synthetic import annotations
from radlake.synthetic.dicom_series import ct_series
from spark_jobs import radiomics_follow as follow

CENTRE, RADIUS = (3, 12, 13), 2.6


@pytest.fixture(scope="module")
def landed(tmp_path_factory):
    root = tmp_path_factory.mktemp("annotated")
    store, rules, key = ObjectStore(str(root / "objects")), compile_rules(Profile()), LocalHmac(b"k" * 32)
    source_bytes = ct_series(np.full((7, 26, 26), -600, dtype=np.int16), (2.0, 0.7, 0.7),
                             attributes={"PatientName": "Poe^Pat", "PatientID": "MRN-5"})
    source = [pydicom.dcmread(io.BytesIO(b)) for b in source_bytes]
    objects = [annotations.seg(source, annotations.sphere_mask(source, CENTRE, RADIUS)),
               annotations.rtstruct(source, CENTRE, RADIUS), annotations.comprehensive_sr(source)]
    events = [store_and_describe(r.encoded, store, provider="site-a", project="p", deid_profile_version="v")
              for r in deidentify_instances([*source_bytes, *objects], rules, key, "site-a")]
    series_dir = root / "series"
    series_dir.mkdir()
    for n, event in enumerate(events[:7]):
        (series_dir / f"{n}.dcm").write_bytes(store.get(event.data.object_uri, event.data.sha256))
    return store, events[:7], events[7:], read_series(series_dir), annotations.sphere_mask(source, CENTRE, RADIUS)


def test_seg_and_rtstruct_become_rois_on_the_pseudonymous_series(landed):
    store, images, (seg, rtstruct, sr), _, _ = landed
    [seg_row] = follow.annotation_rois(seg, store.get)
    [rt_row] = follow.annotation_rois(rtstruct, store.get)
    assert follow.annotation_rois(sr, store.get) == []
    assert seg_row["roi"] == f"seg:{seg.data.sop_instance_uid}/lesion#1"
    assert rt_row["roi"] == f"rtstruct:{rtstruct.data.sop_instance_uid}/lesion#1"
    for row, kind in ((seg_row, "seg"), (rt_row, "rtstruct")):
        assert row["series_uid"] == images[0].data.series_uid and row["study_uid"] == images[0].data.study_uid
        assert row["mask_kind"] == kind and row["provider"] == "site-a"
        assert row["source"].startswith("annotation:")


def test_both_masks_fall_where_the_sphere_was_drawn(landed, tmp_path):
    store, _, (seg, rtstruct, _), volume, expected = landed
    masks = {}
    for event in (seg, rtstruct):
        path = tmp_path / f"{event.data.annotation_kind}.dcm"
        path.write_bytes(store.get(event.data.object_uri, event.data.sha256))
        masks[event.data.annotation_kind] = load_mask(path, volume, 1)
    assert masks["seg"].shape == expected.shape and (masks["seg"] == expected).all()
    # the RTSTRUCT's polygons approximate the same ball: the same slices, nearly the same voxels
    rt = masks["rtstruct"]
    assert set(np.nonzero(rt.any(axis=(1, 2)))[0]) == set(np.nonzero(expected.any(axis=(1, 2)))[0])
    overlap = (rt & expected).sum() / (rt | expected).sum()
    assert overlap > 0.6, overlap
