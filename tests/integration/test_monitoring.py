"""Monitoring against the real stack: Prometheus scrapes every target over mutual TLS, a stopped consumer group's
lag shows in ``radlake_consumer_lag``, and the lag alert goes Prometheus -> Alertmanager -> radlake's webhook
receiver (``alerts.jsonl``) and resolves once the group catches up.

The monitoring components run with short intervals for this module (scrape and evaluation every second, the lag
alert after 5 s of growth over a 15 s window); the stack's own settings are put back when the module ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import httpx
import pytest
import torch
from confluent_kafka import KafkaError, TopicPartition
from polling import poll

from bench.lake_feed import create_topics, publish
from inference_workers.model_registry import ModelRegistry, network_to_bytes
from inference_workers.synthetic_study import publishable_study
from inference_workers.training import TrainConfig, train
from infra import process, stack
from lake_schemas.topics import (
    INSTANCE_RECEIVED,
    PREDICTION_CREATED,
    PREDICTION_DEAD_LETTER,
    QUARANTINED,
    STUDY_COMPLETED,
    STUDY_MANIFEST,
)
from platform_layer import kafka
from platform_layer.edge_metrics import EdgeTelemetry, edges_root
from platform_layer.endpoints import monitoring_dir, prometheus_url, scrape_targets_dir, vault_addr
from platform_layer.identities import stack_kafka_identity
from platform_layer.object_store import ObjectStore
from platform_layer.principals import KAFKA_MONITORING
from platform_layer.registration import register, schema_admin
from platform_layer.settings import Settings
from platform_layer.tls import PKI_MOUNT, SERVICE_ROLE, ca_file, issue
from radlake.synthetic.chest_ct import chest_ct
from radlake.synthetic.lake_events import SeriesPlan, series_events
from streams.worker import READY

pytestmark = pytest.mark.integration

PARTITIONS = 3
FAST = {"monitoring_scrape_interval_s": 1.0, "monitoring_evaluation_interval_s": 1.0,
        "lag_alert_min_messages": 5, "lag_alert_window_s": 15.0, "lag_alert_for_s": 5.0, "alert_for_s": 2.0,
        "alert_group_wait_s": 1.0, "alert_group_interval_s": 2.0}


@pytest.fixture(scope="module")
def fast(settings: Settings, vault, kafka_bootstrap, _stack_session) -> Iterator[Settings]:
    """The monitoring components up with this module's short intervals (reloaded if they were running)."""
    fast_settings = settings.model_copy(update=FAST)
    names = stack.selected(["monitoring"])
    was_running = {n: stack.component(n, settings).pid() is not None for n in names}
    stack.up(fast_settings, names)
    for name in names:
        _stack_session.setdefault(name, not was_running[name])  # the session stops what it started
    yield fast_settings
    stack.up(settings, [n for n in names if stack.component(n, settings).pid() is not None])


