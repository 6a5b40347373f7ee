"""Keycloak, the platform's identity provider: the Quarkus distribution from Maven Central
(``org.keycloak:keycloak-quarkus-dist:<v>@tar.gz``) in production mode on 127.0.0.1.

The distribution is built once in the cache (``kc.sh build`` with :data:`BUILD_OPTIONS`) and started with
``start --optimized``. HTTPS only: a leaf certificate from the platform CA in OpenBao, renewed by ``stack up``
once two thirds of its life are gone (Keycloak reloads the files within the hour); HTTP is off; the health
endpoints are on the management interface (``keycloak_port + 1``, HTTPS as well). Database (H2 file), transaction
log and configuration live under ``<state>/keycloak``; the cache holds only the built distribution.

No secret is on a command line or in the server's environment. While Vault holds no working administrator
(first start, or a lost record), :meth:`Keycloak.prepare` runs ``kc.sh bootstrap-admin service`` offline:
a temporary admin client whose secret reaches that one command through its environment and waits in Vault
(``radlake/keycloak/bootstrap``) until :meth:`Keycloak.after_start` has made the lasting administrator
(``radlake-admin``, secret regenerated, in Vault); then the temporary client and its record are deleted.
``after_start`` also sets up the realm (:func:`set_up_realm`); both steps are idempotent.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import hvac

from infra.component import Component, ComponentStatus
from infra.downloads import fetch_maven_file
from infra.errors import StackError
from infra.process import answers_200
from platform_layer.endpoints import console_url, keycloak_management_url, keycloak_url, nifi_url, notebooks_url
from platform_layer.errors import IdentityProviderError, VaultUnavailable
from platform_layer.identity_provider import CredentialsRefused, KeycloakAdmin
from platform_layer.java import find_java_home
from platform_layer.realm import (
    BOOTSTRAP_PATH,
    CLI_CLIENT,
    CONSOLE_CLIENT,
    MASTER_ADMIN_CLIENT,
    MASTER_ADMIN_PATH,
    NIFI_CLIENT,
    NIFI_GROUPS_CLAIM,
    NOTEBOOKS_CLIENT,
    PLATFORM_CLIENT,
    REALM,
    REALM_ADMIN_CLIENT,
    REALM_ADMIN_PATH,
    REALM_ADMIN_ROLES,
    SERVICE_CLIENTS,
    client_kv_path,
    console_callback_url,
    delete_client_record,
    issuer,
    keycloak_ca_file,
    nifi_callback_url,
    notebooks_callback_url,
    read_client_record,
    write_client_record,
)
from platform_layer.realm_roles import PLATFORM_ADMIN
from platform_layer.settings import Settings
from platform_layer.tls import CertificateError, ensure_certificate
from platform_layer.vault import admin_client

SERVER_NAME = "keycloak.radlake.local"
BOOTSTRAP_PREFIX = "radlake-bootstrap-"
# Build-time options, baked into the cached distribution by `kc.sh build`.
BUILD_OPTIONS = ("--db=dev-file", "--health-enabled=true")

OPTIONAL_NAMES = ("firstName", "lastName")
REALM_SETTINGS: dict[str, Any] = {
    "enabled": True,
    "displayName": "radlake",
    "sslRequired": "all",  # no plain-HTTP request, even from loopback
    "registrationAllowed": False,
    "resetPasswordAllowed": False,  # no mail server: an administrator resets passwords
    "rememberMe": False,
    "loginWithEmailAllowed": True,
    "duplicateEmailsAllowed": False,
    "editUsernameAllowed": False,
    "bruteForceProtected": True,
    "passwordPolicy": "length(12) and notUsername and notEmail",
    "oauth2DeviceCodeLifespan": 600,
    "oauth2DevicePollingInterval": 5,
}


def confidential_client(client_id: str, description: str) -> dict[str, Any]:
    """A client that logs in with its own secret as its service account, and does nothing else."""
    return {"clientId": client_id, "name": client_id, "description": description, "enabled": True,
            "protocol": "openid-connect", "publicClient": False, "clientAuthenticatorType": "client-secret",
            "serviceAccountsEnabled": True, "standardFlowEnabled": False, "implicitFlowEnabled": False,
            "directAccessGrantsEnabled": False,
            "attributes": {"oauth2.device.authorization.grant.enabled": "false"}}


def device_flow_client(client_id: str, description: str) -> dict[str, Any]:
    """A public client for people at a terminal: the device authorization grant only (no password grant)."""
    return {"clientId": client_id, "name": client_id, "description": description, "enabled": True,
            "protocol": "openid-connect", "publicClient": True, "serviceAccountsEnabled": False,
            "standardFlowEnabled": False, "implicitFlowEnabled": False, "directAccessGrantsEnabled": False,
            "attributes": {"oauth2.device.authorization.grant.enabled": "true"}}


def nifi_login_client(settings: Settings) -> dict[str, Any]:
    """NiFi's UI: a confidential client for the authorization code flow, back to NiFi's callback only. Its tokens
    carry the person's realm roles as the claim NiFi reads as groups (``platform-admin`` may edit the flow)."""
    roles_as_groups = {
        "name": "realm roles as NiFi groups", "protocol": "openid-connect",
        "protocolMapper": "oidc-usermodel-realm-role-mapper", "consentRequired": False,
        "config": {"claim.name": NIFI_GROUPS_CLAIM, "multivalued": "true", "jsonType.label": "String",
                   "id.token.claim": "true", "userinfo.token.claim": "true", "access.token.claim": "false",
                   "introspection.token.claim": "false"}}
    return {"clientId": NIFI_CLIENT, "name": NIFI_CLIENT, "description": "NiFi's UI (people log in to edit flows)",
            "enabled": True, "protocol": "openid-connect", "publicClient": False,
            "clientAuthenticatorType": "client-secret", "serviceAccountsEnabled": False, "standardFlowEnabled": True,
            "implicitFlowEnabled": False, "directAccessGrantsEnabled": False,
            "redirectUris": [nifi_callback_url(settings)], "webOrigins": [],
            "attributes": {"oauth2.device.authorization.grant.enabled": "false",
                           "post.logout.redirect.uris": f"{nifi_url(settings)}/nifi/*"},
            "protocolMappers": [roles_as_groups]}


