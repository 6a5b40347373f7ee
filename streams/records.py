"""What the streams keep of one accepted instance: its claim-check, hash and geometry.

An :class:`InstanceRecord` is built from an ``instance received`` event and stored in the ``instances``
table as JSON; :func:`to_json` / :func:`from_json` are the only (de)serialisation of it. Its fields are
the event's (``lake_schemas.events``), named, typed and defaulted as the event declares them.
"""

from __future__ import annotations

from typing import Any

from lake_schemas.events import InstanceReceived, InstanceReceivedData
from radlake.imaging.event_records import event_record

_ENVELOPE_FIELDS = ("event_id", "provider")
_DATA_FIELDS = ("series_uid", "sop_instance_uid", "sha256", "object_uri", "modality", "frame_of_reference_uid",
                "instance_number", "rows", "columns", "pixel_spacing", "slice_thickness", "image_position_patient",
                "image_orientation_patient")


class InstanceRecord(event_record("InstanceRecord", (InstanceReceived, _ENVELOPE_FIELDS),
                                  (InstanceReceivedData, _DATA_FIELDS))):
    @classmethod
    def from_event(cls, event: InstanceReceived | Any) -> InstanceRecord:
        """From the event, or from its validated view (``EventSerde.read``: the same attributes, arrays as lists of
        floats). Runs for every instance the worker handles, so it skips :func:`record_from`'s generic checks."""
        d = event.data
        values = {name: getattr(d, name) for name in _DATA_FIELDS}
        for name in cls._tuple_fields:
            if values[name] is not None:
                values[name] = tuple(values[name])
        return cls(event_id=event.event_id, provider=event.provider, **values)


_FIELDS = (*_ENVELOPE_FIELDS, *_DATA_FIELDS)


def to_json(record: InstanceRecord) -> dict[str, Any]:
    # not dataclasses.asdict: it deep-copies every value, the slowest step of a handled event
    return {name: getattr(record, name) for name in _FIELDS}


def from_json(value: dict[str, Any]) -> InstanceRecord:
    return InstanceRecord.of(value)
