"""Kafka clients and topics, built in one place.

A component asks for a client by its role (an idempotent producer, a transactional producer, a
read-committed consumer, an admin client) and passes only what is its own (group, ids, tuning); the
connection and delivery guarantees are set here. Topics are created here, with their partitions and
configuration, and an existing topic with another partition count is an error, never silently used.
"""

from __future__ import annotations

import functools
import logging
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from platform_layer.errors import DeliveryError, TopicError
from platform_layer.serde import EventSerde

log = logging.getLogger(__name__)

Config = Mapping[str, Any]


SCRAM_MECHANISM = "SCRAM-SHA-512"


@dataclass(frozen=True)
class ScramIdentity:
    """A principal that logs in with SASL/SCRAM over TLS (every client of the platform's Kafka)."""

    username: str
    password: str = field(repr=False)
    ca_file: str

    def config(self) -> dict[str, str]:
        return {"security.protocol": "SASL_SSL", "sasl.mechanism": SCRAM_MECHANISM, "sasl.username": self.username,
                "sasl.password": self.password, "ssl.ca.location": self.ca_file}

    def spark_options(self) -> dict[str, str]:
        """The same identity as options of Spark's Kafka source and sink (Java client properties)."""
        login = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                 f'username="{self.username}" password="{self.password}";')
        return {"kafka.security.protocol": "SASL_SSL", "kafka.sasl.mechanism": SCRAM_MECHANISM,
                "kafka.sasl.jaas.config": login, "kafka.ssl.truststore.type": "PEM",
                "kafka.ssl.truststore.location": self.ca_file}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ScramIdentity:
        """From what the stack keeps in Vault KV (``radlake/kafka/<principal>``)."""
        try:
            return cls(str(record["username"]), str(record["password"]), str(record["ca_file"]))
        except KeyError as err:
            raise TopicError(f"a Kafka credential record without {err}") from err


@dataclass(frozen=True)
class CertificateIdentity:
    """A principal that authenticates with its TLS client certificate (the broker, and the stack speaking as it
    on the broker's own listener)."""

    certificate_file: str
    key_file: str
    ca_file: str

    def config(self) -> dict[str, str]:
        return {"security.protocol": "SSL", "ssl.certificate.location": self.certificate_file,
                "ssl.key.location": self.key_file, "ssl.ca.location": self.ca_file}


Identity = ScramIdentity | CertificateIdentity
_default_identity: Callable[[], Identity] | None = None


def use_identity(resolve: Callable[[], Identity]) -> None:
    """Who this process is to Kafka when a client is built without an explicit ``identity``: ``resolve`` is
    called once, at the first client (a command that never talks to Kafka never asks Vault)."""
    global _default_identity
    _default_identity = functools.cache(resolve)


def _identity(identity: Identity | None) -> Identity:
    if identity is not None:
        return identity
    if _default_identity is None:
        raise TopicError("this process has no Kafka identity (platform_layer.kafka.use_identity was not called; "
                         "commands call it through platform_layer.identities.use_stack_identity)")
    return _default_identity()


def connection(bootstrap: str, identity: Identity | None = None) -> dict[str, Any]:
    """Address and credentials of a client: ``identity``, or this process's (:func:`use_identity`)."""
    return {"bootstrap.servers": bootstrap, **_identity(identity).config()}


def spark_options(bootstrap: str, identity: ScramIdentity | None = None) -> dict[str, str]:
    """The same for Spark's Kafka source and sink (``.options(**spark_options(...))``)."""
    chosen = _identity(identity)
    if not isinstance(chosen, ScramIdentity):
        raise TopicError("Spark's Kafka client logs in with a SCRAM identity, not a certificate")
    return {"kafka.bootstrap.servers": bootstrap, **chosen.spark_options()}


def producer(bootstrap: str, *, client_id: str, extra: Config | None = None,
             identity: Identity | None = None) -> Producer:
    """An idempotent producer whose acknowledgement means every in-sync replica has the message."""
    return Producer({
        **connection(bootstrap, identity), "client.id": client_id,
        "acks": "all", "enable.idempotence": True, "linger.ms": 5,
        **(extra or {}),
    })


