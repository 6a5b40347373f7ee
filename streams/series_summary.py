"""Series summaries of a study version: slices ordered along the slice normal, geometry summarised.

Slice order is :func:`radlake.imaging.series_geometry.order_along` on the normal of the series' most
common Image Orientation (Patient) (PS3.3 C.7.6.2.1.1): a slice's place is its Image Position (Patient)
projected on the normal. Instances without a position follow, by Instance Number.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TypeVar

from lake_schemas.events import (
    InstanceRef,
    SeriesSummary,
    StudyCompleted,
    StudyCompletedData,
)
from radlake.imaging.series_geometry import order_along, slice_normal
from streams.completion import Completion, StudyProgress
from streams.records import InstanceRecord

T = TypeVar("T")


def _most_common(values: Iterable[T | None]) -> T | None:
    present = [v for v in values if v is not None]
    return Counter(present).most_common(1)[0][0] if present else None


def slice_order(records: Sequence[InstanceRecord]) -> list[InstanceRecord]:
    """Records sorted by position along the series' slice normal, then those without a position."""
    orientation = _most_common(r.image_orientation_patient for r in records)
    try:
        normal = slice_normal(orientation) if orientation is not None else None
    except ValueError:  # row and column directions parallel: no normal to order along
        normal = None
    return [o.slice for o in order_along(records, normal)]


def summarize_series(records: Sequence[InstanceRecord]) -> SeriesSummary:
    ordered = slice_order(records)
    return SeriesSummary(
        series_uid=ordered[0].series_uid,
        modality=_most_common(r.modality for r in ordered),
        frame_of_reference_uid=_most_common(r.frame_of_reference_uid for r in ordered),
        instance_count=len(ordered),
        rows=_most_common(r.rows for r in ordered),
        columns=_most_common(r.columns for r in ordered),
        pixel_spacing=_most_common(r.pixel_spacing for r in ordered),
        slice_thickness=_most_common(r.slice_thickness for r in ordered),
        image_orientation_patient=_most_common(r.image_orientation_patient for r in ordered),
        first_position=ordered[0].image_position_patient,
        last_position=ordered[-1].image_position_patient,
        # model_construct: the values come from validated instance events, and the study event they end up in is
        # validated against its schema when it is serialized; this runs for every instance of every study version
        instances=tuple(
            InstanceRef.model_construct(sop_instance_uid=r.sop_instance_uid, object_uri=r.object_uri, sha256=r.sha256,
                                        instance_number=r.instance_number,
                                        image_position_patient=r.image_position_patient)
            for r in ordered
        ),
    )


def completed_event_id(study_uid: str, version: int) -> str:
    """One id per study version, so a redelivered version is recognisable downstream."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"radlake-event/completed/{study_uid}/{version}"))


def study_completed(progress: StudyProgress, records: Sequence[InstanceRecord], done: Completion,
                    at: datetime) -> StudyCompleted:
    """The event of one study version; ``records`` are the accepted instances of ``progress``."""
    by_series: dict[str, list[InstanceRecord]] = {}
    for record in records:
        by_series.setdefault(record.series_uid, []).append(record)
    event_id = completed_event_id(progress.study_uid, done.version)
    return StudyCompleted(
        event_id=event_id,
        event_type=done.event_type,
        provider=progress.providers[0],
        occurred_at=at,
        trace_id=uuid.UUID(event_id).hex,
        data=StudyCompletedData(
            project=progress.project,
            pseudo_patient_id=progress.pseudo_patient_id,
            study_uid=progress.study_uid,
            study_version=done.version,
            completion_reason=done.reason,
            providers=progress.providers,
            instance_count=len(records),
            series=tuple(summarize_series(by_series[uid]) for uid in sorted(by_series)),
            event_ids=tuple(r.event_id for r in records),
        ),
    )
