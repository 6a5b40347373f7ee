"""The versioned edge flow: generated file up to date, every relationship routed or deliberately ended,
back-pressure on every queue, the Vault token and the keystore password sensitive parameters, HTTPS only."""

from __future__ import annotations

import json

from nifi.deploy import definition_parameters, flow_path, sensitive_parameters
from nifi.flows.build_provider_edge import definition
from nifi.providers import NAME, Edge, choose_port
from platform_layer.settings import Settings

RELATIONSHIPS = {
    "HandleHttpRequest": {"success"}, "PutFile": {"success", "failure"}, "IngestDicom": {"success", "failure", "original"},
    "HandleHttpResponse": {"success", "failure"}, "LogAttribute": {"success"}, "ListFile": {"success"},
}
# Ended on purpose (docs/ingestion.md): delivered answers, logged lines, the request after its answer was forked.
ENDED = {("HandleHttpResponse", "success"), ("LogAttribute", "success"), ("IngestDicom", "original")}


def test_committed_definition_is_the_generated_one():
    assert json.loads(flow_path("provider_edge").read_text()) == definition()


def test_every_relationship_is_connected_or_deliberately_ended():
    contents = definition()["flowContents"]
    routed: dict[str, set[str]] = {}
    for connection in contents["connections"]:
        routed.setdefault(connection["source"]["id"], set()).update(connection["selectedRelationships"])
        assert connection["backPressureObjectThreshold"] > 0 and connection["backPressureDataSizeThreshold"]
        assert connection["flowFileExpiration"] == "0 sec"  # nothing ages out of a queue
    for processor in contents["processors"]:
        kind = processor["type"].rsplit(".", 1)[-1]
        ended = set(processor["autoTerminatedRelationships"])
        assert ended <= {r for k, r in ENDED if k == kind}, (processor["name"], ended)
        assert routed.get(processor["identifier"], set()) | ended == RELATIONSHIPS[kind], processor["name"]


def test_vault_token_is_sensitive_and_endpoint_is_the_bind_address_loopback_by_default():
    the_definition = definition()
    assert sensitive_parameters(the_definition) == {"vault_token", "edge_keystore_password"}
    receive = [p for p in the_definition["flowContents"]["processors"] if p["type"].endswith("HandleHttpRequest")][0]
    assert receive["properties"]["Hostname"] == "#{bind_address}"
    assert definition_parameters(the_definition)["bind_address"] == "127.0.0.1" == Settings().bind_address


def test_the_endpoint_speaks_https_with_the_edges_keystore_and_no_client_certificate():
    contents = definition()["flowContents"]
    [receive] = [p for p in contents["processors"] if p["type"].endswith("HandleHttpRequest")]
    services = {s["identifier"]: s for s in contents["controllerServices"]}
    tls = services[receive["properties"]["SSL Context Service"]]
    assert receive["propertyDescriptors"]["SSL Context Service"]["identifiesControllerService"]
    assert receive["properties"]["Client Authentication"] == "No Authentication"  # providers send bearer tokens
    assert tls["type"] == "org.apache.nifi.ssl.StandardRestrictedSSLContextService"
    assert tls["bundle"]["artifact"] == "nifi-ssl-context-service-nar"
    assert tls["properties"] == {"Keystore Filename": "#{edge_keystore}", "Keystore Password": "#{edge_keystore_password}",
                                 "Keystore Type": "PKCS12", "SSL Protocol": "TLS"}
    assert tls["propertyDescriptors"]["Keystore Password"]["sensitive"]
    assert "org.apache.nifi.ssl.RestrictedSSLContextService" in {a["type"] for a in tls["controllerServiceApis"]}


def test_edge_urls_are_https_on_the_bind_address():
    assert Edge("p", "q", 24501, "g", "c", "running").url == "https://127.0.0.1:24501"
    assert Edge("p", "q", 24501, "g", "c", "running", "127.0.0.2").url == "https://127.0.0.2:24501"
    assert Edge("p", "q", 24501, "g", "c", "running", "::1").url == "https://[::1]:24501"


def test_provider_names_and_ports():
    assert NAME.match("st-olav") and not NAME.match("St Olav") and not NAME.match("../x")
    port = choose_port(range(24590, 24600), used={24590})
    assert 24591 <= port < 24600


def test_log_lines_carry_radlake_counts_only_never_file_names_uris_or_payloads():
    for processor in definition()["flowContents"]["processors"]:
        if processor["type"].endswith(".LogAttribute"):
            properties = processor["properties"]
            assert properties["Log Payload"] == "false", processor["name"]
            assert properties["attributes-to-log-regex"] == "radlake\\..*", processor["name"]
