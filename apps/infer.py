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
import socket
import sys

from inference_workers.errors import InferenceError
from lake_schemas.topics import PREDICTION_CREATED, PREDICTION_DEAD_LETTER, STUDY_COMPLETED
from radlake.settings import Settings


def predictions_table_uri(settings: Settings) -> str:
    return f"{settings.resolved_lake_uri}/gold/predictions"


def _topics(args):
    return (STUDY_COMPLETED.with_name(args.input_topic), PREDICTION_CREATED.with_name(args.output_topic),
            PREDICTION_DEAD_LETTER.with_name(args.dead_letter_topic))


def _addresses(settings: Settings) -> tuple[str, str]:
    from infra.components.kafka import Kafka
    from infra.components.registry import SchemaRegistry

    return Kafka(settings).address, SchemaRegistry(settings).address


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


def _serdes(registry_url: str, args):
    from lake_schemas.serde import EventSerde, registry_client

    registry = registry_client(registry_url)
    return tuple(EventSerde(topic, registry) for topic in _topics(args))


def run(args, settings: Settings) -> int:
    import torch

    from inference_workers import predictions_table
    from inference_workers.model_cli import registry_for
    from inference_workers.prediction import Predictor, select_device
    from inference_workers.worker import Worker, WorkerConfig
    from radlake.object_store import ObjectStore

    if args.threads:
        torch.set_num_threads(args.threads)
    bootstrap, registry_url = _addresses(settings)
    in_serde, out_serde, dlq_serde = _serdes(registry_url, args)
    registry = registry_for(settings)
    model = registry.get(args.model, version=args.version, stage=None if args.version else args.stage)
    device = select_device(args.device)
    net = registry.load(model, device)
    predictor = Predictor(model, net, ObjectStore(settings.resolved_object_store_uri), device, args.worker_id,
                          dtype=torch.bfloat16 if args.bf16 else torch.float32)
    table = args.table or predictions_table_uri(settings)
    lander = None
    if not args.no_land:
        lander = predictions_table.PredictionLander(bootstrap, args.output_topic, out_serde, table,
                                                    group_id=f"{args.group}-lander")
    cfg = WorkerConfig(bootstrap=bootstrap, worker_id=args.worker_id, group_id=args.group,
                       input_topic=args.input_topic, output_topic=args.output_topic,
                       dead_letter_topic=args.dead_letter_topic, max_batch=args.max_batch,
                       batch_wait_s=args.batch_wait_s, crash_at=args.crash_at)
    print(f"radlake infer: worker {args.worker_id} ({model.label}, {device}) on {args.input_topic}", file=sys.stderr)
    worker = Worker(cfg, predictor, in_serde, out_serde, dlq_serde,
                    known=lambda ids: predictions_table.known(table, ids),
                    after_commit=(lambda: lander.drain(quiet_s=0.2)) if lander else None)
    try:
        stats = worker.run(max_idle_s=args.max_idle_s, max_predictions=args.max_predictions)
    finally:
        if lander is not None:
            lander.drain(quiet_s=0.5)
            lander.close()
    print(json.dumps({"worker_id": args.worker_id, "batches": stats.batches, "predictions": stats.predictions,
                      "dead_letters": stats.dead_letters, "duplicates_dropped": stats.duplicates_dropped,
                      "aborted": stats.aborted, "studies_per_batch": stats.studies_per_batch}))
    return 0


def publish_synthetic(args, settings: Settings) -> int:
    from confluent_kafka import Producer

    from radlake.synthetic.chest_ct import chest_ct
    from inference_workers.synthetic_study import publishable_study
    from radlake.object_store import ObjectStore

    bootstrap, registry_url = _addresses(settings)
    in_serde = _serdes(registry_url, args)[0]
    store = ObjectStore(settings.resolved_object_store_uri)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for k in range(args.studies):
        ct = chest_ct(args.seed + k)
        event = publishable_study(store, ct, name=f"synthetic-{args.seed + k}", project=args.project)
        producer.produce(args.input_topic, key=event.key.encode(), value=in_serde.serialize(event))
        print(json.dumps({"study_uid": event.data.study_uid, "nodules": len(ct.nodules), "malignant": ct.malignant}))
    if producer.flush(30) != 0:
        raise InferenceError("Kafka did not acknowledge every study event")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.action == "run" else logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("highdicom").setLevel(logging.WARNING)  # one INFO line per copied DICOM module
    settings = Settings()
    try:
        if args.action == "run":
            return run(args, settings)
        if args.action == "publish-synthetic":
            return publish_synthetic(args, settings)
        if args.action == "land":
            from inference_workers.predictions_table import PredictionLander

            bootstrap, registry_url = _addresses(settings)
            lander = PredictionLander(bootstrap, args.output_topic, _serdes(registry_url, args)[1],
                                      args.table or predictions_table_uri(settings), group_id=args.group)
            try:
                print(json.dumps({"landed": lander.drain(quiet_s=2.0, max_s=120.0)}))
            finally:
                lander.close()
            return 0
        if args.action == "show":
            from deltalake import DeltaTable

            table = DeltaTable(args.table or predictions_table_uri(settings)).to_pyarrow_table(
                columns=["study_uid", "model_name", "model_version", "malignancy_score", "positive",
                         "candidate_count", "latency_ms", "worker_id"])
            for r in table.to_pylist()[: args.limit]:
                print(json.dumps(r))
            return 0
    except InferenceError as err:
        print(f"radlake infer: {err}", file=sys.stderr)
        return 1
    return 2


if __name__ == "__main__":
    raise SystemExit(main())
