"""``radlake infer`` — run inference workers, land predictions, feed generated studies.

    radlake infer run [--worker-id W] [--model nodule-cnn] [--stage Production | --version V] [--max-batch 4]
    radlake infer land                      # committed predictions -> gold Delta table ``predictions``
    radlake infer publish-synthetic --studies N [--seed S]   # generated studies -> study completed events
    radlake infer show [--limit 20]         # the predictions table

Start several ``run`` processes with different ``--worker-id`` and the same ``--group`` to share the
partitions. Topics default to the contracts' names; tests pass unique ones.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import socket
import threading

import torch
from deltalake import DeltaTable

from apps._common import command
from inference_workers import predictions_table
from inference_workers.errors import InferenceError
from inference_workers.service import ServeOptions, ensure_topics, rights, serdes, serve
from inference_workers.synthetic_study import publishable_study
from lake_schemas.topics import (
    PREDICTION_CREATED,
    PREDICTION_DEAD_LETTER,
    STUDY_COMPLETED,
)
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap
from platform_layer.errors import DeliveryError
from platform_layer.identities import use_stack_identity
from platform_layer.metrics_endpoint import metrics_certificate
from platform_layer.object_store import ObjectStore
from platform_layer.principals import KAFKA_INFERENCE
from platform_layer.settings import Settings
from radlake.synthetic.chest_ct import chest_ct


def _topic_serdes(args, settings: Settings):
    """Serdes of the input, output and dead-letter topics named by the arguments."""
    return serdes(settings, ServeOptions(worker_id="", input_topic=args.input_topic, output_topic=args.output_topic,
                                         dead_letter_topic=args.dead_letter_topic))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake infer", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)

    def topics(p):
        p.add_argument("--input-topic", default=STUDY_COMPLETED.name)
        p.add_argument("--output-topic", default=PREDICTION_CREATED.name)
        p.add_argument("--dead-letter-topic", default=PREDICTION_DEAD_LETTER.name)
        p.add_argument("--table", help="predictions Delta table (default: <lake>/gold/predictions)")

    run = sub.add_parser("run", help="consume study completed events, publish predictions")
    topics(run)
    run.add_argument("--worker-id", default=f"{socket.gethostname()}-{os.getpid()}",
                     help="stable per worker: a restarted worker with the same id fences its predecessor")
    run.add_argument("--group", default="radlake-inference")
    run.add_argument("--model", default="nodule-cnn")
    run.add_argument("--stage", default="Production")
    run.add_argument("--version", type=int)
    run.add_argument("--max-batch", type=int, default=4, help="studies per model batch")
    run.add_argument("--batch-wait-s", type=float, default=0.5)
    run.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda:N")
    run.add_argument("--bf16", action="store_true", help="bfloat16 autocast for the model")
    run.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    run.add_argument("--max-idle-s", type=float, help="exit after this long without input")
    run.add_argument("--max-predictions", type=int, help="exit after this many predictions")
    run.add_argument("--metrics-port", type=int, default=0, help="port of /metrics (default: any free one, "
                     "announced to Prometheus)")
    run.add_argument("--no-metrics", action="store_true", help="serve no /metrics")
    run.add_argument("--no-land", action="store_true", help="do not land predictions into Delta after each commit")
    run.add_argument("--crash-at", choices=("after_predict", "before_commit"), help=argparse.SUPPRESS)

    land = sub.add_parser("land", help="land committed predictions into the Delta table")
    topics(land)
    land.add_argument("--group", default="radlake-predictions-lander")

    pub = sub.add_parser("publish-synthetic", help="store generated studies and publish their study completed events")
    topics(pub)
    pub.add_argument("--studies", type=int, default=4)
    pub.add_argument("--seed", type=int, default=5_000_000)
    pub.add_argument("--project", default="nodule-demo")

    show = sub.add_parser("show", help="print the predictions table")
    show.add_argument("--table")
    show.add_argument("--limit", type=int, default=20)
    return parser


def run(args, settings: Settings) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    options = ServeOptions(
        worker_id=args.worker_id, group=args.group, model=args.model, stage=args.stage, version=args.version,
        input_topic=args.input_topic, output_topic=args.output_topic, dead_letter_topic=args.dead_letter_topic,
        table=args.table, max_batch=args.max_batch, batch_wait_s=args.batch_wait_s, device=args.device,
        bf16=args.bf16, land=not args.no_land, max_idle_s=args.max_idle_s, max_predictions=args.max_predictions,
        crash_at=args.crash_at, metrics_port=args.metrics_port,
        metrics_tls=None if args.no_metrics else metrics_certificate(settings, "inference"))
    ensure_topics(settings, options)  # as the platform administrator, who then gives the worker its own principal
    kafka.grant(kafka_bootstrap(settings), KAFKA_INFERENCE, rights(options))
    use_stack_identity(settings, KAFKA_INFERENCE)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):  # the batch in hand is committed, then the worker stops
        signal.signal(signum, lambda *_: stop.set())
    stats = serve(settings, options, stop)
    print(json.dumps({"worker_id": args.worker_id, "batches": stats.batches, "predictions": stats.predictions,
                      "dead_letters": stats.dead_letters, "duplicates_dropped": stats.duplicates_dropped,
                      "aborted": stats.aborted, "studies_per_batch": stats.studies_per_batch}))
    return 0


def publish_synthetic(args, settings: Settings) -> int:
    bootstrap = kafka_bootstrap(settings)
    in_serde = _topic_serdes(args, settings)[0]
    store = ObjectStore(settings.resolved_object_store_uri)
    producer = kafka.producer(bootstrap, client_id="radlake-infer-publish-synthetic")
    messages = []
    for k in range(args.studies):
        ct = chest_ct(args.seed + k)
        event = publishable_study(store, ct, name=f"synthetic-{args.seed + k}", project=args.project)
        messages.append(kafka.Outgoing(args.input_topic, in_serde.serialize(event), event.key.encode()))
        print(json.dumps({"study_uid": event.data.study_uid, "nodules": len(ct.nodules), "malignant": ct.malignant}))
    try:
        kafka.produce_all(producer, messages, timeout_s=30)
    except DeliveryError as err:
        raise InferenceError(f"publishing the study events failed: {err}") from err
    return 0


def _land(args, settings: Settings) -> int:
    bootstrap = kafka_bootstrap(settings)
    lander = predictions_table.PredictionLander(bootstrap, args.output_topic, _topic_serdes(args, settings)[1],
                                                args.table or predictions_table.stack_table_uri(settings),
                                                group_id=args.group)
    try:
        print(json.dumps({"landed": lander.drain(quiet_s=2.0, max_s=120.0)}))
    finally:
        lander.close()
    return 0


def _show(args, settings: Settings) -> int:
    table = DeltaTable(args.table or predictions_table.stack_table_uri(settings)).to_pyarrow_table(
        columns=["study_uid", "model_name", "model_version", "malignancy_score", "positive",
                 "candidate_count", "latency_ms", "worker_id"])
    for r in table.to_pylist()[: args.limit]:
        print(json.dumps(r))
    return 0


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    # highdicom logs one INFO line per DICOM module it copies into a SEG or SR
    logging.getLogger("highdicom").setLevel(logging.WARNING)
    actions = {"run": run, "publish-synthetic": publish_synthetic, "land": _land, "show": _show}
    return actions[args.action](args, settings)


# a worker's progress (batches, commits) is what ``run`` shows; the other actions print results only
main = command("radlake infer", _parser, _dispatch,
               console_level=lambda args: logging.INFO if args.action == "run" else logging.WARNING)
