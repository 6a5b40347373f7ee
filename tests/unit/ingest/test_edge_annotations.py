"""Annotations through the edge's request handling (no NiFi): one engine, one store, their own event."""

from __future__ import annotations

import io
import json

import numpy as np
import pydicom

from lake_schemas.events import AnnotationReceived, InstanceReceived, Quarantined
from nifi.edge import edge
from nifi.edge.handler import RADLAKE_REPORT, EdgeRuntime, handle
from nifi.edge.stow_rs import build_multipart_related
from platform_layer.object_store import ObjectStore
from radlake.deid.confidentiality_profile import Profile, compile_rules
from radlake.deid.pseudonyms import LocalHmac
from radlake.synthetic import annotations
from radlake.synthetic.dicom_series import ct_series


class Collected:
    def __init__(self) -> None:
        self.events: list = []

    def publish(self, events) -> None:
        self.events += events


def _runtime(tmp_path) -> EdgeRuntime:
    config = edge.EdgeConfig("hospital-a", "unit-project", "test-profile", tmp_path / "edge")
    return EdgeRuntime(config, compile_rules(Profile()), LocalHmac(b"k" * 32), ObjectStore(str(tmp_path / "objects")),
                       Collected(), lambda: "secret-token", tmp_path / "edge" / "work")


def _post(runtime, parts: list[bytes]):
    body, content_type = build_multipart_related(parts, "bnd")
    return handle(runtime, "POST", "/dicomweb/studies",
                  {"Content-Type": content_type, "Accept": RADLAKE_REPORT, "Authorization": "Bearer secret-token"}, body)


def test_images_then_annotations_in_another_request_reference_the_pseudonymous_images(tmp_path):
    runtime = _runtime(tmp_path)
    images = ct_series(np.full((5, 20, 20), -700, dtype=np.int16), (2.0, 0.9, 0.9),
                       attributes={"PatientName": "Roe^Rick", "PatientID": "MRN-77"})
    source = [pydicom.dcmread(io.BytesIO(b)) for b in images]
    assert _post(runtime, images).status == 200
    no_pixels = pydicom.dcmread(io.BytesIO(images[0]))
    del no_pixels.PixelData
    no_pixels.SOPInstanceUID = no_pixels.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4.5.999"
    buffer = io.BytesIO()
    no_pixels.save_as(buffer, enforce_file_format=True)
    objects = [annotations.seg(source, annotations.sphere_mask(source, (2, 10, 10), 2.0)),
               annotations.rtstruct(source, (2, 10, 10), 2.0), annotations.comprehensive_sr(source), buffer.getvalue()]
    response = _post(runtime, objects)
    assert response.status == 202, response.body
    assert json.loads(response.body)["counts"] == {"accepted": 3, "quarantined": 1}
    instances = [e for e in runtime.publisher.events if isinstance(e, InstanceReceived)]
    found = [e for e in runtime.publisher.events if isinstance(e, AnnotationReceived)]
    [refused] = [e for e in runtime.publisher.events if isinstance(e, Quarantined)]
    assert refused.data.reason == "NO_PIXEL_DATA"  # an image without pixel data is still refused
    assert len(instances) == 5 and [e.data.annotation_kind for e in found] == ["seg", "rtstruct", "sr"]
    for event in found:
        assert event.data.study_uid == instances[0].data.study_uid
        assert event.data.referenced_series_uids == (instances[0].data.series_uid,)
        assert runtime.store.exists(event.data.object_uri)
