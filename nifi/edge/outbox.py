"""The edge's outbox: which objects it is about to store, kept on disk until their events are acknowledged.

An edge stores an object, then publishes its ``instance received`` event. If it dies in between (kill -9,
power loss) the object is in the store and nobody hears of it. So before a batch of objects is stored, the
edge writes one **ticket** naming them (URI, hash, size, provider, project, profile version: pseudonymous, no
PHI) durably into ``<edge dir>/outbox/``; once the request's events are acknowledged the ticket is deleted. A
ticket still there afterwards names objects whose events may be missing: :func:`repair` reads each named object
that exists, describes it again (the event id is derived from provider, project, UID and hash, so it is the id
the edge would have sent) and publishes the events not already on the topic. Objects never stored are skipped:
they were never acknowledged. The edge repairs its own tickets when it starts; ``radlake ingest report
--repair`` does it for an operator, checking the topic first so that nothing is published twice.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from io import BytesIO
from pathlib import Path

import pydicom
from pydantic import BaseModel

from radlake.claim_check import StoredObject
from radlake.durable_files import make_dirs, write_durably
from radlake.instance_events import InstanceEventError, describe

log = logging.getLogger(__name__)

SUFFIX = ".ticket.json"


@dataclass(frozen=True)
class PlannedObject:
    uri: str
    sha256: str
    size_bytes: int
    provider: str
    project: str
    deid_profile_version: str


class Outbox:
    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def open_ticket(self, planned: Sequence[PlannedObject]) -> Path | None:
        """Write a ticket for objects about to be stored (durably, before the first of them is); none for none."""
        if not planned:
            return None
        make_dirs(self.folder)
        ticket = self.folder / f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        write_durably(ticket, json.dumps([asdict(p) for p in planned]).encode())
        return ticket

    def close(self, tickets: Collection[Path]) -> None:
        """The tickets' events are acknowledged: forget them."""
        for ticket in tickets:
            ticket.unlink(missing_ok=True)

    def leftovers(self, older_than_s: float = 0.0) -> list[Path]:
        """Tickets older than ``older_than_s`` (a live request's ticket is seconds old), oldest first."""
        if not self.folder.is_dir():
            return []
        cutoff = time.time() - older_than_s
        return sorted(t for t in self.folder.glob(f"*{SUFFIX}") if t.stat().st_mtime <= cutoff)

    @staticmethod
    def read(ticket: Path) -> list[PlannedObject]:
        try:
            return [PlannedObject(**entry) for entry in json.loads(ticket.read_bytes())]
        except (ValueError, TypeError) as err:  # torn by a crash while being written: nothing was stored yet
            log.warning("outbox ticket %s unreadable (%s): nothing was stored under it", ticket.name, err)
            return []


@dataclass(frozen=True)
class Repaired:
    tickets: int
    objects: int  # named by the tickets and in the store
    published: int  # events that were not on the topic and now are
    never_stored: int


def repair(outbox: Outbox, read_object: Callable[[str], bytes | None], publish: Callable[[list[BaseModel]], None],
           *, on_topic: Collection[str] = (), older_than_s: float = 0.0) -> Repaired:
    """Publish the events of the objects that leftover tickets name, except those whose event id is in
    ``on_topic``; then close the tickets. ``read_object`` returns an object's bytes, or None when it is not in
    the store. Raises what ``publish`` raises (the tickets then stay for the next repair)."""
    tickets = outbox.leftovers(older_than_s)
    events: dict[str, BaseModel] = {}
    objects = never_stored = 0
    for ticket in tickets:
        for planned in Outbox.read(ticket):
            data = read_object(planned.uri)
            if data is None:
                never_stored += 1
                continue
            objects += 1
            header = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
            try:
                event = describe(header, StoredObject(planned.uri, planned.sha256, planned.size_bytes, False),
                                 provider=planned.provider, project=planned.project,
                                 deid_profile_version=planned.deid_profile_version)
            except InstanceEventError:  # the edge quarantined it (DEID_FAILED): its quarantine event says so
                continue
            if event.event_id not in on_topic:
                events[event.event_id] = event
    if events:
        publish(list(events.values()))
    outbox.close(tickets)
    if tickets:
        log.info("outbox repaired: %d ticket(s), %d object(s), %d event(s) published, %d never stored",
                 len(tickets), objects, len(events), never_stored)
    return Repaired(len(tickets), objects, len(events), never_stored)
