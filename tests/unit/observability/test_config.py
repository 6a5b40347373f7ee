"""Prometheus's and Alertmanager's generated configuration, and the stack's monitoring alias (pure)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from infra import stack
from infra.components.monitoring import Prometheus
from infra.monitoring_config import (
    ScrapeJob,
    TLSFiles,
    alertmanager_config,
    duration,
    prometheus_config,
    render,
    rules,
    web_config,
)
from platform_layer.endpoints import scrape_targets_dir
from platform_layer.settings import Settings

ROOT = Path(__file__).resolve().parents[3]
TLS = TLSFiles(Path("/s/tls/ca.pem"), Path("/s/p.crt"), Path("/s/p.key"))


@pytest.fixture
def settings(tmp_path) -> Settings:
    return Settings(state_dir=tmp_path, prometheus_port=1, alertmanager_port=2, alert_receiver_port=3,
                    monitoring_scrape_interval_s=1, monitoring_evaluation_interval_s=2.5,
                    lag_alert_min_messages=7, lag_alert_window_s=90, lag_alert_for_s=30)


@pytest.mark.parametrize(("seconds", "text"), [(15, "15s"), (0.5, "500ms"), (2.5, "2500ms"), (600, "600s"), (0, "0s")])
def test_durations_are_what_prometheus_parses(seconds, text):
    assert duration(seconds) == text


def test_every_job_is_https_with_prometheus_client_certificate(settings):
    jobs = [ScrapeJob("lag-exporter", ("127.0.0.1:9",)), ScrapeJob("streams", files=("/t/streams-*.json",)),
            ScrapeJob("vault", ("127.0.0.1:8200",), metrics_path="/v1/sys/metrics", params={"format": ["prometheus"]},
                      credentials_file=Path("/s/vault-token"))]
    config = yaml.safe_load(render(prometheus_config(settings, jobs, TLS, Path("/r.yml"))))
    assert config["global"]["scrape_interval"] == "1s" and config["global"]["evaluation_interval"] == "2500ms"
    by_name = {job["job_name"]: job for job in config["scrape_configs"]}
    assert all(job["scheme"] == "https" and job["tls_config"] == TLS.config() for job in by_name.values())
    assert by_name["streams"]["file_sd_configs"][0]["files"] == ["/t/streams-*.json"]
    vault = by_name["vault"]
    assert (vault["metrics_path"], vault["params"]) == ("/v1/sys/metrics", {"format": ["prometheus"]})
    assert vault["authorization"] == {"type": "Bearer", "credentials_file": "/s/vault-token"}
    assert "authorization" not in by_name["lag-exporter"]
    assert config["alerting"]["alertmanagers"][0]["static_configs"] == [{"targets": ["127.0.0.1:2"]}]
    assert config["rule_files"] == ["/r.yml"]


def test_lag_alert_uses_the_settings_threshold_window_and_for(settings):
    groups = {g["name"]: g["rules"] for g in yaml.safe_load(render(rules(settings)))["groups"]}
    alerts = {r["alert"]: r for r in groups["radlake-alerts"]}
    recorded = {r["record"]: r["expr"] for r in groups["radlake-recording"]}
    lag = alerts["ConsumerLagGrowing"]
    assert lag["for"] == "30s"
    assert "radlake_consumer_group_lag > 7" in lag["expr"]
    assert recorded["radlake:consumer_group_lag:delta_window"] == "delta(radlake_consumer_group_lag[90s])"
    assert alerts["StateDirDiskAlmostFull"]["expr"].endswith("> 0.85")
    assert alerts["CertificateExpiresSoon"]["expr"] == "radlake_certificate_expiry_seconds < 604800"
    assert 'topic=~"radlake\\\\.dead-letter\\\\.v1|' in alerts["DeadLettersGrowing"]["expr"]


def test_every_alert_has_a_runbook_section_in_the_operations_guide(settings):
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in (ROOT / "docs" / "operations.md").read_text().splitlines() if line.startswith("#")}
    for group in rules(settings)["groups"]:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["annotations"]["runbook"].split("#")[1] in anchors, rule["alert"]


def test_alertmanager_sends_every_alert_and_its_resolution_to_the_receiver(settings):
    config = alertmanager_config(settings, TLS)
    webhook = config["receivers"][0]["webhook_configs"][0]
    assert config["route"]["receiver"] == config["receivers"][0]["name"]
    assert webhook["url"] == "https://127.0.0.1:3/alerts" and webhook["send_resolved"] is True
    assert webhook["http_config"]["tls_config"] == TLS.config()


def test_web_config_requires_a_client_certificate_of_the_ca():
    server = web_config(Path("c"), Path("k"), Path("ca"))["tls_server_config"]
    assert server["client_auth_type"] == "RequireAndVerifyClientCert" and server["client_ca_file"] == "ca"


def test_monitoring_is_an_alias_and_not_started_by_a_plain_stack_up():
    assert stack.selected(["monitoring"]) == ["alert-receiver", "alertmanager", "lag-exporter", "prometheus"]
    assert not set(stack.selected(None, up=True)) & set(stack.ALIASES["monitoring"])
    assert set(stack.selected(None)) >= set(stack.ALIASES["monitoring"])  # a plain `stack down` stops them too


def test_announcements_of_processes_that_are_gone_are_removed(tmp_path):
    settings = Settings(state_dir=tmp_path)
    targets = scrape_targets_dir(settings)
    targets.mkdir(parents=True)
    gone = subprocess.Popen(["true"])  # noqa: S603,S607 - a pid that is certainly not running any more
    gone.wait()

    def announce(name: str, pid: int) -> None:
        (targets / name).write_text(json.dumps([{"targets": ["127.0.0.1:1"], "labels": {
            "app_id": name, "__meta_radlake_pid": str(pid)}}]))

    announce("streams-alive-0.json", os.getpid())
    announce("streams-gone-0.json", gone.pid)
    (targets / "someone-elses.json").write_text('[{"targets": ["127.0.0.1:2"]}]')
    Prometheus(settings)._forget_gone_targets()
    assert sorted(p.name for p in targets.iterdir()) == ["someone-elses.json", "streams-alive-0.json"]