class PrometheusAPI:
    def __init__(self, settings: Settings, tls: ssl.SSLContext) -> None:
        self.client = httpx.Client(base_url=prometheus_url(settings), verify=tls, timeout=10)

    def get(self, path: str, **params: str) -> Any:
        answer = self.client.get(f"/api/v1/{path}", params=params)
        answer.raise_for_status()
        return answer.json()["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("query", query=expr)["result"]


@pytest.fixture(scope="module")
def prometheus(fast, scraper_tls) -> PrometheusAPI:
    return PrometheusAPI(fast, scraper_tls)


def test_every_scrape_target_is_up(prometheus: PrometheusAPI):
    expected = {"prometheus", "alertmanager", "lag-exporter", "vault"}

    def all_up() -> dict[str, str] | None:
        targets = prometheus.get("targets")["activeTargets"]
        health = {t["labels"]["job"]: t["health"] for t in targets}
        return health if expected <= set(health) and all(h == "up" for h in health.values()) else None

    health = poll(all_up, "every scrape target up")
    assert set(health) >= expected

    def evaluated() -> list[dict[str, Any]] | None:  # a rule not yet evaluated since the reload is "unknown"
        rules = [r for g in prometheus.get("rules")["groups"] for r in g["rules"]]
        return rules if all(r["health"] != "unknown" for r in rules) else None

    rules = poll(evaluated, "every rule evaluated")
    assert {r["name"] for r in rules} >= {"ConsumerLagGrowing", "ScrapeTargetDown", "StateDirDiskAlmostFull",
                                          "CertificateExpiresSoon", "radlake:state_dir_disk_used:ratio"}
    assert all(r["health"] == "ok" for r in rules), [r for r in rules if r["health"] != "ok"]
    [used] = poll(lambda: prometheus.query("radlake:state_dir_disk_used:ratio"), "the disk recording rule")
    assert 0 < float(used["value"][1]) < 1


def test_prometheus_reads_vault_metrics_with_a_token_that_may_do_nothing_else(fast):
    token = (monitoring_dir(fast) / "prometheus" / "vault-token").read_text().strip()
    vault = httpx.Client(base_url=vault_addr(fast), verify=ssl.create_default_context(cafile=str(ca_file(fast))),
                         headers={"X-Vault-Token": token}, timeout=10)
    metrics = vault.get("/v1/sys/metrics", params={"format": "prometheus"})
    assert metrics.status_code == 200 and "vault_" in metrics.text
    for path in ("/v1/sys/policies/acl", f"/v1/{fast.vault_kv_mount}/data/radlake/kafka/{KAFKA_MONITORING}",
                 "/v1/sys/mounts", f"/v1/{PKI_MOUNT}/issue/{SERVICE_ROLE}"):
        assert vault.get(path).status_code == 403, path


def test_the_exporter_principal_reads_no_message(fast, kafka_bootstrap, created_topic):
    producer = kafka.producer(kafka_bootstrap, client_id="test-monitoring-acl")
    producer.produce(created_topic, b"not for the monitor", partition=0)
    assert producer.flush(30) == 0
    monitor = kafka.consumer(kafka_bootstrap, group_id=f"test-monitoring-acl-{uuid.uuid4().hex[:8]}",
                             identity=stack_kafka_identity(fast, KAFKA_MONITORING),
                             extra={"socket.timeout.ms": 3000, "log_level": 0})
    try:
        monitor.assign([TopicPartition(created_topic, 0, 0)])

        def refused() -> KafkaError | None:
            message = monitor.poll(0.5)
            assert message is None or message.error() is not None, "the monitor read a message"
            return message.error() if message is not None else None

        error = poll(refused, "the monitor refused a read", timeout_s=30)
        assert error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)
    finally:
        monitor.close()


def test_a_certificate_near_expiry_fires_its_alert_and_resolves_when_it_is_gone(fast, vault):
    # a short-lived leaf where the stack keeps its certificates (<state>/<component>/tls/)
    folder = fast.state_dir / f"test-monitoring-{uuid.uuid4().hex[:8]}" / "tls"
    folder.mkdir(parents=True)
    certificate = folder / "short.crt"
    certificate.write_text(issue(vault, "short-lived.radlake.local", ttl="1h").certificate)
    name = str(certificate.relative_to(fast.state_dir))

    def records(status: str) -> list[dict[str, Any]]:
        return [r for r in _all_alerts(fast) if r["alertname"] == "CertificateExpiresSoon"
                and r["labels"].get("file") == name and r["status"] == status]

    try:
        fired = poll(lambda: records("firing"), "CertificateExpiresSoon at the webhook receiver")
        assert "short-lived.radlake.local" in fired[0]["labels"]["subject"]
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        folder.parent.rmdir()
    poll(lambda: records("resolved"), "CertificateExpiresSoon resolved once the certificate is gone")


