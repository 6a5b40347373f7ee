"""What the streams keep of one accepted instance: its claim-check, hash and geometry.

An :class:`InstanceRecord` is built from an ``instance received`` event and kept in the worker's state topic;
:func:`encode` / :func:`decode` (one record, JSON) and :func:`encode_many` / :func:`decode_many` (many, a
MessagePack array of the same maps: the worker writes every record it accepts, and formatting a record's twelve
floats as JSON text costs more than the rest of it) are the only (de)serialisation of it. Its fields are the event's (``lake_schemas.events``),
named, typed and defaulted as the event declares them; it is a frozen msgspec Struct, built for every instance
the worker accepts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgspec

from lake_schemas.events import InstanceReceived, InstanceReceivedData
from radlake.imaging.event_records import event_struct

_ENVELOPE_FIELDS = ("event_id", "provider")
_DATA_FIELDS = ("series_uid", "sop_instance_uid", "sha256", "object_uri", "modality", "frame_of_reference_uid",
                "instance_number", "rows", "columns", "pixel_spacing", "slice_thickness", "image_position_patient",
                "image_orientation_patient")


class InstanceRecord(event_struct("InstanceRecord", (InstanceReceived, _ENVELOPE_FIELDS),
                                  (InstanceReceivedData, _DATA_FIELDS))):
    @classmethod
    def from_event(cls, event: InstanceReceived | Any) -> InstanceRecord:
        """From the event, or from its validated view (``EventSerde.read``: the same attributes, arrays as lists of
        floats). Runs for every instance the worker handles: the fields are named here, not looked up."""
        d = event.data
        spacing, position, orientation = d.pixel_spacing, d.image_position_patient, d.image_orientation_patient
        return cls(
            event_id=event.event_id, provider=event.provider, series_uid=d.series_uid,
            sop_instance_uid=d.sop_instance_uid, sha256=d.sha256, object_uri=d.object_uri, modality=d.modality,
            frame_of_reference_uid=d.frame_of_reference_uid, instance_number=d.instance_number, rows=d.rows,
            columns=d.columns, pixel_spacing=None if spacing is None else tuple(spacing),
            slice_thickness=d.slice_thickness, image_position_patient=None if position is None else tuple(position),
            image_orientation_patient=None if orientation is None else tuple(orientation),
        )


_decoder = msgspec.json.Decoder(InstanceRecord)
_many_encoder = msgspec.msgpack.Encoder()
_many_decoder = msgspec.msgpack.Decoder(list[InstanceRecord])


def encode(record: InstanceRecord) -> bytes:
    """The record as a JSON object (its fields in order)."""
    return msgspec.json.encode(record)


def decode(value: bytes) -> InstanceRecord:
    return _decoder.decode(value)


def encode_many(records: Sequence[InstanceRecord]) -> bytes:
    """Records as one MessagePack array of maps with :func:`encode`'s members."""
    return _many_encoder.encode(records)


def decode_many(value: bytes) -> list[InstanceRecord]:
    return _many_decoder.decode(value)
