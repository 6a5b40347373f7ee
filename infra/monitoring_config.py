"""Prometheus's and Alertmanager's configuration, generated from :class:`Settings` and the parts that are
running (pure: the components write what these functions return).

Every endpoint is HTTPS with a certificate of the platform CA, and Prometheus shows its own certificate to each
(the lag exporter, the streams worker, Alertmanager and Prometheus itself require one). OpenBao's metrics are
read with a token of its own (policy ``radlake-metrics``: read ``sys/metrics``), kept in a file.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from lake_schemas.topics import DEAD_LETTER, PREDICTION_DEAD_LETTER, QUARANTINED
from platform_layer.settings import Settings

RECEIVER = "radlake-webhook"
DLQ_TOPICS = (DEAD_LETTER, PREDICTION_DEAD_LETTER.name)


def duration(seconds: float) -> str:
    """A Prometheus/Alertmanager duration: whole seconds as ``Ns``, anything finer in milliseconds."""
    millis = round(seconds * 1000)
    if millis <= 0:
        return "0s"
    return f"{millis // 1000}s" if millis % 1000 == 0 else f"{millis}ms"


@dataclass(frozen=True)
class TLSFiles:
    """What a scraper (or Alertmanager posting to the receiver) verifies servers with and shows as its identity."""

    ca_file: Path
    cert_file: Path
    key_file: Path

    def config(self) -> dict[str, str]:
        return {"ca_file": str(self.ca_file), "cert_file": str(self.cert_file), "key_file": str(self.key_file)}


@dataclass(frozen=True)
class ScrapeJob:
    """One scrape job: static addresses, or file_sd files (``files``) a part writes when it starts."""

    name: str
    addresses: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    metrics_path: str = "/metrics"
    params: dict[str, list[str]] = field(default_factory=dict)
    credentials_file: Path | None = None  # a bearer token, read by Prometheus at each scrape


def prometheus_config(settings: Settings, jobs: Sequence[ScrapeJob], tls: TLSFiles, rules_file: Path) -> dict[str, Any]:
    scrape_configs = []
    for job in jobs:
        entry: dict[str, Any] = {"job_name": job.name, "scheme": "https", "metrics_path": job.metrics_path,
                                 "tls_config": tls.config()}
        if job.addresses:
            entry["static_configs"] = [{"targets": list(job.addresses)}]
        if job.files:
            entry["file_sd_configs"] = [{"files": list(job.files), "refresh_interval": "30s"}]
        if job.params:
            entry["params"] = job.params
        if job.credentials_file is not None:
            entry["authorization"] = {"type": "Bearer", "credentials_file": str(job.credentials_file)}
        scrape_configs.append(entry)
    return {
        "global": {"scrape_interval": duration(settings.monitoring_scrape_interval_s),
                   "scrape_timeout": duration(min(10.0, settings.monitoring_scrape_interval_s)),
                   "evaluation_interval": duration(settings.monitoring_evaluation_interval_s),
                   "external_labels": {"radlake": "local"}},
        "rule_files": [str(rules_file)],
        "alerting": {"alertmanagers": [{
            "scheme": "https", "tls_config": tls.config(),
            "static_configs": [{"targets": [f"127.0.0.1:{settings.alertmanager_port}"]}]}]},
        "scrape_configs": scrape_configs,
    }


def _alert(name: str, expr: str, for_s: float, summary: str, runbook: str, severity: str = "warning") -> dict[str, Any]:
    return {"alert": name, "expr": expr, "for": duration(for_s), "labels": {"severity": severity},
            "annotations": {"summary": summary, "runbook": f"docs/operations.md#{runbook}"}}


# The stages of a study's way through the platform, each a histogram by provider: the last instance uploaded ->
# handled by the streams worker -> its study version completed -> the prediction committed.
LATENCY_STAGES = (
    ("upload_to_handled", "radlake_streams_event_lag_seconds"),
    ("handled_to_completed", "radlake_streams_completion_delay_seconds"),
    ("completed_to_prediction", "radlake_inference_event_lag_seconds"),
)
QUANTILES = (("p50", 0.5), ("p95", 0.95))


def latency_rules(window: str) -> list[dict[str, str]]:
    """Per provider and quantile: each stage's latency, and their sum, upload -> prediction (a sum of
    quantiles: an estimate of the end-to-end quantile, never below the slowest stage's)."""
    recording = []
    for label, q in QUANTILES:
        for stage, histogram in LATENCY_STAGES:
            recording.append({"record": f"provider:radlake_{stage}_seconds:{label}",
                              "expr": f"histogram_quantile({q}, sum by (provider, le) "
                                      f"(rate({histogram}_bucket[{window}])))"})
        recording.append({"record": f"provider:radlake_upload_to_prediction_seconds:{label}",
                          "expr": " + ".join(f"provider:radlake_{stage}_seconds:{label}"
                                             for stage, _ in LATENCY_STAGES)})
    recording += [
        {"record": "provider:radlake_edge_instances:rate",
         "expr": f"sum by (provider, outcome) (rate(radlake_edge_instances_total[{window}]))"},
        {"record": "provider:radlake_inference_studies:rate",
         "expr": f'sum by (provider, model) (rate(radlake_inference_studies_total{{outcome="predicted"}}[{window}]))'},
    ]
    return recording


