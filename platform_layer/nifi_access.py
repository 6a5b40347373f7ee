"""Who the platform is to NiFi: a client certificate from the platform CA, presented over mutual TLS.

NiFi speaks HTTPS only and nobody is anonymous there. People log in with OpenID Connect against the stack's
Keycloak; the platform's own automation (deploying and removing provider edges, health checks, tests) presents
the certificate of :data:`PLATFORM_IDENTITY`, NiFi's initial administrator. :func:`platform_access` returns it,
issued by the Vault administrator into ``<state>/credentials/nifi`` (0600) and renewed once two thirds of its life
are gone, together with the CA that verifies NiFi.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

import httpx
import hvac

from platform_layer.endpoints import nifi_url
from platform_layer.settings import Settings
from platform_layer.tls import ca_file, ensure_certificate, needs_renewal
from platform_layer.vault import admin_client

PLATFORM_COMMON_NAME = "nifi-admin.radlake.local"
# NiFi names the holder of a client certificate by its subject DN (RFC 2253), case and all. Keycloak lowercases
# user names, so no person's login can ever read as this identity.
PLATFORM_IDENTITY = f"CN={PLATFORM_COMMON_NAME}"
_STEM = "platform"


@dataclass(frozen=True)
class NiFiAccess:
    """Where NiFi answers and the TLS material to reach it: the CA that verifies NiFi and a client certificate."""

    url: str
    ca_file: Path
    certificate: Path
    key: Path

    @property
    def api_url(self) -> str:
        return f"{self.url}/nifi-api"

    def ssl_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cafile=str(self.ca_file))
        context.load_cert_chain(str(self.certificate), str(self.key))
        return context

    def client(self, timeout_s: float = 30.0) -> httpx.Client:
        """An HTTP client for NiFi's REST API (paths relative to ``/nifi-api``) that presents the certificate."""
        return httpx.Client(base_url=self.api_url, verify=self.ssl_context(), timeout=timeout_s)


def platform_certificate_dir(settings: Settings) -> Path:
    return settings.state_dir / "credentials" / "nifi"


def platform_access(settings: Settings, vault: hvac.Client | None = None) -> NiFiAccess:
    """The platform's access to the stack's NiFi; the certificate is issued (by ``vault``, default the Vault
    administrator) only when it is missing or due for renewal, so a fresh one costs no Vault login."""
    directory = platform_certificate_dir(settings)
    certificate, key = directory / f"{_STEM}.crt", directory / f"{_STEM}.key"
    if needs_renewal(certificate) or not key.exists():
        ensure_certificate(vault or admin_client(settings), directory, _STEM, PLATFORM_COMMON_NAME)
    return NiFiAccess(nifi_url(settings), ca_file(settings), certificate, key)
