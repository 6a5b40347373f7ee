"""The metrics of the long-running parts (inference, radiomics, the lake's queries, the edges), their
announcement to Prometheus, and the latency and alert rules built on them: the pure parts, no stack."""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pytest
import yaml
from deltalake import write_deltalake
from prometheus_client import generate_latest

from inference_workers.telemetry import CudaDevice, InferenceMetrics
from infra.components.monitoring import Prometheus
from infra.monitoring_config import LATENCY_STAGES, render, rules
from monitoring.edges import families
from nifi.edge.edge import EdgeConfig
from nifi.edge.handler import EdgeRuntime, handle
from platform_layer.edge_metrics import EdgeCounters, EdgeTelemetry, FileRecorder, read_snapshots
from platform_layer.endpoints import scrape_targets_dir
from platform_layer.errors import PlatformError
from platform_layer.metrics_endpoint import ANNOUNCED_JOBS, announced, announcement_file
from platform_layer.settings import Settings
from spark_jobs.telemetry import DeltaLogs, LakeMetrics, RadiomicsMetrics, rows_written, source_backlog


def _value(registry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


# -- announcement -----------------------------------------------------------------------------------------------


def test_a_part_is_announced_while_it_runs_and_its_pid_is_no_series_label(tmp_path):
    settings = Settings(state_dir=tmp_path)
    with announced(settings, "inference", "radlake-inference-w/1", "127.0.0.1:5", {"worker_id": "w/1"}) as path:
        assert path.parent == scrape_targets_dir(settings) and path.name == "inference-radlake-inference-w_1.json"
        [target] = json.loads(path.read_text())
        assert target == {"targets": ["127.0.0.1:5"],
                          "labels": {"worker_id": "w/1", "__meta_radlake_pid": str(os.getpid())}}
    assert not path.exists()


def test_only_parts_prometheus_has_a_job_for_can_announce(tmp_path):
    with pytest.raises(PlatformError, match="no Prometheus job"):
        announcement_file(Settings(state_dir=tmp_path), "gateway", "0")


def test_prometheus_has_a_file_sd_job_for_every_kind_of_announced_part(tmp_path):
    settings = Settings(state_dir=tmp_path)
    jobs = {job.name: job for job in Prometheus(settings).jobs()}
    for name in ANNOUNCED_JOBS:
        assert jobs[name].files == (str(scrape_targets_dir(settings) / f"{name}-*.json"),)


# -- inference -------------------------------------------------------------------------------------------------


def test_inference_metrics_count_a_committed_batch():
    metrics = InferenceMetrics("nodule-cnn:3")
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    metrics.committed(batch=3, predict_s=0.4, latencies_s=[0.5, 0.6, 0.7],
                      outcomes=[("a", "predicted"), ("a", "predicted"), ("b", "rejected"), ("b", "duplicate")],
                      completed_at=[("a", now - timedelta(seconds=2)), ("a", (now - timedelta(seconds=40)).replace(
                          tzinfo=None))], now=now)
    r, m = metrics.registry, "nodule-cnn:3"
    assert _value(r, "radlake_inference_studies_total", provider="a", model=m, outcome="predicted") == 2
    assert _value(r, "radlake_inference_studies_total", provider="b", model=m, outcome="rejected") == 1
    assert _value(r, "radlake_inference_studies_total", provider="b", model=m, outcome="duplicate") == 1
    assert _value(r, "radlake_inference_batch_size_sum", model=m) == 3
    assert _value(r, "radlake_inference_batch_size_bucket", model=m, le="2.0") == 0
    assert _value(r, "radlake_inference_latency_seconds_count", model=m) == 3
    assert _value(r, "radlake_inference_event_lag_seconds_sum", provider="a", model=m) == pytest.approx(42)
    assert _value(r, "radlake_inference_event_lag_seconds_bucket", provider="a", model=m, le="5.0") == 1
    assert _value(r, "radlake_inference_batches_total", model=m) == 1


def test_device_memory_and_utilisation_are_read_at_scrape_time():
    readings = {"memory": (100, 300), "busy": None}
    device = CudaDevice(1, lambda i: readings["memory"], lambda i: readings["busy"])
    names = {m.name for m in device.collect()}
    assert names == {"radlake_inference_device_memory_bytes"}  # no NVML: memory alone
    readings.update(memory=(200, 400), busy=0.75)
    samples = {(s.name, s.labels.get("kind")): s.value for m in device.collect() for s in m.samples}
    assert samples[("radlake_inference_device_memory_bytes", "allocated")] == 200
    assert samples[("radlake_inference_device_memory_bytes", "reserved")] == 400
    assert samples[("radlake_inference_device_utilization_ratio", None)] == 0.75


def test_a_cpu_worker_has_no_device_metrics():
    metrics = InferenceMetrics("m:1")
    metrics.watch_device("cpu")
    assert b"radlake_inference_device" not in generate_latest(metrics.registry)


# -- the lake's queries ------------------------------------------------------------------------------------------


PROGRESS = {
    "id": "q-1", "runId": "r-1", "name": "bronze-instances", "timestamp": "2026-12-07T23:48:04.500Z", "batchId": 7,
    "numInputRows": 120, "durationMs": {"triggerExecution": 2500, "addBatch": 2000},
    "sources": [{"description": "KafkaV2[Subscribe[t]]", "startOffset": {"t": {"0": 10, "1": 5}},
                 "endOffset": {"t": {"0": 100, "1": 35}}, "latestOffset": {"t": {"0": 150, "1": 35}},
                 "numInputRows": 120}],
    "sink": {"description": "ForeachBatchSink", "numOutputRows": -1},
}


def test_the_backlog_is_what_the_source_had_beyond_the_batch():
    assert source_backlog(PROGRESS["sources"][0]) == 50
    as_text = {k: json.dumps(v) if k.endswith("Offset") else v for k, v in PROGRESS["sources"][0].items()}
    assert source_backlog(as_text) == 50  # PySpark gives offsets as JSON text
    assert source_backlog({"description": "rate", "endOffset": "12", "latestOffset": None}) is None


def test_the_listener_records_progress_idleness_and_termination():
    metrics = LakeMetrics({})
    r = metrics.registry
    metrics.started("q-1", "bronze-instances", 1000.0)
    assert _value(r, "radlake_lake_query_active", query="bronze-instances") == 1
    metrics.progressed(PROGRESS)
    metrics.progressed({**PROGRESS, "numInputRows": 30, "sources": []})
    assert _value(r, "radlake_lake_batches_total", query="bronze-instances") == 2
    assert _value(r, "radlake_lake_input_rows_total", query="bronze-instances") == 150
    assert _value(r, "radlake_lake_batch_duration_seconds_sum", query="bronze-instances") == 5.0
    assert _value(r, "radlake_lake_last_progress_timestamp_seconds", query="bronze-instances") == \
        datetime(2026, 12, 7, 23, 48, 4, 500000, tzinfo=timezone.utc).timestamp()
    metrics.progressed(PROGRESS)
    assert _value(r, "radlake_lake_source_backlog_messages", query="bronze-instances") == 50
    metrics.idle("q-1", 2000.0)  # idle events carry only the query's id
    assert _value(r, "radlake_lake_source_backlog_messages", query="bronze-instances") == 0
    assert _value(r, "radlake_lake_last_progress_timestamp_seconds", query="bronze-instances") == 2000.0
    metrics.terminated("q-1", "java.lang.IllegalStateException: boom")
    assert _value(r, "radlake_lake_query_active", query="bronze-instances") == 0
    assert _value(r, "radlake_lake_query_failures_total", query="bronze-instances") == 1


def test_rows_written_come_from_spark_and_delta_rs_commit_metrics():
    assert rows_written({"operation": "MERGE", "operationMetrics": {"numOutputRows": "12"}}) == 12
    assert rows_written({"operation": "WRITE", "operationMetrics": {"num_added_rows": 5}}) == 5
    assert rows_written({"operation": "OPTIMIZE"}) == 0


def test_delta_versions_and_rows_written_since_the_process_started(tmp_path):
    table = tmp_path / "bronze" / "instances"
    write_deltalake(str(table), pa.table({"x": [1, 2]}))  # before: the baseline, not counted
    logs = DeltaLogs({"bronze/instances": str(table), "silver/series": str(tmp_path / "missing")})

    def samples() -> dict[tuple[str, str], float]:
        return {(s.name, s.labels["table"]): s.value for m in logs.collect() for s in m.samples}

    assert samples() == {("radlake_lake_table_version", "bronze/instances"): 0,
                         ("radlake_lake_rows_written_total", "bronze/instances"): 0,
                         ("radlake_lake_rows_written_total", "silver/series"): 0}
    write_deltalake(str(table), pa.table({"x": [3, 4, 5]}), mode="append")
    write_deltalake(str(table), pa.table({"x": [6]}), mode="append")
    now = samples()
    assert now[("radlake_lake_table_version", "bronze/instances")] == 2
    assert now[("radlake_lake_rows_written_total", "bronze/instances")] == 4


# -- radiomics ---------------------------------------------------------------------------------------------------


def test_radiomics_metrics_count_rois_by_outcome_and_share_compute_time():
    metrics = RadiomicsMetrics("segmentations")
    metrics.batch(seconds=3.0, computed=3, failures=["UNREADABLE_INPUT"], compute_s=2.0, handled=["a", "a"],
                  dead_lettered=["unknown"], published=2, failed_attempts=1, now=5.0)
    r, on = metrics.registry, "segmentations"
    assert _value(r, "radlake_radiomics_rois_total", on=on, outcome="computed", reason="") == 3
    assert _value(r, "radlake_radiomics_rois_total", on=on, outcome="failed", reason="UNREADABLE_INPUT") == 1
    assert _value(r, "radlake_radiomics_roi_seconds_count", on=on) == 4
    assert _value(r, "radlake_radiomics_roi_seconds_sum", on=on) == pytest.approx(2.0)
    assert _value(r, "radlake_radiomics_messages_total", on=on, provider="a", outcome="handled") == 2
    assert _value(r, "radlake_radiomics_messages_total", on=on, provider="unknown", outcome="dead_lettered") == 1
    assert _value(r, "radlake_radiomics_failed_attempts_total", on=on) == 1
    assert _value(r, "radlake_radiomics_last_batch_timestamp_seconds", on=on) == 5.0


# -- the edges ---------------------------------------------------------------------------------------------------


def _samples(snapshots) -> dict[tuple, float]:
    return {(s.name, *sorted(s.labels.items())): s.value for m in families(snapshots) for s in m.samples}


def test_edge_counters_of_several_processes_are_summed_per_provider(tmp_path):
    root = tmp_path / "edge"
    first, second, other = EdgeCounters("a"), EdgeCounters("a"), EdgeCounters("b")
    first.request("stow", 200, 1000)
    first.ingested({("accepted", ""): 3, ("quarantined", "PHI_IN_PIXELS"): 1}, 0.2)
    second.request("stow", 503, 500)
    second.ingested({("quarantined", "PHI_IN_PIXELS"): 2}, 40.0)
    other.request("archive", 401, 7)
    for counters in (first, second):
        FileRecorder(counters, root / "a" / "metrics").flush()  # a recorder's first flush writes at once
    FileRecorder(other, root / "b" / "metrics").write()
    (root / "a" / "metrics" / "foreign.json").write_text("[1, 2]")  # not an edge's: skipped
    samples = _samples(read_snapshots(root))
    assert samples[("radlake_edge_requests_total", ("kind", "stow"), ("provider", "a"), ("status", "200"))] == 1
    assert samples[("radlake_edge_requests_total", ("kind", "stow"), ("provider", "a"), ("status", "503"))] == 1
    assert samples[("radlake_edge_requests_total", ("kind", "archive"), ("provider", "b"), ("status", "401"))] == 1
    assert samples[("radlake_edge_instances_total", ("outcome", "quarantined"), ("provider", "a"),
                    ("reason", "PHI_IN_PIXELS"))] == 3
    assert samples[("radlake_edge_instances_total", ("outcome", "accepted"), ("provider", "a"), ("reason", ""))] == 3
    assert samples[("radlake_edge_received_bytes_total", ("provider", "a"))] == 1500
    assert samples[("radlake_edge_deid_seconds_count", ("provider", "a"))] == 2
    assert samples[("radlake_edge_deid_seconds_bucket", ("le", "0.25"), ("provider", "a"))] == 1
    assert samples[("radlake_edge_deid_seconds_bucket", ("le", "+Inf"), ("provider", "a"))] == 2


def test_the_edge_counts_every_answer_even_a_refused_token(tmp_path):
    telemetry = EdgeTelemetry("a", tmp_path / "edge" / "a")
    runtime = EdgeRuntime(EdgeConfig("a", "p", "v1", tmp_path / "edge" / "a"), rules=None, pseudonymiser=None,
                          store=None, publisher=None, endpoint_token=lambda: "the-token", work_dir=tmp_path / "work",
                          telemetry=telemetry)
    assert handle(runtime, "POST", "/archives", {}, b"abc").status == 401
    assert handle(runtime, "POST", "/dicomweb/studies/1.2", {"Authorization": "Bearer other"}, b"abcd").status == 403
    assert handle(runtime, "POST", "/nowhere?x=1", {"Authorization": "Bearer the-token"}, b"").status == 404
    telemetry.recorder.write()  # the flushes after the first wait for a timer (at most one write a second)
    samples = _samples(read_snapshots(tmp_path / "edge"))
    assert samples[("radlake_edge_requests_total", ("kind", "archive"), ("provider", "a"), ("status", "401"))] == 1
    assert samples[("radlake_edge_requests_total", ("kind", "stow"), ("provider", "a"), ("status", "403"))] == 1
    assert samples[("radlake_edge_requests_total", ("kind", "other"), ("provider", "a"), ("status", "404"))] == 1
    assert samples[("radlake_edge_received_bytes_total", ("provider", "a"))] == 7


def test_a_burst_of_requests_costs_one_write_and_the_last_counts_follow_within_the_interval(tmp_path):
    counters = EdgeCounters("a")
    recorder = FileRecorder(counters, tmp_path / "metrics", every_s=0.2)
    for _ in range(50):
        counters.request("stow", 200, 1)
        recorder.flush()
    written = json.loads(recorder.path.read_text())
    assert written["requests"] == {"stow 200": 1}  # only the first flush wrote at once

    def settled() -> bool:
        return json.loads(recorder.path.read_text())["requests"] == {"stow 200": 50}

    deadline = time.monotonic() + 30
    while not settled() and time.monotonic() < deadline:  # the timer's write (no duration asserted)
        time.sleep(0.05)
    assert settled()


def test_an_unwritable_metrics_folder_never_fails_a_request(tmp_path):
    blocker = tmp_path / "edge"
    blocker.write_text("a file where the folder should be")
    recorder = FileRecorder(EdgeCounters("a"), blocker / "metrics")
    recorder.flush()  # logged, not raised
    assert not (blocker / "metrics").exists()


# -- rules ---------------------------------------------------------------------------------------------------------


def _rules(settings: Settings) -> tuple[dict[str, dict], dict[str, str]]:
    groups = {g["name"]: g["rules"] for g in yaml.safe_load(render(rules(settings)))["groups"]}
    return ({r["alert"]: r for r in groups["radlake-alerts"]},
            {r["record"]: r["expr"] for r in groups["radlake-recording"]})


def test_latency_rules_cover_each_stage_and_the_sum_per_provider(tmp_path):
    _, recorded = _rules(Settings(state_dir=tmp_path, latency_window_s=120))
    for quantile in ("p50", "p95"):
        total = recorded[f"provider:radlake_upload_to_prediction_seconds:{quantile}"]
        for stage, histogram in LATENCY_STAGES:
            expr = recorded[f"provider:radlake_{stage}_seconds:{quantile}"]
            assert f"sum by (provider, le) (rate({histogram}_bucket[120s]))" in expr
            assert f"provider:radlake_{stage}_seconds:{quantile}" in total


def test_new_alerts_use_their_settings(tmp_path):
    alerts, _ = _rules(Settings(state_dir=tmp_path, lake_stall_alert_s=120, radiomics_failure_alert_rois=4,
                                dlq_alert_window_s=60, alert_for_s=2))
    assert 'radlake_edge_requests_total{status=~"5.."}[60s]' in alerts["EdgeAnswering5xx"]["expr"]
    assert "time() - radlake_lake_last_progress_timestamp_seconds > 120" in alerts["LakeQueryStalled"]["expr"]
    assert "radlake_lake_query_active == 0" in alerts["LakeQueryStalled"]["expr"]
    assert alerts["RadiomicsFailing"]["expr"].endswith("> 4")
    assert {alerts[a]["for"] for a in ("EdgeAnswering5xx", "LakeQueryStalled", "RadiomicsFailing")} == {"2s"}


PROMTOOL = Path(os.environ.get("RADLAKE_CACHE_DIR", Path.home() / ".cache" / "radlake")) / "debian" / "monitoring"


@pytest.mark.skipif(not (PROMTOOL / "usr" / "bin" / "promtool").exists(),
                    reason="promtool comes with the monitoring packages (`radlake stack up monitoring` fetches them)")
def test_promtool_accepts_the_rules(tmp_path):
    path = tmp_path / "rules.yml"
    path.write_text(render(rules(Settings(state_dir=tmp_path))))
    result = subprocess.run([str(PROMTOOL / "usr" / "bin" / "promtool"), "check", "rules", str(path)],  # noqa: S603
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "LD_LIBRARY_PATH": str(PROMTOOL / "usr" / "lib" / "x86_64-linux-gnu")})
    assert result.returncode == 0, result.stdout + result.stderr
