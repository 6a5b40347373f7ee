"""The topics a test's provider edges publish to: the four edge contracts under names of the test's own, created
by the platform (``ensure_topics``) and registered."""

from __future__ import annotations

from lake_schemas.topics import ANNOTATION_RECEIVED, INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST, Topic
from platform_layer import kafka
from platform_layer.registration import register, schema_admin
from platform_layer.settings import Settings


def edge_topics(kafka_bootstrap: str, prefix: str) -> tuple[dict[str, str], tuple[Topic, Topic, Topic, Topic]]:
    """(the edge's topic parameters, the renamed contracts) for topics
    ``<prefix>.instances|quarantined|manifests|annotations``, in that order."""
    names = {"instance_topic": f"{prefix}.instances", "quarantine_topic": f"{prefix}.quarantined",
             "manifest_topic": f"{prefix}.manifests", "annotation_topic": f"{prefix}.annotations"}
    contracts = (INSTANCE_RECEIVED.with_name(names["instance_topic"]), QUARANTINED.with_name(names["quarantine_topic"]),
                 STUDY_MANIFEST.with_name(names["manifest_topic"]),
                 ANNOTATION_RECEIVED.with_name(names["annotation_topic"]))
    kafka.ensure_topics(kafka_bootstrap, [kafka.TopicSpec(t.name, 3) for t in contracts])
    register(schema_admin(Settings()), contracts)
    return names, contracts
