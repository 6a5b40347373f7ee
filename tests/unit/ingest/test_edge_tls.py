"""Edge HTTPS without the stack: the PKCS#12 keystore NiFi's SSL context service reads, and the upload client
against a local HTTPS server: verified against the CA it is given, refused at once (no retries) otherwise."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from apps.provider import main as provider_cli
from nifi.edge.client import Uploader, plan, wait_until_listening
from nifi.edge.errors import UploadError
from nifi.providers import EDGE_NAME, ProviderError, bind_address, edge_ip_sans, edge_verification
from platform_layer.settings import Settings
from platform_layer.tls import CertificateFiles, ca_file, certificate_ip_sans, write_pkcs12
from radlake.synthetic import phi_dicom


def _certificate(subject: str, key, issuer: str, issuer_key, *, ca: bool, ips: tuple[str, ...] = ()):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
               .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=1)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ips:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(subject), *(x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips)]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> tuple[Path, CertificateFiles]:
    """A CA and an edge leaf for 127.0.0.1, written as ``ensure_certificate`` writes them."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key, leaf_key = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    ca = _certificate("test CA", ca_key, "test CA", ca_key, ca=True)
    leaf = _certificate(EDGE_NAME, leaf_key, "test CA", ca_key, ca=False, ips=("127.0.0.1",))
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    files = CertificateFiles(folder / "edges.crt", folder / "edges.key", folder / "edges.pem")
    files.certificate.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    files.key.write_bytes(leaf_key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return folder / "ca.pem", files


def test_the_keystore_holds_the_key_leaf_and_chain_and_is_private(pki, tmp_path):
    _, files = pki
    target = tmp_path / "edges-1.p12"
    write_pkcs12(files, target, "s3cret", name=EDGE_NAME)
    assert target.stat().st_mode & 0o777 == 0o600
    with pytest.raises(ValueError):
        pkcs12.load_key_and_certificates(target.read_bytes(), b"wrong")
    key, leaf, chain = pkcs12.load_key_and_certificates(target.read_bytes(), b"s3cret")
    [expected_leaf, expected_ca] = x509.load_pem_x509_certificates(files.certificate.read_bytes())
    assert leaf == expected_leaf and chain == [expected_ca]
    assert key is not None and key.public_key().public_numbers() == leaf.public_key().public_numbers()
    assert certificate_ip_sans(files.certificate) == {"127.0.0.1"}
    assert certificate_ip_sans(tmp_path / "missing.crt") == set()


class _Edge(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"status": "ok"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def https_edge(pki) -> Iterator[str]:
    _, files = pki
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Edge)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(files.certificate), str(files.key))
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_uploader_verifies_the_edge_against_the_ca_it_is_given(pki, https_edge, tmp_path):
    ca, _ = pki
    wait_until_listening(https_edge, 10, verify=ca)
    datasets, _ = phi_dicom.ct_series(1, study=3, size=16)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "one.dcm").write_bytes(phi_dicom.to_bytes(datasets[0]))
    uploader = Uploader(https_edge, "token", tmp_path / "j.jsonl", verify=ca, on_progress=lambda _: None)
    try:
        uploader.send_manifests(plan([tmp_path / "in"]), "0123456789abcdef")
    finally:
        uploader.close()
    assert (tmp_path / "j.jsonl").exists()  # the manifest's answer was journaled


def test_an_edge_the_client_does_not_trust_stops_the_upload_at_once(https_edge, tmp_path):
    started = time.monotonic()
    with pytest.raises(UploadError, match="does not verify"):
        wait_until_listening(https_edge, 60, verify=True)  # the system's trust store lacks the test CA
    datasets, _ = phi_dicom.ct_series(1, study=4, size=16)
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "one.dcm").write_bytes(phi_dicom.to_bytes(datasets[0]))
    uploader = Uploader(https_edge, "token", tmp_path / "j.jsonl", verify=True, attempts=8, backoff_s=5,
                        on_progress=lambda _: None)
    try:
        with pytest.raises(UploadError, match="does not verify"):
            uploader.upload(plan([tmp_path / "in"]), "0123456789abcdef")
    finally:
        uploader.close()
    assert time.monotonic() - started < 10  # not retried with back-off
    assert not (tmp_path / "j.jsonl").exists()


def test_clients_trust_the_platform_ca_when_there_is_one_and_providers_can_print_it(pki, tmp_path, monkeypatch,
                                                                                   capsys):
    ca, _ = pki
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(tmp_path))
    settings = Settings()
    assert provider_cli(["ca"]) == 1  # no platform CA yet
    capsys.readouterr()
    ca_file(settings).parent.mkdir(parents=True)
    ca_file(settings).write_bytes(ca.read_bytes())
    assert provider_cli(["ca"]) == 0
    assert capsys.readouterr().out == ca.read_text()
    trusted = edge_verification(settings).get_ca_certs()
    assert [dict(c["subject"][0])["commonName"] for c in trusted] == ["test CA"]
    assert edge_verification(settings, ca).get_ca_certs() == trusted


@pytest.mark.parametrize("value", ["127.0.0.1", "127.0.0.2", "10.1.2.3", "::1"])
def test_the_bind_address_is_one_ip_address(value):
    settings = Settings(bind_address=value)
    assert bind_address(settings) == value
    assert edge_ip_sans(settings) == tuple(dict.fromkeys(("127.0.0.1", value)))


@pytest.mark.parametrize(("value", "why"), [("0.0.0.0", "wildcard"), ("::", "wildcard"), ("edges.example.org", "not an IP"),
                                            ("", "not an IP"), ("127.0.0.1,10.0.0.1", "not an IP")])
def test_a_wildcard_or_a_name_as_bind_address_is_refused_in_one_line(value, why, tmp_path, monkeypatch, capsys):
    with pytest.raises(ProviderError, match=why):
        bind_address(Settings(bind_address=value))
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(tmp_path))
    monkeypatch.setenv("RADLAKE_BIND_ADDRESS", value)
    assert provider_cli(["add", "x", "--project", "p"]) == 1  # before Keycloak, Vault or NiFi is asked anything
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "RADLAKE_BIND_ADDRESS" in line and why in line
