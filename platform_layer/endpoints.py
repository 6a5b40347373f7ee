"""Where each service of the stack answers, from :class:`Settings` alone.

A non-empty address in the settings points at an existing service (which the stack then neither
starts nor stops); otherwise the local stack's loopback port is used. ``infra`` launches the services
on these addresses and every component finds them here.
"""

from __future__ import annotations

from pathlib import Path

from platform_layer.edge_metrics import edges_root
from platform_layer.settings import Settings

# Apicurio Registry serves the Confluent-compatible API under this path.
REGISTRY_CCOMPAT_PATH = "/apis/ccompat/v7"


def kafka_bootstrap(settings: Settings) -> str:
    return settings.kafka_bootstrap or f"127.0.0.1:{settings.kafka_port}"


def registry_url(settings: Settings) -> str:
    """Base URL of the Confluent-compatible registry API (what the registry client takes)."""
    return settings.schema_registry_url or f"https://127.0.0.1:{settings.schema_registry_port}{REGISTRY_CCOMPAT_PATH}"


def notebooks_url(settings: Settings) -> str:
    """Base URL of the notebooks hub (JupyterHub behind its proxy; the hub under ``/hub``); HTTPS only."""
    return f"https://127.0.0.1:{settings.notebooks_port}"


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


def monitoring_dir(settings: Settings) -> Path:
    """The monitoring components' state: Prometheus's data and configuration, certificates, ``alerts.jsonl``."""
    return settings.state_dir / "monitoring"


def scrape_targets_dir(settings: Settings) -> Path:
    """Where a long-running part started outside the stack (the streams worker) announces its ``/metrics`` to
    Prometheus: one file_sd JSON file each, removed when it stops."""
    return monitoring_dir(settings) / "targets"


def prometheus_url(settings: Settings) -> str:
    """Prometheus's web and HTTP API (HTTPS, certificate of the platform CA)."""
    return f"https://127.0.0.1:{settings.prometheus_port}"


def alertmanager_url(settings: Settings) -> str:
    return f"https://127.0.0.1:{settings.alertmanager_port}"


def edge_dir(settings: Settings, provider: str) -> Path:
    """A provider's folder on the platform host: quarantine (sealed), spool and work files, drop folder."""
    return edges_root(settings.state_dir) / provider


def console_url(settings: Settings) -> str:
    """The admin console (HTTPS on loopback)."""
    return f"https://127.0.0.1:{settings.console_port}"
