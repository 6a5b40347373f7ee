"""``radlake dataset create NAME --project P --table T --where SQL [--columns C,...] | list | show NAME | read NAME |
publish NAME [--creator C]... | resolve PID | materialise PID --out DIR``.

A dataset is a named cohort of one project: a boolean SQL filter over one lake table (``silver/studies`` or
``silver/series``), pinned to that table's current Delta version (``platform_layer/governance.py``). ``create``,
``list`` and ``show`` are the platform's (they act on the governance tables; ``create`` is audited).
``read`` is a data scientist's: the rows of a dataset they hold a grant for (``radlake grant``), through the
lake gateway as the user of ``radlake login``, written as Parquet to ``--out`` or shown as a table.
``publish`` freezes a dataset under a persistent identifier (``radlake:NAME/N``) with its content hash and
DataCite-shaped metadata; ``resolve`` prints that metadata; ``materialise`` writes the same rows again, byte for
byte, or says why they cannot be reproduced (both audited).
Exit status: 0 ok, 1 failure (refused, unknown, unreadable), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pyarrow.parquet as pq

from apps._common import command
from platform_layer import audit, governance
from platform_layer.lake_access import LakeGatewayClient
from platform_layer.realm import REALM, realm_admin
from platform_layer.realm_roles import ProjectAccess, check_project_name, project_role
from platform_layer.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake dataset", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    p_create = sub.add_parser("create", help="define a cohort of a project, pinned to the table's current version")
    p_create.add_argument("name")
    p_create.add_argument("--project", required=True)
    p_create.add_argument("--table", required=True, choices=governance.SOURCE_TABLES)
    p_create.add_argument("--where", default="true", help="a boolean SQL expression over the table's columns")
    p_create.add_argument("--columns", default="", help="comma-separated columns (default: all)")
    p_create.add_argument("--description", default="")
    sub.add_parser("list", help="every dataset, with its project, table and version")
    p_show = sub.add_parser("show", help="one dataset's definition and its grants")
    p_show.add_argument("name")
    p_read = sub.add_parser("read", help="read a granted dataset through the lake gateway (as your login)")
    p_read.add_argument("name")
    p_read.add_argument("--columns", default="")
    p_read.add_argument("--out", help="write Parquet here instead of printing")
    p_publish = sub.add_parser("publish", help="freeze a dataset under a persistent identifier")
    p_publish.add_argument("name")
    p_publish.add_argument("--creator", action="append", default=[], help="a creator's name (repeatable)")
    p_publish.add_argument("--title", default="")
    p_resolve = sub.add_parser("resolve", help="a persistent identifier's metadata (DataCite-shaped JSON)")
    p_resolve.add_argument("pid")
    p_mat = sub.add_parser("materialise", help="write a snapshot's rows again, byte for byte")
    p_mat.add_argument("pid")
    p_mat.add_argument("--out", required=True, type=Path, help="folder for <dataset>.parquet and metadata.json")
    return parser


def _publish(args: argparse.Namespace, settings: Settings) -> None:
    with audit.recorded(settings, "dataset.publish", f"dataset {args.name}") as entry:
        snapshot = governance.publish(settings, args.name, published_by=entry.actor, creators=args.creator,
                                      title=args.title)
    print(f"{snapshot.pid}: {snapshot.rows} rows of {snapshot.source_table} version {snapshot.source_version}, "
          f"sha256 {snapshot.content_sha256}", file=sys.stderr)
    print(snapshot.pid)


def _materialise(args: argparse.Namespace, settings: Settings) -> None:
    with audit.recorded(settings, "dataset.materialise", f"snapshot {args.pid}"):
        snapshot, data = governance.materialise(settings, args.pid)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{snapshot.dataset}.parquet").write_bytes(data)
    (args.out / "metadata.json").write_text(json.dumps(json.loads(snapshot.metadata), indent=2) + "\n")
    print(f"{snapshot.pid}: {snapshot.rows} rows, sha256 {snapshot.content_sha256} (as published) -> {args.out}",
          file=sys.stderr)


def _create(args: argparse.Namespace, settings: Settings) -> None:
    project = check_project_name(args.project)
    with realm_admin(settings) as admin:
        if admin.realm_role(REALM, project_role(project, ProjectAccess.READER)) is None:
            raise governance.GovernanceError(f"no project {project!r} (`radlake project create {project}`)")
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    with audit.recorded(settings, "dataset.create", f"dataset {args.name}",
                        details={"project": project, "table": args.table, "columns": columns, "filter": args.where}):
        item = governance.create(settings, args.name, project, args.table, args.where, columns=columns,
                                 description=args.description, created_by=audit.current_actor(settings))
    print(f"dataset {item.dataset}: {item.source_table} version {item.source_version} of project {item.project}",
          file=sys.stderr)


def _show(name: str, settings: Settings) -> None:
    item = governance.dataset(settings, name)
    record = {**item.__dict__, "created_at": item.created_at.isoformat(), "sql": item.sql,
              "grants": [{"user": g.user, "until": g.until.isoformat(), "granted_by": g.granted_by,
                          "revoked_at": g.revoked_at.isoformat() if g.revoked_at else None}
                         for g in governance.grants(settings, dataset_name=name)],
              "snapshots": [{"pid": x.pid, "rows": x.rows, "content_sha256": x.content_sha256,
                             "published_at": x.published_at.isoformat()}
                            for x in governance.snapshots(settings, name)]}
    print(json.dumps(record, indent=2))


def _read(args: argparse.Namespace, settings: Settings) -> None:
    columns = [c.strip() for c in args.columns.split(",") if c.strip()]
    with LakeGatewayClient(settings) as lake:
        table = lake.read(args.name, columns)
    if args.out:
        pq.write_table(table, args.out)
        print(f"{table.num_rows} rows to {args.out}", file=sys.stderr)
    else:
        print(table.to_pandas().to_string(max_rows=50))


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "create":
        _create(args, settings)
    elif args.action == "list":
        print(f"{'dataset':<28} {'project':<16} {'table':<16} {'version':>7}  filter")
        for item in governance.datasets(settings):
            print(f"{item.dataset:<28} {item.project:<16} {item.source_table:<16} {item.source_version:>7}  "
                  f"{item.filter}")
    elif args.action == "show":
        _show(args.name, settings)
    elif args.action == "publish":
        _publish(args, settings)
    elif args.action == "resolve":
        print(json.dumps(json.loads(governance.resolve(settings, args.pid).metadata), indent=2))
    elif args.action == "materialise":
        _materialise(args, settings)
    else:
        _read(args, settings)
    return 0


main = command("radlake dataset", _parser, _run)
