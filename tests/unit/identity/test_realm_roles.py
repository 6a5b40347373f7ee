"""The grammar of radlake's realm roles (platform_layer/realm_roles.py): names are checked, never rewritten."""

from __future__ import annotations

import pytest

from nifi.providers import NAME
from platform_layer.realm_roles import (
    PLATFORM_ADMIN,
    PROVIDER_NAME,
    ProjectAccess,
    RoleNameError,
    is_radlake_role,
    parse_role,
    project_roles,
    provider_role,
)


@pytest.mark.parametrize(("text", "kind", "subject", "access"), [
    ("platform-admin", "platform-admin", "", None),
    ("provider:st-olav", "provider", "st-olav", None),
    ("provider:hus_2", "provider", "hus_2", None),
    ("project:lung-ct:reader", "project", "lung-ct", ProjectAccess.READER),
    ("project:lung-ct:steward", "project", "lung-ct", ProjectAccess.STEWARD),
])
def test_radlake_roles_parse(text, kind, subject, access):
    role = parse_role(text)
    assert (role.name, role.kind, role.subject, role.access) == (text, kind, subject, access)
    assert is_radlake_role(text)


@pytest.mark.parametrize(("text", "says"), [
    ("admin", "is not a radlake role"),
    ("Platform-Admin", "is not a radlake role"),
    ("provider:", "is not a radlake role"),
    ("provider:St-Olav", "is not a provider id"),
    ("provider:st olav", "is not a provider id"),
    ("project:lung-ct", "project:<project>:reader or project:<project>:steward"),
    ("project:lung-ct:writer", "project:<project>:reader or project:<project>:steward"),
    ("project:Lung:reader", "is not a project name"),
    ("project:lung.2024:reader", "is not a project name"),
    ("project:lung/2024:reader", "is not a project name"),
    ("project:x:reader", "is not a project name"),  # one letter: too short
    ("project:a:b:reader", "is not a project name"),
    ("default-roles-radlake", "is not a radlake role"),
    ("offline_access", "is not a radlake role"),
])
def test_anything_else_is_refused_with_the_rule_it_breaks(text, says):
    with pytest.raises(RoleNameError, match=says):
        parse_role(text)
    assert not is_radlake_role(text)


def test_a_project_has_a_reader_and_a_steward_role():
    assert project_roles("lung-ct") == ("project:lung-ct:reader", "project:lung-ct:steward")
    with pytest.raises(RoleNameError):
        project_roles("Lung CT")


def test_a_provider_role_uses_the_provider_id_rule_of_the_edges():
    assert provider_role("st-olav") == "provider:st-olav"
    assert NAME is PROVIDER_NAME  # one rule for the edge's name and the role's
    with pytest.raises(RoleNameError):
        provider_role("-st-olav")
    assert PLATFORM_ADMIN == "platform-admin"
