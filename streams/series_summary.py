"""Series summaries of a study version: slices ordered along the slice normal, geometry summarised.

Slice order is :func:`radlake.imaging.series_geometry.order_along` on the normal of the series' most
common Image Orientation (Patient) (PS3.3 C.7.6.2.1.1): a slice's place is its Image Position (Patient)
projected on the normal. Instances without a position follow, by Instance Number.

:func:`completed_document` is the event as JSON-ready values (what the worker encodes and validates against
the schema, ``EventSerde.encode``: built for every instance of every study version, it makes no model per
instance); :func:`study_completed` is the same event as its ``lake_schemas`` class.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any, TypeVar

from lake_schemas.events import SeriesSummary, StudyCompleted
from radlake.imaging.series_geometry import slice_normal, sorted_along
from streams.completion import Completion, StudyProgress
from streams.records import InstanceRecord

T = TypeVar("T")

# the series-level fields of a summary: the most common value among the series' instances
_COMMON = ("modality", "frame_of_reference_uid", "rows", "columns", "pixel_spacing", "slice_thickness",
           "image_orientation_patient")
_GETTERS = {name: attrgetter(name) for name in _COMMON}
_ALL_COMMON = attrgetter(*_COMMON)


def _most_common(values: Sequence[T | None]) -> T | None:
    """The most common value that is not None (the first met among equally common ones)."""
    if values:
        first = values[0]
        if first is not None and values.count(first) == len(values):  # one value for the whole series
            return first
    present = [v for v in values if v is not None]
    return Counter(present).most_common(1)[0][0] if present else None


def _common(records: Sequence[InstanceRecord], name: str) -> Any:
    return _most_common(list(map(_GETTERS[name], records)))


def slice_order(records: Sequence[InstanceRecord]) -> list[InstanceRecord]:
    """Records sorted by position along the series' slice normal, then those without a position."""
    return _slice_order(records, _common(records, "image_orientation_patient"))


def _slice_order(records: Sequence[InstanceRecord], orientation: Any) -> list[InstanceRecord]:
    try:
        normal = slice_normal(orientation) if orientation is not None else None
    except ValueError:  # row and column directions parallel: no normal to order along
        normal = None
    return sorted_along(records, normal)


def _series_document(records: Sequence[InstanceRecord]) -> dict[str, Any]:
    rows = list(map(_ALL_COMMON, records))
    first = rows[0]
    if None not in first and rows.count(first) == len(rows):  # the instances agree on every series-level value
        common = dict(zip(_COMMON, first))
        ordered = _slice_order(records, common["image_orientation_patient"])
    else:
        ordered = slice_order(records)
        common = {name: _common(ordered, name) for name in _COMMON}
    return {
        "series_uid": ordered[0].series_uid,
        "modality": common["modality"],
        "frame_of_reference_uid": common["frame_of_reference_uid"],
        "instance_count": len(ordered),
        "rows": common["rows"],
        "columns": common["columns"],
        "pixel_spacing": common["pixel_spacing"],
        "slice_thickness": common["slice_thickness"],
        "image_orientation_patient": common["image_orientation_patient"],
        "first_position": ordered[0].image_position_patient,
        "last_position": ordered[-1].image_position_patient,
        "instances": [
            {"sop_instance_uid": r.sop_instance_uid, "object_uri": r.object_uri, "sha256": r.sha256,
             "instance_number": r.instance_number, "image_position_patient": r.image_position_patient}
            for r in ordered
        ],
    }


def summarize_series(records: Sequence[InstanceRecord]) -> SeriesSummary:
    return SeriesSummary.model_validate(_series_document(records))


def completed_event_id(study_uid: str, version: int) -> str:
    """One id per study version, so a redelivered version is recognisable downstream."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"radlake-event/completed/{study_uid}/{version}"))


def completed_document(progress: StudyProgress, records: Sequence[InstanceRecord], done: Completion,
                       at: datetime) -> dict[str, Any]:
    """The event of one study version as JSON-ready values, members in the order the event class dumps
    them; ``records`` are the accepted instances of ``progress``."""
    by_series: dict[str, list[InstanceRecord]] = {}
    for record in records:
        by_series.setdefault(record.series_uid, []).append(record)
    event_id = completed_event_id(progress.study_uid, done.version)
    return {
        "event_id": event_id,
        "schema_version": 1,
        "provider": progress.providers[0],
        "occurred_at": at,
        "trace_id": uuid.UUID(event_id).hex,
        "event_type": done.event_type,
        "data": {
            "project": progress.project,
            "pseudo_patient_id": progress.pseudo_patient_id,
            "study_uid": progress.study_uid,
            "study_version": done.version,
            "completion_reason": done.reason,
            "providers": list(progress.providers),
            "instance_count": len(records),
            "series": [_series_document(by_series[uid]) for uid in sorted(by_series)],
            "event_ids": [r.event_id for r in records],
        },
    }


def study_completed(progress: StudyProgress, records: Sequence[InstanceRecord], done: Completion,
                    at: datetime) -> StudyCompleted:
    """:func:`completed_document` as the ``lake_schemas`` event."""
    return StudyCompleted.model_validate(completed_document(progress, records, done, at))
