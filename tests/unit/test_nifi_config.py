"""NiFi without a running NiFi: the versioned flow definition and the generated configuration."""

from __future__ import annotations

import stat
from xml.etree import ElementTree

from infra.components.nifi import NO_PROVENANCE, NiFi
from infra.components.nifi_policies import Holders, policies
from nifi.deploy import definition_parameters, flow_path, load_definition, sensitive_parameters
from platform_layer.nifi_access import PLATFORM_IDENTITY
from platform_layer.realm import NIFI_CLIENT, NIFI_GROUPS_CLAIM
from platform_layer.realm_roles import PLATFORM_ADMIN
from platform_layer.settings import Settings
from platform_layer.tls import ca_file

OIDC_SECRET = "not-a-real-secret"


def test_smoke_flow_definition_declares_its_parameters_and_processors():
    definition = load_definition(flow_path("smoke_http_to_kafka"))
    assert set(definition_parameters(definition)) == {"listen_port", "kafka_bootstrap", "kafka_topic", "kafka_username",
                                                      "kafka_password", "kafka_ca_file"}
    assert sensitive_parameters(definition) == {"kafka_password"}
    types = {p["type"] for p in definition["flowContents"]["processors"]}
    assert types == {"org.apache.nifi.processors.standard.ListenHTTP", "PublishToKafka"}


def _written(tmp_path, **settings) -> tuple[NiFi, dict[str, str]]:
    nifi = NiFi(Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", **settings))
    nifi.home.mkdir(parents=True)
    nifi.write_configuration(OIDC_SECRET)
    props = dict(
        line.split("=", 1) for line in (nifi.conf_dir / "nifi.properties").read_text().splitlines() if "=" in line
    )
    return nifi, props


def test_nifi_properties_are_https_only_on_loopback_with_state_under_the_state_dir(tmp_path):
    nifi, props = _written(tmp_path, nifi_port=28080)
    assert (props["nifi.web.https.host"], props["nifi.web.https.port"]) == ("127.0.0.1", "28080")
    assert props["nifi.web.http.host"] == "" and props["nifi.web.http.port"] == ""  # plain HTTP off
    for key in ("nifi.flow.configuration.file", "nifi.flowfile.repository.directory",
                "nifi.content.repository.directory.default", "nifi.database.directory",
                "nifi.nar.working.directory", "nifi.security.keystore.certificate",
                "nifi.security.keystore.privateKey"):
        assert props[key].startswith(str(nifi.home)), key
    assert props["nifi.security.truststore.certificate"] == str(ca_file(nifi.settings))
    assert nifi.ports == [28080, 28180]
    assert nifi.address == "https://127.0.0.1:28080"
    # the archive would keep original (not yet de-identified) request bodies after their FlowFiles are done
    assert props["nifi.content.repository.archive.enabled"] == "false"


def test_no_provenance_event_is_kept_and_a_left_over_repository_is_removed(tmp_path):
    nifi = NiFi(Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache"))
    left_over = nifi.home / "provenance_repository"
    left_over.mkdir(parents=True)
    (left_over / "0.prov").write_bytes(b"http.headers.Authorization")
    nifi.write_configuration(OIDC_SECRET)
    props = dict(line.split("=", 1) for line in (nifi.conf_dir / "nifi.properties").read_text().splitlines())
    assert props["nifi.provenance.repository.implementation"] == NO_PROVENANCE
    assert props["nifi.nar.library.directory.radlake"] == str(nifi.radlake_nar_dir)
    assert not left_over.exists()


def test_nobody_is_anonymous_people_log_in_through_keycloak(tmp_path):
    nifi, props = _written(tmp_path, keycloak_port=28443)
    assert props["nifi.security.allow.anonymous.authentication"] == "false"
    assert props["nifi.security.user.login.identity.provider"] == ""  # no password logins of NiFi's own
    assert props["nifi.security.user.oidc.discovery.url"] == (
        "https://127.0.0.1:28443/realms/radlake/.well-known/openid-configuration")
    assert props["nifi.security.user.oidc.client.id"] == NIFI_CLIENT
    assert props["nifi.security.user.oidc.client.secret"] == OIDC_SECRET
    assert props["nifi.security.user.oidc.claim.groups"] == NIFI_GROUPS_CLAIM
    assert props["nifi.security.user.oidc.truststore.strategy"] == "NIFI"  # Keycloak is verified by the platform CA
    assert props["nifi.security.user.authorizer"] == "managed-authorizer"


def test_the_platform_certificate_is_the_initial_administrator(tmp_path):
    nifi, props = _written(tmp_path)
    authorizers = ElementTree.parse(props["nifi.authorizer.configuration.file"]).getroot()
    ids = {element.findtext("identifier") for element in authorizers}
    assert "managed-authorizer" in ids
    assert {p.get("name"): p.text for p in authorizers.iter("property")}["Initial Admin Identity"] == PLATFORM_IDENTITY
    assert PLATFORM_IDENTITY == "CN=nifi-admin.radlake.local"


def test_configuration_files_are_private_and_the_sensitive_props_key_is_kept(tmp_path):
    nifi, _ = _written(tmp_path)
    key = nifi.sensitive_key_file.read_text().strip()
    nifi.write_configuration(OIDC_SECRET)
    assert nifi.sensitive_key_file.read_text().strip() == key
    assert len(key) >= 12
    for path in (nifi.sensitive_key_file, nifi.conf_dir / "nifi.properties"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_people_never_hold_restricted_components_data_provenance_or_policies():
    described = policies("root-id")
    for (resource, action), holders in described.items():
        if resource.startswith(("/restricted-components", "/data", "/provenance", "/tenants", "/policies")):
            assert not holders.groups, (resource, action)
    assert described[("/process-groups/root-id", "write")].groups == {PLATFORM_ADMIN}
    assert described[("/flow", "read")].groups == {PLATFORM_ADMIN}
    # every restriction at once (execute-code among them) is nobody's; the platform holds the edges' two
    assert described[("/restricted-components", "write")] == Holders()
    granted = {r for (r, _), h in described.items() if r.startswith("/restricted-components/") and h.users}
    assert granted == {"/restricted-components/read-filesystem", "/restricted-components/write-filesystem"}


def test_a_configured_url_means_an_external_nifi():
    nifi = NiFi(Settings(nifi_url="https://nifi.example:8443/"))
    assert nifi.external and nifi.address == "https://nifi.example:8443"
