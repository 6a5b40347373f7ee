"""Who may do what in NiFi: the access policies radlake sets at every start, through NiFi's REST API.

Two principals hold rights. The platform's certificate (:data:`platform_layer.nifi_access.PLATFORM_IDENTITY`, NiFi's
initial administrator) deploys and removes provider edges: it reads and writes the flow, its parameter contexts and
its queues, queries provenance, manages users, groups and policies, and may create exactly the restricted components the edges use
(ListFile reads the file system, PutFile writes it), not the others (``execute-code`` among them). People with the
Keycloak realm role :data:`PLATFORM_ADMIN` are members of the NiFi group of that name (NiFi matches the groups of a
login token to its groups by name): they view and edit the flow and see parameter contexts, but hold no restricted
component (so they cannot add a processor that runs a command or a script), cannot read queued content (original,
not yet de-identified requests), provenance, users or policies. Anyone else who logs in sees nothing.

:func:`policies` is the description; :func:`ensure_policies` makes NiFi match it for the resources it names (their
members are set exactly; other resources are left alone).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import httpx

from infra.errors import StackError
from platform_layer.nifi_access import PLATFORM_IDENTITY
from platform_layer.realm_roles import PLATFORM_ADMIN

READ, WRITE = "read", "write"
# Restricted-component permissions of the provider edge's processors (ListFile, PutFile).
EDGE_RESTRICTIONS = ("read-filesystem", "write-filesystem")


class PolicyError(StackError):
    """NiFi refused or failed a change of its users, groups or policies; the message names which."""


@dataclass(frozen=True)
class Holders:
    """Who holds a policy: user identities and group names."""

    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()


def policies(root_group_id: str) -> dict[tuple[str, str], Holders]:
    """(resource, action) -> holders, for every resource radlake manages."""
    platform = Holders(users=frozenset({PLATFORM_IDENTITY}))
    both = Holders(users=frozenset({PLATFORM_IDENTITY}), groups=frozenset({PLATFORM_ADMIN}))
    nobody = Holders()
    root = f"/process-groups/{root_group_id}"
    described = {
        ("/flow", READ): both,
        ("/system", READ): both,
        ("/controller", READ): both,
        ("/controller", WRITE): platform,
        (root, READ): both,
        (root, WRITE): both,
        ("/parameter-contexts", READ): both,
        ("/parameter-contexts", WRITE): platform,
        (f"/data{root}", READ): platform,
        (f"/data{root}", WRITE): platform,
        ("/tenants", READ): platform,
        ("/tenants", WRITE): platform,
        ("/policies", READ): platform,
        ("/policies", WRITE): platform,
        # The provenance repository keeps no event (see docs/security.md); the platform may look and find none.
        ("/provenance", READ): platform,
        (f"/provenance-data{root}", READ): platform,
        # Every restriction at once, execute-code among them: nobody.
        ("/restricted-components", WRITE): nobody,
    }
    described.update({(f"/restricted-components/{name}", WRITE): platform for name in EDGE_RESTRICTIONS})
    return described


def ensure_policies(client: httpx.Client, root_group_id: str) -> None:
    """Make NiFi's groups and policies match :func:`policies`; ``client`` speaks to ``/nifi-api`` as the platform."""
    users = {entity["component"]["identity"]: entity["id"] for entity in _get(client, "/tenants/users")["users"]}
    if PLATFORM_IDENTITY not in users:
        raise PolicyError(f"nifi does not list its initial administrator {PLATFORM_IDENTITY}")
    groups = {entity["component"]["identity"]: entity["id"]
              for entity in _get(client, "/tenants/user-groups")["userGroups"]}
    if PLATFORM_ADMIN not in groups:
        created = _send(client, "POST", "/tenants/user-groups",
                        {"revision": {"version": 0}, "component": {"identity": PLATFORM_ADMIN, "users": []}})
        groups[PLATFORM_ADMIN] = created["id"]
    for (resource, action), holders in policies(root_group_id).items():
        _ensure_policy(client, resource, action, [users[u] for u in sorted(holders.users)],
                       [groups[g] for g in sorted(holders.groups)])


def _ensure_policy(client: httpx.Client, resource: str, action: str, user_ids: list[str],
                   group_ids: list[str]) -> None:
    answer = client.get(f"/policies/{action}{resource}")
    # NiFi answers with the policy a resource inherits when it has none of its own.
    existing = answer.json() if answer.status_code == 200 else None
    if existing is not None and existing["component"]["resource"] != resource:
        existing = None
    if existing is None and answer.status_code not in (200, 404):
        raise PolicyError(f"nifi: reading policy {action} {resource} answered {answer.status_code}: {answer.text}")
    component = {"resource": resource, "action": action, "users": [{"id": i} for i in user_ids],
                 "userGroups": [{"id": i} for i in group_ids]}
    if existing is None:
        if user_ids or group_ids:
            _send(client, "POST", "/policies", {"revision": {"version": 0}, "component": component})
        return
    held = ({u["id"] for u in existing["component"].get("users", [])},
            {g["id"] for g in existing["component"].get("userGroups", [])})
    if held != (set(user_ids), set(group_ids)):
        _send(client, "PUT", f"/policies/{existing['id']}",
              {"revision": existing["revision"], "component": {"id": existing["id"], **component}})


def _get(client: httpx.Client, path: str) -> Mapping:
    return _send(client, "GET", path, None)


def _send(client: httpx.Client, method: str, path: str, body: Mapping | None) -> Mapping:
    try:
        answer = client.request(method, path, json=body)
    except httpx.HTTPError as err:
        raise PolicyError(f"nifi: {method} {path} failed: {err}") from err
    if answer.status_code >= 300:
        raise PolicyError(f"nifi: {method} {path} answered {answer.status_code}: {answer.text}")
    return answer.json()