def transactional_producer(bootstrap: str, *, transactional_id: str, timeout_ms: int = 60_000,
                           extra: Config | None = None, identity: Identity | None = None) -> Producer:
    """A producer for read-process-write transactions; a restarted one with the same id fences its predecessor.

    A transaction begun right after a commit meets CONCURRENT_TRANSACTIONS from the coordinator until the
    previous one's markers are written (a few ms); librdkafka retries after ``retry.backoff.ms`` (default 100,
    doubling up to ``retry.backoff.max.ms``), which made every transaction after the first wait about 100 ms in
    ``send_offsets_to_transaction``. The first retry comes after 5 ms instead, as the Java client's 20 ms."""
    return producer(bootstrap, client_id=transactional_id, identity=identity, extra={
        "transactional.id": transactional_id, "transaction.timeout.ms": timeout_ms, "retry.backoff.ms": 5,
        **(extra or {}),
    })


def consumer(bootstrap: str, *, group_id: str, static_member_id: str | None = None,
             extra: Config | None = None, identity: Identity | None = None) -> Consumer:
    """A consumer that sees committed messages only and commits its offsets explicitly.

    ``static_member_id`` makes the member static: restarted with the same id, it takes its partitions
    back at once instead of waiting for its predecessor's session to time out.
    """
    config: dict[str, Any] = {
        **connection(bootstrap, identity), "group.id": group_id,
        "enable.auto.commit": False, "auto.offset.reset": "earliest", "isolation.level": "read_committed",
    }
    if static_member_id is not None:
        config["group.instance.id"] = static_member_id
    return Consumer({**config, **(extra or {})})


def admin(bootstrap: str, *, extra: Config | None = None, identity: Identity | None = None) -> AdminClient:
    return AdminClient({**connection(bootstrap, identity), **(extra or {})})


# Durability of every topic the platform creates, unless its spec says otherwise. Three copies, two of them
# in sync before a write is acknowledged (producers send acks=all), on a cluster that has the brokers; a
# one-broker stack gets what it can hold (one copy, one in sync) and stays valid. Events are kept five weeks,
# so that a lake or a consumer down for weeks loses nothing; tiered storage is the production option for
# keeping them longer (docs/ingestion.md).
REPLICATION = 3
MIN_IN_SYNC = 2
EVENT_RETENTION_MS = 35 * 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)
    replication: int | None = None  # None: REPLICATION, or fewer when the cluster has fewer brokers


def topic_settings(spec: TopicSpec, brokers: int) -> tuple[int, dict[str, str]]:
    """The replication factor and configuration a topic is created with on a cluster of ``brokers``."""
    replication = min(spec.replication or REPLICATION, max(brokers, 1))
    config = {"min.insync.replicas": str(min(MIN_IN_SYNC, replication)), **spec.config}
    if "compact" not in config.get("cleanup.policy", ""):
        config.setdefault("retention.ms", str(EVENT_RETENTION_MS))
    return replication, config


def ensure_topics(bootstrap: str, topics: Sequence[TopicSpec], *, timeout_s: float = 30.0,
                  identity: Identity | None = None) -> list[str]:
    """Create the topics that are missing; return their names. A topic that exists with another partition
    count raises :class:`TopicError` (keys would land on other partitions than its consumers expect)."""
    client = admin(bootstrap, identity=identity)
    try:
        cluster = client.list_topics(timeout=timeout_s)
    except KafkaException as err:
        raise TopicError(f"cannot list topics on {bootstrap}: {err}") from err
    existing = cluster.topics
    wrong = {t.name: len(existing[t.name].partitions) for t in topics
             if t.name in existing and len(existing[t.name].partitions) != t.partitions}
    if wrong:
        wanted = {t.name: t.partitions for t in topics if t.name in wrong}
        raise TopicError(f"topics exist with other partition counts: have {wrong}, want {wanted}")
    missing = []
    for spec in topics:
        if spec.name not in existing:
            replication, config = topic_settings(spec, len(cluster.brokers))
            missing.append(NewTopic(spec.name, spec.partitions, replication, config=config))
    if not missing:
        return []
    for name, future in client.create_topics(missing).items():
        try:
            future.result(timeout_s)
        except KafkaException as err:
            if "TOPIC_ALREADY_EXISTS" not in str(err):
                raise TopicError(f"cannot create topic {name}: {err}") from err
    return [t.topic for t in missing]


