"""An inference worker on the stack, assembled from :class:`Settings`: the model from the registry, the
serdes from the schema registry, the predictions landed into Delta after each commit.

``radlake infer run`` and the main job both run workers through :func:`serve`.
"""

from __future__ import annotations

import logging
import threading
from contextlib import ExitStack
from dataclasses import dataclass

import torch

from inference_workers import predictions_table
from inference_workers.model_registry import stack_registry
from inference_workers.prediction import Predictor, select_device
from inference_workers.telemetry import InferenceMetrics
from inference_workers.worker import Worker, WorkerConfig, WorkerStats
from lake_schemas.topics import (
    PREDICTION_CREATED,
    PREDICTION_DEAD_LETTER,
    STUDY_COMPLETED,
)
from platform_layer import kafka
from platform_layer.deny_list import ErasedPatients
from platform_layer.endpoints import kafka_bootstrap, registry_url
from platform_layer.kafka import TopicSpec
from platform_layer.metrics_endpoint import MetricsTLS, serving
from platform_layer.object_store import ObjectStore
from platform_layer.serde import EventSerde, registry_client
from platform_layer.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServeOptions:
    worker_id: str
    group: str = "radlake-inference"
    model: str = "nodule-cnn"
    stage: str = "Production"
    version: int | None = None
    input_topic: str = STUDY_COMPLETED.name
    output_topic: str = PREDICTION_CREATED.name
    dead_letter_topic: str = PREDICTION_DEAD_LETTER.name
    table: str | None = None  # default: the stack's predictions table
    max_batch: int = 4
    batch_wait_s: float = 0.5
    device: str = "auto"
    bf16: bool = False
    land: bool = True
    max_idle_s: float | None = None
    max_predictions: int | None = None
    crash_at: str | None = None  # fault injection for the exactly-once tests
    # /metrics (mutual TLS) while the worker runs; None: no endpoint (e.g. a worker inside a test or benchmark)
    metrics_tls: MetricsTLS | None = None
    metrics_port: int = 0  # 0: any free port (the announcement tells Prometheus which)


def serdes(settings: Settings, options: ServeOptions) -> tuple[EventSerde, EventSerde, EventSerde]:
    """Serdes of the input, output and dead-letter topics."""
    registry = registry_client(registry_url(settings))
    return (EventSerde(STUDY_COMPLETED.with_name(options.input_topic), registry),
            EventSerde(PREDICTION_CREATED.with_name(options.output_topic), registry),
            EventSerde(PREDICTION_DEAD_LETTER.with_name(options.dead_letter_topic), registry))


def rights(options: ServeOptions) -> kafka.Rights:
    """What the inference principal may do on Kafka: read studies (and the predictions its lander lands), write
    predictions and dead letters, use its group (and ``<group>-lander``) and its transactional ids."""
    return kafka.Rights(reads=(options.input_topic, options.output_topic),
                        writes=(options.output_topic, options.dead_letter_topic),
                        group_prefixes=(options.group,), transactional_prefixes=(options.group,))


def ensure_topics(settings: Settings, options: ServeOptions) -> None:
    """Create the worker's topics that are missing (with the contracts' partition counts)."""
    kafka.ensure_topics(kafka_bootstrap(settings), [
        TopicSpec(options.input_topic, STUDY_COMPLETED.partitions),
        TopicSpec(options.output_topic, PREDICTION_CREATED.partitions),
        TopicSpec(options.dead_letter_topic, PREDICTION_DEAD_LETTER.partitions)])


def serve(settings: Settings, options: ServeOptions, stop: threading.Event | None = None) -> WorkerStats:
    """Run one worker until it idles out (``max_idle_s``), has made ``max_predictions``, or ``stop`` is set; as
    this process's Kafka identity (``radlake infer run``: the inference principal), on topics that exist."""
    bootstrap = kafka_bootstrap(settings)
    in_serde, out_serde, dlq_serde = serdes(settings, options)
    registry = stack_registry(settings)
    model = registry.get(options.model, version=options.version, stage=None if options.version else options.stage)
    device = select_device(options.device)
    net = registry.load(model, device)
    predictor = Predictor(model, net, ObjectStore(settings.resolved_object_store_uri), device, options.worker_id,
                          dtype=torch.bfloat16 if options.bf16 else torch.float32)
    table = options.table or predictions_table.stack_table_uri(settings)
    lander = None
    if options.land:
        lander = predictions_table.PredictionLander(bootstrap, options.output_topic, out_serde, table,
                                                    group_id=f"{options.group}-lander")
    config = WorkerConfig(bootstrap=bootstrap, worker_id=options.worker_id, group_id=options.group,
                          input_topic=options.input_topic, output_topic=options.output_topic,
                          dead_letter_topic=options.dead_letter_topic, max_batch=options.max_batch,
                          batch_wait_s=options.batch_wait_s, crash_at=options.crash_at)
    log.info("worker %s (%s, %s) on %s", options.worker_id, model.label, device, options.input_topic)
    metrics = InferenceMetrics(model.label)
    metrics.watch_device(str(device))
    worker = Worker(config, predictor, in_serde, out_serde, dlq_serde,
                    known=lambda ids: predictions_table.known(table, ids),
                    after_commit=(lambda: lander.drain(quiet_s=0.2)) if lander else None, metrics=metrics,
                    erased=ErasedPatients(settings))
    try:
        with ExitStack() as scope:
            if options.metrics_tls is not None:
                url = scope.enter_context(serving(
                    settings, metrics.registry, options.metrics_tls, "inference", f"{options.group}-{options.worker_id}",
                    {"group": options.group, "worker_id": options.worker_id}, port=options.metrics_port))
                log.info("metrics on %s (client certificate required)", url)
            return worker.run(stop, max_idle_s=options.max_idle_s, max_predictions=options.max_predictions)
    finally:
        if lander is not None:
            lander.drain(quiet_s=0.5)
            lander.close()
