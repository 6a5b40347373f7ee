"""Keycloak against the stack's own: the realm set-up and its idempotence, component clients whose secrets live
in Vault, people and their roles in freshly issued tokens, ``radlake login`` end to end, HTTPS only, and
no secret in a process's arguments or environment.

A person's approval of a device code is played by ``keycloak_browser`` (httpx form posts through Keycloak's
own login pages); nothing in Keycloak is faked or bypassed.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import ssl
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import certifi
import httpx
import pytest
from cryptography import x509
from keycloak_browser import approve_device_code

from apps import project as project_cli
from apps import provider as provider_cli
from apps import user as user_cli
from infra import stack
from infra.components.keycloak import BOOTSTRAP_PREFIX, Keycloak
from platform_layer import audit
from platform_layer.device_authorization import poll_for_token
from platform_layer.endpoints import keycloak_management_url
from platform_layer.identity_provider import (
    CredentialsRefused,
    IdentityProviderUnavailable,
    KeycloakAdmin,
    OidcClient,
)
from platform_layer.realm import (
    BOOTSTRAP_PATH,
    CLI_CLIENT,
    MASTER_ADMIN_PATH,
    PLATFORM_CLIENT,
    REALM,
    REALM_ADMIN_CLIENT,
    REALM_ADMIN_PATH,
    SERVICE_CLIENTS,
    cli_client,
    client_kv_path,
    ensure_realm_roles,
    issuer,
    read_client_record,
    realm_admin,
    service_client,
)
from platform_layer.realm_roles import PLATFORM_ADMIN, provider_role
from platform_layer.settings import Settings
from platform_layer.state import open_entries
from platform_layer.tls import ca_file

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a-long-Passphrase-2026"


def _master(settings: Settings, vault) -> KeycloakAdmin:
    record = read_client_record(vault, MASTER_ADMIN_PATH, settings.vault_kv_mount)
    return KeycloakAdmin(stack.component("keycloak", settings).address, ca_file=ca_file(settings),
                         client_id=record["client_id"], client_secret=record["client_secret"])


def _kv_versions(settings: Settings, vault) -> dict[str, int]:
    paths = [MASTER_ADMIN_PATH, REALM_ADMIN_PATH, *(client_kv_path(c) for c in SERVICE_CLIENTS)]
    return {path: vault.secrets.kv.v2.read_secret_metadata(path=path, mount_point=settings.vault_kv_mount)
            ["data"]["current_version"] for path in paths}


def _new_user(capsys, *roles: str) -> tuple[str, str]:
    """A user made by ``radlake user add`` (with ``roles`` granted); returns its name and one-time password."""
    name = f"user-{uuid.uuid4().hex[:8]}"
    assert user_cli.main(["add", name, "--email", f"{name}@example.org", "--first", "Test"]) == 0
    password = capsys.readouterr().out.strip()
    for role in roles:
        assert user_cli.main(["grant", name, role]) == 0
    return name, password


def _new_project(capsys) -> str:
    name = f"proj-{uuid.uuid4().hex[:8]}"
    assert project_cli.main(["create", name]) == 0
    capsys.readouterr()
    return name


def _device_login(settings: Settings, name: str, password: str, new_password: str | None = NEW_PASSWORD):
    """Tokens for ``name`` from the CLI client's device flow, approved on Keycloak's pages."""
    with cli_client(settings) as client:
        authorization = client.start_device_authorization()
        approve_device_code(authorization.verification_uri_complete, name, password, ca_file=ca_file(settings),
                            new_password=new_password)
        return poll_for_token(client.device_token, authorization)


def test_the_realm_its_roles_and_clients_are_set_up_idempotently(settings, vault, keycloak):
    component = stack.component("keycloak", settings)
    before = _kv_versions(settings, vault)
    component.after_start()
    component.after_start()
    assert _kv_versions(settings, vault) == before  # no secret rewritten, no new KV version
    with _master(settings, vault) as master:
        realm = master.realm(REALM)
        assert realm["enabled"] and realm["sslRequired"] == "all" and not realm["registrationAllowed"]
        assert "platform-admin" in master.realm_roles(REALM)
        clients = {c["clientId"]: c for c in master.clients(REALM)}
        for client_id in (*SERVICE_CLIENTS, REALM_ADMIN_CLIENT):
            client = clients[client_id]
            assert not client["publicClient"] and client["serviceAccountsEnabled"]
            assert not client["standardFlowEnabled"] and not client["directAccessGrantsEnabled"]
        cli = clients[CLI_CLIENT]
        assert cli["publicClient"] and not cli["directAccessGrantsEnabled"] and not cli["standardFlowEnabled"]
        assert cli["attributes"]["oauth2.device.authorization.grant.enabled"] == "true"
        # the temporary bootstrap administrator is gone, in Keycloak and in Vault
        assert not [c for c in master.clients("master") if c["clientId"].startswith(BOOTSTRAP_PREFIX)]
    assert read_client_record(vault, BOOTSTRAP_PATH, settings.vault_kv_mount) is None
    assert component.healthy()


def test_each_component_client_gets_a_token_with_its_secret_from_vault(settings, vault, keycloak):
    for client_id in SERVICE_CLIENTS:
        with service_client(settings, client_id, vault) as client:
            token = client.client_credentials()
        assert (token.claims["azp"], token.claims["iss"]) == (client_id, issuer(settings))
        assert "refresh_token" not in token.claims
        # only the platform's own principal administers (e.g. registers schemas)
        assert (PLATFORM_ADMIN in token.claims["realm_access"]["roles"]) == (client_id == PLATFORM_CLIENT)


def test_a_wrong_client_secret_is_refused(settings, keycloak):
    token_url = f"{issuer(settings)}/protocol/openid-connect/token"
    answer = httpx.post(token_url, data={"grant_type": "client_credentials", "client_id": "radlake-lake",
                                         "client_secret": "not-the-secret"},
                        verify=ssl.create_default_context(cafile=str(ca_file(settings))), timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"] == "unauthorized_client"
    with OidcClient(keycloak, REALM, "radlake-lake", ca_file=ca_file(settings), client_secret="wrong") as client:
        with pytest.raises(CredentialsRefused):
            client.client_credentials()


def test_a_granted_role_is_in_the_next_token_and_a_revoked_one_is_not(settings, vault, keycloak, capsys):
    project = _new_project(capsys)
    reader = f"project:{project}:reader"
    name, password = _new_user(capsys, reader)
    try:
        tokens = _device_login(settings, name, password)  # the one-time password is changed on the way
        assert tokens.claims["preferred_username"] == name
        assert reader in tokens.claims["realm_access"]["roles"]
        assert user_cli.main(["grant", name, f"project:{project}:steward"]) == 0
        assert user_cli.main(["revoke", name, reader]) == 0
        with cli_client(settings) as client:
            roles = client.refresh(tokens.refresh_token).claims["realm_access"]["roles"]
        assert reader not in roles and f"project:{project}:steward" in roles
        assert user_cli.main(["revoke", name, reader]) == 0  # idempotent
        assert "did not hold" in capsys.readouterr().err
        # every change was audited before it took effect, the no-op too, and the chain holds
        trail = [(r.action, r.target, json.loads(r.details)) for r in audit.read(settings)
                 if r.target.startswith(f"user {name} ")]
        assert trail == [("role.grant", f"user {name} role {reader}", {"held_before": False}),
                         ("role.grant", f"user {name} role project:{project}:steward", {"held_before": False}),
                         ("role.revoke", f"user {name} role {reader}", {"held_before": True}),
                         ("role.revoke", f"user {name} role {reader}", {"held_before": False})]
        assert audit.verify(settings).intact
        # the one-time password is spent, and nobody logs in with a password grant through the CLI client
        with pytest.raises(AssertionError, match="refused the password"):
            _device_login(settings, name, password)
        direct = httpx.post(f"{issuer(settings)}/protocol/openid-connect/token",
                            data={"grant_type": "password", "client_id": CLI_CLIENT, "username": name,
                                  "password": NEW_PASSWORD},
                            verify=ssl.create_default_context(cafile=str(ca_file(settings))), timeout=10)
        assert direct.status_code in (400, 401) and "access_token" not in direct.json()
    finally:
        with _master(settings, vault) as master:
            master.delete_user(REALM, master.user(REALM, name)["id"])


def test_user_list_shows_radlake_roles(settings, vault, keycloak, capsys):
    project = _new_project(capsys)
    name, _ = _new_user(capsys, f"project:{project}:steward", "platform-admin")
    try:
        assert user_cli.main(["list"]) == 0
        line = next(row for row in capsys.readouterr().out.splitlines() if row.startswith(name))
        assert "platform-admin" in line and f"project:{project}:steward" in line
        assert "default-roles" not in line
    finally:
        with _master(settings, vault) as master:
            master.delete_user(REALM, master.user(REALM, name)["id"])


@pytest.mark.parametrize("bad", ["Lung", "lung.2024", "lung 2024", "lung/2024", "l", "-lung", "lung:reader",
                                 "2024-lung"])
def test_project_names_outside_the_rule_are_refused(keycloak, capsys, bad):
    assert project_cli.main(["create", "--", bad]) == 2  # "--": "-lung" is a name here, not an option
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a project name" in err[0]


def test_roles_must_exist_and_follow_the_grammar(settings, vault, keycloak, capsys):
    name, _ = _new_user(capsys)
    try:
        assert user_cli.main(["grant", name, "project:Lung:reader"]) == 2
        assert user_cli.main(["grant", name, "admin"]) == 2
        assert user_cli.main(["grant", name, "project:never-created:reader"]) == 1
        assert "radlake project create never-created" in capsys.readouterr().err
        provider = f"prov-{uuid.uuid4().hex[:8]}"
        assert user_cli.main(["grant", name, provider_role(provider)]) == 1
        assert f"radlake provider add {provider}" in capsys.readouterr().err
        ensure_realm_roles(settings, {provider_role(provider): "test"})  # what `radlake provider add` does first
        assert user_cli.main(["grant", name, provider_role(provider)]) == 0
        assert project_cli.main(["create", "lung-roles"]) == 0
        assert project_cli.main(["create", "lung-roles"]) == 0  # idempotent
        assert "existed already" in capsys.readouterr().err
        assert project_cli.main(["list"]) == 0
        assert "lung-roles\treader,steward" in capsys.readouterr().out.splitlines()
    finally:
        with _master(settings, vault) as master:
            master.delete_user(REALM, master.user(REALM, name)["id"])


def test_provider_add_makes_the_provider_role(settings, keycloak, nifi_url, capsys):
    provider = f"kc-{uuid.uuid4().hex[:8]}"
    topics = [f"--{kind}-topic=test.{provider}.{kind}" for kind in ("instance", "quarantine", "manifest")]
    assert provider_cli.main(["add", provider, "--project", "kc-provider-test", *topics]) == 0, capsys.readouterr().err
    try:
        with realm_admin(settings) as admin:
            assert admin.realm_role(REALM, provider_role(provider)) is not None
    finally:
        assert provider_cli.main(["remove", provider]) == 0


def test_radlake_login_device_flow_end_to_end(settings, vault, keycloak, capsys, tmp_path):
    project = _new_project(capsys)
    name, password = _new_user(capsys, f"project:{project}:reader")
    token_file = tmp_path / "config" / "radlake" / "token.json"
    env = {**os.environ, "RADLAKE_TOKEN_FILE": str(token_file)}

    def radlake(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "apps.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120, **kwargs)

    try:
        login = subprocess.Popen([sys.executable, "-m", "apps.cli", "login"], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
        try:
            instructions = login.stderr.readline() + login.stderr.readline()
            assert re.search(r"open https://\S+/device and enter the code [A-Z]{4}-[A-Z]{4}", instructions)
            uri = re.search(r"\(or open (\S+)\)", instructions).group(1)
            page = approve_device_code(uri, name, password, ca_file=ca_file(settings), new_password=NEW_PASSWORD)
            assert "Device Login Successful" in page
            out, err = login.communicate(timeout=60)
        finally:
            login.kill()
        assert login.returncode == 0, err
        assert out.startswith(f"logged in as {name} ({name}@example.org): project:{project}:reader;")
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        assert stat.S_IMODE(token_file.parent.stat().st_mode) == 0o700
        stored = json.loads(token_file.read_text())
        assert user_cli.main(["grant", name, "platform-admin"]) == 0
        status = radlake("login", "--status")
        assert status.returncode == 0 and "platform-admin" in status.stdout  # refreshed: the new role shows
        logout = radlake("logout")
        assert logout.returncode == 0 and not token_file.exists()
        with cli_client(settings) as client, pytest.raises(CredentialsRefused):
            client.refresh(stored["refresh_token"])  # revoked
        status = radlake("login", "--status")
        assert status.returncode == 1 and status.stderr.strip() == "radlake login: not logged in; run `radlake login`"
        assert radlake("logout").returncode == 0  # nothing to do
    finally:
        with _master(settings, vault) as master:
            master.delete_user(REALM, master.user(REALM, name)["id"])


def test_https_only_on_loopback(settings, keycloak):
    verify = ssl.create_default_context(cafile=str(ca_file(settings)))
    port = settings.keycloak_port
    for url in (f"http://127.0.0.1:{port}/realms/{REALM}", f"http://127.0.0.1:{port + 1}/health/ready"):
        with pytest.raises(httpx.TransportError):  # a TLS listener: plain HTTP gets no HTTP answer
            httpx.get(url, timeout=5)
    assert httpx.get(f"{keycloak_management_url(settings)}/health/ready", verify=verify, timeout=5).json()[
        "status"] == "UP"
    pid = stack.component("keycloak", settings).pid()
    listening = _listening_addresses([pid, *_children(pid)])
    assert {f"127.0.0.1:{port}", f"127.0.0.1:{port + 1}"} <= listening
    assert all(address.startswith("127.0.0.1:") for address in listening), listening


def test_a_client_that_does_not_trust_the_platform_ca_is_refused(settings, keycloak):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{keycloak}/realms/{REALM}", timeout=5)  # the public CAs (certifi) do not vouch for it
    with OidcClient(keycloak, REALM, CLI_CLIENT, ca_file=Path(certifi.where())) as client:
        with pytest.raises(IdentityProviderUnavailable, match="certificate verify failed"):
            client.start_device_authorization()
    certificate = x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", settings.keycloak_port))
                                                 .encode())
    assert "radlake platform intermediate CA" in certificate.issuer.rfc4514_string()


def test_no_secret_in_any_process_arguments_or_in_keycloak_environment(settings, vault, keycloak):
    records = [read_client_record(vault, path, settings.vault_kv_mount)
               for path in (MASTER_ADMIN_PATH, REALM_ADMIN_PATH, *(client_kv_path(c) for c in SERVICE_CLIENTS))]
    secrets = [record["client_secret"] for record in records]
    assert len(set(secrets)) == len(secrets) and all(len(s) >= 32 for s in secrets)
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            arguments = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        assert not any(secret in arguments for secret in secrets), f"a Keycloak secret in the arguments of {proc.name}"
    pid = stack.component("keycloak", settings).pid()
    for process in [pid, *_children(pid)]:
        environment = Path(f"/proc/{process}/environ").read_bytes().decode(errors="replace")
        assert not any(secret in environment for secret in secrets)
        assert "KC_BOOTSTRAP" not in environment and "RADLAKE_KC_BOOTSTRAP" not in environment
    config = (stack.component("keycloak", settings).home / "keycloak.conf").read_text()
    assert not re.search(r"secret|password", config, re.I)


def test_keycloak_state_is_private(settings, keycloak):
    home = stack.component("keycloak", settings).home
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert open_entries(home) == []
    assert (home / "data" / "keycloakdb.mv.db").exists() and (home / "data" / "transaction-logs").is_dir()


def test_a_stopped_keycloak_is_named_with_the_command_that_starts_it(keycloak, monkeypatch, capsys):
    monkeypatch.setenv("RADLAKE_KEYCLOAK_PORT", "1")  # nothing listens there
    assert project_cli.main(["list"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not answering" in err[0] and "`radlake stack up keycloak`" in err[0]


def test_an_external_keycloak_is_set_up_with_the_administrator_kept_in_vault(settings, vault, keycloak):
    external = Keycloak(Settings(keycloak_url=keycloak))
    status = external.start()  # neither started nor stopped: checked and set up
    assert status.healthy and status.detail == "external" and status.pid is None
    external.stop()
    assert stack.component("keycloak", settings).healthy()


def test_a_killed_keycloak_comes_back_with_its_realm_and_secrets(settings, vault, keycloak):
    component = stack.component("keycloak", settings)
    before = _kv_versions(settings, vault)
    component.kill()
    component.start()
    assert _kv_versions(settings, vault) == before
    with service_client(settings, "radlake-streams", vault) as client:
        assert client.client_credentials().claims["azp"] == "radlake-streams"


def test_a_refused_administrator_record_is_replaced_through_a_new_bootstrap(settings, vault, keycloak):
    """The lost-administrator path: Vault's record no longer works, so the next start bootstraps a temporary
    administrator offline (on the existing database) and makes a new lasting one."""
    component = stack.component("keycloak", settings)
    kv = settings.vault_kv_mount
    record = read_client_record(vault, MASTER_ADMIN_PATH, kv)
    vault.secrets.kv.v2.create_or_update_secret(path=MASTER_ADMIN_PATH, mount_point=kv,
                                                secret={**record, "client_secret": "not-the-secret"})
    with pytest.raises(Exception, match="bootstraps a new one"):
        component.after_start()
    assert read_client_record(vault, MASTER_ADMIN_PATH, kv) is None
    component.stop()
    component.start()
    renewed = read_client_record(vault, MASTER_ADMIN_PATH, kv)
    assert renewed["client_secret"] != record["client_secret"]  # regenerated: the old one is refused
    with KeycloakAdmin(keycloak, ca_file=ca_file(settings), client_id=record["client_id"],
                       client_secret=record["client_secret"]) as stale, pytest.raises(CredentialsRefused):
        stale.check()
    assert read_client_record(vault, BOOTSTRAP_PATH, kv) is None
    with _master(settings, vault) as master:
        assert not [c for c in master.clients("master") if c["clientId"].startswith(BOOTSTRAP_PREFIX)]
    with realm_admin(settings) as admin:
        assert "platform-admin" in admin.realm_roles(REALM)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in map(int, (task / "children").read_text().split()):
            found += [child, *_children(child)]
    return found


def _listening_addresses(pids: list[int]) -> set[str]:
    """host:port of every TCP socket in LISTEN state that one of ``pids`` holds."""
    inodes = set()
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = fd.readlink().as_posix()
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    addresses = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:
                continue
            host_hex, port_hex = fields[1].split(":")
            raw = bytes.fromhex(host_hex)  # 32-bit words in the host's (little-endian) order
            host = ipaddress.ip_address(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
            if isinstance(host, ipaddress.IPv6Address) and host.ipv4_mapped:
                host = host.ipv4_mapped
            addresses.add(f"{host}:{int(port_hex, 16)}")
    return addresses
