"""Schema registry speaking the Confluent REST API: Apicurio Registry 3.x from Maven Central.

Maven Central carries the registry as ``io.apicurio:apicurio-registry-app:<v>:all@tar.gz`` (a Quarkus
application). Its Confluent-compatible API lives under ``/apis/ccompat/v7``; storage is an H2 file
database under the state dir, so registered schemas and their ids survive a restart.

HTTPS only, on loopback: a certificate from the platform CA (``<state>/registry/tls``, renewed by ``stack up``
once two thirds of its life are gone), plain HTTP off, and the management interface (health) on HTTPS too.
Clients verify it against the platform CA (``platform_layer.serde.trust``).

Reads are anonymous (every producer and consumer looks schemas up; nothing in a schema is secret); writes
(registering a schema, changing rules or compatibility, deleting) need a bearer token from the platform's
Keycloak realm carrying the realm role ``platform-admin`` (:data:`platform_layer.realm.PLATFORM_CLIENT`'s
service account, or a person granted it). The registry verifies tokens against the realm's keys, fetched over
HTTPS verified against the platform CA: a token without the role is answered 403, no token or a bad one 401.
"""

from __future__ import annotations

import tarfile

from infra.component import Component
from infra.downloads import fetch_maven_file
from infra.errors import StackError
from infra.process import answers_200
from platform_layer.endpoints import registry_url
from platform_layer.errors import VaultUnavailable
from platform_layer.java import find_java_home
from platform_layer.realm import issuer, keycloak_ca_file
from platform_layer.realm_roles import PLATFORM_ADMIN
from platform_layer.tls import CertificateError, ca_file, ensure_certificate
from platform_layer.vault import admin_client

SERVER_NAME = "registry.radlake.local"


class SchemaRegistry(Component):
    name = "registry"
    java_major = 21

    @property
    def external(self) -> bool:
        return bool(self.settings.schema_registry_url)

    @property
    def address(self) -> str:
        """Base URL of the Confluent-compatible API (what confluent-kafka's SchemaRegistryClient takes)."""
        return registry_url(self.settings)

    @property
    def ports(self) -> list[int]:
        return [self.settings.schema_registry_port, self.settings.schema_registry_port + 1]

    @property
    def version(self) -> str:
        return "external" if self.external else f"apicurio {self.settings.apicurio_version}"

    @property
    def app_dir(self):
        return self.settings.cache_dir / f"apicurio-registry-{self.settings.apicurio_version}"

    def install(self) -> None:
        if (self.app_dir / "quarkus-run.jar").exists():
            return
        archive = fetch_maven_file(
            self.settings.cache_dir, "io.apicurio", "apicurio-registry-app", self.settings.apicurio_version,
            ext="tar.gz", classifier="all",
        )
        partial = self.app_dir.with_name(self.app_dir.name + ".part")
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        partial.rename(self.app_dir)

    @property
    def tls_dir(self):
        return self.home / "tls"

    def prepare(self) -> None:
        try:
            ensure_certificate(admin_client(self.settings), self.tls_dir, "registry", SERVER_NAME)
        except (VaultUnavailable, CertificateError) as err:
            raise StackError(f"registry: its certificate comes from Vault: {err}; start Vault first "
                             "(`radlake stack up vault registry`)") from err

    def command(self) -> tuple[list[str], dict[str, str]]:
        java = find_java_home(self.java_major, self.settings.java_home) / "bin" / "java"
        db = self.home / "db" / "registry"
        certificate, key = self.tls_dir / "registry.crt", self.tls_dir / "registry.key"
        argv = [
            str(java), "-Xms64m", "-Xmx384m", "-XX:+UseSerialGC",
            "-Dquarkus.http.host=127.0.0.1",
            f"-Dquarkus.http.ssl-port={self.settings.schema_registry_port}",
            "-Dquarkus.http.insecure-requests=disabled",
            f"-Dquarkus.http.ssl.certificate.files={certificate}",
            f"-Dquarkus.http.ssl.certificate.key-files={key}",
            # The management interface (health, metrics) would listen on 0.0.0.0:9000; keep it on loopback.
            "-Dquarkus.management.host=127.0.0.1",
            f"-Dquarkus.management.port={self.settings.schema_registry_port + 1}",
            f"-Dquarkus.management.ssl.certificate.files={certificate}",
            f"-Dquarkus.management.ssl.certificate.key-files={key}",
            f"-Dapicurio.datasource.url=jdbc:h2:file:{db}",
            *self._authorization(),
            "-Dquarkus.log.category.\"io.apicurio.registry.logging.audit\".level=WARN",
            "-Dquarkus.http.access-log.enabled=false",
            "-jar", str(self.app_dir / "quarkus-run.jar"),
        ]
        return argv, {}

    def _authorization(self) -> list[str]:
        """Quarkus OIDC against the platform realm (bearer tokens only, verified against the realm's keys) and
        Apicurio's role-based authorization: anonymous reads, every write to ``platform-admin``."""
        return [
            "-Dquarkus.oidc.tenant-enabled=true",
            "-Dquarkus.oidc.application-type=service",
            f"-Dquarkus.oidc.auth-server-url={issuer(self.settings)}",
            "-Dquarkus.oidc.client-id=radlake-registry",
            "-Dquarkus.oidc.tls.tls-configuration-name=identity-provider",
            f"-Dquarkus.tls.identity-provider.trust-store.pem.certs={keycloak_ca_file(self.settings)}",
            # Keycloak may start after the registry or restart under it: keep retrying the discovery.
            "-Dquarkus.oidc.connection-delay=30S",
            "-Dapicurio.auth.role-based-authorization=true",
            "-Dapicurio.auth.role-source=token",
            "-Dapicurio.auth.anonymous-read-access.enabled=true",
            "-Dapicurio.auth.authenticated-read-access.enabled=true",
            f"-Dapicurio.auth.roles.admin={PLATFORM_ADMIN}",
            f"-Dapicurio.auth.roles.developer={PLATFORM_ADMIN}",
            f"-Dapicurio.auth.roles.readonly={PLATFORM_ADMIN}",
        ]

    def responding(self) -> bool:
        return answers_200(f"{self.address}/subjects", None if self.external else ca_file(self.settings))
