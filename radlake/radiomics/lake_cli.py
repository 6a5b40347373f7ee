"""``radlake radiomics run`` and ``radlake radiomics follow``: the radiomics job over the lake.

    radlake radiomics run --settings FILE [--where SQL] [--masks FILE... --provider P --project P]
                          [--geometry auto|silver|bronze] [--retry-failed] [--no-events] [--topic NAME]
    radlake radiomics follow --settings FILE [--where SQL] [--on studies|segmentations] [--source-topic NAME]
                             [--topic NAME] [--group ID] [--idle-exit S] [--max-messages N]

``follow --on studies`` (the default) reacts to ``study completed`` events; ``--on segmentations`` to
``prediction created`` events that carry a DICOM SEG (one ROI per segment, named after the model).
A batch that fails transiently (object store, registry, Kafka) is retried with back-off, uncommitted; an
event that can never be processed goes to ``radlake.dead-letter.v1`` (``radlake/radiomics/follow.py``).

``--masks`` stores DICOM SEG / RTSTRUCT files in the object store and registers one ROI per segment /
structure in ``silver/rois`` before the run. Results go to stdout as one JSON line; progress to stderr.
Exit codes: 0 done, 1 invalid input (settings, masks), 2 usage.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from radlake.radiomics.errors import RadiomicsError


def add_parsers(sub) -> None:
    for name, text in (("run", "compute features for every registered ROI of the lake that lacks them (Spark)"),
                       ("follow", ("compute features when studies complete or segmentations are created "
                                   "(Kafka consumer)"))):
        p = sub.add_parser(name, help=text)
        p.add_argument("--settings", type=Path, required=True, help="radiomics settings YAML")
        p.add_argument("--where", default=None, help="SQL filter on silver/rois (e.g. \"project = 'x'\")")
        p.add_argument("--geometry", choices=["auto", "silver", "bronze"], default="auto",
                       help="where series geometry comes from (auto: silver/series when it exists)")
        p.add_argument("--retry-failed", action="store_true", help="retry ROIs that failed permanently")
        p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
        p.add_argument("--topic", default=None, help="features computed topic (default: the contract's)")
        if name == "run":
            p.add_argument("--masks", type=Path, nargs="*", default=[], help="DICOM SEG/RTSTRUCT files to register")
            p.add_argument("--provider", default=None, help="provider of --masks")
            p.add_argument("--project", default=None, help="project of --masks")
            p.add_argument("--no-events", action="store_true",
                           help="stage features computed events in the outbox but do not publish them")
        else:
            p.add_argument("--on", choices=["studies", "segmentations"], default="studies",
                           help="study completed events, or prediction created events carrying a DICOM SEG")
            p.add_argument("--source-topic", default=None,
                           help="the events' topic (default: the contract's study completed / prediction created)")
            p.add_argument("--group", default=None, help="consumer group id (default: radlake-radiomics-follow, "
                                                          "with -segmentations for --on segmentations)")
            p.add_argument("--idle-exit", type=float, default=None, help="stop after this many idle seconds")
            p.add_argument("--max-messages", type=int, default=None, help="stop after this many messages")


def _job(args, settings):
    from radlake.radiomics.settings import load_settings
    from spark_jobs.radiomics_job import RadiomicsJob

    return RadiomicsJob(settings.resolved_lake_uri, settings.resolved_object_store_uri, load_settings(args.settings),
                        where=args.where, geometry=args.geometry, retry_failed=args.retry_failed, device=args.device)


def publisher(settings, topic_name: str | None):
    """Publish ``features computed`` events; raises :class:`~radlake.radiomics.follow.PublishError` (which
    the follower retries) unless Kafka acknowledged every one."""
    # Local imports here and below: `radlake radiomics compute` loads this module to build its parser, and
    # should not pay for Kafka, Spark job and DICOM modules it does not use.
    from confluent_kafka import KafkaException, Producer

    from infra.components.kafka import Kafka
    from infra.components.registry import SchemaRegistry
    from lake_schemas.serde import EventSerde, registry_client
    from lake_schemas.topics import FEATURES_COMPUTED
    from radlake.radiomics.follow import PublishError

    topic = FEATURES_COMPUTED.with_name(topic_name) if topic_name else FEATURES_COMPUTED
    serde = EventSerde(topic, registry_client(SchemaRegistry(settings).address))
    producer = Producer({"bootstrap.servers": Kafka(settings).address, "enable.idempotence": True, "acks": "all"})

    def publish(events: list) -> None:
        try:
            for event in events:
                producer.produce(topic.name, key=event.key.encode(), value=serde.serialize(event))
            unacknowledged = producer.flush(60)
        except (BufferError, KafkaException) as err:
            raise PublishError(f"publishing on {topic.name} failed: {err}") from err
        if unacknowledged != 0:
            raise PublishError(f"Kafka did not acknowledge every event on {topic.name}")

    return publish


def register_masks(spark, settings, paths: list[Path], provider: str, project: str) -> int:
    import pydicom

    from radlake.object_store import ObjectStore
    from radlake.radiomics.lake import rois_from_dicom_mask
    from spark_jobs.radiomics_job import register_rois

    store = ObjectStore(settings.resolved_object_store_uri)
    rows = []
    for path in paths:
        data = path.read_bytes()
        stored = store.put(data, prefix="masks")
        rows += rois_from_dicom_mask(pydicom.dcmread(path, stop_before_pixels=True), mask_uri=stored.uri,
                                     mask_sha256=stored.sha256, provider=provider, project=project,
                                     source=f"import:{path.name}")
    register_rois(spark, settings.resolved_lake_uri, rows)
    return len(rows)


def _summary(result) -> dict:
    return {"run_id": result.run_id, "pending_rois": result.pending_rois, "computed_rois": result.computed_rois,
            "failed_rois": result.failed_rois, "feature_rows": result.feature_rows,
            "table_version": result.table_version, "events": len(result.events),
            "failures": [dict(zip(("series_uid", "roi", "reason", "message"), f)) for f in result.failures]}


def run(args) -> int:
    from radlake.settings import Settings
    from spark_jobs import radiomics_job
    from spark_jobs.session import spark_session

    settings = Settings()
    if args.masks and not (args.provider and args.project):
        print("radlake radiomics run: --masks needs --provider and --project", file=sys.stderr)
        return 2
    try:
        job = _job(args, settings)
        spark = spark_session(settings, "radlake-radiomics")
        if args.masks:
            count = register_masks(spark, settings, args.masks, args.provider, args.project)
            print(f"registered {count} ROIs from {len(args.masks)} mask files", file=sys.stderr)
    except RadiomicsError as err:
        print(f"radlake radiomics run: {err}", file=sys.stderr)
        return 1
    print(f"radiomics run: settings {job.settings_hash[:12]}, lake {job.lake_uri}", file=sys.stderr)
    result = radiomics_job.run(spark, job)
    published = () if args.no_events else radiomics_job.publish_outbox(spark, job, publisher(settings, args.topic))
    print(f"{result.computed_rois} ROIs computed, {result.failed_rois} failed, {result.feature_rows} feature rows, "
          f"{len(result.events)} studies staged, {len(published)} events published", file=sys.stderr)
    print(json.dumps({**_summary(result), "published": len(published)}))
    return 0


def follower(settings, job, on: str, *, group: str | None = None, source_topic: str | None = None):
    """What ``radlake radiomics follow --on ON`` consumes with: a consumer subscribed to the source topic
    (manual commits, ``read_committed``), the topic's serde, and the handler of its events. The follower
    polls while it backs off from a transient error, so the default ``max.poll.interval.ms`` only bounds
    one attempt at a batch (the Spark job of up to 50 events)."""
    from functools import partial

    from confluent_kafka import Consumer

    from infra.components.kafka import Kafka
    from infra.components.registry import SchemaRegistry
    from lake_schemas.serde import EventSerde, registry_client
    from lake_schemas.topics import PREDICTION_CREATED, STUDY_COMPLETED
    from radlake.object_store import ObjectStore
    from radlake.radiomics import follow as following

    if on == "segmentations":
        contract = PREDICTION_CREATED
        handle = partial(following.handle_segmentations, read=ObjectStore(job.object_store_uri).get)
    else:
        contract, handle = STUDY_COMPLETED, following.handle_completed
    source = contract.with_name(source_topic) if source_topic else contract
    serde = EventSerde(source, registry_client(SchemaRegistry(settings).address))
    group = group or ("radlake-radiomics-follow-segmentations" if on == "segmentations" else "radlake-radiomics-follow")
    consumer = Consumer({"bootstrap.servers": Kafka(settings).address, "group.id": group,
                         "auto.offset.reset": "earliest", "enable.auto.commit": False,
                         "isolation.level": "read_committed"})
    consumer.subscribe([source.name])
    return consumer, serde, handle


def follow(args) -> int:
    from radlake.radiomics import follow as following
    from radlake.settings import Settings
    from spark_jobs.session import spark_session

    settings = Settings()
    try:
        job = _job(args, settings)
    except RadiomicsError as err:
        print(f"radlake radiomics follow: {err}", file=sys.stderr)
        return 1
    consumer, serde, handle = follower(settings, job, args.on, group=args.group, source_topic=args.source_topic)
    spark = spark_session(settings, "radlake-radiomics-follow")
    print(f"radiomics follow: {serde.topic.name} -> features, settings {job.settings_hash[:12]}", file=sys.stderr)
    try:
        stats = following.follow(spark, job, consumer, serde, publisher(settings, args.topic), handle=handle,
                                 dead_letter=following.stack_dead_letters(settings), idle_exit_s=args.idle_exit,
                                 max_messages=args.max_messages)
    finally:
        consumer.close()
    print(json.dumps({"messages": stats.messages, "dead_lettered": stats.dead_lettered, "retried": stats.retried,
                      "retries": stats.retries, "studies": stats.studies, "events": stats.events}))
    return 0
