"""``radlake dataset create NAME --project P --table T --where SQL [--columns C,...] | list | show NAME | read NAME``.

A dataset is a named cohort of one project: a boolean SQL filter over one lake table (``silver/studies`` or
``silver/series``), pinned to that table's current Delta version (``platform_layer/governance.py``). ``create``,
``list`` and ``show`` are the platform's (they act on the governance tables; ``create`` is audited).
``read`` is a data scientist's: the rows of a dataset they hold a grant for (``radlake grant``), through the
lake gateway as the user of ``radlake login``, written as Parquet to ``--out`` or shown as a table.
Exit status: 0 ok, 1 failure (refused, unknown, unreadable), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import sys

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
    return parser


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
                         for g in governance.grants(settings, dataset_name=name)]}
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
    else:
        _read(args, settings)
    return 0


main = command("radlake dataset", _parser, _run)
