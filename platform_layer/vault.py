"""Vault (OpenBao) principals and clients built from :class:`Settings`.

Nothing in an application path holds a root token. The local stack's Vault knows these principals:

- the platform administrator (AppRole ``radlake-admin``, policy :func:`admin_policy`): manages the
  ``radlake-*`` policies, creates project Transit keys, keeps providers' endpoint tokens in KV, and issues
  tokens for the two roles below; it cannot HMAC with, export, rotate or delete a key, touch audit devices, seal,
  mount engines, change auth methods or its own policy. Its credentials are in
  :func:`platform_layer.endpoints.vault_admin_file`, apart from the unseal shares;
- a provider's edge (token role ``radlake-edge``): an orphan periodic token with policy
  ``radlake-edge-NAME`` (read its own endpoint token, HMAC with its project's key), renewed by the edge;
- Prometheus (token role ``radlake-metrics``): an orphan periodic token with policy ``radlake-metrics``
  (:data:`METRICS_POLICY_TEXT`: read ``sys/metrics``, nothing else), made by ``stack up monitoring``;
- a de-identification run (token role ``radlake-deid-run``): an orphan token with policy
  ``radlake-deid-run-PROJECT`` (HMAC with that project's key), revoked when the run ends.

For an external Vault (``RADLAKE_VAULT_ADDR``) the configured token plays the administrator.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import hvac
import hvac.exceptions
import requests

from platform_layer.endpoints import vault_addr, vault_admin_file
from platform_layer.errors import VaultUnavailable
from platform_layer.principals import ADMIN_POLICY, EDGE_TOKEN_ROLE, METRICS_POLICY, METRICS_TOKEN_ROLE, RUN_TOKEN_ROLE
from platform_layer.settings import Settings
from platform_layer.tls import PKI_MOUNT, SERVICE_ROLE, vault_ca
from platform_layer.transit import VAULT_ERRORS, VaultTransitSpec
from radlake.deid.pseudonyms import transit_key_name

log = logging.getLogger(__name__)

# Bumped whenever a policy or role below changes, so that `stack up` applies it (see infra's Vault).
PRINCIPALS_VERSION = 6


def admin_policy(settings: Settings) -> str:
    transit, kv = settings.vault_transit_mount, settings.vault_kv_mount
    return f"""
# Policies of the platform's principals, except its own
path "sys/policy/radlake-*"             {{ capabilities = ["create", "read", "update", "delete"] }}
path "sys/policies/acl/radlake-*"       {{ capabilities = ["create", "read", "update", "delete"] }}
path "sys/policy/{ADMIN_POLICY}"        {{ capabilities = ["deny"] }}
path "sys/policies/acl/{ADMIN_POLICY}"  {{ capabilities = ["deny"] }}
# Tokens only through the platform's token roles (whose allowed policies are radlake-edge-* / radlake-deid-run-*)
path "auth/token/create/{EDGE_TOKEN_ROLE}"  {{ capabilities = ["update"] }}
path "auth/token/create/{RUN_TOKEN_ROLE}"   {{ capabilities = ["update"] }}
path "auth/token/create/{METRICS_TOKEN_ROLE}"   {{ capabilities = ["update"] }}
path "auth/token/revoke"                    {{ capabilities = ["update"] }}
path "auth/token/revoke-accessor"           {{ capabilities = ["update"] }}
# Transit keys: created, read and deleted (one path segment: nothing under a key, so no rotate, trim, export or
# backup); never used for HMACs by the administrator, and never exportable. A key is deleted only after its
# config was switched to deletable, the one config change allowed: `radlake project close` destroys the project's
# key (crypto-shredding).
path "{transit}/keys/+" {{
  capabilities      = ["create", "read", "update", "delete"]
  denied_parameters = {{ "exportable" = [], "allow_plaintext_backup" = [] }}
}}
path "{transit}/keys/+/config" {{
  capabilities       = ["update"]
  allowed_parameters = {{ "deletion_allowed" = [true] }}
}}
# Opening what the edges sealed at rest (quarantined originals, their identifying fields): each open is an
# audited decrypt of a data key, on the operator's explicit command (`radlake provider quarantine`)
path "{transit}/decrypt/radlake-at-rest-*" {{ capabilities = ["update"] }}
# Leaf certificates for the platform's services, from the intermediate CA's one role
path "{PKI_MOUNT}/issue/{SERVICE_ROLE}"        {{ capabilities = ["update"] }}
# A root token for a one-off repair, only together with a threshold of the unseal shares (kept elsewhere)
path "sys/generate-root-token/attempt"      {{ capabilities = ["create", "read", "update", "delete"] }}
path "sys/generate-root-token/update"       {{ capabilities = ["create", "update"] }}
# Providers' endpoint tokens and the accessors of their edges' Vault tokens
path "{kv}/data/radlake/*"                  {{ capabilities = ["create", "read", "update", "delete"] }}
path "{kv}/metadata/radlake/*"              {{ capabilities = ["read", "list", "delete"] }}
"""


def token_roles() -> dict[str, dict[str, object]]:
    """The token roles the administrator issues tokens through (``auth/token/roles/NAME`` bodies)."""
    return {
        EDGE_TOKEN_ROLE: {"allowed_policies_glob": ["radlake-edge-*"], "orphan": True, "renewable": True,
                          "token_period": "768h", "disallowed_policies": ["root", ADMIN_POLICY]},
        METRICS_TOKEN_ROLE: {"allowed_policies": [METRICS_POLICY], "orphan": True, "renewable": True,
                             "token_period": "768h", "disallowed_policies": ["root", ADMIN_POLICY]},
        RUN_TOKEN_ROLE: {"allowed_policies_glob": ["radlake-deid-run-*"], "orphan": True, "renewable": False,
                         "token_explicit_max_ttl": "72h", "disallowed_policies": ["root", ADMIN_POLICY]},
    }


# What Prometheus's token may do: read OpenBao's telemetry (the policy is written by the administrator, whose
# own policy lets it manage radlake-* policies).
METRICS_POLICY_TEXT = 'path "sys/metrics" { capabilities = ["read"] }\n'


def admin_approle() -> dict[str, object]:
    """The administrator's AppRole: short-lived tokens, usable from this host's loopback only."""
    return {"token_policies": [ADMIN_POLICY], "token_ttl": "1h", "token_max_ttl": "4h",
            "secret_id_bound_cidrs": ["127.0.0.1/32"], "token_bound_cidrs": ["127.0.0.1/32"]}


def admin_client(settings: Settings, *, verify: str | bool | None = None) -> hvac.Client:
    """An authenticated client acting as the platform administrator (a fresh AppRole login, 1 h token),
    verifying Vault's certificate against ``verify`` (default :func:`~platform_layer.tls.vault_ca`)."""
    address = vault_addr(settings)
    vault = hvac.Client(url=address, verify=vault_ca(settings) if verify is None else verify)
    try:
        if settings.vault_addr:
            if settings.vault_token is None:
                raise VaultUnavailable("RADLAKE_VAULT_ADDR is set but RADLAKE_VAULT_TOKEN is not")
            vault.token = settings.vault_token.get_secret_value()
            if not vault.is_authenticated():
                raise VaultUnavailable(f"vault at {address} rejected RADLAKE_VAULT_TOKEN")
        else:
            role_id, secret_id = _admin_credentials(settings)
            vault.auth.approle.login(role_id=role_id, secret_id=secret_id)
    except requests.exceptions.RequestException as err:
        raise VaultUnavailable(f"vault at {address} is not answering: {err}") from err
    except hvac.exceptions.VaultError as err:
        raise VaultUnavailable(f"vault at {address} refused the platform administrator's login: {err}") from err
    return vault


