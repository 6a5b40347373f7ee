"""The compiled validator of the contracts (lake_schemas/_compiled.py) against the reference implementation.

The reference is the ``jsonschema`` package (Draft 7), which shares no code with the compiled validator. At
every field of one valid event of each contract, each replacement value from a fixed list is judged by
both; they must agree. Formats (uuid, date-time) are checked apart: the compiled validator asserts them,
while ``jsonschema`` without its optional format packages does not.
"""

from __future__ import annotations

import copy
import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import jsonschema
import msgspec
import pytest
from contract_examples import contract_examples

from lake_schemas._compiled import compile_schema
from lake_schemas.errors import RegistryError, SchemaCompileError, SchemaViolation
from lake_schemas.topics import ALL_TOPICS, INSTANCE_RECEIVED
from platform_layer.serde import REGISTRY_RETRIES, EventSerde, registry_client

REPLACEMENTS: tuple[Any, ...] = (
    None, True, False, 0, -1, 7, 2.5, -0.5, "", "x", "2.25.1", "2.25.x", "1.2.840", "A" * 65, "a" * 64,
    "UPPER_CASE", "lower-case", "quiet_period", [], [1.0], [1.0, 2.0], [1.0, 2.0, 3.0], ["a"], {}, {"a": 1},
)

EXAMPLES = [(next(t for t in ALL_TOPICS if isinstance(e, t.event_class)), e) for e in contract_examples()]


def _format_fields(schema: dict, path: tuple = ()) -> Iterator[tuple]:
    for name, spec in schema.get("properties", {}).items():
        if "format" in spec:
            yield (*path, name)
        yield from _format_fields(spec, (*path, name))


def _leaves(doc: Any, path: tuple = ()) -> Iterator[tuple]:
    """Every path into the document: object members and list items, containers included."""
    yield path
    if isinstance(doc, dict):
        for name, value in doc.items():
            yield from _leaves(value, (*path, name))
    elif isinstance(doc, list):
        for index, value in enumerate(doc):
            yield from _leaves(value, (*path, index))


def _replaced(doc: Any, path: tuple, value: Any) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = value
    return out


def _removed(doc: Any, path: tuple) -> Any:
    out = copy.deepcopy(doc)
    target = out
    for step in path[:-1]:
        target = target[step]
    del target[path[-1]]
    return out


def _compiled_accepts(schema_str: str, doc: Any) -> bool:
    try:
        compile_schema(schema_str).decode(json.dumps(doc).encode())
    except msgspec.ValidationError:
        return False
    return True


def _reference_accepts(schema: dict, doc: Any) -> bool:
    return jsonschema.Draft7Validator(schema).is_valid(doc)


def _variants(topic, event) -> Iterator[tuple[str, Any]]:
    doc = json.loads(event.model_dump_json())
    formats = set(_format_fields(topic.schema))
    yield "as built", doc
    for path in _leaves(doc):
        if not path:
            continue
        yield f"{path} removed", _removed(doc, path)
        for value in REPLACEMENTS:
            if path in formats and isinstance(value, str):
                continue
            yield f"{path} = {value!r}", _replaced(doc, path, value)
        if isinstance(path[-1], str):
            yield f"{path} and an extra member", _replaced(doc, (*path[:-1], "unexpected_member"), 1)


@pytest.mark.parametrize(("topic", "event"), EXAMPLES, ids=lambda x: getattr(x, "name", ""))
def test_compiled_validator_agrees_with_the_reference_at_every_field(topic, event):
    disagreements = []
    cases = 0
    for what, doc in _variants(topic, event):
        cases += 1
        ours, reference = _compiled_accepts(topic.schema_str, doc), _reference_accepts(topic.schema, doc)
        if ours != reference:
            disagreements.append(f"{what}: compiled {'accepts' if ours else 'refuses'}, "
                                 f"reference {'accepts' if reference else 'refuses'}")
    assert cases > 100
    assert disagreements == []


@pytest.mark.parametrize(("field", "value"), [("event_id", "not-a-uuid"), ("occurred_at", "yesterday"),
                                              ("occurred_at", "2026-13-01T00:00:00Z")])
def test_formats_are_asserted(field, value):
    topic, event = EXAMPLES[0]
    doc = json.loads(event.model_dump_json())
    assert _compiled_accepts(topic.schema_str, doc)
    doc[field] = value
    assert not _compiled_accepts(topic.schema_str, doc)


