"""``radlake schemas list | register`` — the event contracts and the schema registry."""

from __future__ import annotations

import argparse
import sys

from lake_schemas.errors import LakeSchemaError
from lake_schemas.registration import register
from lake_schemas.serde import registry_client
from lake_schemas.topics import ALL_TOPICS
from radlake.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="radlake schemas", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="topics, subjects and schema files")
    reg = sub.add_parser("register", help="register every schema in the registry (idempotent)")
    reg.add_argument("--registry-url", default="", help="default: the stack's registry")
    args = parser.parse_args(argv)
    if args.action == "list":
        for topic in ALL_TOPICS:
            print(f"{topic.name}\t{topic.subject}\tlake_schemas/events/{topic.schema_file}")
        return 0
    from infra.components.registry import SchemaRegistry

    url = args.registry_url or SchemaRegistry(Settings()).address
    try:
        for item in register(registry_client(url)):
            print(f"{item.subject}\tid={item.schema_id}\tversion={item.version}")
    except LakeSchemaError as err:
        print(f"radlake schemas register: {err} (is the registry up? `radlake stack up registry`)", file=sys.stderr)
        return 1
    return 0
