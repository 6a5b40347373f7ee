"""Which projects' results a caller may receive: the realm roles of their verified access token, read with the one
grammar of :mod:`platform_layer.realm_roles`. Pure: no Keycloak, no Kafka."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from platform_layer.realm_roles import PLATFORM_ADMIN, RoleNameError, parse_role


@dataclass(frozen=True)
class Scope:
    """The projects a caller reads (``project:<P>:reader`` or ``project:<P>:steward``), or every one
    (``platform-admin``)."""

    projects: frozenset[str]
    everything: bool = False

    def may_read(self, project: str | None) -> bool:
        # an event without a project (none of the result topics has one) is the platform's, not a project's
        return self.everything or (project is not None and project in self.projects)

    @property
    def empty(self) -> bool:
        return not self.everything and not self.projects


def scope_of(roles: Iterable[str]) -> Scope:
    """The scope of a token's realm roles; roles outside radlake's grammar (Keycloak's defaults) grant nothing."""
    projects: set[str] = set()
    everything = False
    for text in roles:
        if text == PLATFORM_ADMIN:
            everything = True
            continue
        try:
            role = parse_role(text)
        except RoleNameError:
            continue
        if role.kind == "project":  # reader and steward both read
            projects.add(role.subject)
    return Scope(frozenset(projects), everything)
