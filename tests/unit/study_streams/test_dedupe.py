from __future__ import annotations

import jsonschema
import msgspec

from lake_schemas._compiled import compile_schema
from lake_schemas.events import InstanceReceived, InstanceReceivedData
from lake_schemas.topics import INSTANCE_RECEIVED, QUARANTINED
from radlake.synthetic.lake_events import conflicting
from streams.dedupe import Verdict, classify, conflict_event
from streams.records import InstanceRecord, decode, encode


def test_verdicts(two_series):
    event = two_series[0]
    record = InstanceRecord.from_event(event)
    other = InstanceRecord.from_event(conflicting(event))
    assert classify(record, event_seen=False, known=None) is Verdict.ACCEPT
    assert classify(record, event_seen=True, known=record) is Verdict.DUPLICATE_EVENT
    assert classify(record, event_seen=False, known=record) is Verdict.DUPLICATE_CONTENT
    assert classify(other, event_seen=False, known=record) is Verdict.CONFLICT


def test_conflict_becomes_a_quarantined_event_with_a_stable_id(two_series):
    event = two_series[0]
    bad = conflicting(event)
    quarantined = conflict_event(bad, InstanceRecord.from_event(event))
    assert quarantined.data.reason == "CONFLICT" and quarantined.data.stage == "streams"
    assert quarantined.data.sop_instance_uid == event.data.sop_instance_uid
    assert quarantined.data.input_sha256 == bad.data.sha256
    assert conflict_event(bad, InstanceRecord.from_event(event)).event_id == quarantined.event_id
    jsonschema.validate(quarantined.model_dump(mode="json"), QUARANTINED.schema)


def test_record_json_round_trip(two_series):
    record = InstanceRecord.from_event(two_series[0])
    assert decode(encode(record)) == record


def test_record_fields_are_typed_as_the_instance_received_event(two_series):
    for f in msgspec.structs.fields(InstanceRecord):
        model = InstanceReceivedData.model_fields.get(f.name) or InstanceReceived.model_fields[f.name]
        assert f.type == model.annotation
    event = two_series[0]
    record = InstanceRecord.from_event(event)
    for f in msgspec.structs.fields(InstanceRecord):
        source = event.data if f.name in InstanceReceivedData.model_fields else event
        assert getattr(record, f.name) == getattr(source, f.name)


def test_the_record_of_the_validated_view_equals_the_record_of_the_event(two_series):
    for event in two_series[:5]:
        view = compile_schema(INSTANCE_RECEIVED.schema_str).decode(event.model_dump_json().encode())
        assert InstanceRecord.from_event(view) == InstanceRecord.from_event(event)