def test_a_violation_names_the_field_path():
    topic, event = EXAMPLES[0]
    doc = json.loads(event.model_dump_json())
    doc["data"]["study_uid"] = "1.2.3"
    with pytest.raises(msgspec.ValidationError, match=r"\$\.data\.study_uid"):
        compile_schema(topic.schema_str).decode(json.dumps(doc).encode())


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"a": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}},
    {"type": "object", "properties": {"a": {"$ref": "#/definitions/b"}}},
    {"type": "string", "uniqueItems": True},
    {"type": "integer", "exclusiveMinimum": 0},
    {"type": "array", "items": {"type": "string", "contains": {"const": "x"}}},
])
def test_a_keyword_outside_the_subset_refuses_to_compile(schema):
    with pytest.raises(SchemaCompileError):
        compile_schema(json.dumps(schema))


def test_serialize_refuses_an_invalid_event_before_the_registry_is_asked():
    topic, event = EXAMPLES[0]
    forged = event.model_copy(update={"provider": "Not Lower Case"})  # model_copy skips pydantic's validation
    with pytest.raises(SchemaViolation, match="provider"):
        EventSerde(topic, registry_client("http://127.0.0.1:9")).serialize(forged)


@pytest.mark.parametrize("value", [b"", b"\x00\x00", b"\x01\x00\x00\x00\x01{}", b"{\"event_type\": 1}"])
def test_a_message_not_in_the_wire_format_is_a_violation_without_a_registry_call(value):
    with pytest.raises(SchemaViolation, match="wire format"):
        EventSerde(INSTANCE_RECEIVED, registry_client("http://127.0.0.1:9")).deserialize(value)


