"""radlake's realm in the identity provider: its clients, where their secrets live in Vault, and the clients
the commands use, built from :class:`Settings`.

Keycloak keeps two administrators, each a confidential client with a service account and a secret that
lives only in Keycloak and in Vault KV:

- :data:`MASTER_ADMIN_CLIENT` in realm ``master`` (Keycloak's ``admin`` role): used by ``radlake stack up``
  alone, to create and update the realm; secret at ``radlake/keycloak/admin``;
- :data:`REALM_ADMIN_CLIENT` in realm :data:`REALM` (``manage-users`` and ``manage-realm`` there, nothing
  in other realms): what ``radlake user``, ``radlake project`` and ``radlake provider add`` use; secret at
  ``radlake/keycloak/realm-admin``.

Each component has its own confidential client (:data:`SERVICE_CLIENTS`, secret at
``radlake/keycloak/clients/<client>``). One of them, :data:`PLATFORM_CLIENT`, is the platform's own principal
and holds the realm role ``platform-admin`` (what the schema registry asks of a writer); the others hold no
realm role. People log in through the public client :data:`CLI_CLIENT` with the device flow. NiFi's UI logs
people in through :data:`NIFI_CLIENT` (authorization code flow; secret at
``radlake/keycloak/clients/radlake-nifi``), whose tokens carry the person's realm roles in the claim
:data:`NIFI_GROUPS_CLAIM`, which NiFi reads as the person's groups. The notebooks hub logs people in through
:data:`NOTEBOOKS_CLIENT` the same way (secret at ``radlake/keycloak/clients/radlake-notebooks``), and so does
the admin console through :data:`CONSOLE_CLIENT` (with PKCE; secret at
``radlake/keycloak/clients/radlake-console``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import hvac

from platform_layer.endpoints import console_url, keycloak_url, nifi_url, notebooks_url
from platform_layer.errors import VaultUnavailable
from platform_layer.identity_provider import CredentialsRefused, KeycloakAdmin, OidcClient
from platform_layer.settings import Settings
from platform_layer.tls import ca_file
from platform_layer.transit import VAULT_ERRORS
from platform_layer.user_session import NotLoggedIn, UserSession
from platform_layer.user_session import load as load_session
from platform_layer.user_session import save as save_session
from platform_layer.vault import admin_client

REALM = "radlake"
CLI_CLIENT = "radlake-cli"
MASTER_ADMIN_CLIENT = "radlake-admin"
REALM_ADMIN_CLIENT = "radlake-realm-admin"
# Roles of Keycloak's realm-management client that the realm administrator holds in REALM.
REALM_ADMIN_ROLES = ("manage-users", "view-users", "query-users", "manage-realm", "view-realm")
NIFI_CLIENT = "radlake-nifi"
NIFI_GROUPS_CLAIM = "groups"
CONSOLE_CLIENT = "radlake-console"
NOTEBOOKS_CLIENT = "radlake-notebooks"
PLATFORM_CLIENT = "radlake-platform"
SERVICE_CLIENTS = (PLATFORM_CLIENT, "radlake-edge", "radlake-streams", "radlake-lake", "radlake-radiomics",
                   "radlake-inference", "radlake-dashboard-bridge")

MASTER_ADMIN_PATH = "radlake/keycloak/admin"
REALM_ADMIN_PATH = "radlake/keycloak/realm-admin"
BOOTSTRAP_PATH = "radlake/keycloak/bootstrap"


def client_kv_path(client_id: str) -> str:
    """KV v2 path of a component client's record: client_id, client_secret, issuer."""
    return f"radlake/keycloak/clients/{client_id}"


def read_client_record(vault: hvac.Client, path: str, mount: str) -> dict[str, str] | None:
    """A client record kept in Vault KV, or None when there is none."""
    try:
        answer = vault.secrets.kv.v2.read_secret_version(path=path, mount_point=mount, raise_on_deleted_version=True)
    except hvac.exceptions.InvalidPath:
        return None
    except VAULT_ERRORS as err:
        raise VaultUnavailable(f"cannot read {mount}/{path} from Vault: {err}") from err
    return {str(k): str(v) for k, v in answer["data"]["data"].items()}


def write_client_record(vault: hvac.Client, path: str, mount: str, record: dict[str, str]) -> None:
    """Store ``record`` unless Vault holds exactly that already (no new KV version on every start)."""
    if read_client_record(vault, path, mount) == record:
        return
    try:
        vault.secrets.kv.v2.create_or_update_secret(path=path, mount_point=mount, secret=record)
    except VAULT_ERRORS as err:
        raise VaultUnavailable(f"cannot write {mount}/{path} to Vault: {err}") from err


