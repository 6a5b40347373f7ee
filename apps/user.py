"""``radlake user add NAME --email E [--first F] [--last L] | list | grant NAME ROLE | revoke NAME ROLE``: people.

``add`` creates the user in realm ``radlake`` with a random one-time password, printed once on stdout and
stored nowhere: Keycloak makes them choose their own when they first log in (``radlake login``). There is no
mail server, so handing the password over is the administrator's job. Roles are ``platform-admin``,
``provider:<provider>``, ``project:<project>:reader`` and ``project:<project>:steward``; a provider's or
project's role exists once ``radlake provider add`` / ``radlake project create`` has made it.

The commands act as the realm's administrator client (its secret read from Vault); ``add``, ``grant`` and
``revoke`` are recorded in the audit trail first (``radlake audit show --action role``). Exit status: 0 ok,
1 failure (the message names it), 2 usage (a name outside the rules).
"""

from __future__ import annotations

import argparse
import re
import secrets
import sys

from apps._common import UsageError, command
from lake_schemas.errors import RadlakeError
from platform_layer import audit
from platform_layer.identity_provider import Conflict, KeycloakAdmin
from platform_layer.realm import REALM, realm_admin
from platform_layer.realm_roles import RoleNameError, is_radlake_role, parse_role
from platform_layer.settings import Settings

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class UserError(RadlakeError):
    """A user or role that the command needs is not there; the message says what to run."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="radlake user", description=__doc__.splitlines()[0].strip("`."))
    sub = parser.add_subparsers(dest="action", required=True)
    p_add = sub.add_parser("add", help="create a user with a one-time password (printed once)")
    p_add.add_argument("name")
    p_add.add_argument("--email", required=True)
    p_add.add_argument("--first", default="", help="first name")
    p_add.add_argument("--last", default="", help="last name")
    sub.add_parser("list", help="list users and their radlake roles")
    for action, help_ in (("grant", "give a user a role"), ("revoke", "take a role from a user")):
        p = sub.add_parser(action, help=help_)
        p.add_argument("name")
        p.add_argument("role", help="platform-admin | provider:<provider> | project:<project>:reader|steward")
    return parser


def _user_id(admin: KeycloakAdmin, name: str) -> str:
    user = admin.user(REALM, name)
    if user is None:
        raise UserError(f"no user {name!r} in realm {REALM} (`radlake user list`)")
    return str(user["id"])


def _existing_role(admin: KeycloakAdmin, text: str) -> str:
    role = parse_role(text)
    if admin.realm_role(REALM, role.name) is None:
        how = {"provider": f"`radlake provider add {role.subject} --project P` makes it",
               "project": f"`radlake project create {role.subject}` makes it"}.get(role.kind, "`radlake stack up "
                                                                                      "keycloak` makes it")
        raise UserError(f"no role {role.name!r} in realm {REALM}: {how}")
    return role.name


def _add(admin: KeycloakAdmin, args: argparse.Namespace) -> None:
    if not EMAIL.match(args.email):
        raise UsageError(f"{args.email!r} is not an e-mail address")
    password = secrets.token_urlsafe(15)
    try:
        admin.create_user(REALM, args.name, email=args.email, first_name=args.first, last_name=args.last,
                          temporary_password=password)
    except Conflict as err:
        raise UserError(f"a user {args.name!r} or with e-mail {args.email} exists already") from err
    print(password)
    print(f"created {args.name}: give them the one-time password above (shown once, stored nowhere); they choose "
          "their own at their first `radlake login`", file=sys.stderr)


def _list(admin: KeycloakAdmin) -> None:
    rows = [("USER", "EMAIL", "NAME", "ROLES")]
    for user in sorted(admin.users(REALM), key=lambda u: str(u["username"])):
        roles = [r for r in admin.user_realm_roles(REALM, str(user["id"])) if is_radlake_role(r)]
        name = " ".join(p for p in (user.get("firstName"), user.get("lastName")) if p)
        rows.append((str(user["username"]), str(user.get("email") or ""), name, ", ".join(roles) or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        print("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths)), row[3]]).rstrip())


def _run(args: argparse.Namespace, settings: Settings) -> int:
    if args.action != "list" and not USERNAME.match(args.name):
        raise UsageError(f"{args.name!r} is not a user name ({USERNAME.pattern})")
    with realm_admin(settings) as admin:
        if args.action == "add":
            with audit.recorded(settings, "user.add", f"user {args.name}"):
                _add(admin, args)
        elif args.action == "list":
            _list(admin)
        else:
            role = _existing_role(admin, args.role)
            user_id = _user_id(admin, args.name)
            held = role in admin.user_realm_roles(REALM, user_id)
            with audit.recorded(settings, f"role.{args.action}", f"user {args.name} role {role}",
                                details={"held_before": held}):
                if args.action == "grant":
                    if not held:
                        admin.add_realm_roles(REALM, user_id, [role])
                    print(f"{args.name} {'already holds' if held else 'now holds'} {role}", file=sys.stderr)
                else:
                    if held:
                        admin.remove_realm_roles(REALM, user_id, [role])
                    print(f"{args.name} {'no longer holds' if held else 'did not hold'} {role}", file=sys.stderr)
    return 0


main = command("radlake user", _parser, _run, exit_codes={RoleNameError: 2})
