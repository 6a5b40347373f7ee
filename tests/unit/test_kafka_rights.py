"""The ACL bindings a component's rights turn into (pure)."""

from __future__ import annotations

from confluent_kafka.admin import AclOperation, AclPermissionType, ResourcePatternType, ResourceType

from platform_layer.kafka import Rights
from streams.config import StreamsConfig
from streams.worker import rights


def test_rights_become_allow_bindings_for_exactly_those_resources():
    bindings = Rights(reads=("in",), writes=("out", "in"), group_prefixes=("app",),
                      transactional_prefixes=("app",)).bindings("radlake-x")
    assert all(b.principal == "User:radlake-x" and b.permission_type == AclPermissionType.ALLOW and b.host == "*"
               for b in bindings)
    seen = {(b.restype, b.name, b.resource_pattern_type, b.operation) for b in bindings}
    assert len(seen) == len(bindings)  # "in" is read and written, and described once
    topic, group, txn = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
    literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
    assert seen == {
        (topic, "in", literal, AclOperation.READ), (topic, "in", literal, AclOperation.DESCRIBE),
        (topic, "in", literal, AclOperation.WRITE),
        (topic, "out", literal, AclOperation.WRITE), (topic, "out", literal, AclOperation.DESCRIBE),
        (group, "app", prefixed, AclOperation.READ),
        (txn, "app", prefixed, AclOperation.WRITE), (txn, "app", prefixed, AclOperation.DESCRIBE),
    }


def test_the_streams_worker_reads_its_inputs_and_writes_its_outputs_only():
    config = StreamsConfig(bootstrap="x", registry_url="y", app_id="app")
    granted = rights(config)
    assert set(granted.reads) == {config.instance_topic, config.manifest_topic, config.state_topic}
    assert set(granted.writes) == {config.completed_topic, config.quarantined_topic, config.dead_letter_topic,
                                   config.state_topic}
    assert granted.group_prefixes == granted.transactional_prefixes == ("app",)
