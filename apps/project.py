"""``radlake project create NAME | list | profile NAME [--set FILE | --default] | close NAME --yes``: a project's
realm roles (``project:NAME:reader``, ``project:NAME:steward``), its de-identification profile, its end.

A project name is lower-case letters, digits and '-', starting with a letter, 2-63 characters (the rule of
its Transit key, ``radlake-deid-NAME``); anything else is refused, never rewritten. ``create`` is idempotent.

``profile`` shows the project's de-identification profile, or sets it (a file as ``radlake deid --profile``
takes, validated) and points every edge of the project at it: NiFi restarts their processors, and every event
and row from then on records the profile's name and digest in its profile version. Audited.

``close`` is the end of a project (destruction at project end): every lake row of the project and of its
studies goes, with the tables' history, and every object those rows point at (``spark_jobs/erasure.py``); its
datasets' grants are revoked; its Transit key is destroyed in Vault, so that nothing pseudonymised with it can
ever be linked to a patient again (crypto-shredding); its roles are deleted. A proof report goes to
``<state>/erasures/project-NAME.json|.txt`` and stdout; the close is audited. Irreversible: it needs ``--yes``.
Exit status: 0 ok, 1 failure, 2 usage (a name outside the rule).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from apps._common import UsageError, command
from nifi.providers import project_profile, set_project_profile
from platform_layer import audit, governance
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
from platform_layer.state import write_private
from platform_layer.transit import destroy_key
from platform_layer.vault import admin_client
from radlake.deid.confidentiality_profile import load_profile
from radlake.deid.errors import ProfileError
from radlake.deid.pseudonyms import transit_key_name
from spark_jobs.erasure import Key, erase, find

DESCRIPTIONS = {ProjectAccess.READER: "reads the de-identified data of project {}",
                ProjectAccess.STEWARD: "governs project {}: its data, its providers and who reads it"}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake project", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    p_create = sub.add_parser("create", help="create the project's reader and steward roles")
    p_create.add_argument("name")
    sub.add_parser("list", help="list projects (from their roles)")
    p_profile = sub.add_parser("profile", help="show or set the project's de-identification profile at its edges")
    p_profile.add_argument("name")
    choice = p_profile.add_mutually_exclusive_group()
    choice.add_argument("--set", type=Path, metavar="FILE", help="a profile (YAML/JSON, as `radlake deid --profile`)")
    choice.add_argument("--default", action="store_true", help="back to radlake's default profile")
    p_close = sub.add_parser("close", help="destroy the project's data, key and roles (irreversible)")
    p_close.add_argument("name")
    p_close.add_argument("--yes", action="store_true", help="yes, destroy it")
    return parser


def _profile(args: argparse.Namespace, settings: Settings) -> int:
    project = check_project_name(args.name)
    if not (args.set or args.default):
        print(json.dumps(json.loads(project_profile(settings, project)), indent=2))
        return 0
    try:
        profile = load_profile(args.set) if args.set else None
    except ProfileError as err:
        raise UsageError(str(err)) from err
    details = {"profile": profile.name if profile else "default"}
    with audit.recorded(settings, "project.profile", f"project {project}", details=details):
        changed = set_project_profile(settings, project, profile)
    print(f"project {project}: profile {details['profile']}; edges updated: {', '.join(changed) or 'none'}",
          file=sys.stderr)
    return 0


def _close(args: argparse.Namespace, settings: Settings) -> int:
    project = check_project_name(args.name)
    if not args.yes:
        raise UsageError(f"closing {project} destroys its data and its key for good: add --yes")
    lake, key = settings.resolved_lake_uri, Key.project(project)
    with audit.recorded(settings, "project.close", f"project {project}") as entry:
        datasets = [d.dataset for d in governance.datasets(settings) if d.project == project]
        ended = [g for name in datasets for g in governance.revoke(settings, None, name, revoked_by=entry.actor)]
        studies, objects = find(lake, key)
        report = erase(lake, key, studies, objects)
        shredded = destroy_key(admin_client(settings), transit_key_name(project), settings.vault_transit_mount)
        with realm_admin(settings) as admin:
            roles = [r for r in (project_role(project, a) for a in ProjectAccess) if admin.delete_realm_role(REALM, r)]
    text = (f"project {project} closed: {len(datasets)} dataset(s), {len(ended)} grant(s) revoked, Transit key "
            f"{'destroyed' if shredded else 'was already gone'}, role(s) deleted: {', '.join(roles) or 'none'}\n"
            + report.as_text())
    folder = settings.state_dir / "erasures"
    write_private(folder / f"project-{project}.json", json.dumps(
        {"project": project, "datasets": datasets, "grants_revoked": len(ended), "key_destroyed": shredded,
         "roles_deleted": roles, "erasure": report.as_json()}, indent=2, default=str))
    write_private(folder / f"project-{project}.txt", text)
    print(text, end="")
    return 0 if report.complete else 1


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
    if args.action == "close":
        return _close(args, settings)
    if args.action == "profile":
        return _profile(args, settings)
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
