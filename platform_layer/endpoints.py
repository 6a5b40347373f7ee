"""Where each service of the stack answers, from :class:`Settings` alone.

A non-empty address in the settings points at an existing service (which the stack then neither
starts nor stops); otherwise the local stack's loopback port is used. ``infra`` launches the services
on these addresses and every component finds them here.
"""

from __future__ import annotations

from pathlib import Path

from platform_layer.settings import Settings

# Apicurio Registry serves the Confluent-compatible API under this path.
REGISTRY_CCOMPAT_PATH = "/apis/ccompat/v7"


def kafka_bootstrap(settings: Settings) -> str:
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.kafka_port}"


def registry_url(settings: Settings) -> str:
    """Base URL of the Confluent-compatible registry API (what the registry client takes)."""
    return settings.schema_registry_url or f"https://127.0.0.1:{settings.schema_registry_port}{REGISTRY_CCOMPAT_PATH}"


def gateway_location(settings: Settings) -> str:
    """The lake gateway's Arrow Flight location (gRPC over TLS)."""
    return f"grpc+tls://127.0.0.1:{settings.gateway_port}"


def vault_addr(settings: Settings) -> str:
    return settings.vault_addr or f"https://127.0.0.1:{settings.vault_port}"


def keycloak_url(settings: Settings) -> str:
    """Base URL of Keycloak (realms under ``/realms/``, the admin API under ``/admin/``)."""
    return settings.keycloak_url.rstrip("/") or f"https://127.0.0.1:{settings.keycloak_port}"


def keycloak_management_url(settings: Settings) -> str:
    """The local Keycloak's management interface (health), HTTPS like the main one."""
    return f"https://127.0.0.1:{settings.keycloak_port + 1}"


def nifi_url(settings: Settings) -> str:
    """Base URL of NiFi (UI under ``/nifi``, REST API under ``/nifi-api``); HTTPS only."""
    return settings.nifi_url.rstrip("/") or f"https://127.0.0.1:{settings.nifi_port}"


def vault_unseal_file(settings: Settings) -> Path:
    """The local Vault's Shamir unseal shares, written once by the stack (mode 0600); no token is kept with them."""
    return settings.state_dir / "vault" / "unseal-shares.json"


def vault_admin_file(settings: Settings) -> Path:
    """The platform administrator's AppRole credentials for the local Vault (mode 0600), apart from the shares."""
    return settings.state_dir / "credentials" / "vault-admin.json"
