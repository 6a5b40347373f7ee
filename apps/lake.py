"""``radlake lake``: run the lake's streaming jobs, list its tables, and maintain them.

``tables``, ``optimize`` and ``vacuum`` use delta-rs (``deltalake``), so they start no JVM; ``run`` starts
the Spark queries (bronze for both topics, then silver) and keeps them running. Vacuum keeps 7 days
unless ``--retain-hours`` with ``--force`` asks for less (``spark_jobs/maintenance.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from contextlib import ExitStack
from dataclasses import asdict

from deltalake import DeltaTable

from apps._common import UsageError, command
from lake_schemas.topics import ANNOTATION_RECEIVED, INSTANCE_RECEIVED, STUDY_COMPLETED
from platform_layer import kafka
from platform_layer.endpoints import kafka_bootstrap
from platform_layer.identities import use_stack_identity
from platform_layer.metrics_endpoint import metrics_certificate, serving
from platform_layer.principals import KAFKA_LAKE
from platform_layer.settings import Settings
from platform_layer.spark import spark_session
from spark_jobs.maintenance import (
    MIN_RETENTION_HOURS,
    RetentionError,
    describe,
    find_tables,
    retention_hours,
)
from spark_jobs.pipeline import rights as pipeline_rights
from spark_jobs.pipeline import start_pipeline, watch


def _selected(root: str, names: list[str]) -> list[str]:
    found = list(find_tables(root))
    if not names:
        return found
    missing = [n for n in names if n not in found]
    if missing:
        raise UsageError(f"no table {missing} under {root} (have: {', '.join(found) or 'none'})")
    return names


def cmd_tables(args, root: str) -> int:
    infos = [describe(root, t) for t in _selected(root, args.table)]
    if args.json:
        print(json.dumps([asdict(i) for i in infos], indent=2))
        return 0
    print(f"{'table':<28} {'version':>7} {'rows':>9} {'files':>5} {'size':>10} {'schema':>6}  last commit")
    for i in infos:
        print(f"{i.table:<28} {i.version:>7} {i.rows:>9} {i.files:>5} {i.size_bytes:>10} "
              f"{i.schema_version or '-':>6}  {i.last_commit or '-'}")
    print(f"{len(infos)} tables under {root}", file=sys.stderr)
    return 0


def cmd_optimize(args, root: str) -> int:
    for relative in _selected(root, args.table):
        metrics = DeltaTable(os.path.join(root, relative)).optimize.compact()
        print(f"{relative}: {metrics.get('numFilesRemoved', 0)} files compacted into "
              f"{metrics.get('numFilesAdded', 0)}")
    return 0


def cmd_vacuum(args, root: str) -> int:
    try:
        hours = retention_hours(args.retain_hours, args.force)
    except RetentionError as err:
        raise UsageError(str(err)) from err
    for relative in _selected(root, args.table):
        removed = DeltaTable(os.path.join(root, relative)).vacuum(
            retention_hours=int(hours), dry_run=args.dry_run, enforce_retention_duration=not args.force)
        verb = "would remove" if args.dry_run else "removed"
        print(f"{relative}: {verb} {len(removed)} files older than {hours:g} h")
    return 0


def cmd_run(args, root: str) -> int:
    settings = Settings()
    instances_topic = args.instances_topic or INSTANCE_RECEIVED.name
    completed_topic = args.completed_topic or STUDY_COMPLETED.name
    annotations_topic = args.annotations_topic or ANNOTATION_RECEIVED.name
    # as the platform administrator, who then gives the lake's queries their own principal; the annotation
    # topic may have no edge yet (edges create it): bronze must find it to subscribe
    kafka.ensure_topics(kafka_bootstrap(settings), [kafka.TopicSpec(annotations_topic, ANNOTATION_RECEIVED.partitions)])
    kafka.grant(kafka_bootstrap(settings), KAFKA_LAKE,
                pipeline_rights(instances_topic, completed_topic, annotations_topic))
    tls = None if args.available_now else metrics_certificate(settings, "lake")  # as the administrator
    use_stack_identity(settings, KAFKA_LAKE)
    spark = spark_session(settings, "radlake-lake")
    metrics = watch(spark, root)
    with ExitStack() as scope:
        if tls is not None:  # a run that stops by itself is no target to scrape
            url = scope.enter_context(serving(settings, metrics.registry, tls, "lake", f"lake-{os.getpid()}",
                                              {"lake": root}, port=args.metrics_port))
            print(f"radlake lake: metrics on {url} (client certificate required)", file=sys.stderr)
        queries = start_pipeline(
            spark, bootstrap=kafka_bootstrap(settings), lake_uri=root,
            instances_topic=instances_topic, completed_topic=completed_topic, annotations_topic=annotations_topic,
            checkpoints=args.checkpoints or f"{settings.state_dir}/checkpoints",
            trigger=args.trigger, available_now=args.available_now,
        )
        if not args.available_now:
            print(f"radlake lake: {len(queries)} queries running on {root}", file=sys.stderr)
            stopping = threading.Event()  # SIGTERM / SIGINT: the queries stop, /metrics and its announcement go
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: stopping.set())
            while not stopping.is_set() and not spark.streams.awaitAnyTermination(1):
                pass
            if stopping.is_set():
                for query in queries:
                    query.stop()
    for query in queries:
        if query.exception() is not None:
            print(f"radlake lake: query {query.name} failed: {query.exception()}", file=sys.stderr)
            return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake lake", description=__doc__.splitlines()[0])
    parser.add_argument("--lake", help="lake root (default: RADLAKE_LAKE_URI or <state dir>/lake)")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("tables", help="list tables with version, rows, files, size and schema version")
    p.add_argument("table", nargs="*", help="tables relative to the lake root (default: all)")
    p.add_argument("--json", action="store_true")
    p = sub.add_parser("optimize", help="compact small files (bin-packing)")
    p.add_argument("table", nargs="*")
    p = sub.add_parser("vacuum", help="delete files no version within the retention needs")
    p.add_argument("table", nargs="*")
    p.add_argument("--retain-hours", type=float, help=f"default {MIN_RETENTION_HOURS} (7 days)")
    p.add_argument("--force", action="store_true", help="allow a retention below 7 days")
    p.add_argument("--dry-run", action="store_true")
    p = sub.add_parser("run", help="run bronze (instances, study completed, annotations) and silver streaming queries")
    p.add_argument("--instances-topic")
    p.add_argument("--completed-topic")
    p.add_argument("--annotations-topic", help="default: radlake.annotation.received.v1")
    p.add_argument("--checkpoints", help="default: <state dir>/checkpoints")
    p.add_argument("--trigger", default="5 seconds", help="processing-time trigger (default 5 seconds)")
    p.add_argument("--available-now", action="store_true", help="process what is there, then stop")
    p.add_argument("--metrics-port", type=int, default=0,
                   help="port of /metrics (default: any free one, announced to Prometheus; none with --available-now)")
    return parser


def _dispatch(args: argparse.Namespace, settings: Settings) -> int:
    root = args.lake or settings.resolved_lake_uri
    commands = {"tables": cmd_tables, "optimize": cmd_optimize, "vacuum": cmd_vacuum, "run": cmd_run}
    return commands[args.command](args, root)


main = command("radlake lake", _parser, _dispatch)
