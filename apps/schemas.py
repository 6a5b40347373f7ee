"""``radlake schemas list | register`` — the event contracts and the schema registry."""

from __future__ import annotations

import argparse

from apps._common import command
from lake_schemas.errors import LakeSchemaError
from lake_schemas.topics import ALL_TOPICS
from platform_layer.registration import register, schema_admin
from platform_layer.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake schemas", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("list", help="topics, subjects and schema files")
    reg = sub.add_parser("register", help="register every schema in the registry (idempotent), as the platform")
    reg.add_argument("--registry-url", default="", help="default: the stack's registry")
    return parser


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "list":
        for topic in ALL_TOPICS:
            print(f"{topic.name}\t{topic.subject}\tlake_schemas/events/{topic.schema_file}")
        return 0
    try:
        for item in register(schema_admin(settings, args.registry_url)):
            print(f"{item.subject}\tid={item.schema_id}\tversion={item.version}")
    except LakeSchemaError as err:
        raise LakeSchemaError(f"{err} (is the registry up? `radlake stack up registry`)") from err
    return 0


main = command("radlake schemas", _parser, _run)
