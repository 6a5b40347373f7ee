"""Vault against the stack's OpenBao: no root token kept, an administrator that is not root, Transit HMACs
stable across a restart, edge tokens revoked with their provider."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import uuid

import httpx
import hvac
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apps import stack as stack_cli
from infra import stack
from nifi.edge.tokens import EdgeCredentials, delete_token, edge_vault_token, ensure_token, kv_path, rotate_token
from platform_layer.principals import ADMIN_POLICY, EDGE_TOKEN_ROLE, RUN_TOKEN_ROLE
from platform_layer.tls import ca_file, vault_ca
from platform_layer.vault import PRINCIPALS_VERSION, admin_client, transit_session
from radlake.deid.pseudonyms import transit_key_name

pytestmark = pytest.mark.integration


def _hmac(vault, key: str, value: bytes) -> str:
    return vault.secrets.transit.generate_hmac(
        name=key, hash_input=base64.b64encode(value).decode(), algorithm="sha2-256"
    )["data"]["hmac"]


def test_transit_hmac_is_stable_across_a_vault_restart(settings, vault):
    project = f"restart-{uuid.uuid4().hex[:8]}"
    with transit_session(settings, project) as spec:
        run = spec.client()
        run.secrets.transit.create_key(name=spec.key_name)
        before = _hmac(run, spec.key_name, b"PATIENT-0001")
        assert before.startswith("vault:v1:")
        assert _hmac(run, spec.key_name, b"PATIENT-0002") != before
        component = stack.component("vault", settings)
        component.kill()  # SIGKILL: the restart must recover from storage alone
        component.start()  # unseals with a threshold of the shares kept in the state dir
        assert _hmac(run, spec.key_name, b"PATIENT-0001") == before


def test_kv_v2_is_enabled(vault):
    path = f"radlake/tests/{uuid.uuid4().hex[:8]}"
    vault.secrets.kv.v2.create_or_update_secret(path=path, secret={"token": "abc"}, mount_point="secret")
    read = vault.secrets.kv.v2.read_secret_version(path=path, mount_point="secret", raise_on_deleted_version=True)
    assert read["data"]["data"] == {"token": "abc"}
    vault.secrets.kv.v2.delete_metadata_and_all_versions(path=path, mount_point="secret")


def test_unseal_shares_and_admin_credentials_are_private_and_apart(settings, vault):
    component = stack.component("vault", settings)
    record = json.loads(component.unseal_file.read_text())
    assert sorted(record) == ["shares", "threshold"]  # no token beside the shares
    assert (len(record["shares"]), record["threshold"]) == (5, 3)
    assert component.unseal_file.parent != component.admin_file.parent
    for path in (component.unseal_file, component.admin_file):
        assert path.stat().st_mode & 0o077 == 0
    assert not (component.home / "init.json").exists()


def test_no_root_token_lives_but_the_one_an_administrator_asks_for(settings, vault):
    component = stack.component("vault", settings)
    root = hvac.Client(url=vault.url, verify=vault_ca(settings), token=component.root_token())
    try:
        assert root.auth.token.lookup_self()["data"]["policies"] == ["root"]
        own = root.auth.token.lookup_self()["data"]["accessor"]
        accessors = root.list("auth/token/accessors")["data"]["keys"]
        roots = [a for a in accessors
                 if "root" in root.auth.token.lookup_accessor(a)["data"]["policies"]]
        assert roots == [own]  # the stack's initial root token was revoked after the set-up
    finally:
        root.auth.token.revoke_self()
    assert not root.is_authenticated()


def test_the_administrator_is_not_root(settings, vault):
    assert vault.auth.token.lookup_self()["data"]["policies"] == ["default", ADMIN_POLICY]
    project = f"admin-{uuid.uuid4().hex[:8]}"
    key = transit_key_name(project)
    vault.secrets.transit.create_key(name=key, mount_point=settings.vault_transit_mount)
    forbidden = [
        lambda: _hmac(vault, key, b"PATIENT-0001"),  # pseudonymising is the runs' and edges' business
        lambda: vault.secrets.transit.rotate_key(name=key),
        lambda: vault.secrets.transit.update_key_configuration(name=key, exportable=True),
        lambda: vault.secrets.transit.update_key_configuration(name=key, allow_plaintext_backup=True),
        lambda: vault.secrets.transit.update_key_configuration(name=key, min_decryption_version=2),
        lambda: vault.secrets.transit.trim_key(name=key, min_version=1),
        lambda: vault.secrets.transit.create_key(name=f"{key}-x", exportable=True),
        lambda: vault.sys.list_enabled_audit_devices(),
        lambda: vault.sys.disable_audit_device("file"),
        lambda: vault.sys.seal(),
        lambda: vault.sys.enable_secrets_engine("kv", path=f"x-{project}"),
        lambda: vault.sys.create_or_update_policy(ADMIN_POLICY, 'path "*" { capabilities = ["sudo"] }'),
        lambda: vault.auth.token.create(policies=[ADMIN_POLICY]),
        lambda: vault.auth.token.create(role_name=EDGE_TOKEN_ROLE, policies=["root"]),
        lambda: vault.auth.token.create(role_name=RUN_TOKEN_ROLE, policies=[ADMIN_POLICY]),
    ]
    for attempt in forbidden:
        with pytest.raises((hvac.exceptions.Forbidden, hvac.exceptions.InvalidRequest)):
            attempt()
    # the one destructive change it may make: destroying a project's key when the project is closed
    vault.secrets.transit.update_key_configuration(name=key, deletion_allowed=True)
    vault.secrets.transit.delete_key(name=key)
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.secrets.transit.read_key(name=key)


def test_root_token_command_prints_a_root_token(settings, vault, capsys):
    assert stack_cli.main(["root-token"]) == 0
    token = capsys.readouterr().out.strip()
    root = hvac.Client(url=vault.url, verify=vault_ca(settings), token=token)
    assert root.auth.token.lookup_self()["data"]["policies"] == ["root"]
    root.auth.token.revoke_self()
    assert token not in (settings.state_dir / "logs" / "commands.log").read_text()


def test_removing_a_provider_revokes_its_edge_tokens_at_once(vault, settings):
    provider = f"revoke-{uuid.uuid4().hex[:8]}"
    ensure_token(vault, provider, settings.vault_kv_mount)
    tokens = [edge_vault_token(vault, provider, "revoke-test", kv_mount=settings.vault_kv_mount,
                               transit_mount=settings.vault_transit_mount) for _ in range(2)]  # added twice
    edges = [hvac.Client(url=vault.url, verify=vault_ca(settings), token=token) for token in tokens]
    assert all(edge.secrets.kv.v2.read_secret_version(path=kv_path(provider), mount_point=settings.vault_kv_mount,
                                                      raise_on_deleted_version=True) for edge in edges)
    delete_token(vault, provider, settings.vault_kv_mount)
    for edge in edges:
        assert not edge.is_authenticated()


def test_a_rotated_endpoint_token_is_what_the_edge_checks_from_its_next_request(vault, settings):
    provider = f"rotate-{uuid.uuid4().hex[:8]}"
    old = ensure_token(vault, provider, settings.vault_kv_mount)
    edge = hvac.Client(url=vault.url, verify=vault_ca(settings), token=edge_vault_token(vault, provider, "rotate-test",
                                                            kv_mount=settings.vault_kv_mount,
                                                            transit_mount=settings.vault_transit_mount))
    credentials = EdgeCredentials(edge, provider, settings.vault_kv_mount, renew_every_s=0)  # renews every call
    assert credentials.endpoint_token() == old
    new = rotate_token(vault, provider, settings.vault_kv_mount)
    assert new != old and credentials.endpoint_token() == new
    assert edge.auth.token.lookup_self()["data"]["ttl"] > 0
    delete_token(vault, provider, settings.vault_kv_mount)


def test_principals_are_set_up_again_from_the_shares_when_they_change(settings, vault):
    component = stack.component("vault", settings)
    record = json.loads(component.admin_file.read_text())
    component.admin_file.write_text(json.dumps({**record, "principals_version": 0}))  # as after an upgrade
    component.stop()
    component.start()  # generates a root token from the shares, applies the principals, revokes it
    renewed = json.loads(component.admin_file.read_text())
    assert renewed["principals_version"] == PRINCIPALS_VERSION
    assert renewed["secret_id"] != record["secret_id"]  # the old administrator credential is destroyed
    with pytest.raises(hvac.exceptions.InvalidRequest):
        hvac.Client(url=vault.url, verify=vault_ca(settings)).auth.approle.login(role_id=record["role_id"], secret_id=record["secret_id"])
    assert admin_client(settings).auth.token.lookup_self()["data"]["policies"] == ["default", ADMIN_POLICY]


def _served_certificate(settings) -> x509.Certificate:
    port = stack.component("vault", settings).settings.vault_port
    return x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", port)).encode())


def test_vault_answers_https_only_with_a_certificate_from_its_own_pki(settings, vault):
    address = str(vault.url)
    assert address.startswith("https://")
    plain = httpx.get(f"{address.replace('https://', 'http://', 1)}/v1/sys/health", timeout=10)
    assert plain.status_code == 400 and "HTTPS" in plain.text  # no Vault answer over plain HTTP
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # the system's CAs only
        httpx.get(f"{address}/v1/sys/health", timeout=10)
    assert httpx.get(f"{address}/v1/sys/health", timeout=10,
                     verify=ssl.create_default_context(cafile=str(ca_file(settings)))).status_code == 200
    assert _served_certificate(settings).issuer.rfc4514_string() == "CN=radlake platform intermediate CA"


def test_a_foreign_certificate_is_replaced_through_the_bootstrap_at_the_next_start(settings, vault):
    component = stack.component("vault", settings)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone else's vault")])
    now = datetime.datetime.now(datetime.timezone.utc)
    foreign = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(1).not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
               .sign(key, hashes.SHA256()))
    (component.tls_dir / "vault.crt").write_bytes(foreign.public_bytes(serialization.Encoding.PEM))
    (component.tls_dir / "vault.key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    component.kill()
    component.start()
    served = _served_certificate(settings)
    assert served.issuer.rfc4514_string() == "CN=radlake platform intermediate CA"
    assert not component.bootstrap_ca.exists()
    assert admin_client(settings).is_authenticated()
