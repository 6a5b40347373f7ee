"""What the streams keep of one accepted instance: its claim-check, hash and geometry.

An :class:`InstanceRecord` is built from an ``instance received`` event and stored in the ``instances``
table as JSON; :func:`encode` / :func:`decode` are the only (de)serialisation of it. Its fields are
the event's (``lake_schemas.events``), named, typed and defaulted as the event declares them.
"""

from __future__ import annotations

from typing import Any

import msgspec

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



def encode(record: InstanceRecord) -> bytes:
    """The record as JSON (msgspec encodes the dataclass's fields in order, in C)."""
    return msgspec.json.encode(record)


def decode(value: bytes) -> InstanceRecord:
    return InstanceRecord.of(msgspec.json.decode(value))
