"""``radlake status`` shows the numbers this test produced: arrivals per provider on an instance topic, quarantine
counts by reason from an edge's journal, a consumer group's lag and its trend, a lake table's version.

It reads the parts directly (``--no-prometheus``): Kafka of the session stack, the state dir's edge folders and
lake. Names are unique per run, and what the test writes under the state dir is removed after it.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pytest
from confluent_kafka import TopicPartition
from deltalake import write_deltalake
from polling import poll

from apps.status import main as status_cli
from infra import stack
from nifi.providers import edge_dir
from platform_layer import kafka
from radlake.deid.errors import QuarantineReason
from radlake.deid.quarantine import QuarantineRecord, append_records

pytestmark = pytest.mark.integration


def _envelope(provider: str) -> bytes:
    # the registry's framing (magic byte, schema id) and the envelope's fields the status command reads
    return b"\x00\x00\x00\x00\x01" + json.dumps({"provider": provider, "event_type": "instance.received"}).encode()


@pytest.fixture
def produced(settings, kafka_bootstrap, created_topic, monkeypatch):
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(settings.state_dir))
    run = uuid.uuid4().hex[:8]
    providers = {f"status-a-{run}": 7, f"status-b-{run}": 3}
    producer = kafka.producer(kafka_bootstrap, client_id="test-status")
    for provider, count in providers.items():
        for _ in range(count):
            producer.produce(created_topic, key=b"study", value=_envelope(provider))
    assert producer.flush(30) == 0

    quarantined = f"status-a-{run}"
    append_records(edge_dir(settings, quarantined), [
        QuarantineRecord("a.dcm", QuarantineReason.NOT_DICOM, "x", provider=quarantined),
        QuarantineRecord("b.dcm", QuarantineReason.NOT_DICOM, "x", provider=quarantined),
        QuarantineRecord("c.dcm", QuarantineReason.TRUNCATED_FILE, "x", provider=quarantined)])

    table = Path(settings.resolved_lake_uri) / f"status_test_{run}"
    for n in range(3):  # versions 0, 1, 2
        write_deltalake(str(table), pa.table({"n": [n]}), mode="append")
    yield {"providers": providers, "topic": created_topic, "quarantined": quarantined, "table": table.name,
           "run": run}
    shutil.rmtree(edge_dir(settings, quarantined), ignore_errors=True)
    shutil.rmtree(table, ignore_errors=True)


def _status(topic: str, capsys) -> dict:
    capsys.readouterr()
    assert status_cli(["--json", "--no-prometheus", "--instance-topic", topic]) in (0, 3)
    return json.loads(capsys.readouterr().out)


def test_status_shows_arrivals_quarantine_lag_and_tables_the_test_produced(produced, kafka_bootstrap, capsys):
    group = f"status-group-{produced['run']}"
    consumer = kafka.consumer(kafka_bootstrap, group_id=group)
    consumer.commit(offsets=[TopicPartition(produced["topic"], p, 0) for p in range(3)], asynchronous=False)
    consumer.close()

    first = _status(produced["topic"], capsys)
    providers = {p["provider"]: p for p in first["providers"]}
    for provider, count in produced["providers"].items():
        assert providers[provider]["per_min_5"] == pytest.approx(count / 5)
        assert providers[provider]["per_min_60"] == pytest.approx(count / 60)
        assert providers[provider]["last_upload"]
    assert providers[produced["quarantined"]]["quarantined"] == {"NOT_DICOM": 2, "TRUNCATED_FILE": 1}
    groups = {g["group"]: g for g in first["groups"]}
    assert groups[group]["lag"] == 10
    assert {t["table"]: t["version"] for t in first["tables"]}[produced["table"]] == 2
    assert "Kafka" in first["sources"]["groups"] and "delta-rs" in first["sources"]["tables"]

    producer = kafka.producer(kafka_bootstrap, client_id="test-status")
    for _ in range(4):
        producer.produce(produced["topic"], key=b"study", value=_envelope(next(iter(produced["providers"]))))
    assert producer.flush(30) == 0
    second = _status(produced["topic"], capsys)
    assert {g["group"]: g for g in second["groups"]}[group] == {"group": group, "lag": 14, "trend": 4}


def test_status_prints_a_table_naming_its_sources(produced, capsys):
    capsys.readouterr()
    status_cli(["--plain", "--no-prometheus", "--instance-topic", produced["topic"]])
    out = capsys.readouterr().out
    assert "Providers  (from Kafka topic" in out and produced["quarantined"] in out
    assert "NOT_DICOM=2, TRUNCATED_FILE=1" in out and produced["table"] in out


FAST = {"monitoring_scrape_interval_s": 1.0, "monitoring_evaluation_interval_s": 1.0, "supervisor_interval_s": 1.0,
        "supervisor_backoff_initial_s": 1.0}


@pytest.fixture
def monitored(settings, vault, kafka_bootstrap, _stack_session):
    """The monitoring components up (1 s scrapes) under the supervisor, as `stack up monitoring` leaves them."""
    fast = settings.model_copy(update=FAST)
    names = stack.selected(["monitoring"])
    was_running = {n: stack.component(n, settings).pid() is not None for n in names}
    stack.up(fast, names)
    for name in names:
        _stack_session.setdefault(name, not was_running[name])  # the session stops what it started
    yield fast
    stack.up(settings, [n for n in names if stack.component(n, settings).pid() is not None])


def test_with_monitoring_status_reads_prometheus_and_shows_a_supervisor_restart(monitored, kafka_bootstrap,
                                                                                 created_topic, capsys, monkeypatch):
    monkeypatch.setenv("RADLAKE_STATE_DIR", str(monitored.state_dir))
    group = f"status-prom-{uuid.uuid4().hex[:8]}"
    producer = kafka.producer(kafka_bootstrap, client_id="test-status")
    for _ in range(6):
        producer.produce(created_topic, key=b"k", value=_envelope("status-prom"))
    assert producer.flush(30) == 0
    consumer = kafka.consumer(kafka_bootstrap, group_id=group)
    consumer.commit(offsets=[TopicPartition(created_topic, p, 0) for p in range(3)], asynchronous=False)
    consumer.close()
    receiver = stack.component("alert-receiver", monitored)
    before = receiver.pid()
    receiver.kill()  # the supervisor brings it back; the exporter counts it; Prometheus scrapes the count

    def shown() -> dict | None:
        capsys.readouterr()
        status_cli(["--json", "--instance-topic", created_topic])
        answer = json.loads(capsys.readouterr().out)
        groups = {g["group"]: g["lag"] for g in answer["groups"]}
        restarts = {s["component"]: s["restarts"] for s in answer["supervised"]}
        return answer if groups.get(group) == 6 and restarts.get("alert-receiver", 0) >= 1 else None

    answer = poll(shown, "the group's lag and the receiver's restart, through Prometheus", timeout_s=180.0,
                  interval_s=1.0)
    assert answer["sources"]["groups"].startswith("Prometheus") and answer["sources"]["supervisor"].startswith(
        "Prometheus")
    assert receiver.pid() not in (None, before) and receiver.healthy()
