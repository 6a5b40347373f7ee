"""Produce and consume radlake events in the Confluent wire format, validated against the registry.

The value of every message is ``0x00 | schema id (4 bytes, big-endian) | JSON``. The serializer validates
the event against its schema file and frames it with the id that schema has under the topic's subject
(TopicNameStrategy, looked up once). The deserializer reads the id from the message, fetches that schema
from the registry the first time it meets the id, compiles it (``_compiled``), and from then on parses and
validates each message with no registry round trip. Schemas are registered by ``radlake schemas register``
(never auto-registered by a producer, so a producer cannot silently change a contract).

Every registry call has a connect/read timeout and bounded retries: a registry that stops answering makes
the call fail with :class:`RegistryError` after at most ``REGISTRY_RETRIES + 1`` timeouts and the back-off
between them (about 34 s with the defaults), never hang.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgspec
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import BaseModel, ValidationError

from lake_schemas._compiled import CompiledSchema, compile_schema
from lake_schemas.errors import (
    LakeSchemaError,
    RegistryError,
    SchemaCompileError,
    SchemaViolation,
)
from lake_schemas.topics import Topic

T = TypeVar("T")

MAGIC_BYTE = 0
REGISTRY_TIMEOUT_S = 10.0
REGISTRY_RETRIES = 2
_RETRY_WAIT_MS, _RETRY_MAX_WAIT_MS = 250, 2_000


_trusted_ca: str | None = None


def trust(ca_file: str | None) -> None:
    """The CA file this process verifies the registry's certificate against when a client is built without
    ``ca_file`` (commands set the platform CA through ``identities.use_stack_identity``); None: the system's."""
    global _trusted_ca
    _trusted_ca = ca_file


def registry_client(url: str, timeout_s: float = REGISTRY_TIMEOUT_S, *, ca_file: str | None = None,
                    bearer: Callable[[], str] | None = None) -> SchemaRegistryClient:
    """A registry client whose calls time out after ``timeout_s`` (connect and each read) and retry a bounded
    number of times (the library's default is no timeout at all), verifying the registry's certificate against
    ``ca_file`` (default: :func:`trust`'s). Reads need no credentials; a client that writes (registers) passes
    ``bearer``, which returns the access token each request presents."""
    config: dict[str, Any] = {
        "url": url, "timeout": timeout_s, "max.retries": REGISTRY_RETRIES,
        "retries.wait.ms": _RETRY_WAIT_MS, "retries.max.wait.ms": _RETRY_MAX_WAIT_MS,
    }
    verify = ca_file or _trusted_ca
    if verify:
        config["ssl.ca.location"] = verify
    if bearer is not None:
        config |= {
            "bearer.auth.credentials.source": "CUSTOM",
            "bearer.auth.custom.provider.config": {},
            # The library also sends a "target-sr-cluster" header (a Confluent Cloud notion) that the registry
            # ignores; it insists on a value.
            "bearer.auth.custom.provider.function": lambda _config: {
                "bearer.auth.token": bearer(), "bearer.auth.logical.cluster": "radlake"},
        }
    return SchemaRegistryClient(config)


@dataclass
class RegistryCalls:
    """What this process asked the registry, for health metrics: a count per outcome and the last failure."""

    ok: int = 0
    failed: int = 0
    last_error: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, error: Exception | None) -> None:
        with self.lock:
            if error is None:
                self.ok += 1
            else:
                self.failed += 1
                self.last_error = f"{type(error).__name__}: {error}"[:500]


REGISTRY_CALLS = RegistryCalls()


def _ask(registry: SchemaRegistryClient, call: Callable[[], T],
         refused: Callable[[SchemaRegistryError], LakeSchemaError]) -> T:
    """One registry call: a 4xx answer becomes ``refused(err)``; anything else that fails (5xx after the
    retries, a timeout, a refused connection) becomes :class:`RegistryError`. Counted in REGISTRY_CALLS."""
    try:
        result = call()
    except SchemaRegistryError as err:
        REGISTRY_CALLS.record(err)
        if err.http_status_code and 400 <= err.http_status_code < 500:
            raise refused(err) from err
        raise _unreachable(registry, err) from err
    except Exception as err:  # noqa: BLE001 - httpx's transport errors and timeouts come unwrapped
        REGISTRY_CALLS.record(err)
        raise _unreachable(registry, err) from err
    REGISTRY_CALLS.record(None)
    return result


def _unreachable(registry: SchemaRegistryClient, err: Exception) -> RegistryError:
    rest = registry._rest_client  # noqa: SLF001 - the client keeps its URLs and timeout there
    return RegistryError(f"the schema registry at {','.join(rest.base_urls)} failed after "
                         f"{REGISTRY_RETRIES + 1} attempts of at most {rest.timeout} s each "
                         f"({type(err).__name__}: {err})")


