"""What durability a topic is created with: replicated and acknowledged by two in-sync copies where the
cluster can, valid on one broker, events kept five weeks, compacted topics left to their compaction."""

from __future__ import annotations

from platform_layer.kafka import EVENT_RETENTION_MS, TopicSpec, topic_settings


def test_a_cluster_of_three_or_more_gets_three_copies_two_in_sync():
    assert topic_settings(TopicSpec("t", 3), brokers=5) == (
        3, {"min.insync.replicas": "2", "retention.ms": str(EVENT_RETENTION_MS)})
    assert EVENT_RETENTION_MS == 35 * 24 * 3600 * 1000


def test_one_broker_gets_what_it_can_hold():
    assert topic_settings(TopicSpec("t", 3), brokers=1) == (
        1, {"min.insync.replicas": "1", "retention.ms": str(EVENT_RETENTION_MS)})
    assert topic_settings(TopicSpec("t", 3), brokers=2)[1]["min.insync.replicas"] == "2"


def test_a_spec_overrides_and_compacted_topics_keep_no_time_limit():
    replication, config = topic_settings(TopicSpec("state", 3, {"cleanup.policy": "compact"}), brokers=3)
    assert replication == 3 and "retention.ms" not in config
    assert topic_settings(TopicSpec("t", 1, {"retention.ms": "1000"}, replication=1), brokers=3) == (
        1, {"min.insync.replicas": "1", "retention.ms": "1000"})
