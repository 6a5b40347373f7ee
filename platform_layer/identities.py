"""Who each part of the platform is to Kafka, with its credentials kept in Vault.

Every principal of :data:`platform_layer.principals.KAFKA_PRINCIPALS` has a SCRAM password of 256 random bits
in Vault KV v2 at ``radlake/kafka/<principal>`` (with the CA file clients verify the broker with), made by
``radlake stack up``. A command names its principal in the settings (``RADLAKE_KAFKA_PRINCIPAL``); the
administrator reads the password for it. The edge reads its own with its Vault token.
"""

from __future__ import annotations

import secrets

import hvac

from platform_layer import kafka, serde
from platform_layer.errors import VaultUnavailable
from platform_layer.kafka_credentials import kafka_kv_path, read_kafka_identity
from platform_layer.principals import KAFKA_PRINCIPALS
from platform_layer.settings import Settings
from platform_layer.tls import ca_file
from platform_layer.transit import VAULT_ERRORS
from platform_layer.vault import admin_client


def ensure_kafka_credentials(vault: hvac.Client, settings: Settings) -> dict[str, kafka.ScramIdentity]:
    """Every principal's credentials, made (256 random bits) the first time."""
    identities = {}
    for principal in KAFKA_PRINCIPALS:
        try:
            identities[principal] = read_kafka_identity(vault, principal, settings.vault_kv_mount)
            continue
        except VaultUnavailable:
            pass
        identity = kafka.ScramIdentity(principal, secrets.token_urlsafe(32), str(ca_file(settings)))
        try:
            vault.secrets.kv.v2.create_or_update_secret(
                path=kafka_kv_path(principal), mount_point=settings.vault_kv_mount,
                secret={"username": identity.username, "password": identity.password, "ca_file": identity.ca_file})
        except VAULT_ERRORS as err:
            raise VaultUnavailable(f"cannot store the Kafka credentials of {principal} in Vault: {err}") from err
        identities[principal] = identity
    return identities


def stack_kafka_identity(settings: Settings, principal: str | None = None) -> kafka.ScramIdentity:
    """This installation's credentials for ``principal`` (default: the settings' ``kafka_principal``)."""
    if settings.kafka_password is not None:
        return kafka.ScramIdentity(settings.kafka_username or settings.kafka_principal,
                                   settings.kafka_password.get_secret_value(),
                                   settings.kafka_ca_file or str(ca_file(settings)))
    return read_kafka_identity(admin_client(settings), principal or settings.kafka_principal, settings.vault_kv_mount)


def use_stack_identity(settings: Settings, principal: str | None = None) -> None:
    """Make ``principal`` (default: the settings' ``kafka_principal``) this process's Kafka identity (the
    password is read from Vault when the first client is built), and have registry clients verify the stack's
    registry against the platform CA (an external registry: against the system's CAs)."""
    kafka.use_identity(lambda: stack_kafka_identity(settings, principal))
    serde.trust(None if settings.schema_registry_url else str(ca_file(settings)))
