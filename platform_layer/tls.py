"""The platform's certificates, issued by OpenBao's PKI secrets engine.

``radlake stack up`` makes a root CA (mount ``pki``, 10 years, its key never leaves OpenBao) and an
intermediate CA signed by it (mount ``pki_int``, 5 years), and a role :data:`SERVICE_ROLE` that issues
short-lived leaf certificates (RSA 2048, server and client use, names under ``radlake.local``, localhost and
IP addresses). Components get a leaf certificate from the administrator when they start, renewed when less
than a third of its life is left. Clients trust the chain in :func:`ca_file`.
"""

from __future__ import annotations

import datetime
import fcntl
from dataclasses import dataclass, field, replace
from pathlib import Path

import hvac
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from platform_layer.errors import PlatformError
from platform_layer.settings import Settings
from platform_layer.state import write_private
from platform_layer.transit import VAULT_ERRORS

PKI_ROOT_MOUNT, PKI_MOUNT = "pki", "pki_int"
SERVICE_ROLE = "radlake-service"
LEAF_TTL = "720h"


class CertificateError(PlatformError):
    """A certificate could not be issued or written; the message names which and why."""


def ca_file(settings: Settings) -> Path:
    """The platform CA chain (intermediate, then root) every client verifies servers against."""
    return settings.state_dir / "tls" / "ca.pem"


def vault_ca(settings: Settings) -> str | bool:
    """What verifies Vault's certificate (hvac's ``verify``): the platform CA for the stack's Vault (its
    certificate comes from its own PKI); for an external Vault the CA file configured, else the system's."""
    if settings.vault_addr:
        return settings.vault_ca_file or True
    return str(ca_file(settings))


@dataclass(frozen=True)
class IssuedCertificate:
    certificate: str
    ca_chain: str  # intermediate, then root
    private_key: str = field(repr=False)

    @property
    def keystore(self) -> str:
        """Private key (PKCS#8), the leaf and the intermediate: one PEM file, as Kafka and most servers take it."""
        return "\n".join(part.strip() for part in (self.private_key, self.certificate, self.ca_chain)) + "\n"


def issue(vault: hvac.Client, common_name: str, *, ip_sans: tuple[str, ...] = ("127.0.0.1",),
          alt_names: tuple[str, ...] = ("localhost",), ttl: str = LEAF_TTL) -> IssuedCertificate:
    try:
        answer = vault.secrets.pki.generate_certificate(
            SERVICE_ROLE, common_name, mount_point=PKI_MOUNT,
            extra_params={"ip_sans": ",".join(ip_sans), "alt_names": ",".join(alt_names), "ttl": ttl,
                          "private_key_format": "pkcs8"})["data"]
    except VAULT_ERRORS as err:
        raise CertificateError(f"cannot issue a certificate for {common_name}: {err}") from err
    chain = answer.get("ca_chain") or [answer["issuing_ca"]]
    return IssuedCertificate(answer["certificate"], "\n".join(c.strip() for c in chain) + "\n",
                             answer["private_key"])


@dataclass(frozen=True)
class CertificateFiles:
    """Where a service keeps its leaf certificate: ``certificate`` (leaf + chain), ``key`` (PKCS#8), and
    ``keystore`` (key, leaf and intermediate in one PEM, as Kafka takes it). All 0600. ``issued``: whether the
    call that returned them issued the certificate anew (a running service may have to reload it)."""

    certificate: Path
    key: Path
    keystore: Path
    issued: bool = field(default=False, compare=False)


def ensure_certificate(vault: hvac.Client, directory: Path, stem: str, common_name: str, *,
                       renew: bool = False, ip_sans: tuple[str, ...] = ("127.0.0.1",)) -> CertificateFiles:
    """``directory/<stem>.crt|.key|.pem`` for ``common_name``, issued anew when missing, past two thirds of
    its life, for other addresses than ``ip_sans``, or ``renew`` (under a lock: processes of the same service may
    start together)."""
    files = CertificateFiles(directory / f"{stem}.crt", directory / f"{stem}.key", directory / f"{stem}.pem")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    with open(directory / f".{stem}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (renew or needs_renewal(files.certificate) or certificate_ip_sans(files.certificate) != set(ip_sans)):
            return files
        issued = issue(vault, common_name, ip_sans=ip_sans)
        write_private(files.key, issued.private_key)
        write_private(files.keystore, issued.keystore)
        write_private(files.certificate, f"{issued.certificate.strip()}\n{issued.ca_chain}")
    return replace(files, issued=True)


def certificate_ip_sans(path: Path) -> set[str]:
    """The IP addresses the first certificate in ``path`` is for (none when it is missing or unreadable)."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return set()
    return {str(address) for address in names.get_values_for_type(x509.IPAddress)}


def write_pkcs12(files: CertificateFiles, target: Path, password: str, *, name: str) -> None:
    """``files``' key, leaf and chain as a PKCS#12 keystore (for Java services that take no PEM), 0600."""
    key = serialization.load_pem_private_key(files.key.read_bytes(), password=None)
    leaf, *chain = x509.load_pem_x509_certificates(files.certificate.read_bytes())
    blob = pkcs12.serialize_key_and_certificates(
        name.encode(), key, leaf, chain,  # type: ignore[arg-type]
        serialization.BestAvailableEncryption(password.encode()))
    write_private(target, blob)


def needs_renewal(path: Path, *, now: datetime.datetime | None = None) -> bool:
    """Whether the first certificate in ``path`` is missing, unreadable, or past two thirds of its life."""
    try:
        certificate = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError):
        return True
    start, end = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    now = now or datetime.datetime.now(datetime.timezone.utc)
    return now >= start + (end - start) * 2 / 3
