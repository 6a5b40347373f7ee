"""A typed event produced and consumed through the real broker, validated by the real registry."""

from __future__ import annotations

import base64
import hashlib
import json
import ssl
import time

import httpx
import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lake_schemas.errors import RegistryError, SchemaViolation
from lake_schemas.events import InstanceReceived, InstanceReceivedData
from lake_schemas.topics import INSTANCE_RECEIVED
from platform_layer.kafka import connection as kafka_connection
from platform_layer.realm import PLATFORM_CLIENT, issuer, service_client
from platform_layer.realm_roles import PLATFORM_ADMIN
from platform_layer.registration import register, schema_admin
from platform_layer.serde import REGISTRY_CALLS, EventSerde, registry_client
from platform_layer.settings import Settings
from platform_layer.tls import ca_file

pytestmark = pytest.mark.integration


def _event(**overrides) -> InstanceReceived:
    blob = b"de-identified instance bytes"
    data = dict(
        project="lung-nodules",
        pseudo_patient_id="P-3f2a9c",
        study_uid="2.25.1234567890",
        series_uid="2.25.1234567891",
        sop_instance_uid="2.25.1234567892",
        sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
        modality="CT",
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        rows=512,
        columns=512,
        pixel_spacing=(0.7, 0.7),
        image_position_patient=(-175.0, -175.0, 12.5),
        object_uri="file:///lake/objects/ab/abcdef.dcm",
        sha256=hashlib.sha256(blob).hexdigest(),
        size_bytes=len(blob),
        deid_profile_version="ps3.15-2025b/1",
    )
    data.update(overrides)
    return InstanceReceived(provider="st-olav", data=InstanceReceivedData(**data))