def _admin_credentials(settings: Settings) -> tuple[str, str]:
    path = vault_admin_file(settings)
    try:
        record = json.loads(path.read_text())
        return str(record["role_id"]), str(record["secret_id"])
    except FileNotFoundError as err:
        raise VaultUnavailable(f"vault: {path} is missing; is the stack up (`radlake stack up vault`)?") from err
    except (ValueError, KeyError) as err:
        raise VaultUnavailable(f"vault: {path} is not a radlake AppRole record; `radlake stack up vault` "
                               "writes it again") from err


def _transit_policy(mount: str, key: str) -> str:
    return (f'path "{mount}/hmac/{key}" {{ capabilities = ["update"] }}\n'
            f'path "{mount}/hmac/{key}/*" {{ capabilities = ["update"] }}\n'
            f'path "{mount}/keys/{key}" {{ capabilities = ["create", "update", "read"] }}\n')


@contextmanager
def transit_session(settings: Settings, project: str, *, ttl: str = "24h") -> Iterator[VaultTransitSpec]:
    """The project's Transit pseudonymiser for one run, with a token of its own: it may HMAC with that
    (and create it) and nothing else, expires after ``ttl``, and is revoked when the run ends. The
    administrator's token never leaves this process (worker processes get the run's)."""
    admin = admin_client(settings)
    key, mount = transit_key_name(project), settings.vault_transit_mount
    policy = f"{RUN_TOKEN_ROLE}-{project}"
    try:
        admin.sys.create_or_update_policy(policy, _transit_policy(mount, key))
        answer = admin.auth.token.create(role_name=RUN_TOKEN_ROLE, policies=[policy], ttl=ttl,
                                         display_name=f"radlake-deid-{project}")
    except VAULT_ERRORS as err:
        raise VaultUnavailable(f"cannot issue a Transit token for project {project!r}: {err}") from err
    token = str(answer["auth"]["client_token"])
    try:
        yield VaultTransitSpec(vault_addr(settings), key, token, mount=mount, ca=vault_ca(settings))
    finally:
        try:
            admin_client(settings).auth.token.revoke(token)  # a fresh login: a long run outlives the first
        except (VaultUnavailable, *VAULT_ERRORS) as err:
            log.warning("the run's Transit token was not revoked (it expires after %s): %s", ttl, err)
