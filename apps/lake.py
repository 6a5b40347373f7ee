"""``radlake lake``: run the lake's streaming jobs, list its tables, and maintain them.

``tables``, ``optimize`` and ``vacuum`` use delta-rs (``deltalake``), so they start no JVM; ``run`` starts
the Spark queries (bronze for both topics, then silver) and keeps them running.

Vacuum keeps 7 days of history by default (time travel and readers of older snapshots keep working);
a shorter retention needs ``--force``, which also tells delta-rs to skip its own retention check.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone

from lake_schemas.tables import SCHEMA_VERSION_PROPERTY

MIN_RETENTION_HOURS = 7 * 24

log = logging.getLogger("radlake.lake")


class RetentionError(ValueError):
    """A vacuum retention below the safe minimum was asked for without --force."""


def retention_hours(requested: float | None, force: bool) -> float:
    """The retention a vacuum uses: 7 days unless asked, never below that unless forced."""
    hours = MIN_RETENTION_HOURS if requested is None else requested
    if hours < 0:
        raise RetentionError(f"retention must be >= 0 hours, not {hours}")
    if hours < MIN_RETENTION_HOURS and not force:
        raise RetentionError(f"retention {hours:g} h is below the safe minimum of {MIN_RETENTION_HOURS} h "
                             "(7 days): readers of older versions and time travel would break; add --force")
    return hours


def find_tables(root: str) -> Iterator[str]:
    """Relative paths of the Delta tables under a local lake root (folders holding ``_delta_log``)."""
    for current, dirs, _files in os.walk(root):
        if "_delta_log" in dirs:
            yield os.path.relpath(current, root)
            dirs.clear()
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))


@dataclass(frozen=True)
class TableInfo:
    table: str
    version: int
    rows: int
    files: int
    size_bytes: int
    schema_version: str | None
    partitions: list[str]
    last_commit: str | None


def describe(root: str, relative: str) -> TableInfo:
    from deltalake import DeltaTable

    table = DeltaTable(os.path.join(root, relative))
    dataset = table.to_pyarrow_dataset()
    files = table.file_uris()
    history = table.history(1)
    stamp = history[0].get("timestamp") if history else None
    return TableInfo(
        table=relative, version=table.version(), rows=dataset.count_rows(), files=len(files),
        size_bytes=sum(os.path.getsize(f.removeprefix("file://")) for f in files),
        schema_version=table.metadata().configuration.get(SCHEMA_VERSION_PROPERTY),
        partitions=list(table.metadata().partition_columns),
        last_commit=datetime.fromtimestamp(stamp / 1000, timezone.utc).isoformat(timespec="seconds") if stamp else None,
    )


def _selected(root: str, names: list[str]) -> list[str]:
    found = list(find_tables(root))
    if not names:
        return found
    missing = [n for n in names if n not in found]
    if missing:
        raise SystemExit(f"radlake lake: no table {missing} under {root} (have: {', '.join(found) or 'none'})")
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
    from deltalake import DeltaTable

    for relative in _selected(root, args.table):
        metrics = DeltaTable(os.path.join(root, relative)).optimize.compact()
        print(f"{relative}: {metrics.get('numFilesRemoved', 0)} files compacted into "
              f"{metrics.get('numFilesAdded', 0)}")
    return 0


def cmd_vacuum(args, root: str) -> int:
    from deltalake import DeltaTable

    try:
        hours = retention_hours(args.retain_hours, args.force)
    except RetentionError as err:
        print(f"radlake lake vacuum: {err}", file=sys.stderr)
        return 2
    for relative in _selected(root, args.table):
        removed = DeltaTable(os.path.join(root, relative)).vacuum(
            retention_hours=int(hours), dry_run=args.dry_run, enforce_retention_duration=not args.force)
        verb = "would remove" if args.dry_run else "removed"
        print(f"{relative}: {verb} {len(removed)} files older than {hours:g} h")
    return 0


def cmd_run(args, root: str) -> int:
    from infra.components.kafka import Kafka
    from lake_schemas.topics import INSTANCE_RECEIVED, STUDY_COMPLETED
    from radlake.settings import Settings
    from spark_jobs.pipeline import start_pipeline
    from spark_jobs.session import spark_session

    settings = Settings()
    spark = spark_session(settings, "radlake-lake")
    queries = start_pipeline(
        spark, bootstrap=Kafka(settings).address, lake_uri=root,
        instances_topic=args.instances_topic or INSTANCE_RECEIVED.name,
        completed_topic=args.completed_topic or STUDY_COMPLETED.name,
        checkpoints=args.checkpoints or f"{settings.state_dir}/checkpoints",
        trigger=args.trigger, available_now=args.available_now,
    )
    if not args.available_now:
        print(f"radlake lake: {len(queries)} queries running on {root}", file=sys.stderr)
        spark.streams.awaitAnyTermination()
    for query in queries:
        if query.exception() is not None:
            print(f"radlake lake: query {query.name} failed: {query.exception()}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
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
    p = sub.add_parser("run", help="run bronze (instances, study completed) and silver streaming queries")
    p.add_argument("--instances-topic")
    p.add_argument("--completed-topic")
    p.add_argument("--checkpoints", help="default: <state dir>/checkpoints")
    p.add_argument("--trigger", default="5 seconds", help="processing-time trigger (default 5 seconds)")
    p.add_argument("--available-now", action="store_true", help="process what is there, then stop")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from radlake.settings import Settings

    root = args.lake or Settings().resolved_lake_uri
    commands = {"tables": cmd_tables, "optimize": cmd_optimize, "vacuum": cmd_vacuum, "run": cmd_run}
    return commands[args.command](args, root)


if __name__ == "__main__":
    raise SystemExit(main())
