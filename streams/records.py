"""What the streams keep of one accepted instance: its claim-check, hash and geometry.

An :class:`InstanceRecord` is built from an ``instance received`` event and stored in the ``instances``
table as JSON; :func:`to_json` / :func:`from_json` are the only (de)serialisation of it.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from lake_schemas.events import InstanceReceived


def _tuple(value: Any) -> tuple[float, ...] | None:
    return None if value is None else tuple(float(v) for v in value)


@dataclass(frozen=True)
class InstanceRecord:
    event_id: str
    provider: str
    series_uid: str
    sop_instance_uid: str
    sha256: str
    object_uri: str
    modality: str
    frame_of_reference_uid: str | None = None
    instance_number: int | None = None
    rows: int | None = None
    columns: int | None = None
    pixel_spacing: tuple[float, float] | None = None
    slice_thickness: float | None = None
    image_position_patient: tuple[float, float, float] | None = None
    image_orientation_patient: tuple[float, float, float, float, float, float] | None = None

    @classmethod
    def from_event(cls, event: InstanceReceived) -> InstanceRecord:
        d = event.data
        return cls(
            event_id=event.event_id, provider=event.provider, series_uid=d.series_uid,
            sop_instance_uid=d.sop_instance_uid, sha256=d.sha256, object_uri=d.object_uri, modality=d.modality,
            frame_of_reference_uid=d.frame_of_reference_uid, instance_number=d.instance_number, rows=d.rows,
            columns=d.columns, pixel_spacing=d.pixel_spacing, slice_thickness=d.slice_thickness,
            image_position_patient=d.image_position_patient, image_orientation_patient=d.image_orientation_patient,
        )


_FIELDS = tuple(f.name for f in fields(InstanceRecord))


def to_json(record: InstanceRecord) -> dict[str, Any]:
    # not dataclasses.asdict: it deep-copies every value, the slowest step of a handled event
    return {name: getattr(record, name) for name in _FIELDS}


def from_json(value: dict[str, Any]) -> InstanceRecord:
    geometry = ("pixel_spacing", "image_position_patient", "image_orientation_patient")
    return InstanceRecord(**{k: (_tuple(v) if k in geometry else v) for k, v in value.items()})