def console_login_client(settings: Settings) -> dict[str, Any]:
    """The admin console: a confidential client for the authorization code flow with PKCE (S256 required), back
    to the console's callback only; its access tokens carry the realm roles as every client's do."""
    return {"clientId": CONSOLE_CLIENT, "name": CONSOLE_CLIENT, "description": "the admin console (platform-admin)",
            "enabled": True, "protocol": "openid-connect", "publicClient": False,
            "clientAuthenticatorType": "client-secret", "serviceAccountsEnabled": False, "standardFlowEnabled": True,
            "implicitFlowEnabled": False, "directAccessGrantsEnabled": False,
            "redirectUris": [console_callback_url(settings)], "webOrigins": [],
            "attributes": {"oauth2.device.authorization.grant.enabled": "false",
                           "pkce.code.challenge.method": "S256",
                           "post.logout.redirect.uris": f"{console_url(settings)}/*"}}


def notebooks_login_client(settings: Settings) -> dict[str, Any]:
    """The notebooks hub: a confidential client for the authorization code flow, back to the hub's callback only.
    The hub decides who may use it from the realm roles in the access token."""
    return {"clientId": NOTEBOOKS_CLIENT, "name": NOTEBOOKS_CLIENT,
            "description": "the notebooks hub (people log in to start their notebook server)",
            "enabled": True, "protocol": "openid-connect", "publicClient": False,
            "clientAuthenticatorType": "client-secret", "serviceAccountsEnabled": False, "standardFlowEnabled": True,
            "implicitFlowEnabled": False, "directAccessGrantsEnabled": False,
            "redirectUris": [notebooks_callback_url(settings)], "webOrigins": [],
            "attributes": {"oauth2.device.authorization.grant.enabled": "false", "pkce.code.challenge.method": "S256",
                           "post.logout.redirect.uris": f"{notebooks_url(settings)}/hub/*"}}


