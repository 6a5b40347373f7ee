"""NiFi without a running NiFi: the versioned flow definition and the generated configuration."""

from __future__ import annotations

import stat

from infra.components.nifi import NiFi
from nifi.deploy import definition_parameters, flow_path, load_definition, sensitive_parameters
from platform_layer.settings import Settings


def test_smoke_flow_definition_declares_its_parameters_and_processors():
    definition = load_definition(flow_path("smoke_http_to_kafka"))
    assert set(definition_parameters(definition)) == {"listen_port", "kafka_bootstrap", "kafka_topic", "kafka_username",
                                                      "kafka_password", "kafka_ca_file"}
    assert sensitive_parameters(definition) == {"kafka_password"}
    types = {p["type"] for p in definition["flowContents"]["processors"]}
    assert types == {"org.apache.nifi.processors.standard.ListenHTTP", "PublishToKafka"}


def test_nifi_properties_are_http_on_loopback_with_state_under_the_state_dir(tmp_path):
    nifi = NiFi(Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache", nifi_port=28080))
    nifi.home.mkdir(parents=True)
    nifi.prepare()
    props = dict(
        line.split("=", 1) for line in (nifi.conf_dir / "nifi.properties").read_text().splitlines() if "=" in line
    )
    assert (props["nifi.web.http.host"], props["nifi.web.http.port"]) == ("127.0.0.1", "28080")
    assert props["nifi.web.https.host"] == "" and props["nifi.web.https.port"] == ""
    for key in ("nifi.flow.configuration.file", "nifi.flowfile.repository.directory",
                "nifi.content.repository.directory.default", "nifi.provenance.repository.directory.default",
                "nifi.database.directory", "nifi.nar.working.directory"):
        assert props[key].startswith(str(nifi.home)), key
    assert nifi.ports == [28080, 28180]
    # the archive would keep original (not yet de-identified) request bodies after their FlowFiles are done
    assert props["nifi.content.repository.archive.enabled"] == "false"


def test_sensitive_props_key_is_generated_once_and_private(tmp_path):
    nifi = NiFi(Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache"))
    nifi.home.mkdir(parents=True)
    nifi.prepare()
    key = nifi.sensitive_key_file.read_text().strip()
    nifi.prepare()
    assert nifi.sensitive_key_file.read_text().strip() == key
    assert len(key) >= 12
    for path in (nifi.sensitive_key_file, nifi.conf_dir / "nifi.properties"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_a_configured_url_means_an_external_nifi():
    nifi = NiFi(Settings(nifi_url="http://nifi.example:8080/"))
    assert nifi.external and nifi.address == "http://nifi.example:8080"
