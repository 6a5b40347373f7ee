"""The bridge as a process: its topics (created with the results' retention), its Kafka rights, and the server.

The result topics get ``retention.ms`` of ``results_retention_days`` here, whoever created them: a dashboard that
connects late replays that far back. They are not compacted: a study has several events (each version, each
model's prediction, each settings hash of its features) and a replay wants them all, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import uvicorn
from confluent_kafka import KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

from lake_schemas.topics import FEATURES_COMPUTED, PREDICTION_CREATED, STUDY_COMPLETED, Topic
from platform_layer import kafka
from platform_layer.deny_list import ErasedPatients
from platform_layer.endpoints import kafka_bootstrap, registry_url
from platform_layer.identity_provider import AccessTokenVerifier
from platform_layer.object_store import ObjectStore
from platform_layer.serde import EventSerde, registry_client
from platform_layer.settings import Settings
from streams.errors import TopicLayoutError
from streams.results_bridge.app import BridgeConfig, build_app
from streams.results_bridge.hub import Hub, ObjectIndex

log = logging.getLogger(__name__)

GROUP_PREFIX = "radlake-results-bridge"


def result_topics(names: Mapping[str, str] | None = None) -> dict[str, Topic]:
    """Short name -> contract: prediction, features, study (``names`` renames topics, as tests and benches do)."""
    contracts = {"prediction": PREDICTION_CREATED, "features": FEATURES_COMPUTED, "study": STUDY_COMPLETED}
    return {short: topic.with_name((names or {}).get(short) or topic.name) for short, topic in contracts.items()}


def rights(topics: Mapping[str, Topic]) -> kafka.Rights:
    """Read the result topics; the group prefix only names its readers (it commits no offsets)."""
    return kafka.Rights(reads=tuple(t.name for t in topics.values()), group_prefixes=(GROUP_PREFIX,))


def ensure_result_topics(bootstrap: str, topics: Mapping[str, Topic], retention_days: float) -> None:
    """Create the missing result topics and set every one's retention (as the platform administrator)."""
    retention_ms = str(int(retention_days * 24 * 3600 * 1000))
    try:
        kafka.ensure_topics(bootstrap, [kafka.TopicSpec(t.name, t.partitions, {"retention.ms": retention_ms})
                                        for t in topics.values()])
    except kafka.TopicError as err:
        raise TopicLayoutError(f"the result topics: {err}") from err
    admin = kafka.admin(bootstrap)
    resources = [ConfigResource(ResourceType.TOPIC, t.name, incremental_configs=[
        ConfigEntry("retention.ms", retention_ms, incremental_operation=AlterConfigOpType.SET)])
        for t in topics.values()]
    try:
        for future in admin.incremental_alter_configs(resources).values():
            future.result(30)
    except KafkaException as err:
        raise TopicLayoutError(f"cannot set the result topics' retention: {err}") from err


def make_hub(settings: Settings, topics: Mapping[str, Topic]) -> Hub:
    """A hub reading ``topics`` as this process's Kafka identity."""
    bootstrap = kafka_bootstrap(settings)
    registry = registry_client(registry_url(settings))
    serdes = {t.name: EventSerde(t, registry) for t in topics.values()}

    def consumer(role: str):
        return kafka.consumer(bootstrap, group_id=f"{GROUP_PREFIX}-{role}",
                              extra={"enable.partition.eof": True, "client.id": f"{GROUP_PREFIX}-{role}",
                                     "fetch.wait.max.ms": 50})
    return Hub(consumer, serdes, ObjectIndex(), ErasedPatients(settings))


def serve(settings: Settings, hub: Hub, verifier: AccessTokenVerifier, topics: Mapping[str, Topic], *,
          host: str, port: int, certificate: str, key: str) -> None:
    """Serve until SIGTERM / SIGINT (uvicorn's handlers)."""
    config = BridgeConfig(verifier, ObjectStore(settings.resolved_object_store_uri),
                          {short: t.name for short, t in topics.items()})
    server = uvicorn.Server(uvicorn.Config(build_app(hub, config), host=host, port=port, ssl_certfile=certificate,
                                           ssl_keyfile=key, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=5, lifespan="on"))
    server.run()