@dataclass(frozen=True)
class Rights:
    """What a principal may do on Kafka: read and write exactly these topics, use consumer groups and
    transactional ids that start with these prefixes; ``describe_all``: describe every topic and consumer group
    (their offsets included), as a monitor does, without reading a message. Nothing else (the authorizer refuses
    what no ACL allows)."""

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()
    group_prefixes: tuple[str, ...] = ()
    transactional_prefixes: tuple[str, ...] = ()
    describe_all: bool = False

    def bindings(self, principal: str) -> list[AclBinding]:
        user = f"User:{principal}"

        def allow(kind: ResourceType, name: str, pattern: ResourcePatternType, operation: AclOperation) -> AclBinding:
            return AclBinding(kind, name, pattern, user, "*", operation, AclPermissionType.ALLOW)

        literal, prefixed = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
        return list(dict.fromkeys([  # a topic both read and written is described once (Kafka refuses duplicates)
            *(allow(ResourceType.TOPIC, t, literal, op) for t in self.reads
              for op in (AclOperation.READ, AclOperation.DESCRIBE)),
            *(allow(ResourceType.TOPIC, t, literal, op) for t in self.writes
              for op in (AclOperation.WRITE, AclOperation.DESCRIBE)),
            *(allow(ResourceType.GROUP, g, prefixed, AclOperation.READ) for g in self.group_prefixes),
            *(allow(ResourceType.TRANSACTIONAL_ID, t, prefixed, op) for t in self.transactional_prefixes
              for op in (AclOperation.WRITE, AclOperation.DESCRIBE)),
            *(allow(kind, "*", literal, AclOperation.DESCRIBE)
              for kind in (ResourceType.TOPIC, ResourceType.GROUP) if self.describe_all),
        ]))


def grant(bootstrap: str, principal: str, rights: Rights, *, timeout_s: float = 30.0,
          identity: Identity | None = None) -> None:
    """Give ``principal`` these rights (idempotent). Made by the administrator when it deploys a component
    that runs as its own principal; ``identity`` must be allowed to alter ACLs (the administrator).

    Returns once a broker describes every binding: ACLs committed by the controller reach a broker's authorizer
    a moment later, and some refusals in that moment are final (a transactional producer's
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED is fatal to it)."""
    client = admin(bootstrap, identity=identity)  # kept alive until every future has its answer
    bindings = rights.bindings(principal)
    any_name: Any = None  # a filter's None matches every name and host (typed str in confluent-kafka's stubs)
    everything = AclBindingFilter(ResourceType.ANY, any_name, ResourcePatternType.ANY, f"User:{principal}", any_name,
                                  AclOperation.ANY, AclPermissionType.ANY)
    deadline = time.monotonic() + timeout_s
    try:
        for future in client.create_acls(bindings).values():
            future.result(timeout_s)
        while not set(bindings) <= set(client.describe_acls(everything).result(timeout_s)):
            if time.monotonic() > deadline:
                raise TopicError(f"the rights of {principal} on Kafka were granted but not in force after {timeout_s} s")
            time.sleep(0.05)
    except KafkaException as err:
        raise TopicError(f"cannot grant {principal} its rights on Kafka: {err}") from err


@dataclass(frozen=True)
class Outgoing:
    """One message to produce."""

    topic: str
    value: bytes
    key: bytes | None = None
    headers: list[tuple[str, str | bytes | None]] | None = None