def set_up_realm(master: KeycloakAdmin, vault: hvac.Client, settings: Settings) -> None:
    """The realm, its ``platform-admin`` role, the realm administrator, one confidential client per component
    and the CLI's public client; every secret mirrored into Vault KV. Safe to run again: what exists is
    updated to this description, and Vault is written only when a secret changed."""
    kv = settings.vault_kv_mount
    master.ensure_realm(REALM, REALM_SETTINGS)
    _names_optional(master)
    master.ensure_realm_role(REALM, PLATFORM_ADMIN, "runs the radlake platform")
    realm_admin = master.ensure_client(REALM, confidential_client(
        REALM_ADMIN_CLIENT, "radlake's commands: users, project and provider roles (this realm only)"))
    management = master.client(REALM, "realm-management")
    if management is None:
        raise StackError(f"keycloak: realm {REALM} has no realm-management client")
    master.add_client_roles(REALM, master.service_account_user_id(REALM, realm_admin), str(management["id"]),
                            list(REALM_ADMIN_ROLES))
    _mirror_secret(master, vault, kv, REALM_ADMIN_PATH, realm_admin, REALM_ADMIN_CLIENT, settings)
    for client_id in SERVICE_CLIENTS:
        internal = master.ensure_client(REALM, confidential_client(client_id, f"the {client_id} component"))
        _mirror_secret(master, vault, kv, client_kv_path(client_id), internal, client_id, settings)
        if client_id == PLATFORM_CLIENT:
            master.add_realm_roles(REALM, master.service_account_user_id(REALM, internal), [PLATFORM_ADMIN])
    nifi = master.ensure_client(REALM, nifi_login_client(settings))
    _mirror_secret(master, vault, kv, client_kv_path(NIFI_CLIENT), nifi, NIFI_CLIENT, settings)
    console = master.ensure_client(REALM, console_login_client(settings))
    _mirror_secret(master, vault, kv, client_kv_path(CONSOLE_CLIENT), console, CONSOLE_CLIENT, settings)
    notebooks = master.ensure_client(REALM, notebooks_login_client(settings))
    _mirror_secret(master, vault, kv, client_kv_path(NOTEBOOKS_CLIENT), notebooks, NOTEBOOKS_CLIENT, settings)
    master.ensure_client(REALM, device_flow_client(CLI_CLIENT, "`radlake login` (device authorization grant)"))


def _names_optional(master: KeycloakAdmin) -> None:
    """First and last names are optional (``radlake user add`` asks for them only if given); Keycloak's default
    profile requires them and would stop a person at their first login to fill them in."""
    profile = master.user_profile(REALM)
    attributes = [dict(a) for a in profile.get("attributes", [])]
    changed = False
    for attribute in attributes:
        if attribute.get("name") in OPTIONAL_NAMES and "required" in attribute:
            del attribute["required"]
            changed = True
    if changed:
        master.set_user_profile(REALM, {**profile, "attributes": attributes})


def _mirror_secret(master: KeycloakAdmin, vault: hvac.Client, kv: str, path: str, internal_id: str,
                   client_id: str, settings: Settings) -> None:
    write_client_record(vault, path, kv, {"client_id": client_id,
                                          "client_secret": master.client_secret(REALM, internal_id),
                                          "issuer": issuer(settings)})