class EventSerde:
    """Serializer + deserializer of one topic's events."""

    def __init__(self, topic: Topic, registry: SchemaRegistryClient) -> None:
        self.topic = topic
        self._registry = registry
        self._own_schema = compile_schema(topic.schema_str)
        self._header: bytes | None = None  # magic byte + this topic's schema id, once looked up
        self._readers: dict[int, CompiledSchema] = {}
        # a message's first 5 bytes (magic byte + schema id) -> the decode of that schema: one lookup per message
        self._decoders: dict[bytes, Callable[[Any], Any]] = {}

    # -- produce ---------------------------------------------------------------------------------------

    @property
    def schema_id(self) -> int:
        """The id of this topic's schema under its subject (looked up in the registry once)."""
        return int.from_bytes(self._framing()[1:], "big")

    def _framing(self) -> bytes:
        if self._header is None:
            topic = self.topic
            found = _ask(self._registry, lambda: self._registry.lookup_schema(topic.subject,
                                                                              Schema(topic.schema_str, "JSON")),
                         lambda err: RegistryError(f"{topic.subject}: {topic.schema_file} is not registered "
                                                   f"({err.error_message}); run `radlake schemas register`"))
            if found.schema_id is None:
                raise RegistryError(f"{topic.subject}: the registry answered without a schema id")
            self._header = bytes([MAGIC_BYTE]) + found.schema_id.to_bytes(4, "big")
            self._readers[found.schema_id] = self._own_schema  # the registry holds our text under that id
        return self._header

    def serialize(self, event: BaseModel) -> bytes:
        if not isinstance(event, self.topic.event_class):
            raise SchemaViolation(f"{type(event).__name__} cannot go on {self.topic.name}")
        return self._framed(event.__pydantic_serializer__.to_json(event))

    def encode(self, document: Any) -> bytes:
        """This topic's event given as JSON-ready values (dicts, lists, tuples, strings, numbers, datetimes; what
        the event class dumps), after the same validation as :meth:`serialize`. For an event built on a hot
        path without its model (a study version of thousands of instances)."""
        return self._framed(msgspec.json.encode(document))

    def _framed(self, payload: bytes) -> bytes:
        """``payload`` validated against this topic's schema, behind the wire format's header."""
        try:
            self._own_schema.decode(payload)
        except msgspec.ValidationError as err:
            raise SchemaViolation(f"event does not match {self.topic.schema_file}: {err}") from err
        return self._framing() + payload

    # -- consume ---------------------------------------------------------------------------------------

    def _reader(self, schema_id: int) -> CompiledSchema:
        """The compiled validator of the schema a message names (fetched from the registry once per id)."""
        where = f"message on {self.topic.name} names schema id {schema_id}"
        registered = _ask(self._registry, lambda: self._registry.get_schema(schema_id),
                          lambda err: SchemaViolation(f"{where}, which the registry does not hold "
                                                      f"({err.error_message})"))
        if registered.schema_type not in (None, "JSON"):
            raise SchemaViolation(f"{where}, a {registered.schema_type} schema, not JSON")
        try:
            reader = compile_schema(registered.schema_str)
        except SchemaCompileError as err:
            raise SchemaViolation(f"{where}, which cannot be enforced here: {err}") from err
        self._readers[schema_id] = reader
        return reader

    def _payload(self, value: bytes) -> tuple[CompiledSchema, memoryview]:
        if value is None or len(value) < 5 or value[0] != MAGIC_BYTE:
            raise SchemaViolation(f"message on {self.topic.name} is not in the Confluent wire format "
                                  f"(magic byte 0 and a 4-byte schema id)")
        schema_id = int.from_bytes(value[1:5], "big")
        reader = self._readers.get(schema_id) or self._reader(schema_id)
        return reader, memoryview(value)[5:]

    def read(self, value: bytes) -> Any:
        """The event as a validated view: parsed and checked against the schema the message names (msgspec, and
        the schema's patterns), with the schema's property names as attributes. What a hot path reads (the
        streams worker); ``occurred_at`` is a datetime, ``event_id`` a string, arrays are lists."""
        try:
            decode = self._decoders[value[:5]]
        except (KeyError, TypeError):  # a schema id not met yet, or not the wire format (None, short, magic)
            reader, _ = self._payload(value)
            decode = self._decoders[value[:5]] = reader.decode
        try:
            return decode(memoryview(value)[5:])
        except (msgspec.ValidationError, msgspec.DecodeError) as err:
            raise SchemaViolation(f"message on {self.topic.name} does not match its schema: {err}") from err

    def deserialize(self, value: bytes) -> BaseModel:
        """The event as its ``lake_schemas`` class, after the same validation as :meth:`read`."""
        reader, payload = self._payload(value)
        try:
            reader.decode(payload)
            return self.topic.event_class.model_validate_json(bytes(payload))
        except (msgspec.ValidationError, msgspec.DecodeError, ValidationError) as err:
            raise SchemaViolation(f"message on {self.topic.name} does not match its schema: {err}") from err
