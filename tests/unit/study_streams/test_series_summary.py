from __future__ import annotations

import random
from datetime import timedelta

import jsonschema
import msgspec

from lake_schemas.topics import STUDY_COMPLETED
from platform_layer.serde import EventSerde
from radlake.imaging.series_geometry import slice_normal
from radlake.synthetic.lake_events import SeriesPlan, series_events
from streams.completion import Completion, accept_instance
from streams.records import InstanceRecord
from streams.series_summary import (
    completed_document,
    completed_event_id,
    slice_order,
    study_completed,
    summarize_series,
)

from .conftest import T0


def _records(events):
    return [InstanceRecord.from_event(e) for e in events]


def test_shuffled_slices_come_back_in_order_along_the_normal():
    records = _records(series_events(SeriesPlan("p", "s", "ax", 20)))
    shuffled = random.Random(7).sample(records, len(records))
    assert [r.sop_instance_uid for r in slice_order(shuffled)] == [r.sop_instance_uid for r in records]
    summary = summarize_series(shuffled)
    assert summary.instance_count == 20
    assert summary.first_position[2] == 0.0 and summary.last_position[2] == 2.5 * 19
    assert summary.image_orientation_patient == (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def test_order_follows_the_normal_not_the_z_coordinate():
    # sagittal slices: rows along y, columns along -z; the normal is -x, so larger x comes first
    records = [
        InstanceRecord(event_id=f"e{x}", provider="p", series_uid="2.25.1", sop_instance_uid=f"2.25.{10 + x}",
                       sha256="0" * 64, object_uri=f"file:///{x}", modality="MR",
                       image_position_patient=(float(x), 0.0, 0.0),
                       image_orientation_patient=(0.0, 1.0, 0.0, 0.0, 0.0, -1.0))
        for x in range(4)
    ]
    assert slice_normal(records[0].image_orientation_patient) == (-1.0, 0.0, 0.0)
    assert [r.image_position_patient[0] for r in slice_order(records)] == [3.0, 2.0, 1.0, 0.0]


def test_instances_without_geometry_go_last_by_instance_number():
    records = _records(series_events(SeriesPlan("p", "s", "ax", 4)))
    bare = [InstanceRecord(event_id="x", provider="p", series_uid=records[0].series_uid, sop_instance_uid="2.25.99",
                           sha256="1" * 64, object_uri="file:///x", modality="CT", instance_number=0)]
    ordered = slice_order(bare + records[::-1])
    assert ordered[-1].sop_instance_uid == "2.25.99"
    assert [r.sop_instance_uid for r in ordered[:-1]] == [r.sop_instance_uid for r in records]


def test_study_completed_event(two_series):
    progress = None
    for i, e in enumerate(two_series):
        progress = accept_instance(progress, InstanceRecord.from_event(e), study_uid=e.data.study_uid,
                                   project=e.data.project, pseudo_patient_id=e.data.pseudo_patient_id,
                                   arrived_at=T0 + timedelta(seconds=i))
    event = study_completed(progress, _records(two_series), Completion(1, "study.completed", "manifest"), T0)
    assert event.event_type == "study.completed" and event.data.study_version == 1
    assert event.event_id == completed_event_id(progress.study_uid, 1)
    assert event.data.instance_count == 8
    assert sorted(s.instance_count for s in event.data.series) == [3, 5]
    assert set(event.data.event_ids) == {e.event_id for e in two_series}
    assert event.data.providers == ("st-olav",)
    jsonschema.validate(event.model_dump(mode="json"), STUDY_COMPLETED.schema)
    again = study_completed(progress, _records(two_series[::-1]), Completion(1, "study.completed", "manifest"), T0)
    assert again.data.series == event.data.series
    assert completed_event_id(progress.study_uid, 2) != event.event_id


def test_the_document_the_worker_encodes_is_the_event_the_model_serializes(two_series):
    progress = None
    for i, e in enumerate(two_series):
        progress = accept_instance(progress, InstanceRecord.from_event(e), study_uid=e.data.study_uid,
                                   project=e.data.project, pseudo_patient_id=e.data.pseudo_patient_id,
                                   arrived_at=T0 + timedelta(seconds=i))
    serde = EventSerde(STUDY_COMPLETED, registry=None)
    serde._header = b"\x00\x00\x00\x00\x07"  # no registry here: a schema id as if looked up
    done = Completion(2, "study.updated", "quiet_period")
    at = T0 + timedelta(microseconds=123456)
    document = completed_document(progress, _records(two_series), done, at)
    assert serde.encode(document) == serde.serialize(study_completed(progress, _records(two_series), done, at))


def test_series_values_are_the_most_common_when_instances_disagree():
    records = _records(series_events(SeriesPlan("p", "s", "ax", 5)))
    odd = [msgspec.structs.replace(records[0], rows=32, frame_of_reference_uid=None),
           msgspec.structs.replace(records[1], rows=None, modality="MR"),
           *records[2:]]
    summary = summarize_series(odd)
    assert (summary.rows, summary.modality) == (64, "CT")
    assert summary.frame_of_reference_uid == records[2].frame_of_reference_uid
    assert summarize_series(records).rows == 64
