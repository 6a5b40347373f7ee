"""The typed event classes and the schema files (the contract) must not drift apart."""

from __future__ import annotations

import json
import typing

import jsonschema
import pytest
from contract_examples import contract_examples
from pydantic import BaseModel, ValidationError

from lake_schemas.events import InstanceReceived, InstanceReceivedData
from lake_schemas.topics import ALL_TOPICS

VALID_DATA = dict(
    project="p1",
    pseudo_patient_id="PX",
    study_uid="2.25.1",
    series_uid="2.25.2",
    sop_instance_uid="2.25.3",
    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
    modality="CT",
    transfer_syntax_uid="1.2.840.10008.1.2.1",
    object_uri="file:///x.dcm",
    sha256="0" * 64,
    size_bytes=10,
    deid_profile_version="v1",
)


def _properties(schema: dict) -> set[str]:
    return set(schema["properties"])


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=lambda t: t.name)
def test_schema_file_is_valid_draft7(topic):
    jsonschema.Draft7Validator.check_schema(topic.schema)


def _model_in(annotation):
    """The pydantic model inside an annotation like ``X``, ``tuple[X, ...]`` or ``X | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _assert_mirrors(cls, schema: dict, where: str) -> None:
    assert set(cls.model_fields) == set(schema["properties"]), where
    if cls.model_fields.get("event_id") is None:  # the envelope's fields have defaults on purpose
        required = {n for n, f in cls.model_fields.items() if f.is_required()}
        assert required == set(schema.get("required", [])), where
    for name, field in cls.model_fields.items():
        spec = schema["properties"][name]
        nested = _model_in(field.annotation)
        if nested is not None:
            _assert_mirrors(nested, spec["items"] if "items" in spec else spec, f"{where}.{name}")


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=lambda t: t.name)
def test_event_class_mirrors_the_schema_at_every_level(topic):
    _assert_mirrors(topic.event_class, topic.schema, topic.name)


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=lambda t: t.name)
def test_every_field_is_tagged_for_phi(topic):
    untagged = []

    def walk(schema: dict, where: str) -> None:
        for name, spec in schema.get("properties", {}).items():
            if name not in {"event_type", "schema_version", "data"} and "x-phi" not in spec:
                untagged.append(f"{where}.{name}")
            for child in (spec, spec.get("items", {})):
                if "properties" in child:
                    walk(child, f"{where}.{name}")

    walk(topic.schema, topic.name)
    assert untagged == []


def test_a_built_event_validates_against_its_schema():
    event = InstanceReceived(provider="site-a", data=InstanceReceivedData(**VALID_DATA, pixel_spacing=(0.5, 0.5)))
    jsonschema.validate(json.loads(event.model_dump_json()), ALL_TOPICS[0].schema,
                        format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    assert event.key == "2.25.1"


@pytest.mark.parametrize(
    "field,value",
    [("study_uid", "1.2.3"), ("sha256", "XYZ"), ("size_bytes", -1), ("modality", "")],
)
def test_class_rejects_what_the_schema_rejects(field, value):
    with pytest.raises(ValidationError):
        InstanceReceivedData(**{**VALID_DATA, field: value})
    bad = json.loads(InstanceReceived(provider="a", data=InstanceReceivedData(**VALID_DATA)).model_dump_json())
    bad["data"][field] = value
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, ALL_TOPICS[0].schema)


def test_events_carry_no_phi_fields():
    """No lake event has a name, birth date, or original identifier field."""
    forbidden = {"patient_name", "patient_id", "birth_date", "accession_number", "original_uid"}
    for topic in ALL_TOPICS:
        fields = _properties(topic.schema) | _properties(topic.schema["properties"]["data"])
        assert not fields & forbidden


@pytest.mark.parametrize("event", list(contract_examples()), ids=lambda e: e.event_type)
def test_every_contract_round_trips_through_its_schema(event):
    topic = next(t for t in ALL_TOPICS if isinstance(event, t.event_class))
    as_json = json.loads(event.model_dump_json())
    jsonschema.validate(as_json, topic.schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
    assert topic.event_class.model_validate(as_json) == event
    assert event.key