def rules(settings: Settings) -> dict[str, Any]:
    """Recording rules (the names follow Prometheus's level:metric:operations convention) and alert rules."""
    s = settings
    lag_window, dlq_window = duration(s.lag_alert_window_s), duration(s.dlq_alert_window_s)
    dlq = "|".join(t.replace(".", "\\\\.") for t in DLQ_TOPICS)
    edge_5xx = 'radlake_edge_requests_total{status=~"5.."}'
    recording = [
        {"record": "radlake:state_dir_disk_used:ratio",
         "expr": "1 - radlake_state_dir_filesystem_free_bytes / radlake_state_dir_filesystem_size_bytes"},
        {"record": "radlake:consumer_group_lag:delta_window",
         "expr": f"delta(radlake_consumer_group_lag[{lag_window}])"},
        {"record": "radlake:topic_messages:increase_window",
         "expr": f"increase(radlake_topic_end_offset[{dlq_window}])"},
        *latency_rules(duration(s.latency_window_s)),
    ]
    alerts = [
        _alert("ConsumerLagGrowing",
               f"radlake_consumer_group_lag > {s.lag_alert_min_messages} "
               f"and radlake:consumer_group_lag:delta_window > 0",
               s.lag_alert_for_s,
               "Consumer group {{ $labels.group }} is {{ $value }} messages behind and falling further behind",
               "consumerlaggrowing"),
        _alert("ScrapeTargetDown", "up == 0", s.alert_for_s,
               "{{ $labels.job }} at {{ $labels.instance }} does not answer Prometheus's scrapes",
               "scrapetargetdown", severity="critical"),
        _alert("LagExporterCannotReadKafka", "radlake_lag_exporter_kafka_up == 0", s.alert_for_s,
               "The lag exporter cannot read offsets from Kafka: consumer lag is unknown",
               "lagexportercannotreadkafka"),
        _alert("StateDirDiskAlmostFull", f"radlake:state_dir_disk_used:ratio > {s.disk_alert_ratio}", s.alert_for_s,
               "The file system of the state dir is {{ $value | humanizePercentage }} full",
               "statedirdiskalmostfull", severity="critical"),
        _alert("CertificateExpiresSoon",
               f"radlake_certificate_expiry_seconds < {round(s.certificate_alert_days * 86400)}", s.alert_for_s,
               "{{ $labels.file }} ({{ $labels.subject }}) expires in {{ $value | humanizeDuration }}",
               "certificateexpiressoon"),
        _alert("DeadLettersGrowing",
               f'radlake:topic_messages:increase_window{{topic=~"{dlq}"}} > {s.dlq_alert_messages}',
               s.alert_for_s, "{{ $value }} messages went to {{ $labels.topic }} in the last " + dlq_window,
               "deadlettersgrowing"),
        _alert("QuarantineGrowing",
               f'radlake:topic_messages:increase_window{{topic="{QUARANTINED.name}"}} > {s.dlq_alert_messages}',
               s.alert_for_s, "{{ $value }} instances were quarantined in the last " + dlq_window,
               "quarantinegrowing"),
        _alert("ComponentRestarted",
               f"increase(radlake_supervisor_restarts_total[{dlq_window}]) > 0 "
               f"or increase(radlake_supervisor_failed_restarts_total[{dlq_window}]) > 0", 0,
               "The supervisor restarted {{ $labels.component }} in the last " + dlq_window,
               "componentrestarted"),
        _alert("ComponentCrashLooping", "radlake_supervisor_gave_up == 1", 0,
               "{{ $labels.component }} kept dying: the supervisor gave up restarting it",
               "componentcrashlooping", severity="critical"),
        _alert("ConflictsGrowingForProvider",
               f"sum by (provider) (increase(radlake_streams_conflicts_total[{dlq_window}])) > {s.dlq_alert_messages}",
               s.alert_for_s, "Provider {{ $labels.provider }} sent {{ $value }} instances that conflict with "
                              "earlier ones (same SOP instance UID, other content) in the last " + dlq_window,
               "conflictsgrowingforprovider"),
        # `unless ... offset`: a series that first appeared within the window (the first 5xx of its kind), whose
        # increase() is 0 for want of an earlier sample
        _alert("EdgeAnswering5xx",
               f"sum by (provider) (increase({edge_5xx}[{dlq_window}])) > 0 "
               f"or sum by (provider) ({edge_5xx} unless {edge_5xx} offset {dlq_window}) > 0",
               s.alert_for_s, "The edge of provider {{ $labels.provider }} answered {{ $value }} requests with a "
                              "5xx in the last " + dlq_window, "edgeanswering5xx"),
        _alert("LakeQueryStalled",
               f"(time() - radlake_lake_last_progress_timestamp_seconds > {round(s.lake_stall_alert_s)} "
               f"and radlake_lake_source_backlog_messages > 0) or radlake_lake_query_active == 0",
               s.alert_for_s, "Lake query {{ $labels.query }} made no progress for "
                              f"{duration(s.lake_stall_alert_s)} with messages waiting, or terminated",
               "lakequerystalled", severity="critical"),
        _alert("RadiomicsFailing",
               f'sum by (on, reason) (increase(radlake_radiomics_rois_total{{outcome="failed"}}[{dlq_window}])) '
               f"> {s.radiomics_failure_alert_rois}",
               s.alert_for_s, "{{ $value }} ROIs failed with {{ $labels.reason }} in the radiomics follower "
                              "({{ $labels.on }}) in the last " + dlq_window, "radiomicsfailing"),
    ]
    return {"groups": [{"name": "radlake-recording", "rules": recording},
                       {"name": "radlake-alerts", "rules": alerts}]}


