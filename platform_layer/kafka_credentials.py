"""Where a Kafka principal's credentials are kept in Vault, and reading them (hvac only: the NiFi edge's
runtime reads its own with its Vault token)."""

from __future__ import annotations

import hvac

from platform_layer.errors import VaultUnavailable
from platform_layer.kafka import ScramIdentity
from platform_layer.transit import VAULT_ERRORS


def kafka_kv_path(principal: str) -> str:
    """KV v2 path of ``principal``'s record: username, password, and the CA file that verifies the broker."""
    return f"radlake/kafka/{principal}"


def read_kafka_identity(vault: hvac.Client, principal: str, mount: str = "secret") -> ScramIdentity:
    try:
        answer = vault.secrets.kv.v2.read_secret_version(path=kafka_kv_path(principal), mount_point=mount,
                                                         raise_on_deleted_version=True)
    except VAULT_ERRORS as err:
        raise VaultUnavailable(f"cannot read the Kafka credentials of {principal} from Vault: {err}") from err
    return ScramIdentity.from_record(answer["data"]["data"])
