"""The typed event classes and the schema files (the contract) must not drift apart."""

from __future__ import annotations

import json

import jsonschema
import pytest
from pydantic import ValidationError

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


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=lambda t: t.name)
def test_event_class_has_exactly_the_schema_fields(topic):
    cls = topic.event_class
    assert set(cls.model_fields) == _properties(topic.schema)
    data_cls = cls.model_fields["data"].annotation
    assert set(data_cls.model_fields) == _properties(topic.schema["properties"]["data"])
    required = {n for n, f in data_cls.model_fields.items() if f.is_required()}
    assert required == set(topic.schema["properties"]["data"]["required"])


@pytest.mark.parametrize("topic", ALL_TOPICS, ids=lambda t: t.name)
def test_every_field_is_tagged_for_phi(topic):
    fields = {**topic.schema["properties"], **topic.schema["properties"]["data"]["properties"]}
    untagged = [n for n, spec in fields.items() if n not in {"event_type", "schema_version", "data"} and "x-phi" not in spec]
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