def alertmanager_config(settings: Settings, tls: TLSFiles) -> dict[str, Any]:
    """Everything to radlake's webhook receiver, one notification per alert (``group_by: ['...']``), resolutions
    included."""
    s = settings
    return {
        "route": {"receiver": RECEIVER, "group_by": ["..."], "group_wait": duration(s.alert_group_wait_s),
                  "group_interval": duration(s.alert_group_interval_s),
                  "repeat_interval": duration(s.alert_repeat_interval_s)},
        "receivers": [{"name": RECEIVER, "webhook_configs": [{
            "url": f"https://127.0.0.1:{s.alert_receiver_port}/alerts", "send_resolved": True,
            "http_config": {"tls_config": tls.config()}}]}],
    }


def web_config(certificate: Path, key: Path, client_ca: Path) -> dict[str, Any]:
    """Prometheus's and Alertmanager's ``--web.config.file``: HTTPS, clients show a certificate of the CA."""
    return {"tls_server_config": {"cert_file": str(certificate), "key_file": str(key),
                                  "client_auth_type": "RequireAndVerifyClientCert",
                                  "client_ca_file": str(client_ca), "min_version": "TLS12"}}


def render(document: dict[str, Any]) -> str:
    return "# generated by radlake (`radlake stack up monitoring`); edits are overwritten\n" + yaml.safe_dump(
        document, sort_keys=False, default_flow_style=False, width=120)