def test_a_running_streams_worker_is_scraped_and_dropped_when_it_stops(fast, prometheus, kafka_bootstrap,
                                                                    registry_url, tmp_path):
    tag = uuid.uuid4().hex[:8]
    topics = {kind: f"test.monitoring.{tag}.{kind}" for kind in ("instance", "manifest", "completed", "quarantined",
                                                                "dead-letter")}
    register(schema_admin(fast), (INSTANCE_RECEIVED.with_name(topics["instance"]),
                                  STUDY_MANIFEST.with_name(topics["manifest"]),
                                  STUDY_COMPLETED.with_name(topics["completed"]),
                                  QUARANTINED.with_name(topics["quarantined"])))
    port = _free_port()
    app_id = f"it-monitoring-{tag}"
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "apps.cli", "streams", "run", "--web-port", str(port), "--app-id", app_id,
             *(arg for kind, name in topics.items() for arg in (f"--{kind}-topic", name))],
            stdout=out, stderr=subprocess.STDOUT)
    try:
        poll(lambda: READY in log.read_text(errors="replace") or worker.poll() is not None, "the worker started")
        assert worker.poll() is None, log.read_text()[-3000:]
        assert (scrape_targets_dir(fast) / f"streams-{app_id}-0.json").exists()

        def worker_target() -> list[dict[str, Any]]:
            return [t for t in prometheus.get("targets")["activeTargets"]
                    if t["labels"].get("app_id") == app_id and t["health"] == "up"]

        [target] = poll(worker_target, "the streams worker's target up")
        assert target["labels"]["job"] == "streams" and target["scrapeUrl"].startswith("https://")
        assert "__meta_radlake_pid" not in target["labels"]  # only for the stack, never a series label
        assert poll(lambda: prometheus.query(f'radlake_streams_open_studies{{app_id="{app_id}"}}'),
                    "the worker's own metrics in Prometheus")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(60)
    assert not (scrape_targets_dir(fast) / f"streams-{app_id}-0.json").exists()
    # file_sd is re-read every 30 s: generous, but bounded
    poll(lambda: not [t for t in prometheus.get("targets")["activeTargets"] if t["labels"].get("app_id") == app_id],
         "the stopped worker's target gone", timeout_s=90)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _all_alerts(settings: Settings) -> list[dict[str, Any]]:
    path = monitoring_dir(settings) / "alerts.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _alerts(settings: Settings, group: str, status: str) -> list[dict[str, Any]]:
    return [r for r in _all_alerts(settings) if r["alertname"] == "ConsumerLagGrowing" and r["labels"].get("group") == group
            and r["status"] == status]


def test_a_stopped_group_shows_lag_and_the_alert_fires_and_resolves(fast, prometheus, kafka_bootstrap, created_topic):
    group = f"test-monitoring-{uuid.uuid4().hex[:8]}"
    producer = kafka.producer(kafka_bootstrap, client_id=group)
    sent = 0

    def send(partition: int) -> None:
        nonlocal sent
        producer.produce(created_topic, value=f"event {sent}".encode(), partition=partition)
        sent += 1

    # the group reads and commits on every partition once, then stops
    for p in range(PARTITIONS):
        send(p)
    assert producer.flush(30) == 0
    consumer = kafka.consumer(kafka_bootstrap, group_id=group)
    consumer.subscribe([created_topic])
    poll(lambda: _consume(consumer), "the group's first messages")
    consumer.close()

    # events keep arriving while nobody reads them
    stop = threading.Event()

    def keep_producing() -> None:
        while not stop.is_set():
            send(sent % PARTITIONS)
            producer.poll(0)
            time.sleep(0.2)
        producer.flush(30)

    feeder = threading.Thread(target=keep_producing, daemon=True)
    feeder.start()
    try:
        lagging = poll(lambda: prometheus.query(f'radlake_consumer_lag{{group="{group}"}} > 0'),
                       "lag of the stopped group in radlake_consumer_lag")
        assert {s["metric"]["topic"] for s in lagging} == {created_topic}
        assert {s["metric"]["partition"] for s in lagging} <= {str(p) for p in range(PARTITIONS)}
        poll(lambda: prometheus.query(f'radlake_consumer_group_lag{{group="{group}"}} > {FAST["lag_alert_min_messages"]}'),
             "the group's total lag above the alert's minimum")
        fired = poll(lambda: _alerts(fast, group, "firing"), "ConsumerLagGrowing reaching the webhook receiver")
        assert fired[0]["labels"]["severity"] == "warning"
        assert "falling further behind" in fired[0]["annotations"]["summary"]

        # the group comes back and catches up while events still arrive
        catching_up = kafka.consumer(kafka_bootstrap, group_id=group)
        catching_up.subscribe([created_topic])
        try:
            def caught_up() -> list[dict[str, Any]]:
                _consume(catching_up)
                return _alerts(fast, group, "resolved")

            resolved = poll(caught_up, "ConsumerLagGrowing resolved at the webhook receiver")
        finally:
            catching_up.close()
        assert resolved[0]["fingerprint"] == fired[0]["fingerprint"]
    finally:
        stop.set()
        feeder.join(30)


