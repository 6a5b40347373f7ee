"""The admin console (``admin_console``): HTTPS on loopback, one Python process (``radlake console serve``).

``prepare`` issues its certificate from the platform CA (``<state>/console/tls``) and needs the realm's
``radlake-console`` client (made by Keycloak's realm set-up). It is healthy when ``/healthz`` answers 200 and an
anonymous page request is sent to Keycloak's login (302 to the realm's authorization endpoint).
"""

from __future__ import annotations

import ssl
from pathlib import Path

import httpx

from infra.component import Component, RestartedToRenew, radlake_process
from infra.errors import StackError
from platform_layer.endpoints import console_url
from platform_layer.errors import VaultUnavailable
from platform_layer.realm import CONSOLE_CLIENT, client_kv_path, issuer, read_client_record
from platform_layer.tls import ca_file
from platform_layer.vault import admin_client

SERVER_NAME = "console.radlake.local"


# A renewed certificate restarts it (RestartedToRenew): the sessions, kept in memory, end.
class Console(RestartedToRenew, Component):
    name = "console"
    server_name = SERVER_NAME

    @property
    def address(self) -> str:
        return console_url(self.settings)

    @property
    def ports(self) -> list[int]:
        return [self.settings.console_port]

    @property
    def version(self) -> str:
        return "radlake"

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    def prepare(self) -> None:
        self._certificate()
        try:
            client = read_client_record(admin_client(self.settings), client_kv_path(CONSOLE_CLIENT),
                                        self.settings.vault_kv_mount)
        except VaultUnavailable as err:
            raise StackError(f"console: Vault does not answer ({err}); `radlake stack up vault`") from err
        if client is None:
            raise StackError(f"console: the realm has no {CONSOLE_CLIENT} client yet; `radlake stack up keycloak` "
                             "sets the realm up")

    def command(self) -> tuple[list[str], dict[str, str]]:
        return radlake_process(self.settings, "console", "serve")

    def responding(self) -> bool:
        if not ca_file(self.settings).exists():
            return False
        try:
            context = ssl.create_default_context(cafile=str(ca_file(self.settings)))
            with httpx.Client(base_url=self.address, verify=context, timeout=5.0) as client:
                if client.get("/healthz").status_code != 200:
                    return False
                login = client.get("/")  # anonymous: sent to the realm's login, so it is radlake's console
                return login.status_code == 302 and login.headers.get("location", "").startswith(
                    issuer(self.settings))
        except (httpx.HTTPError, OSError, ssl.SSLError):
            return False