class _SilentServer:
    """A real TCP listener that accepts connections and never answers: a registry that hangs."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.accepted: list[socket.socket] = []
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


def test_a_registry_that_never_answers_fails_the_call_within_its_bound():
    server = _SilentServer()
    try:
        serde = EventSerde(INSTANCE_RECEIVED, registry_client(server.url, timeout_s=0.5))
        message = b"\x00" + (41).to_bytes(4, "big") + b"{}"
        started = time.monotonic()
        with pytest.raises(RegistryError, match="failed after 3 attempts"):
            serde.deserialize(message)
        elapsed = time.monotonic() - started
    finally:
        server.close()
    assert len(server.accepted) == REGISTRY_RETRIES + 1
    # not a timing assertion on speed: the bound is what makes the call end at all (no timeout: it never does)
    assert elapsed < 60


@pytest.mark.parametrize(("topic", "event"), EXAMPLES, ids=lambda x: getattr(x, "name", ""))
def test_the_validated_view_holds_what_the_event_holds(topic, event):
    view = compile_schema(topic.schema_str).decode(event.model_dump_json().encode())
    assert msgspec.to_builtins(view) == json.loads(event.model_dump_json())
    assert type(view).__name__ == topic.schema["title"].replace(" ", "_")


def test_an_absent_optional_property_reads_as_none():
    topic, event = EXAMPLES[0]
    doc = json.loads(event.model_dump_json())
    optional = next(name for name in topic.schema["properties"]["data"]["properties"]
                    if name not in topic.schema["properties"]["data"]["required"])
    del doc["data"][optional]
    assert getattr(compile_schema(topic.schema_str).decode(json.dumps(doc).encode()).data, optional) is None


@pytest.mark.parametrize("value", [b"", b"\x00\x00", b"\x01\x00\x00\x00\x01{}"])
def test_read_refuses_what_is_not_in_the_wire_format_too(value):
    with pytest.raises(SchemaViolation, match="wire format"):
        EventSerde(INSTANCE_RECEIVED, registry_client("http://127.0.0.1:9")).read(value)


def test_a_value_that_passed_does_not_let_the_next_one_through():
    """The checker skips the search for a value equal to the last one that matched at the same place: an
    invalid value right after a valid one is still searched, and refused."""
    topic, event = EXAMPLES[0]
    doc = json.loads(event.model_dump_json())
    decode = compile_schema(topic.schema_str).decode
    decode(json.dumps(doc).encode())
    decode(json.dumps(doc).encode())
    for bad in ("2.25.1x", doc["data"]["study_uid"] + "x", "x" + doc["data"]["study_uid"]):
        with pytest.raises(msgspec.ValidationError, match=r"matching regex .* - at `\$\.data\.study_uid`"):
            decode(json.dumps(_replaced(doc, ("data", "study_uid"), bad)).encode())
    decode(json.dumps(doc).encode())


NESTED = json.dumps({
    "type": "object", "required": ["items", "tags"], "additionalProperties": False,
    "properties": {
        "items": {"type": "array", "items": {
            "type": "object", "required": ["uid"],
            "properties": {"uid": {"type": "string", "pattern": "^2\\.25\\.[0-9]+$"},
                           "hash": {"type": ["string", "null"], "pattern": "^[0-9a-f]{4}$"},
                           "id": {"type": "string", "format": "uuid"}}}},
        "tags": {"type": "object", "additionalProperties": {"type": "string", "pattern": "^[a-z]+$"}},
        "codes": {"type": "array", "items": {"type": ["string", "integer"], "pattern": "^[A-Z]$"}},
    },
})


@pytest.mark.parametrize(("doc", "path"), [
    ({"items": [{"uid": "2.25.1"}, {"uid": "2.25.x"}], "tags": {}}, r"\$\.items\[1\]\.uid"),
    ({"items": [{"uid": "2.25.1", "hash": "abcd"}, {"uid": "2.25.2", "hash": "ABCD"}], "tags": {}},
     r"\$\.items\[1\]\.hash"),
    ({"items": [{"uid": "2.25.1", "id": "not-a-uuid"}], "tags": {}}, r"\$\.items\[0\]\.id`"),
    ({"items": [], "tags": {"a": "ok", "b": "NOT"}}, r"\$\.tags\[\.\.\.\]"),
    ({"items": [], "tags": {}, "codes": [1, "A", "ab"]}, r"\$\.codes\[2\]"),
])
def test_patterns_are_checked_inside_arrays_objects_and_unions(doc, path):
    if "id" not in path:  # the reference does not assert formats
        assert not _reference_accepts(json.loads(NESTED), doc)
    with pytest.raises(msgspec.ValidationError, match=path):
        compile_schema(NESTED).decode(json.dumps(doc).encode())


# lists whose only checks are patterns of strings (checked in one C loop per field, walked only on failure)
FLAT = json.dumps({
    "type": "object", "required": ["refs", "ids"],
    "properties": {
        "refs": {"type": "array", "items": {
            "type": "object", "required": ["uid", "sha"],
            "properties": {"uid": {"type": "string", "pattern": "^2\\.25\\.[0-9]+$"},
                           "sha": {"type": "string", "pattern": "^[0-9a-f]{4}$"}}}},
        "ids": {"type": "array", "items": {"type": "string", "pattern": "^[a-z]+$"}},
    },
})


@pytest.mark.parametrize(("doc", "path"), [
    ({"refs": [{"uid": "2.25.1", "sha": "ab12"}, {"uid": "2.25.2", "sha": "AB12"}], "ids": []},
     r"\$\.refs\[1\]\.sha"),
    # the first failing item in order names the violation, whichever field's pattern found it first
    ({"refs": [{"uid": "2.25.1", "sha": "ab12"}, {"uid": "2.25.2", "sha": "x"}, {"uid": "2.25.x", "sha": "ab12"}],
      "ids": []}, r"\$\.refs\[1\]\.sha"),
    ({"refs": [{"uid": "2.25.1", "sha": "ab12"}, {"uid": "x", "sha": "x"}], "ids": []}, r"\$\.refs\[1\]\.uid"),
    ({"refs": [], "ids": ["a", "b", "C"]}, r"\$\.ids\[2\]"),
])
def test_a_list_checked_at_once_names_its_first_failing_item(doc, path):
    assert not _reference_accepts(json.loads(FLAT), doc)
    with pytest.raises(msgspec.ValidationError, match=path):
        compile_schema(FLAT).decode(json.dumps(doc).encode())
    good = {"refs": [{"uid": "2.25.1", "sha": "ab12"}, {"uid": "2.25.2", "sha": "cd34"}], "ids": ["a", "b"]}
    assert _reference_accepts(json.loads(FLAT), good)
    assert compile_schema(FLAT).decode(json.dumps(good).encode()).refs[1].sha == "cd34"


def test_patterns_apply_to_strings_only_and_absent_values_pass():
    doc = {"items": [{"uid": "2.25.1", "hash": None}, {"uid": "2.25.2", "hash": "ab12",
                                                          "id": "0D4F5F6A-1B2C-4D3E-8F90-A1B2C3D4E5F6"}],
           "tags": {"a": "x"}, "codes": [7, "Q"]}
    assert _reference_accepts(json.loads(NESTED), doc)
    view = compile_schema(NESTED).decode(json.dumps(doc).encode())
    assert view.items[1].hash == "ab12" and view.codes == [7, "Q"]


def test_a_pattern_that_is_not_a_regex_refuses_to_compile():
    with pytest.raises(SchemaCompileError, match="pattern"):
        compile_schema(json.dumps({"type": "object", "properties": {"a": {"type": "string", "pattern": "(["}}}))