def _consume(consumer) -> int:
    """Read what is there (up to a second's worth) and commit it; how many messages."""
    messages = consumer.consume(500, timeout=1.0)
    messages = [m for m in messages if m.error() is None]
    if messages:
        consumer.commit(offsets=kafka.next_offsets(messages), asynchronous=False)
    return len(messages)


def test_up_again_keeps_the_processes_and_down_leaves_nothing(fast):
    names = stack.selected(["monitoring"])
    before = {name: stack.component(name, fast).pid() for name in names}
    assert all(before.values())
    stack.up(fast, names)
    assert {name: stack.component(name, fast).pid() for name in names} == before
    stack.down(fast, names)
    for name in names:
        component = stack.component(name, fast)
        assert not component.pid_file.exists() and not process.pid_alive(before[name]), name
        assert not [port for port in component.ports if process.port_open(port)], name
    stack.up(fast, names)
    assert all(status.healthy for status in stack.status(fast, names))


# -- the other long-running parts: announced, scraped over mutual TLS, their metrics move with real work ---------


def _target(prometheus: PrometheusAPI, job: str, label: str, value: str) -> list[dict[str, Any]]:
    return [t for t in prometheus.get("targets")["activeTargets"]
            if t["labels"].get("job") == job and t["labels"].get(label) == value and t["health"] == "up"]


def _first(prometheus: PrometheusAPI, expr: str) -> float | None:
    answer = prometheus.query(expr)
    return float(answer[0]["value"][1]) if answer else None


def _stop(process_: subprocess.Popen, log_path) -> None:
    if process_.poll() is None:
        process_.send_signal(signal.SIGTERM)
        try:
            process_.wait(120)
        except subprocess.TimeoutExpired:
            process_.kill()
            process_.wait(30)
            pytest.fail(f"{process_.args[3:5]} did not stop on SIGTERM: {log_path.read_text()[-2000:]}")


def test_edge_counters_reach_prometheus_through_the_exporter_and_a_5xx_alerts(fast, prometheus):
    provider = f"it-edge-{uuid.uuid4().hex[:8]}"
    folder = edges_root(fast.state_dir) / provider
    telemetry = EdgeTelemetry(provider, folder)
    try:
        telemetry.counters.ingested({("accepted", ""): 2, ("quarantined", "UNREADABLE_DICOM"): 1}, 0.3)
        telemetry.answered("stow", 202, 1000)
        telemetry.answered("stow", 503, 10)
        assert poll(lambda: _first(prometheus, f'radlake_edge_requests_total{{provider="{provider}",status="503"}}'),
                    "the edge's 5xx in Prometheus") == 1
        assert _first(prometheus, f'radlake_edge_instances_total{{provider="{provider}",outcome="quarantined",'
                                  f'reason="UNREADABLE_DICOM"}}') == 1
        assert _first(prometheus, f'radlake_edge_received_bytes_total{{provider="{provider}"}}') == 1010
        poll(lambda: [r for r in _all_alerts(fast) if r["alertname"] == "EdgeAnswering5xx"
                      and r["labels"].get("provider") == provider and r["status"] == "firing"],
             "EdgeAnswering5xx at the receiver")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


