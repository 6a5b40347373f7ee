"""``radlake ingest report --repair`` against the real broker, registry and object store: objects an edge stored
and never announced (it died between the store and the publish) get their events, exactly once, however often
the repair runs; the edge's own quarantine and topics are untouched otherwise."""

from __future__ import annotations

import uuid

import pytest

from apps.ingest import main as ingest_cli
from lake_schemas.topics import INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST
from nifi.edge import edge
from nifi.edge.outbox import Outbox
from nifi.edge.reconcile import read_provider_events
from nifi.providers import edge_dir
from platform_layer import kafka
from platform_layer.object_store import ObjectStore
from platform_layer.registration import register, schema_admin
from radlake.deid.confidentiality_profile import Profile, compile_rules
from radlake.deid.pseudonyms import LocalHmac
from radlake.synthetic import phi_dicom

pytestmark = pytest.mark.integration


def test_objects_stored_without_their_events_are_announced_once(settings, kafka_bootstrap, registry_url, tmp_path,
                                                                capsys):
    provider, suffix = f"outbox-{uuid.uuid4().hex[:6]}", uuid.uuid4().hex[:8]
    topics = [t.with_name(f"test.outbox.{t.name}.{suffix}") for t in (INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST)]
    kafka.ensure_topics(kafka_bootstrap, [kafka.TopicSpec(t.name, t.partitions) for t in topics])
    register(schema_admin(settings), tuple(topics))
    outbox = Outbox(edge_dir(settings, provider) / "outbox")
    config = edge.EdgeConfig(provider, "outbox-project", "test-profile", tmp_path / "edge", outbox=outbox)
    datasets, _ = phi_dicom.ct_series(4, size=32)
    # The edge's own de-identification and store, then death before the publish: objects in, no events out.
    result = edge.ingest_instances([phi_dicom.to_bytes(ds) for ds in datasets], rules=compile_rules(Profile()),
                                   pseudonymiser=LocalHmac(b"k" * 32),
                                   store=ObjectStore(settings.resolved_object_store_uri), config=config)
    assert len(result.events) == 4 and len(outbox.leftovers()) == 1
    args = ["report", "--provider", provider, "--journal", str(tmp_path / "none.jsonl"), "--repair",
            "--repair-after", "0", "--instance-topic", topics[0].name, "--quarantine-topic", topics[1].name,
            "--manifest-topic", topics[2].name]
    for published in (4, 0):  # the second run finds no ticket left, and publishes nothing
        assert ingest_cli(args) == 0
        assert f"{published} event(s) published" in capsys.readouterr().out
        on_topic = read_provider_events(kafka_bootstrap, registry_url, topics[0], provider)
        assert sorted(e.event_id for e in on_topic) == sorted(e.event_id for e in result.events)
    assert outbox.leftovers() == []
