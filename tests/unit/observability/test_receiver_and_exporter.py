"""The webhook receiver's records and the exporter's certificate and Kafka-rights parts (pure or on files)."""

from __future__ import annotations

import datetime
import json

import pytest
from confluent_kafka.admin import AclOperation, ResourcePatternType, ResourceType
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from apps.monitoring import monitoring_rights
from monitoring.exporter import certificate_expiries
from monitoring.receiver import AlertLog, alert_records

NOW = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)


def test_each_alert_of_a_notification_is_one_record():
    notification = {"receiver": "radlake-webhook", "status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "A", "group": "g"}, "annotations": {"summary": "s"},
         "startsAt": "t0", "endsAt": "0001-01-01T00:00:00Z", "fingerprint": "f1"},
        {"status": "resolved", "labels": {"alertname": "B"}, "annotations": {}, "startsAt": "t0", "endsAt": "t1",
         "fingerprint": "f2"}]}
    records = alert_records(notification, NOW)
    assert [(r["alertname"], r["status"], r["fingerprint"]) for r in records] == [("A", "firing", "f1"),
                                                                                  ("B", "resolved", "f2")]
    assert records[0]["labels"] == {"alertname": "A", "group": "g"}
    assert records[0]["received_at"] == NOW.isoformat()


def test_a_body_that_is_not_a_notification_is_refused():
    with pytest.raises(ValueError, match="no list of alerts"):
        alert_records({"alerts": "x"}, NOW)


def test_records_are_appended_as_json_lines(tmp_path):
    alerts = AlertLog(tmp_path / "monitoring" / "alerts.jsonl")
    alerts.append(alert_records({"alerts": [{"status": "firing", "labels": {"alertname": "A"}}]}, NOW))
    alerts.append(alert_records({"alerts": [{"status": "resolved", "labels": {"alertname": "A"}}]}, NOW))
    lines = [json.loads(line) for line in alerts.path.read_text().splitlines()]
    assert [line["status"] for line in lines] == ["firing", "resolved"]


def _certificate(name: str, *, ca: bool, days: int) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    built = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
             .serial_number(1).not_valid_before(NOW - datetime.timedelta(days=1))
             .not_valid_after(NOW + datetime.timedelta(days=days))
             .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
             .sign(key, hashes.SHA256()))
    return built.public_bytes(serialization.Encoding.PEM)


def test_leaf_certificates_under_the_state_dir_report_seconds_left(tmp_path):
    (tmp_path / "kafka" / "tls").mkdir(parents=True)
    (tmp_path / "kafka" / "tls" / "broker.crt").write_bytes(_certificate("kafka.radlake.local", ca=False, days=3))
    (tmp_path / "monitoring" / "tls").mkdir(parents=True)
    (tmp_path / "monitoring" / "tls" / "ca.crt").write_bytes(_certificate("a CA", ca=True, days=3))
    (tmp_path / "monitoring" / "tls" / "broken.crt").write_text("not a certificate")
    assert certificate_expiries(tmp_path, now=NOW) == [("kafka/tls/broker.crt", "CN=kafka.radlake.local", 3 * 86400.0)]


def test_the_exporter_may_describe_topics_and_groups_and_nothing_else():
    bindings = monitoring_rights().bindings("radlake-monitoring")
    assert {(b.restype, b.name, b.resource_pattern_type, b.operation) for b in bindings} == {
        (ResourceType.TOPIC, "*", ResourcePatternType.LITERAL, AclOperation.DESCRIBE),
        (ResourceType.GROUP, "*", ResourcePatternType.LITERAL, AclOperation.DESCRIBE),
    }