def _consume_one(bootstrap: str, topic: str, timeout_s: float = 30.0):
    consumer = Consumer({**kafka_connection(bootstrap), "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                return msg
    finally:
        consumer.close()
    raise AssertionError(f"no message on {topic} within {timeout_s}s")


def test_typed_event_round_trip_through_broker_and_registry(kafka_bootstrap, registry_url, created_topic):
    topic = INSTANCE_RECEIVED.with_name(created_topic)
    registry = schema_admin(Settings())
    [registered] = register(registry, (topic,))
    serde = EventSerde(topic, registry)
    sent = _event()

    producer = Producer({**kafka_connection(kafka_bootstrap), "enable.idempotence": True})
    producer.produce(topic.name, key=sent.key.encode(), value=serde.serialize(sent))
    assert producer.flush(30) == 0

    msg = _consume_one(kafka_bootstrap, topic.name)
    assert msg.value()[0] == 0 and int.from_bytes(msg.value()[1:5], "big") == registered.schema_id
    received = serde.deserialize(msg.value())
    assert received == sent
    assert msg.key() == sent.data.study_uid.encode()


def test_registration_is_idempotent(registry_url, unique_topic):
    topic = INSTANCE_RECEIVED.with_name(unique_topic)
    registry = schema_admin(Settings())
    first = register(registry, (topic,))
    second = register(registry, (topic,))
    assert first == second


def test_consumer_rejects_a_message_that_violates_the_schema(kafka_bootstrap, registry_url, created_topic):
    topic = INSTANCE_RECEIVED.with_name(created_topic)
    registry = schema_admin(Settings())
    [registered] = register(registry, (topic,))
    serde = EventSerde(topic, registry)
    # A producer that bypasses the serializer: right wire format and schema id, wrong content.
    bogus = b"\x00" + registered.schema_id.to_bytes(4, "big") + b'{"event_type": "instance.received"}'
    producer = Producer(kafka_connection(kafka_bootstrap))
    producer.produce(topic.name, value=bogus)
    producer.flush(30)
    msg = _consume_one(kafka_bootstrap, topic.name)
    with pytest.raises(SchemaViolation):
        serde.deserialize(msg.value())


def test_consuming_asks_the_registry_once_per_schema_id_not_per_message(kafka_bootstrap, registry_url, unique_topic):
    topic = INSTANCE_RECEIVED.with_name(unique_topic)
    registry = schema_admin(Settings())
    register(registry, (topic,))
    producer_side, consumer_side = EventSerde(topic, registry), EventSerde(topic, registry_client(registry_url))
    values = [producer_side.serialize(_event(sop_instance_uid=f"2.25.{n}")) for n in range(200)]
    calls_before = REGISTRY_CALLS.ok + REGISTRY_CALLS.failed
    decoded = [consumer_side.deserialize(v) for v in values]
    assert [e.data.sop_instance_uid for e in decoded] == [f"2.25.{n}" for n in range(200)]
    assert REGISTRY_CALLS.ok + REGISTRY_CALLS.failed - calls_before == 1


def test_a_schema_id_the_registry_does_not_hold_is_a_violation_not_a_hang(registry_url, unique_topic):
    topic = INSTANCE_RECEIVED.with_name(unique_topic)
    serde = EventSerde(topic, registry_client(registry_url))
    unknown = b"\x00" + (2**31 - 7).to_bytes(4, "big") + _event().model_dump_json().encode()
    with pytest.raises(SchemaViolation, match="does not hold"):
        serde.deserialize(unknown)


def test_the_registry_answers_https_only_and_to_clients_that_trust_the_platform_ca(registry_url, settings):
    assert registry_url.startswith("https://")
    with pytest.raises(httpx.HTTPError):  # plain HTTP on its port: no answer
        httpx.get(f"{registry_url.replace('https://', 'http://', 1)}/subjects", timeout=10)
    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # the system's CAs only
        httpx.get(f"{registry_url}/subjects", timeout=10)
    platform = ssl.create_default_context(cafile=str(ca_file(settings)))
    assert httpx.get(f"{registry_url}/subjects", timeout=10, verify=platform).status_code == 200


def _forged_admin_token(settings: Settings) -> str:
    """A token with the realm's issuer and the ``platform-admin`` role, signed by a key Keycloak never held."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iss": issuer(settings), "sub": "intruder", "azp": PLATFORM_CLIENT, "typ": "Bearer",
              "iat": now, "exp": now + 300, "realm_access": {"roles": [PLATFORM_ADMIN]}}
    def part(value: dict) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=")

    signed = part({"alg": "RS256", "typ": "JWT", "kid": "not-a-realm-key"}) + b"." + part(claims)
    signature = key.sign(signed, padding.PKCS1v15(), hashes.SHA256())
    return (signed + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def test_only_a_platform_admin_token_writes_to_the_registry(registry_url, settings, unique_topic):
    topic = INSTANCE_RECEIVED.with_name(unique_topic)
    ca = str(ca_file(settings))
    with service_client(settings, "radlake-streams") as streams:  # a component: no platform-admin
        streams_token = streams.client_credentials().access_token
    for bearer, refused in ((None, "401"), (lambda: _forged_admin_token(settings), "401"),
                            (lambda: streams_token, "403")):
        with pytest.raises(RegistryError, match=f"HTTP status code {refused}.*platform-admin"):
            register(registry_client(registry_url, ca_file=ca, bearer=bearer), (topic,))
    anonymous = registry_client(registry_url, ca_file=ca)
    with pytest.raises(SchemaRegistryError, match="Subject .* not found"):  # nothing got in
        anonymous.get_latest_version(topic.subject)

    [registered] = register(schema_admin(settings), (topic,))
    # reads stay anonymous: a consumer fetches the schema by id, a producer looks its id up
    assert anonymous.get_schema(registered.schema_id).schema_str == topic.schema_str
    assert EventSerde(topic, anonymous).schema_id == registered.schema_id
    # and every other write is the platform's too
    platform = ssl.create_default_context(cafile=ca)
    deleted = httpx.delete(f"{registry_url}/subjects/{topic.subject}", verify=platform, timeout=10)
    assert deleted.status_code == 401
    deleted = httpx.delete(f"{registry_url}/subjects/{topic.subject}", verify=platform, timeout=10,
                           headers={"Authorization": f"Bearer {streams_token}"})
    assert deleted.status_code == 403
    assert anonymous.get_latest_version(topic.subject).schema_id == registered.schema_id
