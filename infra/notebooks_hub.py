"""JupyterHub's configuration for radlake's notebooks, loaded by the hub process itself (its generated
``jupyterhub_config.py`` calls :func:`configure`).

People log in through Keycloak (:data:`~platform_layer.realm.NOTEBOOKS_CLIENT`, authorization code flow); the
hub admits those holding ``platform-admin`` or a project's reader or steward role. Each person's notebook server
and kernels run as an OS user of their own (``rlnb-<name>``, created on their first spawn), whose environment
holds no ``RADLAKE_*`` secret and no Vault token: only their own access token, in a 0600 file of their home,
renewed through the hub (:mod:`platform_layer.access_token_file`). The hub keeps the refresh token, encrypted.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from jupyterhub.spawner import LocalProcessSpawner, set_user_setuid
from oauthenticator.generic import GenericOAuthenticator
from tornado.httpclient import HTTPClientError

from infra.notebooks_host import admitted, kernel_python, os_user, proxy_command
from platform_layer.access_token_file import RENEW_MARGIN_S, AccessTokenRecord
from platform_layer.access_token_file import save as save_token
from platform_layer.endpoints import notebooks_url
from platform_layer.identity_provider import claims
from platform_layer.realm import (
    NOTEBOOKS_CLIENT,
    client_kv_path,
    issuer,
    keycloak_ca_file,
    notebooks_callback_url,
    read_client_record,
)
from platform_layer.settings import Settings, get_settings
from platform_layer.tls import ca_file
from platform_layer.vault import admin_client


def _token_roles(access_token: str) -> list[str]:
    return list(claims(access_token).get("realm_access", {}).get("roles", []))


class RadlakeAuthenticator(GenericOAuthenticator):
    """Keycloak's realm ``radlake``, admitting by realm role; tokens refreshed before they expire."""

    async def check_allowed(self, username: str, auth_model: dict[str, Any] | None) -> bool:
        state = (auth_model or {}).get("auth_state") or {}
        return admitted(_token_roles(state.get("access_token", "")))

    async def refresh_user(self, user: Any, handler: Any = None, **kwargs: Any) -> Any:
        """Nothing to do while the access token has more than twice the kernels' renewal margin left; else a
        refresh-token grant (a person whose session ended, or who lost every admitting role, logs in again)."""
        auth_state = await user.get_auth_state()
        if not auth_state or not auth_state.get("access_token"):
            return False
        if float(claims(auth_state["access_token"]).get("exp", 0)) - 2 * RENEW_MARGIN_S > time.time():
            return True
        refresh_token = auth_state.get("refresh_token")
        if not refresh_token:
            return False
        try:
            token_info = await self.get_token_info(handler, self.build_refresh_token_request_params(refresh_token))
        except HTTPClientError as err:
            self.log.info("refreshing %s's tokens failed (%s): a new login is needed", user.name, err.code)
            return False
        token_info.setdefault("refresh_token", refresh_token)
        auth_model = await self._token_to_auth_model(token_info)
        if not admitted(_token_roles(auth_model["auth_state"].get("access_token", ""))):
            return False
        return auth_model


class RadlakeSpawner(LocalProcessSpawner):
    """A person's notebook server as their own OS user, in the hub's process group (``stack down`` stops it)."""

    @property
    def os_user(self) -> str:
        return os_user(self.user.name)

    def make_preexec_fn(self, name: str) -> Any:
        return set_user_setuid(os_user(name))

    def user_env(self, env: dict[str, str]) -> dict[str, str]:
        account = pwd.getpwnam(self.os_user)
        env.update(USER=self.os_user, HOME=account.pw_dir, SHELL="/bin/sh")
        return env


def _ensure_os_user(name: str, home_base: Path) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    home_base.mkdir(parents=True, exist_ok=True)
    home_base.chmod(0o755)
    try:
        subprocess.run(["useradd", "--system", "--create-home", "--home-dir", str(home_base / name),  # noqa: S603,S607
                        "--shell", "/usr/sbin/nologin", "--user-group", name], check=True, capture_output=True,
                       text=True)
    except (OSError, subprocess.CalledProcessError) as err:
        raise RuntimeError(f"cannot create the notebook user {name}: {getattr(err, 'stderr', '') or err}") from err
    return pwd.getpwnam(name)


def _own(path: Path, account: pwd.struct_passwd) -> None:
    os.chown(path, account.pw_uid, account.pw_gid)