INFER_SHAPE = (24, 72, 72)


def test_an_inference_worker_is_scraped_and_counts_its_predictions(fast, prometheus, kafka_bootstrap, registry_url,
                                                                   tmp_path):
    tag = uuid.uuid4().hex[:8]
    names = {"in": f"test.monitoring.infer.{tag}.in", "out": f"test.monitoring.infer.{tag}.out",
             "dlq": f"test.monitoring.infer.{tag}.dlq"}
    contracts = (STUDY_COMPLETED.with_name(names["in"]), PREDICTION_CREATED.with_name(names["out"]),
                 PREDICTION_DEAD_LETTER.with_name(names["dlq"]))
    register(schema_admin(fast), contracts)
    create_topics(kafka_bootstrap, contracts)
    store = ObjectStore(str(tmp_path / "objects"))
    torch.manual_seed(0)
    net, spec, model_metrics = train(TrainConfig(train_studies=8, validation_studies=4, epochs=1, width=4,
                                                 shape=INFER_SHAPE))
    models = ModelRegistry(str(tmp_path / "lake" / "registry" / "models"), store)
    models.register("nodule-monitoring", network_to_bytes(net), replace(spec, presence_threshold=0.0, max_candidates=1),
                    {"tiny": True}, model_metrics, stage="Production")
    study = publishable_study(store, chest_ct(7, shape=INFER_SHAPE, min_nodules=1), name=f"monitoring-{tag}")
    publish(kafka_bootstrap, registry_url, contracts[0], [study])
    worker_id = f"it-monitoring-{tag}"
    log_path = tmp_path / "worker.log"
    env = {**os.environ, "RADLAKE_LAKE_URI": str(tmp_path / "lake"), "RADLAKE_OBJECT_STORE_URI": str(tmp_path / "objects")}
    with log_path.open("wb") as out:
        worker = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "apps.cli", "infer", "run", "--input-topic", names["in"], "--output-topic",
             names["out"], "--dead-letter-topic", names["dlq"], "--group", f"g-{tag}", "--worker-id", worker_id,
             "--model", "nodule-monitoring", "--device", "cpu", "--no-land"],
            env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        [target] = poll(lambda: _target(prometheus, "inference", "worker_id", worker_id) or worker.poll() is not None
                        and [None], "the inference worker's target up", timeout_s=240)
        assert target is not None, log_path.read_text()[-3000:]
        assert target["scrapeUrl"].startswith("https://")
        predicted = f'radlake_inference_studies_total{{worker_id="{worker_id}",outcome="predicted"}}'
        assert poll(lambda: _first(prometheus, predicted), "the prediction counted", timeout_s=240) == 1
        assert _first(prometheus, f'radlake_inference_event_lag_seconds_count{{worker_id="{worker_id}"}}') == 1
        assert _first(prometheus, f'radlake_inference_batch_size_sum{{worker_id="{worker_id}"}}') == 1
    finally:
        _stop(worker, log_path)
    assert not list(scrape_targets_dir(fast).glob(f"inference-*{worker_id}.json"))


