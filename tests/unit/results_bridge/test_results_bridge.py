"""The results bridge's pure parts: who reads what, where a stream starts, the hand-over between replay and live
deliveries, the objects a prediction names, and the Grad-CAM thumbnail."""

from __future__ import annotations

import asyncio
import gzip
import io
import struct
import zlib

import nibabel as nib
import numpy as np
import pytest

from streams.results_bridge.access import scope_of
from streams.results_bridge.hub import Delivery, Subscriber, prediction_objects
from streams.results_bridge.positions import Coordinates, StartError, parse_since, start_of
from streams.results_bridge.thumbnail import ThumbnailError, gradcam_png, projection_png
from tests.unit.contract_examples import contract_examples


def test_project_roles_grant_their_project_and_platform_admin_grants_all():
    scope = scope_of(["project:alpha:reader", "project:beta:steward", "provider:h1", "offline_access",
                      "default-roles-radlake"])
    assert scope.projects == {"alpha", "beta"} and not scope.everything
    assert scope.may_read("alpha") and scope.may_read("beta")
    assert not scope.may_read("gamma") and not scope.may_read(None)
    admin = scope_of(["platform-admin"])
    assert admin.may_read("gamma") and not admin.empty
    assert scope_of(["provider:h1", "uma_authorization"]).empty
    # a malformed project role grants nothing rather than something near it
    assert scope_of(["project:alpha:writer", "project::reader"]).empty


def test_a_stream_starts_at_the_last_event_id_then_from_then_since():
    assert start_of(None, None, None).live_only
    assert start_of("2026-12-01T10:00:00Z", None, None).since_ms == 1796119200000
    assert parse_since("2026-12-01T10:00:00") == parse_since("2026-12-01T10:00:00+00:00")  # no zone: UTC
    resumed = start_of("2026-12-01T10:00:00Z", "t.a:1:5", "radlake.prediction.created.v1/2/17")
    assert resumed.after == Coordinates("radlake.prediction.created.v1", 2, 17) and resumed.since_ms is None
    assert start_of(None, "t.a:1:5", None).after == Coordinates("t.a", 1, 5)
    assert Coordinates("t", 0, 3).event_id == "t/0/3"
    for bad in ("t/x/1", "t/1", "", "a b/1/2"):
        with pytest.raises(StartError):
            start_of(None, None, bad) if bad else start_of(None, "t", None)
    with pytest.raises(StartError):
        parse_since("yesterday")


def _delivery(project: str, offset: int, partition: int = 0, topic: str = "t") -> Delivery:
    return Delivery(topic, partition, offset, 0, "prediction.created", project, b'{"x":1}')


def test_a_subscriber_gets_its_projects_once_each_in_offset_order_across_the_hand_over():
    async def run() -> None:
        subscriber = Subscriber(scope_of(["project:alpha:reader"]), frozenset({"t"}), max_buffer=100)
        # live deliveries buffered while the replay ran: offsets 3..5 of partition 0, and one of another project
        subscriber.offer([_delivery("alpha", 3), _delivery("beta", 4), _delivery("alpha", 5)])
        replayed = subscriber.fresh([_delivery("alpha", 1), _delivery("alpha", 3)])  # replay reached offset 3
        assert [d.offset for d in replayed] == [1, 3]
        assert [d.offset for d in subscriber.take()] == [5]  # 3 was sent by the replay; beta's never
        subscriber.offer([_delivery("alpha", 2, partition=1), _delivery("alpha", 6, topic="other")])
        assert [(d.partition, d.offset) for d in subscriber.take()] == [(1, 2)]  # a topic not asked for stays out
    asyncio.run(run())


def test_a_subscriber_that_falls_behind_is_ended_not_waited_for():
    async def run() -> None:
        subscriber = Subscriber(scope_of(["platform-admin"]), frozenset({"t"}), max_buffer=3)
        subscriber.offer([_delivery("a", i) for i in range(5)])
        assert subscriber.overflowed and not subscriber.buffer and subscriber.ready.is_set()
    asyncio.run(run())


def test_a_delivery_is_one_sse_frame_and_one_websocket_message():
    d = Delivery("radlake.prediction.created.v1", 2, 17, 1234, "prediction.created", "alpha", b'{"a":1}')
    assert d.frame == b'id: radlake.prediction.created.v1/2/17\nevent: prediction.created\ndata: {"a":1}\n\n'
    assert '"id":"radlake.prediction.created.v1/2/17"' in d.message() and d.message().endswith('"data":{"a":1}}')


def test_a_prediction_names_its_seg_sr_and_gradcam_objects():
    prediction = next(e for e in contract_examples() if e.event_type == "prediction.created")
    refs = prediction_objects(prediction.model_dump(mode="json")["data"])
    assert {(r.kind, r.sha256[0]) for r in refs} == {("seg", "e"), ("sr", "f"), ("gradcam", "d")}
    assert {r.project for r in refs} == {"p"}


def _png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_a_gradcam_map_becomes_a_png_of_its_projection():
    volume = np.zeros((10, 12, 6), dtype=np.float32)
    volume[7, 3, 2] = 1.0
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(nib.Nifti1Image(volume, np.eye(4)).to_bytes())
    picture = gradcam_png(buffer.getvalue(), scale=2)
    assert _png_size(picture) == (20, 24)  # (x, y) of the map, each pixel doubled
    idat = picture[picture.index(b"IDAT") + 4:]
    rows = zlib.decompress(idat[:struct.unpack(">I", picture[picture.index(b"IDAT") - 4:picture.index(b"IDAT")])[0]])
    pixels = np.frombuffer(rows, dtype=np.uint8).reshape(24, 1 + 20 * 3)[:, 1:].reshape(24, 20, 3)
    hot = np.argwhere(pixels.sum(axis=2) == pixels.sum(axis=2).max())
    # the peak at x=7, y=3 is drawn at column 7, row 12-1-3 (anterior at the top), enlarged twice
    assert {tuple(p) for p in hot} == {(16, 14), (16, 15), (17, 14), (17, 15)}
    assert _png_size(projection_png(np.zeros((2, 3, 4)), scale=1)) == (2, 3)  # a flat map: drawn, all dark


def test_what_is_not_a_volume_is_refused_with_its_reason():
    with pytest.raises(ThumbnailError):
        gradcam_png(b"not gzip")
    with pytest.raises(ThumbnailError):
        projection_png(np.zeros((4, 4)))