def pre_spawn(spawner: RadlakeSpawner, settings: Settings) -> Any:
    """Create the person's OS user, and give their home what a kernel needs to read the lake: the platform CA and
    their own access token (0600, theirs); nothing else of the platform's."""

    async def hook() -> None:
        account = _ensure_os_user(spawner.os_user, settings.notebooks_home_dir)
        home = Path(account.pw_dir)
        home.chmod(0o700)
        kernel_state = home / ".radlake"
        (kernel_state / "tls").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ca_file(settings), kernel_state / "tls" / "ca.pem")
        auth_state = await spawner.user.get_auth_state() or {}
        token_file = kernel_state / "access-token.json"
        renew_url = f"{notebooks_url(settings)}/hub/api/users/{spawner.user.name}"
        save_token(token_file, AccessTokenRecord.for_token(auth_state.get("access_token", ""), renew_url,
                                                           spawner.api_token or ""))
        for path in (kernel_state, kernel_state / "tls", kernel_state / "tls" / "ca.pem", token_file):
            _own(path, account)
        spawner.popen_kwargs = {"start_new_session": False, "cwd": str(home)}
        spawner.environment = {
            "RADLAKE_STATE_DIR": str(kernel_state),
            "RADLAKE_ACCESS_TOKEN_FILE": str(token_file),
            "RADLAKE_GATEWAY_PORT": str(settings.gateway_port),
            "RADLAKE_KEYCLOAK_PORT": str(settings.keycloak_port),
            "PATH": os.pathsep.join([str(kernel_python(settings).parent), "/usr/local/bin", "/usr/bin", "/bin"]),
            # JupyterLab's assets and kernel specs, when the server runs from the runtime venv
            "JUPYTER_PATH": str(Path(sys.prefix) / "share" / "jupyter"),
            "JUPYTERLAB_DIR": str(Path(sys.prefix) / "share" / "jupyter" / "lab"),
        }

    return hook()


def configure(c: Any, settings: Settings | None = None) -> None:
    """Fill JupyterHub's config object ``c``; the client secret is read from Vault now and kept in memory only."""
    settings = settings or get_settings()
    home = settings.state_dir / "notebooks"
    record = read_client_record(admin_client(settings), client_kv_path(NOTEBOOKS_CLIENT), settings.vault_kv_mount)
    if record is None:
        raise SystemExit(f"vault has no credentials for keycloak client {NOTEBOOKS_CLIENT}; run `radlake stack up "
                         "keycloak`")
    realm = issuer(settings)

    c.JupyterHub.bind_url = f"{notebooks_url(settings)}/"
    c.JupyterHub.hub_bind_url = f"http://127.0.0.1:{settings.notebooks_hub_port}"
    c.JupyterHub.ssl_cert = str(home / "tls" / "notebooks.crt")
    c.JupyterHub.ssl_key = str(home / "tls" / "notebooks.key")
    c.JupyterHub.db_url = f"sqlite:///{home / 'jupyterhub.sqlite'}"
    c.JupyterHub.cookie_secret_file = str(home / "cookie_secret")
    c.JupyterHub.pid_file = str(home / "jupyterhub.pid")
    c.JupyterHub.cleanup_servers = True
    c.JupyterHub.cleanup_proxy = True
    c.ConfigurableHTTPProxy.command = [str(proxy_command(settings))]
    c.ConfigurableHTTPProxy.api_url = f"http://127.0.0.1:{settings.notebooks_proxy_api_port}"
    c.ConfigurableHTTPProxy.pid_file = str(home / "proxy.pid")
    c.CryptKeeper.keys = [(home / "crypt_key").read_text().strip().encode()]

    c.JupyterHub.authenticator_class = RadlakeAuthenticator
    c.GenericOAuthenticator.client_id = record["client_id"]
    c.GenericOAuthenticator.client_secret = record["client_secret"]
    c.GenericOAuthenticator.authorize_url = f"{realm}/protocol/openid-connect/auth"
    c.GenericOAuthenticator.token_url = f"{realm}/protocol/openid-connect/token"
    c.GenericOAuthenticator.userdata_url = f"{realm}/protocol/openid-connect/userinfo"
    c.GenericOAuthenticator.oauth_callback_url = notebooks_callback_url(settings)
    c.GenericOAuthenticator.login_service = "radlake (Keycloak)"
    c.GenericOAuthenticator.scope = ["openid", "profile", "email"]
    c.GenericOAuthenticator.username_claim = "preferred_username"
    c.GenericOAuthenticator.http_request_kwargs = {"ca_certs": str(keycloak_ca_file(settings))}
    c.GenericOAuthenticator.enable_auth_state = True
    c.GenericOAuthenticator.auth_refresh_age = 30
    c.GenericOAuthenticator.refresh_pre_spawn = True
    c.GenericOAuthenticator.allow_all = False

    # Each person may read their own auth state (their access token), so a kernel renews its token with its
    # server's own hub token.
    c.JupyterHub.load_roles = [{"name": "user", "scopes": ["self", "admin:auth_state!user"]}]
    c.JupyterHub.spawner_class = RadlakeSpawner
    c.Spawner.cmd = [str(kernel_python(settings)), "-m", "jupyterhub.singleuser"]
    c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", "read:users!user",
                                     "admin:auth_state!user"]
    c.Spawner.env_keep = ["PATH", "PYTHONPATH", "LANG", "LC_ALL"]
    c.Spawner.default_url = "/lab"
    c.Spawner.notebook_dir = "~"
    c.Spawner.start_timeout = 180
    c.Spawner.http_timeout = 180
    c.Spawner.pre_spawn_hook = lambda spawner: pre_spawn(spawner, settings)
