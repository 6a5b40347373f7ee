"""``radlake radiomics``: IBSI 1 features of one image/mask pair, or over the lake.

    radlake radiomics compute --image PATH --mask PATH [--settings FILE] [--label N]
                              [--device cpu|cuda] --out FEATURES.csv [--format csv|json]
    radlake radiomics run --settings FILE [--where SQL] [--masks FILE... --provider P --project P]
                          [--geometry auto|silver|bronze] [--retry-failed] [--no-events] [--topic NAME]
    radlake radiomics follow --settings FILE [--where SQL] [--on studies|segmentations|annotations] [--source-topic NAME]
                             [--topic NAME] [--group ID] [--idle-exit S] [--max-messages N]

``compute`` writes CSV (feature, ibsi_id, value, aggregation_id, settings_hash, code_version) or JSON (the
settings hash, code version and a list of features). ``run`` computes features for every registered ROI
of the lake that lacks them (Spark); ``--masks`` first stores DICOM SEG / RTSTRUCT files in the object
store and registers one ROI per segment / structure in ``silver/rois``. ``follow --on studies`` (the
default) reacts to ``study completed`` events; ``--on segmentations`` to ``prediction created`` events that
carry a DICOM SEG; ``--on annotations`` to ``annotation received`` events of a SEG or an RTSTRUCT (a site's
expert annotations). A batch that fails transiently (object store, registry, Kafka) is retried with
back-off, uncommitted; an event that can never be processed goes to ``radlake.dead-letter.v1``
(``spark_jobs/radiomics_follow.py``). Results go to stdout; progress to stderr.
Exit codes: 0 done, 1 invalid input (settings, masks) or a failure, 2 usage.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import sys
import threading
from pathlib import Path

from apps._common import UsageError, command
from platform_layer import kafka
from platform_layer.deny_list import ErasedPatients
from platform_layer.endpoints import kafka_bootstrap
from platform_layer.identities import use_stack_identity
from platform_layer.metrics_endpoint import metrics_certificate, serving
from platform_layer.principals import KAFKA_RADIOMICS
from platform_layer.settings import Settings
from platform_layer.spark import spark_session
from radlake.radiomics.features import CODE_VERSION, FeatureValue, compute_features
from radlake.radiomics.inputs import load_image, load_mask
from radlake.radiomics.settings import load_settings
from spark_jobs import radiomics_follow, radiomics_job
from spark_jobs.radiomics_job import RadiomicsJob
from spark_jobs.telemetry import RadiomicsMetrics


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake radiomics", description="IBSI 1 radiomic features")
    sub = parser.add_subparsers(dest="command", required=True)
    compute = sub.add_parser("compute", help="features of one image/mask pair")
    compute.add_argument("--image", required=True, type=Path, help="NIfTI file or DICOM series folder")
    compute.add_argument("--mask", required=True, type=Path, help="NIfTI label map, DICOM SEG or RTSTRUCT")
    compute.add_argument("--settings", type=Path, default=None, help="YAML settings (default: built-in)")
    compute.add_argument("--label", type=int, default=None, help="label / segment / ROI number (default: all)")
    compute.add_argument("--device", default="cpu", choices=["cpu", "cuda", "torch-cpu"])
    compute.add_argument("--out", required=True, type=Path, help="output file")
    compute.add_argument("--format", choices=["csv", "json"], default=None, help="default: from --out suffix")
    _add_lake_parsers(sub)
    return parser


def write_csv(path: Path, values: list[FeatureValue]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["feature", "ibsi_id", "value", "aggregation_id", "settings_hash", "code_version"])
        for f in values:
            writer.writerow([f.name, f.ibsi_id, repr(f.value), f.aggregation_id, f.settings_hash, f.code_version])


def write_json(path: Path, values: list[FeatureValue]) -> None:
    document = {
        "settings_hash": values[0].settings_hash if values else None,
        "code_version": CODE_VERSION,
        "features": [
            {"feature": f.name, "ibsi_id": f.ibsi_id, "family": f.family, "aggregation": f.aggregation,
             "aggregation_id": f.aggregation_id, "value": f.value}
            for f in values
        ],
    }
    path.write_text(json.dumps(document, indent=1, allow_nan=True), encoding="utf-8")


def _compute(args: argparse.Namespace, _settings: Settings) -> int:
    fmt = args.format or ("json" if args.out.suffix.lower() == ".json" else "csv")
    settings = load_settings(args.settings)
    print(f"reading image {args.image}", file=sys.stderr)
    image = load_image(args.image)
    print(f"reading mask {args.mask}", file=sys.stderr)
    roi = load_mask(args.mask, image, args.label)
    dz, dy, dx = image.geometry.spacing
    print(f"computing features: {int(roi.sum())} voxels, spacing {dz:g}x{dy:g}x{dx:g} mm, "
          f"device {args.device}", file=sys.stderr)
    values = compute_features(image.array, roi, image.geometry.spacing, settings, device=args.device)
    (write_json if fmt == "json" else write_csv)(args.out, values)
    print(f"wrote {len(values)} features to {args.out}", file=sys.stderr)
    print(str(args.out))
    return 0


def _add_lake_parsers(sub) -> None:
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
            p.add_argument("--on", choices=["studies", "segmentations", "annotations"], default="studies",
                           help="study completed events, prediction created events carrying a DICOM SEG, or "
                                "annotation received events of a SEG or an RTSTRUCT")
            p.add_argument("--source-topic", default=None,
                           help="the events' topic (default: the contract's study completed / prediction created / "
                                "annotation received)")
            p.add_argument("--group", default=None, help="consumer group id (default: radlake-radiomics-follow, "
                                                          "with -segmentations / -annotations for the other modes)")
            p.add_argument("--idle-exit", type=float, default=None, help="stop after this many idle seconds")
            p.add_argument("--max-messages", type=int, default=None, help="stop after this many messages")
            p.add_argument("--metrics-port", type=int, default=0,
                           help="port of /metrics (default: any free one, announced to Prometheus)")


def _job(args: argparse.Namespace, settings: Settings) -> RadiomicsJob:
    return RadiomicsJob(settings.resolved_lake_uri, settings.resolved_object_store_uri, load_settings(args.settings),
                        where=args.where, geometry=args.geometry, retry_failed=args.retry_failed, device=args.device)


def _summary(result) -> dict:
    return {"run_id": result.run_id, "pending_rois": result.pending_rois, "computed_rois": result.computed_rois,
            "failed_rois": result.failed_rois, "feature_rows": result.feature_rows,
            "table_version": result.table_version, "events": len(result.events),
            "failures": [dict(zip(("series_uid", "roi", "reason", "message"), f)) for f in result.failures]}


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.masks and not (args.provider and args.project):
        raise UsageError("--masks needs --provider and --project")
    job = _job(args, settings)
    spark = spark_session(settings, "radlake-radiomics")
    if args.masks:
        count = radiomics_job.register_mask_files(spark, settings, args.masks, args.provider, args.project)
        print(f"registered {count} ROIs from {len(args.masks)} mask files", file=sys.stderr)
    print(f"radiomics run: settings {job.settings_hash[:12]}, lake {job.lake_uri}", file=sys.stderr)
    result = radiomics_job.run(spark, job)
    if not args.no_events:
        radiomics_follow.ensure_topics(settings, args.topic)
    published = () if args.no_events else radiomics_job.publish_outbox(
        spark, job, radiomics_follow.features_publisher(settings, args.topic))
    print(f"{result.computed_rois} ROIs computed, {result.failed_rois} failed, {result.feature_rows} feature rows, "
          f"{len(result.events)} studies staged, {len(published)} events published", file=sys.stderr)
    print(json.dumps({**_summary(result), "published": len(published)}))
    return 0


def _follow(args: argparse.Namespace, settings: Settings) -> int:
    job = _job(args, settings)
    # as the platform administrator, who then gives the follower its own principal
    radiomics_follow.ensure_topics(settings, args.topic)
    kafka.grant(kafka_bootstrap(settings), KAFKA_RADIOMICS, radiomics_follow.rights(
        args.on, group=args.group, source_topic=args.source_topic, features_topic=args.topic))
    tls = metrics_certificate(settings, "radiomics")  # as the administrator, before taking the follower's identity
    use_stack_identity(settings, KAFKA_RADIOMICS)
    consumer, serde, handle = radiomics_follow.follower(settings, job, args.on, group=args.group,
                                                        source_topic=args.source_topic)
    spark = spark_session(settings, "radlake-radiomics-follow")
    print(f"radiomics follow: {serde.topic.name} -> features, settings {job.settings_hash[:12]}", file=sys.stderr)
    metrics = RadiomicsMetrics(args.on)
    stop = threading.Event()  # SIGTERM / SIGINT: the batch in hand is finished and committed, then it stops
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    group = radiomics_follow.consumer_group(args.on, args.group)
    try:
        with serving(settings, metrics.registry, tls, "radiomics", f"{group}-{os.getpid()}",
                     {"on": args.on, "group": group}, port=args.metrics_port) as url:
            print(f"radiomics follow: metrics on {url} (client certificate required)", file=sys.stderr)
            stats = radiomics_follow.follow(
                spark, job, consumer, serde, radiomics_follow.features_publisher(settings, args.topic), handle=handle,
                dead_letter=radiomics_follow.stack_dead_letters(settings), idle_exit_s=args.idle_exit,
                max_messages=args.max_messages, metrics=metrics, stop=stop, erased=ErasedPatients(settings))
    finally:
        consumer.close()
    print(json.dumps({"messages": stats.messages, "dead_lettered": stats.dead_lettered, "retried": stats.retried,
                      "retries": stats.retries, "studies": stats.studies, "events": stats.events}))
    return 0


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    return {"compute": _compute, "run": _run, "follow": _follow}[args.command](args, settings)


main = command("radlake radiomics", _parser, _dispatch)
