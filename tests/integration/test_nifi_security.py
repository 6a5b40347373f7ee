"""NiFi's trust, against the stack's own NiFi, Keycloak and Vault: HTTPS only, nobody anonymous, the platform by
its client certificate, people through Keycloak with their rights from the ``platform-admin`` role, no restricted
component for people, and no secret on NiFi's command line or in its environment.

A person's login is played by ``keycloak_browser`` (httpx through NiFi's redirect to Keycloak's own login pages and
back to NiFi's callback); certificates from another CA are made here with ``cryptography``.
"""

from __future__ import annotations

import datetime
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path

import certifi
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from keycloak_browser import browser_trusting, log_in

from apps import user as user_cli
from infra import stack
from platform_layer.nifi_access import PLATFORM_COMMON_NAME, PLATFORM_IDENTITY, NiFiAccess
from platform_layer.realm import NIFI_CLIENT, REALM, client_kv_path, read_client_record, realm_admin
from platform_layer.realm_roles import PLATFORM_ADMIN
from platform_layer.tls import ensure_certificate

pytestmark = pytest.mark.integration

NEW_PASSWORD = "a-long-enough-passphrase-42"


def _refused(call) -> bool:
    """True when the request gets no answer over TLS, or an answer other than 200."""
    try:
        return call().status_code != 200
    except (httpx.TransportError, ssl.SSLError):
        return True


def _label(client: httpx.Client, root_id: str) -> httpx.Response:
    return client.post(f"/process-groups/{root_id}/labels",
                       json={"revision": {"version": 0}, "component": {"label": "trust test", "position": {"x": 0,
                                                                                                          "y": 0}}})


def _delete_label(client: httpx.Client, created: httpx.Response) -> None:
    entity = created.json()
    assert client.delete(f"/labels/{entity['id']}", params={"version": entity["revision"]["version"]}).status_code == 200


@pytest.fixture(scope="module")
def root_id(nifi: NiFiAccess) -> str:
    with nifi.client() as client:
        return client.get("/flow/process-groups/root").json()["processGroupFlow"]["id"]


def test_plain_http_is_refused(settings, nifi):
    assert nifi.url.startswith("https://")
    assert _refused(lambda: httpx.get(f"http://127.0.0.1:{settings.nifi_port}/nifi-api/flow/about", timeout=5))


def test_a_client_that_does_not_trust_the_platform_ca_is_refused(nifi):
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
        httpx.get(f"{nifi.api_url}/authentication/configuration",
                  verify=ssl.create_default_context(cafile=certifi.where()), timeout=5)


def test_nobody_is_anonymous_and_people_are_sent_to_keycloak(nifi, root_id):
    with httpx.Client(base_url=nifi.api_url, verify=ssl.create_default_context(cafile=str(nifi.ca_file)),
                      timeout=10) as stranger:
        assert stranger.get("/flow/current-user").status_code == 401
        assert stranger.get(f"/flow/process-groups/{root_id}").status_code == 401
        assert _label(stranger, root_id).status_code == 401
        login = stranger.get("/authentication/configuration").json()["authenticationConfiguration"]
    assert login["externalLoginRequired"] and login["loginSupported"]
    assert login["loginUri"] == f"{nifi.api_url}/oauth2/authorization/consumer"