def delete_client_record(vault: hvac.Client, path: str, mount: str) -> None:
    try:
        vault.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point=mount)
    except hvac.exceptions.InvalidPath:
        return
    except VAULT_ERRORS as err:
        raise VaultUnavailable(f"cannot delete {mount}/{path} from Vault: {err}") from err


def nifi_callback_url(settings: Settings) -> str:
    """Where Keycloak sends a person back to NiFi after logging in (NiFi's OpenID Connect callback)."""
    return f"{nifi_url(settings)}/nifi-api/access/oidc/callback"


def console_callback_url(settings: Settings) -> str:
    """Where Keycloak sends a person back to the admin console after logging in."""
    return f"{console_url(settings)}/auth/callback"


def notebooks_callback_url(settings: Settings) -> str:
    """Where Keycloak sends a person back to the notebooks hub after logging in (OAuthenticator's callback)."""
    return f"{notebooks_url(settings)}/hub/oauth_callback"


def issuer(settings: Settings) -> str:
    return f"{keycloak_url(settings)}/realms/{REALM}"


def keycloak_ca_file(settings: Settings) -> Path:
    """The CA that verifies Keycloak: the platform CA, or the one configured for an external Keycloak."""
    return Path(settings.keycloak_ca_file) if settings.keycloak_ca_file else ca_file(settings)


def _hint(settings: Settings) -> str:
    return "is it up? `radlake stack up keycloak` starts it" if not settings.keycloak_url else ""


def realm_admin(settings: Settings) -> KeycloakAdmin:
    """The realm administrator, its secret read from Vault by the platform administrator."""
    record = read_client_record(admin_client(settings), REALM_ADMIN_PATH, settings.vault_kv_mount)
    if record is None:
        raise VaultUnavailable(f"vault has no {settings.vault_kv_mount}/{REALM_ADMIN_PATH}: keycloak's realm is not "
                               "set up; run `radlake stack up keycloak`")
    return KeycloakAdmin(keycloak_url(settings), ca_file=keycloak_ca_file(settings), client_id=record["client_id"],
                         client_secret=record["client_secret"], token_realm=REALM, hint=_hint(settings))


def service_client(settings: Settings, client_id: str, vault: hvac.Client | None = None) -> OidcClient:
    """A component's confidential client, its secret read from Vault (by ``vault``, default the administrator)."""
    record = read_client_record(vault or admin_client(settings), client_kv_path(client_id), settings.vault_kv_mount)
    if record is None:
        raise VaultUnavailable(f"vault has no credentials for keycloak client {client_id}; run `radlake stack up "
                               "keycloak`")
    return OidcClient(keycloak_url(settings), REALM, record["client_id"], ca_file=keycloak_ca_file(settings),
                      client_secret=record["client_secret"], hint=_hint(settings))


def cli_client(settings: Settings) -> OidcClient:
    """The public client people log in with (device flow)."""
    return OidcClient(keycloak_url(settings), REALM, CLI_CLIENT, ca_file=keycloak_ca_file(settings),
                      hint=_hint(settings))


def refreshed_session(settings: Settings) -> UserSession:
    """The stored session of ``radlake login``, its tokens refreshed now (and stored again): fails with
    :class:`NotLoggedIn` when there is none, it belongs to another realm, or it expired or was revoked."""
    session = load_session(settings.token_file)
    if session.issuer != issuer(settings):
        raise NotLoggedIn(f"the stored session is for {session.issuer}, not {issuer(settings)}; run `radlake login`")
    if session.refresh_expired():
        raise NotLoggedIn("the session has expired; run `radlake login`")
    with cli_client(settings) as client:
        try:
            tokens = client.refresh(session.refresh_token)
        except CredentialsRefused as err:
            raise NotLoggedIn("the session has expired or was revoked; run `radlake login`") from err
    session = UserSession.from_tokens(session.issuer, session.client_id, tokens)
    save_session(settings.token_file, session)
    return session


def ensure_realm_roles(settings: Settings, roles: Mapping[str, str]) -> list[str]:
    """Create the realm roles ``roles`` (name -> description) that do not exist yet; returns those created."""
    with realm_admin(settings) as admin:
        return [name for name, description in roles.items() if admin.ensure_realm_role(REALM, name, description)]
