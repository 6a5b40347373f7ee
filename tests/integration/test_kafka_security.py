"""Kafka refuses whoever is not a platform principal: no plaintext, no anonymous login, no wrong password,
no broker but ours (TLS against the platform CA), no client certificate but the broker's on its own listener,
no topic created on first use, and nothing a principal's ACLs do not allow."""

from __future__ import annotations

import ssl
import time
import uuid

import pytest
from confluent_kafka import KafkaError, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from cryptography import x509

from inference_workers.service import ServeOptions
from inference_workers.service import rights as inference_rights
from infra import stack
from platform_layer import kafka
from platform_layer.identities import stack_kafka_identity
from platform_layer.principals import KAFKA_EDGE, KAFKA_INFERENCE, KAFKA_LAKE, KAFKA_RADIOMICS, KAFKA_STREAMS
from platform_layer.tls import ca_file
from spark_jobs import radiomics_follow
from spark_jobs.pipeline import rights as pipeline_rights

pytestmark = pytest.mark.integration

QUICK = {"socket.timeout.ms": 3000, "log_level": 0}


def _lists_topics(config: dict) -> bool:
    try:
        AdminClient({**config, **QUICK}).list_topics(timeout=4)
    except KafkaException:
        return False
    return True


def test_the_administrator_lists_topics(kafka_bootstrap, settings):
    assert _lists_topics(kafka.connection(kafka_bootstrap, stack_kafka_identity(settings)))


@pytest.mark.parametrize("change", [
    {"security.protocol": "PLAINTEXT"},  # no TLS, no login
    {"security.protocol": "SSL"},  # TLS but no login
    {"sasl.password": "not-the-password"},
    {"sasl.username": "nobody"},
    {"ssl.ca.location": "probe"},  # the system's CAs, not the platform's: the broker is not trusted
])
def test_a_client_without_the_right_credentials_or_trust_is_refused(kafka_bootstrap, settings, change):
    config = kafka.connection(kafka_bootstrap, stack_kafka_identity(settings))
    config.update(change)
    if config.get("security.protocol") != "SASL_SSL":
        config = {k: v for k, v in config.items() if not k.startswith("sasl.")}
    assert not _lists_topics(config)


def test_the_brokers_own_listener_takes_the_broker_certificate_only(kafka_bootstrap, settings):
    component = stack.component("kafka", settings)
    assert _lists_topics(kafka.connection(component.broker_address, component.broker_identity))
    no_certificate = {"bootstrap.servers": component.broker_address, "security.protocol": "SSL",
                      "ssl.ca.location": str(ca_file(settings))}
    assert not _lists_topics(no_certificate)
    scram = kafka.connection(component.broker_address, stack_kafka_identity(settings))
    assert not _lists_topics(scram)


def test_topics_are_not_created_on_first_use(kafka_bootstrap):
    topic = f"test.security.nowhere.{uuid.uuid4().hex[:8]}"
    errors = []
    producer = Producer({**kafka.connection(kafka_bootstrap), "message.timeout.ms": 5000, "log_level": 0})
    producer.produce(topic, b"x", on_delivery=lambda err, _msg: errors.append(err))
    producer.flush(10)
    assert errors and errors[0] is not None
    assert topic not in AdminClient(kafka.connection(kafka_bootstrap)).list_topics(timeout=10).topics


def test_a_principal_without_an_acl_for_a_topic_cannot_read_it(kafka_bootstrap, settings):
    topic = f"test.security.acl.{uuid.uuid4().hex[:8]}"
    kafka.ensure_topics(kafka_bootstrap, [kafka.TopicSpec(topic, 1)])
    streams = kafka.consumer(kafka_bootstrap, group_id=f"test-acl-{uuid.uuid4().hex[:8]}",
                             identity=stack_kafka_identity(settings, KAFKA_STREAMS), extra=QUICK)
    try:
        streams.subscribe([topic])
        error = None
        for _ in range(20):
            message = streams.poll(0.5)
            if message is not None and message.error():
                error = message.error()
                break
        assert error is not None
        assert error.code() in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED)
    finally:
        streams.close()