def produce_all(producer: Producer, messages: Iterable[Outgoing], *, timeout_s: float) -> int:
    """Produce ``messages`` and wait until Kafka acknowledged every one; returns how many. A full local queue
    waits for room (until ``timeout_s``); raises :class:`DeliveryError` when one is refused or still pending at
    the end. An exception raised while iterating ``messages`` (e.g. a schema violation) propagates as it is,
    after the messages produced so far are flushed."""
    refused: list[str] = []

    def delivered(err, _msg) -> None:
        if err is not None:
            refused.append(str(err))

    deadline = time.monotonic() + timeout_s
    count = 0
    try:
        for message in messages:
            while True:
                try:
                    producer.produce(message.topic, value=message.value, key=message.key, headers=message.headers,
                                     on_delivery=delivered)
                    break
                except BufferError:
                    if time.monotonic() > deadline:
                        raise
                    producer.poll(0.1)
            producer.poll(0)
            count += 1
    except (BufferError, KafkaException) as err:
        producer.flush(max(0.0, deadline - time.monotonic()))
        raise DeliveryError(f"producing failed after {count} message(s): {type(err).__name__}: {err}") from err
    except BaseException:
        producer.flush(max(0.0, deadline - time.monotonic()))
        raise
    pending = producer.flush(max(0.0, deadline - time.monotonic()))
    if pending or refused:
        raise DeliveryError(f"Kafka did not acknowledge {pending + len(refused)} of {count} message(s) "
                            f"({pending} pending after {timeout_s:.0f}s, {len(refused)} refused: {refused[:3]})")
    return count


def _coordinates(message: Message) -> tuple[str, int, int]:
    """Topic, partition and offset of a consumed message (an error event has none)."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:
        raise TopicError(f"not a consumed message (topic {topic}, partition {partition}, offset {offset})")
    return topic, partition, offset


def next_offsets(messages: Iterable[Message]) -> list[TopicPartition]:
    """The offsets to commit once ``messages`` are done: the next one per partition (pure)."""
    top: dict[tuple[str, int], int] = {}
    for m in messages:
        topic, partition, offset = _coordinates(m)
        top[(topic, partition)] = max(top.get((topic, partition), -1), offset)
    return [TopicPartition(t, p, o + 1) for (t, p), o in sorted(top.items())]


def rewind(consumer: Consumer, messages: Iterable[Message]) -> None:
    """Seek back to the first of ``messages`` per partition, so an aborted batch is read again. A partition
    that moved to another member in a rebalance is skipped: that member reads it from the committed offset."""
    first: dict[tuple[str, int], int] = {}
    for m in messages:
        topic, partition, offset = _coordinates(m)
        first[(topic, partition)] = min(first.get((topic, partition), offset), offset)
    for (topic, partition), offset in first.items():
        try:
            consumer.seek(TopicPartition(topic, partition, offset))
        except KafkaException as err:
            log.info("not rewinding %s[%d]: %s", topic, partition, err)


def read_to_end(bootstrap: str, serde: EventSerde, *, timeout_s: float = 60.0,
                identity: Identity | None = None) -> list:
    """Every committed event of ``serde``'s topic, from the beginning to the end offsets seen at the start
    (typed and validated by ``serde``). Raises :class:`TopicError` when Kafka reports an error or the end is
    not reached within ``timeout_s``."""
    topic = serde.topic.name
    reader = consumer(bootstrap, group_id=f"radlake-reader-{uuid.uuid4().hex[:8]}", identity=identity)
    events = []
    try:
        metadata = reader.list_topics(topic, timeout=10).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return []
        ends = {}
        for p in metadata.partitions:
            low, high = reader.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
            if high > low:
                ends[p] = high
        reader.assign([TopicPartition(topic, p, 0) for p in ends])
        deadline = time.monotonic() + timeout_s
        while ends:
            if time.monotonic() > deadline:
                raise TopicError(f"reading {topic} to its end took more than {timeout_s:.0f}s; "
                                 f"partitions left: {sorted(ends)}")
            msg = reader.poll(1.0)
            if msg is None:
                continue
            if msg.error():
                raise TopicError(f"reading {topic}: {msg.error()}")
            _topic, partition, offset = _coordinates(msg)
            events.append(serde.deserialize(msg.value() or b""))
            if offset + 1 >= ends.get(partition, 0):
                ends.pop(partition, None)
    except KafkaException as err:
        raise TopicError(f"reading {topic}: {err}") from err
    finally:
        reader.close()
    return events
