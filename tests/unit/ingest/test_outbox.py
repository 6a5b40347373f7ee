"""The edge's outbox without NiFi or Kafka: a ticket names the objects before they are stored, is closed once the
events are acknowledged, and a ticket left by an edge that died between store and publish is repaired into the
very events the edge would have sent — once, and not for objects that were never stored."""

from __future__ import annotations

import fsspec
import pytest
from test_edge import Collected, _post

from lake_schemas.events import InstanceReceived
from nifi.edge import edge
from nifi.edge.handler import EdgeRuntime
from nifi.edge.outbox import Outbox, PlannedObject, repair
from nifi.edge.stow_rs import build_multipart_related
from platform_layer.object_store import ObjectStore
from radlake.deid.confidentiality_profile import Profile, compile_rules
from radlake.deid.pseudonyms import LocalHmac
from radlake.synthetic import phi_dicom


class DiesBeforePublishing:
    """The edge killed after its objects are stored and before any event is acknowledged."""

    def publish(self, events) -> None:
        raise SystemExit("killed")


@pytest.fixture
def series() -> list[bytes]:
    datasets, _ = phi_dicom.ct_series(3, size=32)
    return [phi_dicom.to_bytes(ds) for ds in datasets]


def _runtime(tmp_path, publisher) -> EdgeRuntime:
    outbox = Outbox(tmp_path / "edge" / "outbox")
    config = edge.EdgeConfig("hospital-a", "unit-project", "test-profile", tmp_path / "edge", outbox=outbox)
    return EdgeRuntime(config, compile_rules(Profile()), LocalHmac(b"k" * 32), ObjectStore(str(tmp_path / "objects")),
                       publisher, lambda: "secret-token", tmp_path / "edge" / "work")


def _read(store: ObjectStore):
    return lambda uri: store.get(uri) if store.exists(uri) else None


def test_an_answered_request_leaves_no_ticket(tmp_path, series):
    runtime = _runtime(tmp_path, Collected())
    body, content_type = build_multipart_related(series, "bnd")
    assert _post(runtime, "/dicomweb/studies", body, content_type).status == 200
    assert runtime.config.outbox.leftovers() == []


def test_objects_stored_by_an_edge_that_died_before_publishing_are_announced_once(tmp_path, series):
    dying = _runtime(tmp_path, DiesBeforePublishing())
    body, content_type = build_multipart_related(series, "bnd")
    with pytest.raises(SystemExit):
        _post(dying, "/dicomweb/studies", body, content_type)
    [ticket] = dying.config.outbox.leftovers()
    named = Outbox.read(ticket)
    assert len(named) == 3 and all(dying.store.exists(p.uri) for p in named)

    # what the edge would have published, had it lived: the same event ids
    alive = _runtime(tmp_path / "again", Collected())
    _post(alive, "/dicomweb/studies", body, content_type)
    expected = sorted(e.event_id for e in alive.publisher.events)

    published = Collected()
    done = repair(dying.config.outbox, _read(dying.store), published.publish, on_topic={expected[0]})
    assert (done.tickets, done.objects, done.published, done.never_stored) == (1, 3, 2, 0)
    assert all(isinstance(e, InstanceReceived) for e in published.events)
    assert sorted(e.event_id for e in published.events) == expected[1:]  # the one on the topic is not sent again
    assert dying.config.outbox.leftovers() == []
    assert repair(dying.config.outbox, _read(dying.store), published.publish).tickets == 0


def test_a_ticket_for_objects_never_stored_announces_nothing(tmp_path, series):
    dying = _runtime(tmp_path, DiesBeforePublishing())
    body, content_type = build_multipart_related(series[:1], "bnd")
    with pytest.raises(SystemExit):
        _post(dying, "/dicomweb/studies", body, content_type)
    [planned] = Outbox.read(dying.config.outbox.leftovers()[0])
    fs, path = fsspec.core.url_to_fs(planned.uri)
    fs.rm(path)  # as if it had died before the put
    published = Collected()
    done = repair(dying.config.outbox, _read(dying.store), published.publish)
    assert (done.objects, done.published, done.never_stored) == (0, 0, 1) and published.events == []


def test_a_torn_ticket_is_skipped_and_a_young_one_left_for_its_request(tmp_path):
    outbox = Outbox(tmp_path / "outbox")
    outbox.folder.mkdir()
    (outbox.folder / f"00-torn{'.ticket.json'}").write_text('[{"uri": "fi')
    assert repair(outbox, lambda uri: None, Collected().publish).tickets == 1
    young = outbox.open_ticket([PlannedObject("file:///x", "0" * 64, 1, "p", "q", "v")])
    assert outbox.leftovers(older_than_s=60) == [] and outbox.leftovers() == [young]
