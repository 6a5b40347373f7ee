"""Redeliveries and conflicts among ``instance received`` events.

* the same event id again                     -> DUPLICATE_EVENT (dropped, counted)
* another event id, same SOP UID and sha256   -> DUPLICATE_CONTENT (dropped, counted)
* same SOP UID, different sha256              -> CONFLICT (a ``quarantined`` event, reason ``CONFLICT``)
* otherwise                                   -> ACCEPT
"""

from __future__ import annotations

import uuid
from enum import Enum

from lake_schemas.events import InstanceReceived, Quarantined, QuarantinedData
from streams.records import InstanceRecord


class Verdict(str, Enum):
    ACCEPT = "accept"
    DUPLICATE_EVENT = "duplicate_event"
    DUPLICATE_CONTENT = "duplicate_content"
    CONFLICT = "conflict"


# the members as module globals: an Enum member looked up on its class costs more than the rest of classify
_DUPLICATE_EVENT, _ACCEPT, _DUPLICATE_CONTENT, _CONFLICT = (
    Verdict.DUPLICATE_EVENT, Verdict.ACCEPT, Verdict.DUPLICATE_CONTENT, Verdict.CONFLICT)


def classify(incoming: InstanceRecord, *, event_seen: bool, known: InstanceRecord | None) -> Verdict:
    """``known`` is the instance already accepted under the same study and SOP Instance UID, if any."""
    if event_seen:
        return _DUPLICATE_EVENT
    if known is None:
        return _ACCEPT
    if known.sha256 == incoming.sha256:
        return _DUPLICATE_CONTENT
    return _CONFLICT


def conflict_event(event: InstanceReceived, known: InstanceRecord) -> Quarantined:
    """The quarantine record of a conflicting instance; its id derives from the conflicting event's id,
    so reprocessing the same event yields the same record."""
    d = event.data
    return Quarantined(
        event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"radlake-event/conflict/{event.event_id}")),
        provider=event.provider,
        occurred_at=event.occurred_at,
        trace_id=event.trace_id,
        data=QuarantinedData(
            project=d.project,
            stage="streams",
            reason="CONFLICT",
            message=(
                f"SOP Instance UID already received with sha256 {known.sha256} (event {known.event_id}); "
                f"this event carries sha256 {d.sha256}"
            ),
            input_sha256=d.sha256,
            study_uid=d.study_uid,
            sop_instance_uid=d.sop_instance_uid,
            quarantine_uri=d.object_uri,
        ),
    )
