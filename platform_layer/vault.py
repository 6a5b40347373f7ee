"""Vault (OpenBao) clients built from :class:`Settings`.

For an external Vault the configured token is used; for the local stack, the token the stack wrote
when it initialised Vault (see :func:`platform_layer.endpoints.vault_init_file`).
"""

from __future__ import annotations

import json

import hvac
import hvac.exceptions
import requests

from platform_layer.endpoints import vault_addr, vault_init_file
from platform_layer.errors import VaultUnavailable
from platform_layer.settings import Settings
from platform_layer.transit import VaultTransitSpec
from radlake.deid.pseudonyms import transit_key_name


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


def transit_spec(settings: Settings, project: str) -> VaultTransitSpec:
    """The project's Transit pseudonymiser with the installation's Vault token (see :func:`admin_client`)."""
    client = admin_client(settings)
    return VaultTransitSpec(str(client.url), transit_key_name(project), str(client.token),
                            mount=settings.vault_transit_mount)