def _foreign_certificate(directory: Path, common_name: str) -> tuple[Path, Path]:
    """A CA of nobody's and a client certificate it signed, for ``common_name``."""
    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key, key = rsa.generate_private_key(65537, 2048), rsa.generate_private_key(65537, 2048)
    ca = (x509.CertificateBuilder().subject_name(name("foreign CA")).issuer_name(name("foreign CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True).sign(ca_key, hashes.SHA256()))
    leaf = (x509.CertificateBuilder().subject_name(name(common_name)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=1)).sign(ca_key, hashes.SHA256()))
    certificate, key_file = directory / "foreign.crt", directory / "foreign.key"
    certificate.write_bytes(leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return certificate, key_file


def test_a_client_certificate_from_another_ca_is_refused_even_with_the_platform_name(nifi, tmp_path):
    certificate, key = _foreign_certificate(tmp_path, PLATFORM_COMMON_NAME)
    impostor = NiFiAccess(nifi.url, nifi.ca_file, certificate, key)

    def as_impostor() -> httpx.Response:
        with impostor.client(timeout_s=10) as client:
            return client.get("/flow/current-user")

    assert _refused(as_impostor)


def test_the_platform_certificate_reads_and_modifies_the_flow(nifi, root_id):
    with nifi.client() as client:
        me = client.get("/flow/current-user").json()
        assert me["identity"] == PLATFORM_IDENTITY and not me["anonymous"]
        assert client.get(f"/flow/process-groups/{root_id}").status_code == 200
        created = _label(client, root_id)
        assert created.status_code == 201, created.text
        _delete_label(client, created)


@pytest.fixture
def certificate_user(nifi, vault, tmp_path) -> Iterator[tuple[NiFiAccess, str, str]]:
    """A person known to NiFi by a certificate of the platform CA (no group yet): their access, NiFi's id for them
    and their identity; removed afterwards."""
    common_name = f"nifi-person-{uuid.uuid4().hex[:8]}.radlake.local"
    files = ensure_certificate(vault, tmp_path, "person", common_name)
    with nifi.client() as client:
        created = client.post("/tenants/users", json={"revision": {"version": 0},
                                                      "component": {"identity": f"CN={common_name}"}})
        assert created.status_code == 201, created.text
        try:
            yield (NiFiAccess(nifi.url, nifi.ca_file, files.certificate, files.key), created.json()["id"],
                   f"CN={common_name}")
        finally:
            user = client.get(f"/tenants/users/{created.json()['id']}").json()
            client.delete(f"/tenants/users/{user['id']}", params={"version": user["revision"]["version"]})


def _set_group_members(client: httpx.Client, group_name: str, change) -> None:
    group = next(g for g in client.get("/tenants/user-groups").json()["userGroups"]
                 if g["component"]["identity"] == group_name)
    members = change({u["id"] for u in group["component"]["users"]})
    answer = client.put(f"/tenants/user-groups/{group['id']}", json={
        "revision": group["revision"],
        "component": {"id": group["id"], "identity": group_name, "users": [{"id": m} for m in members]}})
    assert answer.status_code == 200, answer.text


def test_the_platform_admin_group_edits_the_flow_but_adds_no_restricted_component(nifi, root_id, certificate_user):
    person, user_id, identity = certificate_user
    with person.client() as as_person:
        # let in (403, not 401), but in no group: no right at all
        assert as_person.get("/flow/current-user").status_code == 403
        assert as_person.get(f"/flow/process-groups/{root_id}").status_code == 403
        with nifi.client() as platform:
            _set_group_members(platform, PLATFORM_ADMIN, lambda members: members | {user_id})
            try:
                assert as_person.get("/flow/current-user").json()["identity"] == identity
                assert as_person.get(f"/flow/process-groups/{root_id}").status_code == 200
                created = _label(as_person, root_id)
                assert created.status_code == 201, created.text
                _delete_label(as_person, created)
                command = as_person.post(f"/process-groups/{root_id}/processors", json={
                    "revision": {"version": 0},
                    "component": {"type": "org.apache.nifi.processors.standard.ExecuteStreamCommand",
                                  "position": {"x": 0, "y": 0}}})
                assert command.status_code == 403, command.text  # execute-code is nobody's
                assert as_person.get("/tenants/users").status_code == 403
                assert as_person.get("/policies/read/flow").status_code == 403
                assert as_person.get("/provenance/search-options").status_code == 403
            finally:
                _set_group_members(platform, PLATFORM_ADMIN, lambda members: members - {user_id})


@pytest.fixture
def person(settings, keycloak, capsys) -> Iterator[str]:
    """A person in Keycloak (``radlake user add``) with a one-time password; deleted afterwards."""
    name = f"nifi-{uuid.uuid4().hex[:8]}"
    assert user_cli.main(["add", name, "--email", f"{name}@example.org"]) == 0
    password = capsys.readouterr().out.strip()
    try:
        yield name, password
    finally:
        with realm_admin(settings) as admin:
            admin.delete_user(REALM, admin.user(REALM, name)["id"])


@pytest.mark.parametrize("platform_admin", [False, True], ids=["without-platform-admin", "with-platform-admin"])
def test_a_person_logs_in_through_keycloak_and_platform_admin_decides(nifi, root_id, person, platform_admin):
    name, password = person
    if platform_admin:
        assert user_cli.main(["grant", name, PLATFORM_ADMIN]) == 0
    with browser_trusting(nifi.ca_file) as browser:
        landing = log_in(browser, f"{nifi.api_url}/oauth2/authorization/consumer", name, password,
                         new_password=NEW_PASSWORD)
        assert landing.status_code == 200 and landing.url.path.startswith("/nifi")
        me = browser.get(f"{nifi.api_url}/flow/current-user")  # 403, not 401: logged in, without rights
        assert me.status_code == (200 if platform_admin else 403), me.text
        if platform_admin:
            assert me.json()["identity"] == name
        assert browser.get(f"{nifi.api_url}/flow/process-groups/{root_id}").status_code == (
            200 if platform_admin else 403)
        assert browser.get(f"{nifi.api_url}/tenants/users").status_code == 403


def test_no_secret_on_nifi_command_line_or_in_its_environment(settings, nifi, vault):
    component = stack.component("nifi", settings)
    pid = component.pid()
    assert pid is not None
    secrets = [read_client_record(vault, client_kv_path(NIFI_CLIENT), settings.vault_kv_mount)["client_secret"],
               component.sensitive_key_file.read_text().strip()]
    seen = Path(f"/proc/{pid}/cmdline").read_bytes() + Path(f"/proc/{pid}/environ").read_bytes()
    leaked = [n for n, secret in enumerate(secrets) if secret.encode() in seen]  # positions only: no secret in a report
    assert not leaked, f"secrets #{leaked} on NiFi's command line or in its environment"