def test_the_lake_queries_report_progress_rows_and_table_versions(fast, prometheus, kafka_bootstrap, registry_url,
                                                                  tmp_path):
    tag = uuid.uuid4().hex[:8]
    instances = INSTANCE_RECEIVED.with_name(f"test.monitoring.lake.{tag}.instances")
    completed = STUDY_COMPLETED.with_name(f"test.monitoring.lake.{tag}.completed")
    register(schema_admin(fast), (instances, completed))
    create_topics(kafka_bootstrap, (instances, completed))
    events = series_events(SeriesPlan("site-m", f"s{tag}", f"x{tag}", 5))
    publish(kafka_bootstrap, registry_url, instances, events)
    lake = tmp_path / "lake"
    log_path = tmp_path / "lake.log"
    with log_path.open("wb") as out:
        driver = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "apps.cli", "lake", "--lake", str(lake), "run", "--instances-topic", instances.name,
             "--completed-topic", completed.name, "--checkpoints", str(tmp_path / "checkpoints"), "--trigger",
             "1 second"], stdout=out, stderr=subprocess.STDOUT)
    try:
        [target] = poll(lambda: _target(prometheus, "lake", "lake", str(lake)) or driver.poll() is not None
                        and [None], "the lake's target up", timeout_s=300)
        assert target is not None, log_path.read_text()[-3000:]
        lake_label = f'lake="{lake}"'
        rows = f'radlake_lake_input_rows_total{{{lake_label},query="bronze-instances"}}'
        assert poll(lambda: _first(prometheus, rows), "bronze's input rows", timeout_s=300) == len(events)
        written = f'radlake_lake_rows_written_total{{{lake_label},table="bronze/instances"}}'
        assert poll(lambda: _first(prometheus, written), "bronze's rows written", timeout_s=120) == len(events)
        assert _first(prometheus, f'radlake_lake_table_version{{{lake_label},table="bronze/instances"}}') >= 1
        assert poll(lambda: _first(prometheus, f'radlake_lake_query_active{{{lake_label},query="silver"}}'),
                    "silver started (after its tables)", timeout_s=300) == 1
        assert _first(prometheus, f'radlake_lake_batch_duration_seconds_count{{{lake_label},'
                                  f'query="bronze-instances"}}') >= 1
    finally:
        _stop(driver, log_path)
    assert not [p for p in scrape_targets_dir(fast).glob("lake-*.json") if str(lake) in p.read_text()]


def test_a_radiomics_follower_is_scraped_and_counts_what_it_dead_letters(fast, prometheus, kafka_bootstrap,
                                                                        registry_url, tmp_path):
    tag = uuid.uuid4().hex[:8]
    source = STUDY_COMPLETED.with_name(f"test.monitoring.radiomics.{tag}")
    register(schema_admin(fast), (source,))
    create_topics(kafka_bootstrap, (source,))
    producer = kafka.producer(kafka_bootstrap, client_id=f"it-monitoring-{tag}")
    producer.produce(source.name, key=b"k", value=b"not an event of the contract")
    assert producer.flush(30) == 0
    (tmp_path / "settings.yaml").write_text("{}\n")  # the default settings: nothing gets computed here
    group = f"g-monitoring-{tag}"
    log_path = tmp_path / "follower.log"
    with log_path.open("wb") as out:
        follower = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "apps.cli", "radiomics", "follow", "--settings", str(tmp_path / "settings.yaml"),
             "--on", "studies", "--source-topic", source.name, "--group", group],
            env={**os.environ, "RADLAKE_LAKE_URI": str(tmp_path / "lake")}, stdout=out, stderr=subprocess.STDOUT)
    try:
        [target] = poll(lambda: _target(prometheus, "radiomics", "group", group) or follower.poll() is not None
                        and [None], "the radiomics follower's target up", timeout_s=300)
        assert target is not None, log_path.read_text()[-3000:]
        dead = (f'radlake_radiomics_messages_total{{group="{group}",provider="unknown",'
                f'outcome="dead_lettered"}}')
        assert poll(lambda: _first(prometheus, dead), "the dead-lettered message counted", timeout_s=300) == 1
        assert _first(prometheus, f'radlake_radiomics_batch_seconds_count{{group="{group}"}}') == 1
    finally:
        _stop(follower, log_path)
    assert not [p for p in scrape_targets_dir(fast).glob("radiomics-*.json") if group in p.read_text()]
