"""The realm roles people hold in radlake's identity provider, and the one grammar their names follow.

- ``platform-admin``: runs the platform;
- ``provider:<provider>``: acts for a provider (a hospital's uploads), made by ``radlake provider add``;
- ``project:<project>:reader`` / ``project:<project>:steward``: reads a project's data / governs it, both
  made by ``radlake project create``.

Names are used as they are, never rewritten: a project name follows
:data:`radlake.deid.pseudonyms.PROJECT_NAME` (the rule of its Transit key), a provider id
:data:`PROVIDER_NAME`. Nothing here talks to Keycloak.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

from platform_layer.errors import PlatformError
from radlake.deid.pseudonyms import PROJECT_NAME

PLATFORM_ADMIN = "platform-admin"
PROVIDER_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")


class ProjectAccess(str, Enum):
    READER = "reader"
    STEWARD = "steward"


class RoleNameError(PlatformError):
    """A role, project or provider name outside the grammar; the message says which rule it breaks."""


@dataclass(frozen=True)
class RealmRole:
    """One of radlake's realm roles, parsed. ``name`` is its text in Keycloak."""

    name: str
    kind: str  # "platform-admin" | "provider" | "project"
    subject: str = ""  # the provider or project it is about
    access: ProjectAccess | None = None


def check_project_name(project: str) -> str:
    if not PROJECT_NAME.fullmatch(project):
        raise RoleNameError(f"{project!r} is not a project name: lower-case letters, digits and '-', starting "
                            f"with a letter, 2-63 characters ({PROJECT_NAME.pattern})")
    return project


def check_provider_name(provider: str) -> str:
    if not PROVIDER_NAME.fullmatch(provider):
        raise RoleNameError(f"{provider!r} is not a provider id: lower-case letters, digits, '_' and '-', starting "
                            f"with a letter or digit, 1-63 characters ({PROVIDER_NAME.pattern})")
    return provider


def project_role(project: str, access: ProjectAccess) -> str:
    return f"project:{check_project_name(project)}:{access.value}"


def project_roles(project: str) -> tuple[str, ...]:
    """Every role of a project, reader first."""
    return tuple(project_role(project, access) for access in ProjectAccess)


def provider_role(provider: str) -> str:
    return f"provider:{check_provider_name(provider)}"


def parse_role(text: str) -> RealmRole:
    """The role named ``text``; :class:`RoleNameError` naming the rule when it is none of radlake's."""
    if text == PLATFORM_ADMIN:
        return RealmRole(text, PLATFORM_ADMIN)
    kind, _, rest = text.partition(":")
    if kind == "provider" and rest:
        return RealmRole(text, "provider", check_provider_name(rest))
    if kind == "project" and rest:
        project, _, access = rest.rpartition(":")
        if project and access in {a.value for a in ProjectAccess}:
            return RealmRole(text, "project", check_project_name(project), ProjectAccess(access))
        raise RoleNameError(f"{text!r}: a project role is project:<project>:reader or project:<project>:steward")
    raise RoleNameError(f"{text!r} is not a radlake role: {PLATFORM_ADMIN}, provider:<provider>, "
                        "project:<project>:reader or project:<project>:steward")


def is_radlake_role(text: str) -> bool:
    """Whether ``text`` follows the grammar (Keycloak's own default roles do not)."""
    try:
        parse_role(text)
    except RoleNameError:
        return False
    return True
