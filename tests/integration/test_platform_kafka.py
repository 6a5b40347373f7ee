"""The platform's Kafka clients and topic creation against the real broker."""

from __future__ import annotations

import pytest
from confluent_kafka.admin import ConfigResource, ResourceType
from test_kafka_registry import _event

from lake_schemas.topics import INSTANCE_RECEIVED
from platform_layer import kafka
from platform_layer.errors import TopicError
from platform_layer.kafka import TopicSpec
from platform_layer.registration import register, schema_admin
from platform_layer.serde import EventSerde, registry_client
from platform_layer.settings import Settings

pytestmark = pytest.mark.integration


def test_topics_are_created_once_with_their_layout_and_a_different_layout_is_refused(kafka_bootstrap, unique_topic):
    compacted = f"{unique_topic}.state"
    specs = [TopicSpec(unique_topic, 2), TopicSpec(compacted, 2, {"cleanup.policy": "compact"})]
    assert sorted(kafka.ensure_topics(kafka_bootstrap, specs)) == sorted([unique_topic, compacted])
    assert kafka.ensure_topics(kafka_bootstrap, specs) == []  # idempotent
    admin = kafka.admin(kafka_bootstrap)
    assert len(admin.list_topics(unique_topic, timeout=10).topics[unique_topic].partitions) == 2
    with pytest.raises(TopicError, match="partition counts"):
        kafka.ensure_topics(kafka_bootstrap, [TopicSpec(unique_topic, 3)])
    # durability as created on this one-broker stack: every in-sync copy acknowledges, events kept five weeks
    resources = [ConfigResource(ResourceType.TOPIC, name) for name in (unique_topic, compacted)]
    configs = {r.name: f.result(timeout=10) for r, f in admin.describe_configs(resources).items()}
    assert configs[unique_topic]["min.insync.replicas"].value == "1"
    assert configs[unique_topic]["retention.ms"].value == str(kafka.EVENT_RETENTION_MS)
    assert configs[compacted]["cleanup.policy"].value == "compact"
    assert configs[compacted]["retention.ms"].value != str(kafka.EVENT_RETENTION_MS)


def test_read_to_end_returns_every_committed_event_typed(kafka_bootstrap, registry_url, unique_topic):
    topic = INSTANCE_RECEIVED.with_name(unique_topic)
    kafka.ensure_topics(kafka_bootstrap, [TopicSpec(topic.name, 3)])
    register(schema_admin(Settings()), (topic,))
    serde = EventSerde(topic, registry_client(registry_url))
    producer = kafka.producer(kafka_bootstrap, client_id="test-platform")
    events = [_event(sop_instance_uid=f"2.25.{1000 + k}") for k in range(7)]
    for event in events:
        producer.produce(topic.name, key=event.key.encode(), value=serde.serialize(event))
    assert producer.flush(30) == 0
    read = kafka.read_to_end(kafka_bootstrap, serde, timeout_s=60)
    assert sorted(e.event_id for e in read) == sorted(e.event_id for e in events)
    assert kafka.read_to_end(kafka_bootstrap, EventSerde(INSTANCE_RECEIVED.with_name(f"{unique_topic}.none"),
                                                         registry_client(registry_url))) == []