class Keycloak(Component):
    name = "keycloak"
    java_major = 21

    @property
    def external(self) -> bool:
        return bool(self.settings.keycloak_url)

    @property
    def address(self) -> str:
        return keycloak_url(self.settings)

    @property
    def ports(self) -> list[int]:
        return [self.settings.keycloak_port, self.settings.keycloak_port + 1]

    @property
    def version(self) -> str:
        return "external" if self.external else self.settings.keycloak_version

    @property
    def dist(self) -> Path:
        """The built distribution in the cache (shared by every state dir)."""
        return self.settings.cache_dir / f"keycloak-{self.settings.keycloak_version}"

    @property
    def config_file(self) -> Path:
        return self.home / "keycloak.conf"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def database(self) -> Path:
        return self.home / "data" / "keycloakdb"

    # --- install, configure, start -----------------------------------------------------------
    def install(self) -> None:
        marker = self.dist / ".radlake-build"
        signature = " ".join(BUILD_OPTIONS) + "\n"
        if marker.exists() and marker.read_text() == signature:
            return
        archive = fetch_maven_file(self.settings.cache_dir, "org.keycloak", "keycloak-quarkus-dist",
                                   self.settings.keycloak_version, ext="tar.gz")
        partial = self.dist.with_name(f".{self.dist.name}.part")
        shutil.rmtree(partial, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(partial, filter="data")
        built = partial / f"keycloak-{self.settings.keycloak_version}"
        self._run_kc(built, ["build", *BUILD_OPTIONS], {}, "kc.sh build (once per version: about a minute)")
        (built / marker.name).write_text(signature)
        shutil.rmtree(self.dist, ignore_errors=True)
        built.rename(self.dist)
        shutil.rmtree(partial, ignore_errors=True)

    def prepare(self) -> None:
        vault = self._vault()
        self._renew_certificate(vault)
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        s = self.settings
        options = {
            "db-url": f"jdbc:h2:file:{self.database};NON_KEYWORDS=VALUE",
            "cache": "local",  # one node: no cluster transport listening on the network
            "hostname": self.address,
            "http-enabled": "false",
            "http-host": "127.0.0.1",
            "https-port": str(s.keycloak_port),
            "https-certificate-file": str(self.tls_dir / "keycloak.crt"),
            "https-certificate-key-file": str(self.tls_dir / "keycloak.key"),
            "http-management-host": "127.0.0.1",
            "http-management-port": str(s.keycloak_port + 1),
            "log": "console",
            "log-console-color": "false",
        }
        self.config_file.write_text("".join(f"{k}={v}\n" for k, v in options.items()))
        if not self.database.with_suffix(".mv.db").exists() or read_client_record(
                vault, MASTER_ADMIN_PATH, s.vault_kv_mount) is None:
            self._bootstrap_admin(vault)

    def _system_properties(self) -> list[str]:
        # Narayana's transaction log would go to the distribution's data/ folder in the cache.
        return [f"-Dquarkus.transaction-manager.object-store.directory={self.home / 'data' / 'transaction-logs'}"]

    def _environment(self) -> dict[str, str]:
        java_home = find_java_home(self.java_major, self.settings.java_home)
        return {"JAVA_HOME": str(java_home), "JAVA_OPTS_KC_HEAP": f"-Xms64m -Xmx{self.settings.keycloak_heap}"}

    def command(self) -> tuple[list[str], dict[str, str]]:
        argv = [str(self.dist / "bin" / "kc.sh"), f"--config-file={self.config_file}", "start", "--optimized",
                *self._system_properties()]
        return argv, self._environment()

    def _run_kc(self, dist: Path, args: list[str], env: Mapping[str, str], what: str) -> None:
        """Run ``kc.sh ARGS`` to completion, its output appended to the component's log."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(dist / "bin" / "kc.sh"), *args]
        with open(self.log_file, "ab") as log:
            log.write(f"--- radlake: {what}\n".encode())
            log.flush()
            try:
                proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,  # noqa: S603
                                      env={**os.environ, **self._environment(), **env}, cwd=dist,
                                      timeout=self.settings.start_timeout_s)
            except subprocess.TimeoutExpired as err:
                raise StackError(f"keycloak: {what} did not finish in {self.settings.start_timeout_s:.0f}s; "
                                 f"see {self.log_file}") from err
        if proc.returncode != 0:
            tail = self.log_file.read_text(errors="replace").splitlines()[-8:]
            raise StackError(f"keycloak: {what} failed (exit {proc.returncode}); see {self.log_file}\n  "
                             + "\n  ".join(tail))

    def _bootstrap_admin(self, vault: hvac.Client) -> None:
        """A temporary admin client made offline; its record waits in Vault until after_start replaces it."""
        record = {"client_id": f"{BOOTSTRAP_PREFIX}{secrets.token_hex(4)}", "client_secret": secrets.token_urlsafe(32)}
        write_client_record(vault, BOOTSTRAP_PATH, self.settings.vault_kv_mount, record)
        self._run_kc(self.dist, [f"--config-file={self.config_file}", "bootstrap-admin", "service",
                                 f"--client-id={record['client_id']}", "--client-secret:env=RADLAKE_KC_BOOTSTRAP",
                                 "--no-prompt", "--optimized", *self._system_properties()],
                     {"RADLAKE_KC_BOOTSTRAP": record["client_secret"]}, "kc.sh bootstrap-admin service")

    def _vault(self) -> hvac.Client:
        try:
            return admin_client(self.settings)
        except VaultUnavailable as err:
            raise StackError(f"keycloak: its certificate and secrets come from Vault: {err}; start Vault first "
                             "(`radlake stack up vault keycloak`)") from err

    def renew_certificates(self) -> bool:
        return False if self.external else self._renew_certificate(self._vault())

    def _renew_certificate(self, vault: hvac.Client) -> bool:
        """Issued anew when due; a running Keycloak reloads the files within the hour
        (``https-certificates-reload-period``)."""
        try:
            return ensure_certificate(vault, self.tls_dir, "keycloak", SERVER_NAME).issued
        except CertificateError as err:
            raise StackError(f"keycloak: {err}") from err

    # --- health ------------------------------------------------------------------------------
    def responding(self) -> bool:
        """Keycloak is initialised and its database answers (``/health/ready`` on the management interface)."""
        if self.external:
            return answers_200(f"{self.address}/realms/master", keycloak_ca_file(self.settings))
        return answers_200(f"{keycloak_management_url(self.settings)}/health/ready", keycloak_ca_file(self.settings))

    def healthy(self) -> bool:
        """Ready, and the realm is set up (its OpenID configuration is published)."""
        return self.responding() and answers_200(f"{issuer(self.settings)}/.well-known/openid-configuration",
                                                     keycloak_ca_file(self.settings))

    # --- set-up ------------------------------------------------------------------------------
    def start(self) -> ComponentStatus:
        status = super().start()
        if not self.external:
            return status
        self._set_up(self._vault())  # the operator's Keycloak: set the realm up with the administrator in Vault
        return self.status()

    def after_start(self) -> None:
        if self.external:
            return
        vault = self._vault()
        self._renew_certificate(vault)  # a running Keycloak reloads the files within the hour
        self._set_up(vault)

    def _set_up(self, vault: hvac.Client) -> None:
        master = self._master_admin(vault)
        try:
            set_up_realm(master, vault, self.settings)
        except (IdentityProviderError, VaultUnavailable) as err:
            raise StackError(f"keycloak: setting up realm {REALM} failed: {err}") from err
        finally:
            master.close()

    def _admin_from(self, record: dict[str, str] | None) -> KeycloakAdmin | None:
        """The administrator of ``record`` when Keycloak accepts its secret, else None."""
        if record is None:
            return None
        admin = KeycloakAdmin(self.address, ca_file=keycloak_ca_file(self.settings), client_id=record["client_id"],
                              client_secret=record["client_secret"], token_realm=record.get("realm", "master"))
        try:
            admin.check()
        except CredentialsRefused:
            admin.close()
            return None
        except IdentityProviderError as err:
            admin.close()
            raise StackError(f"keycloak: {err}") from err
        return admin

    def _master_admin(self, vault: hvac.Client) -> KeycloakAdmin:
        kv = self.settings.vault_kv_mount
        admin = self._admin_from(read_client_record(vault, MASTER_ADMIN_PATH, kv))
        if admin is None and self.external:
            raise StackError(f"keycloak at {self.address}: Vault holds no administrator client it accepts; store "
                             f"one as {kv}/{MASTER_ADMIN_PATH} (client_id, client_secret, realm)")
        if admin is None:
            bootstrap = self._admin_from(read_client_record(vault, BOOTSTRAP_PATH, kv))
            if bootstrap is None:
                delete_client_record(vault, MASTER_ADMIN_PATH, kv)  # so that the next start bootstraps again
                raise StackError(f"keycloak refused the administrator client kept in Vault ({kv}/{MASTER_ADMIN_PATH}); "
                                 "the record is removed: `radlake stack down keycloak` then `radlake stack up "
                                 "keycloak` bootstraps a new one")
            try:
                admin = self._make_master_admin(bootstrap, vault)
            finally:
                bootstrap.close()
        try:  # also after an interrupted set-up: no temporary administrator outlives it
            for client in admin.clients("master"):
                if str(client.get("clientId", "")).startswith(BOOTSTRAP_PREFIX):
                    admin.delete_client("master", str(client["id"]))
        except IdentityProviderError as err:
            raise StackError(f"keycloak: cannot delete the temporary bootstrap administrator: {err}") from err
        delete_client_record(vault, BOOTSTRAP_PATH, kv)
        return admin

    def _make_master_admin(self, bootstrap: KeycloakAdmin, vault: hvac.Client) -> KeycloakAdmin:
        """The lasting administrator, made by the temporary one, with a fresh secret kept in Vault."""
        try:
            internal = bootstrap.ensure_client("master", confidential_client(
                MASTER_ADMIN_CLIENT, "radlake stack up: creates and updates the radlake realm"))
            bootstrap.add_realm_roles("master", bootstrap.service_account_user_id("master", internal), ["admin"])
            secret = bootstrap.regenerate_client_secret("master", internal)
        except IdentityProviderError as err:
            raise StackError(f"keycloak: cannot create the administrator client {MASTER_ADMIN_CLIENT}: {err}") from err
        write_client_record(vault, MASTER_ADMIN_PATH, self.settings.vault_kv_mount,
                            {"client_id": MASTER_ADMIN_CLIENT, "client_secret": secret, "realm": "master"})
        admin = self._admin_from({"client_id": MASTER_ADMIN_CLIENT, "client_secret": secret})
        if admin is None:
            raise StackError(f"keycloak refused the new administrator client {MASTER_ADMIN_CLIENT}")
        return admin
