"""NiFi: the versioned smoke flow, deployed through nipyapi, carries an HTTP POST into a Kafka topic."""

from __future__ import annotations

import socket
import time
import uuid

import httpx
import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from nifi.deploy import Deployment, deploy, flow_path, undeploy
from platform_layer.identities import stack_kafka_identity
from platform_layer.kafka import connection as kafka_connection

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient(kafka_connection(bootstrap))
    for future in admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)]).values():
        future.result(timeout=30)


def _post_until_accepted(url: str, body: bytes, headers: dict[str, str], timeout_s: float = 120.0) -> httpx.Response:
    """ListenHTTP opens its port once the processor is scheduled: retry the POST until it answers."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return httpx.post(url, content=body, headers=headers, timeout=10)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _consume_one(bootstrap: str, topic: str, timeout_s: float = 120.0):
    consumer = Consumer({
        **kafka_connection(bootstrap),
        "group.id": f"test-nifi-{uuid.uuid4().hex[:8]}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
    })
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise AssertionError(f"consumer error on {topic}: {msg.error()}")
            return msg
        return None
    finally:
        consumer.close()


def test_http_post_to_listenhttp_is_published_to_kafka(settings, nifi, kafka_bootstrap, unique_topic):
    _create_topic(kafka_bootstrap, unique_topic)
    identity = stack_kafka_identity(settings)
    port = _free_port()
    run_id = uuid.uuid4().hex[:8]
    deployment: Deployment = deploy(
        nifi,
        flow_path("smoke_http_to_kafka"),
        name=f"smoke-{run_id}",
        parameters={"listen_port": str(port), "kafka_bootstrap": kafka_bootstrap, "kafka_topic": unique_topic,
                    "kafka_username": identity.username, "kafka_password": identity.password,
                    "kafka_ca_file": identity.ca_file},
    )
    try:
        body = f'{{"smoke": "{run_id}"}}'.encode()
        response = _post_until_accepted(
            f"http://127.0.0.1:{port}/contentListener", body, {"Content-Type": "application/json", "filename": run_id}
        )
        assert response.status_code == 200, response.text

        msg = _consume_one(kafka_bootstrap, unique_topic)
        assert msg is not None, f"no message on {unique_topic}"
        assert msg.value() == body
        assert msg.key() == run_id.encode()
    finally:
        undeploy(nifi, deployment)
