"""Generated ``instance received`` and ``study completed`` events for lake tests, benchmarks and notebooks.

The events describe axial CT series with real geometry (positions along the slice normal, orientation,
pixel spacing) but point at objects that need not exist: the lake only reads the claim-check.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from lake_schemas.events import (
    InstanceReceived,
    InstanceReceivedData,
    InstanceRef,
    SeriesSummary,
    StudyCompleted,
    StudyCompletedData,
)

AXIAL = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def uid(*parts: object) -> str:
    """A deterministic pseudonymous UID (2.25 form) from its parts."""
    return "2.25." + str(uuid.uuid5(uuid.NAMESPACE_OID, "/".join(map(str, parts))).int)


def _event_id(*parts: object) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "radlake-event/" + "/".join(map(str, parts))))


@dataclass(frozen=True)
class SeriesPlan:
    provider: str
    study: str  # a label; UIDs are derived from it
    series: str
    slices: int
    spacing_mm: float = 2.5
    modality: str = "CT"
    project: str = "cohort-demo"
    patient: str = "RL-P1"
    skip: tuple[int, ...] = ()  # slice indices left out (gaps)
    repeat_position: tuple[int, ...] = ()  # slice indices placed at the previous slice's position


def series_events(plan: SeriesPlan) -> list[InstanceReceived]:
    events = []
    for index in range(plan.slices):
        if index in plan.skip:
            continue
        z = plan.spacing_mm * (index - 1 if index in plan.repeat_position else index)
        blob = f"{plan.study}/{plan.series}/{index}".encode()
        sop = uid(plan.provider, plan.study, plan.series, index)
        events.append(InstanceReceived(
            event_id=_event_id(sop), provider=plan.provider,
            data=InstanceReceivedData(
                project=plan.project, pseudo_patient_id=plan.patient, study_uid=uid(plan.provider, plan.study),
                series_uid=uid(plan.provider, plan.study, plan.series), sop_instance_uid=sop,
                frame_of_reference_uid=uid(plan.provider, plan.study, "for"),
                sop_class_uid="1.2.840.10008.5.1.4.1.1.2", modality=plan.modality,
                transfer_syntax_uid="1.2.840.10008.1.2.1", instance_number=index + 1, rows=64, columns=64,
                pixel_spacing=(0.75, 0.7), slice_thickness=plan.spacing_mm,
                image_position_patient=(-24.0, -22.4, z), image_orientation_patient=AXIAL,
                object_uri=f"file:///objects/{hashlib.sha256(blob).hexdigest()}.dcm",
                sha256=hashlib.sha256(blob).hexdigest(), size_bytes=4096, deid_profile_version="ps3.15-test",
            ),
        ))
    return events


def conflicting(event: InstanceReceived) -> InstanceReceived:
    """The same SOP Instance UID with other bytes (a different hash), as a new event."""
    sha = hashlib.sha256(b"other bytes " + event.data.sha256.encode()).hexdigest()
    data = event.data.model_copy(update={"sha256": sha, "object_uri": f"file:///objects/{sha}.dcm"})
    return event.model_copy(update={"event_id": _event_id("conflict", event.event_id), "data": data})


def study_completed(events: Sequence[InstanceReceived], *, version: int = 1,
                    reason: str = "manifest") -> StudyCompleted:
    """The ``study completed`` event the streams part would emit for these instances."""
    head = events[0].data
    series: dict[str, list[InstanceReceived]] = {}
    for e in events:
        series.setdefault(e.data.series_uid, []).append(e)
    summaries = tuple(
        SeriesSummary(
            series_uid=series_uid, modality=members[0].data.modality,
            frame_of_reference_uid=members[0].data.frame_of_reference_uid, instance_count=len(members),
            rows=members[0].data.rows, columns=members[0].data.columns, pixel_spacing=members[0].data.pixel_spacing,
            slice_thickness=members[0].data.slice_thickness,
            image_orientation_patient=members[0].data.image_orientation_patient,
            first_position=members[0].data.image_position_patient,
            last_position=members[-1].data.image_position_patient,
            instances=tuple(InstanceRef(sop_instance_uid=m.data.sop_instance_uid, object_uri=m.data.object_uri,
                                        sha256=m.data.sha256, instance_number=m.data.instance_number,
                                        image_position_patient=m.data.image_position_patient) for m in members),
        )
        for series_uid, members in series.items()
    )
    return StudyCompleted(
        event_id=_event_id("completed", head.study_uid, version),
        event_type="study.completed" if version == 1 else "study.updated",
        provider=events[0].provider,
        data=StudyCompletedData(
            project=head.project, pseudo_patient_id=head.pseudo_patient_id, study_uid=head.study_uid,
            study_version=version, completion_reason=reason, providers=tuple(sorted({e.provider for e in events})),
            instance_count=len(events), series=summaries, event_ids=tuple(e.event_id for e in events),
        ),
    )
