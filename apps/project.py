"""``radlake project create NAME | list``: a project's realm roles, ``project:NAME:reader`` and ``project:NAME:steward``.

A project name is lower-case letters, digits and '-', starting with a letter, 2-63 characters (the rule of
its Transit key, ``radlake-deid-NAME``); anything else is refused, never rewritten. ``create`` is idempotent.
Exit status: 0 ok, 1 failure, 2 usage (a name outside the rule).
"""

from __future__ import annotations

import argparse
import sys

from apps._common import command
from platform_layer import audit
from platform_layer.realm import REALM, ensure_realm_roles, realm_admin
from platform_layer.realm_roles import (
    ProjectAccess,
    RealmRole,
    RoleNameError,
    check_project_name,
    parse_role,
    project_role,
)
from platform_layer.settings import Settings

DESCRIPTIONS = {ProjectAccess.READER: "reads the de-identified data of project {}",
                ProjectAccess.STEWARD: "governs project {}: its data, its providers and who reads it"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake project", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    p_create = sub.add_parser("create", help="create the project's reader and steward roles")
    p_create.add_argument("name")
    sub.add_parser("list", help="list projects (from their roles)")
    return parser


def _project_roles(names: list[str]) -> dict[str, set[str]]:
    """project -> its accesses that exist, from the realm's role names."""
    projects: dict[str, set[str]] = {}
    for name in names:
        try:
            role: RealmRole = parse_role(name)
        except RoleNameError:
            continue
        if role.kind == "project" and role.access is not None:
            projects.setdefault(role.subject, set()).add(role.access.value)
    return projects


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action == "create":
        project = check_project_name(args.name)
        roles = {project_role(project, access): text.format(project) for access, text in DESCRIPTIONS.items()}
        with audit.recorded(settings, "project.create", f"project {project}"):
            created = ensure_realm_roles(settings, roles)
        print(f"project {project}: {', '.join(roles)} ({'created' if created else 'existed already'})",
              file=sys.stderr)
        print(project)
    else:
        with realm_admin(settings) as admin:
            projects = _project_roles(admin.realm_roles(REALM))
        for project in sorted(projects):
            print(f"{project}\t{','.join(sorted(projects[project]))}")
    return 0


main = command("radlake project", _parser, _run, exit_codes={RoleNameError: 2})