def test_the_edge_principal_writes_only_where_it_was_allowed(kafka_bootstrap, settings):
    allowed, other = (f"test.security.edge.{uuid.uuid4().hex[:8]}" for _ in range(2))
    kafka.ensure_topics(kafka_bootstrap, [kafka.TopicSpec(allowed, 1), kafka.TopicSpec(other, 1)])
    kafka.grant(kafka_bootstrap, KAFKA_EDGE, kafka.Rights(writes=(allowed,)))
    edge = kafka.producer(kafka_bootstrap, client_id="test-edge", identity=stack_kafka_identity(settings, KAFKA_EDGE),
                          extra={"message.timeout.ms": 10000, "log_level": 0})
    outcomes: dict[str, object] = {}
    for topic in (allowed, other):
        edge.produce(topic, b"x", on_delivery=lambda err, _msg, topic=topic: outcomes.__setitem__(topic, err))
    edge.flush(20)
    assert outcomes[allowed] is None
    assert outcomes[other] is not None and outcomes[other].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    reader = kafka.consumer(kafka_bootstrap, group_id=f"test-edge-{uuid.uuid4().hex[:8]}",
                            identity=stack_kafka_identity(settings, KAFKA_EDGE), extra=QUICK)
    try:
        reader.subscribe([allowed])
        errors = [m.error() for m in (reader.poll(0.5) for _ in range(20)) if m is not None and m.error()]
        assert errors  # writing is all the edge may do
    finally:
        reader.close()


def _component_rights() -> list:
    tag = uuid.uuid4().hex[:8]
    return [
        pytest.param(KAFKA_LAKE, pipeline_rights(f"test.lake.instances.{tag}", f"test.lake.completed.{tag}"),
                     id="lake"),
        pytest.param(KAFKA_RADIOMICS, radiomics_follow.rights(
            "completed", group=f"test-radiomics-{tag}", source_topic=f"test.radiomics.completed.{tag}",
            features_topic=f"test.radiomics.features.{tag}"), id="radiomics"),
        pytest.param(KAFKA_INFERENCE, inference_rights(ServeOptions(
            worker_id="w", group=f"test-inference-{tag}", input_topic=f"test.inference.completed.{tag}",
            output_topic=f"test.inference.predictions.{tag}", dead_letter_topic=f"test.inference.dlq.{tag}")),
            id="inference"),
    ]


def _delivery_errors(producer: Producer, topics: list[str]) -> dict[str, object]:
    outcomes: dict[str, object] = {}
    for topic in topics:
        producer.produce(topic, b"x", on_delivery=lambda err, _msg, topic=topic: outcomes.__setitem__(topic, err))
    producer.flush(20)
    return outcomes


@pytest.mark.parametrize(("principal", "rights"), _component_rights())
def test_a_component_principal_reads_its_inputs_and_writes_its_outputs_only(kafka_bootstrap, settings, principal,
                                                                              rights):
    own = [t for t in dict.fromkeys((*rights.reads, *rights.writes)) if t.startswith("test.")]
    stranger = f"test.security.stranger.{uuid.uuid4().hex[:8]}"
    kafka.ensure_topics(kafka_bootstrap, [kafka.TopicSpec(t, 1) for t in (*own, stranger)])
    kafka.grant(kafka_bootstrap, principal, rights)
    identity = stack_kafka_identity(settings, principal)

    admin = kafka.producer(kafka_bootstrap, client_id="test-admin")
    assert _delivery_errors(admin, [t for t in rights.reads if t in own]) == dict.fromkeys(
        [t for t in rights.reads if t in own])
    reader = kafka.consumer(kafka_bootstrap, group_id=f"{rights.group_prefixes[0]}-{uuid.uuid4().hex[:6]}",
                            identity=identity, extra=QUICK)
    try:
        reader.assign([TopicPartition(t, 0, 0) for t in rights.reads])
        seen, errors = set(), []
        for _ in range(40):
            message = reader.poll(0.5)
            if message is not None:
                (errors.append(message.error()) if message.error() else seen.add(message.topic()))
            if seen == set(rights.reads):
                break
        assert errors == [] and seen == set(rights.reads)
    finally:
        reader.close()

    writer = kafka.producer(kafka_bootstrap, client_id=f"test-{principal}", identity=identity,
                            extra={"message.timeout.ms": 10000, "log_level": 0})
    outcomes = _delivery_errors(writer, [t for t in rights.writes if t in own] + [stranger])
    refused = {t for t, err in outcomes.items() if err is not None}
    assert refused == {stranger}
    assert outcomes[stranger].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED


def _served_serials(settings) -> set[int]:
    ports = (settings.kafka_port, settings.kafka_broker_port, settings.kafka_controller_port)
    return {x509.load_pem_x509_certificate(ssl.get_server_certificate(("127.0.0.1", p)).encode()).serial_number
            for p in ports}


def test_a_running_broker_serves_a_renewed_certificate_without_a_restart(kafka_bootstrap, settings):
    component = stack.component("kafka", settings)
    pid, before = component.pid(), _served_serials(settings)
    component.rotate_certificate()
    issued = x509.load_pem_x509_certificate((component.tls_dir / "broker.crt").read_bytes()).serial_number
    deadline = time.monotonic() + 60  # brokers apply a listener's new keystore asynchronously
    while _served_serials(settings) != {issued} and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _served_serials(settings) == {issued} and issued not in before  # every listener, the new one
    assert component.pid() == pid
    assert _lists_topics(kafka.connection(kafka_bootstrap, stack_kafka_identity(settings)))
