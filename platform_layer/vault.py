"""Vault (OpenBao) clients built from :class:`Settings`.

For an external Vault the configured token is used; for the local stack, the token the stack wrote
when it initialised Vault (see :func:`platform_layer.endpoints.vault_init_file`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import hvac
import hvac.exceptions
import requests

from platform_layer.endpoints import vault_addr, vault_init_file
from platform_layer.errors import VaultUnavailable
from platform_layer.settings import Settings
from platform_layer.transit import VAULT_ERRORS, VaultTransitSpec
from radlake.deid.pseudonyms import transit_key_name

log = logging.getLogger(__name__)


def stack_init(settings: Settings) -> dict:
    """The local Vault's init record (unseal keys, root token)."""
    path = vault_init_file(settings)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as err:
        raise VaultUnavailable(f"vault: {path} is missing; is the stack up (`radlake stack up`)?") from err


def admin_client(settings: Settings) -> hvac.Client:
    """An authenticated client with the installation's administrative token."""
    if settings.vault_addr:
        if settings.vault_token is None:
            raise VaultUnavailable("RADLAKE_VAULT_ADDR is set but RADLAKE_VAULT_TOKEN is not")
        token = settings.vault_token.get_secret_value()
    else:
        token = stack_init(settings)["root_token"]
    address = vault_addr(settings)
    vault = hvac.Client(url=address, token=token)
    try:
        authenticated = vault.is_authenticated()
    except requests.exceptions.RequestException as err:
        raise VaultUnavailable(f"vault at {address} is not answering: {err}") from err
    if not authenticated:
        raise VaultUnavailable(f"vault at {address} rejected the token")
    return vault


def _transit_policy(mount: str, key: str) -> str:
    return (f'path "{mount}/hmac/{key}" {{ capabilities = ["update"] }}\n'
            f'path "{mount}/hmac/{key}/*" {{ capabilities = ["update"] }}\n'
            f'path "{mount}/keys/{key}" {{ capabilities = ["create", "update", "read"] }}\n')


@contextmanager
def transit_session(settings: Settings, project: str, *, ttl: str = "24h") -> Iterator[VaultTransitSpec]:
    """The project's Transit pseudonymiser for one run, with a token of its own: it may HMAC with (and
    create) that project's key and nothing else, expires after ``ttl``, and is revoked when the run ends.
    The installation's administrative token never leaves this process (worker processes get the run's)."""
    admin = admin_client(settings)
    key, mount = transit_key_name(project), settings.vault_transit_mount
    policy = f"radlake-deid-run-{project}"
    try:
        admin.sys.create_or_update_policy(policy, _transit_policy(mount, key))
        answer = admin.auth.token.create(policies=[policy], ttl=ttl, renewable=False,
                                         display_name=f"radlake-deid-{project}")
    except VAULT_ERRORS as err:
        raise VaultUnavailable(f"cannot issue a Transit token for project {project!r}: {err}") from err
    token = str(answer["auth"]["client_token"])
    try:
        yield VaultTransitSpec(vault_addr(settings), key, token, mount=mount)
    finally:
        try:
            admin.auth.token.revoke(token)
        except VAULT_ERRORS as err:
            log.warning("the run's Transit token was not revoked (it expires after %s): %s", ttl, err)
