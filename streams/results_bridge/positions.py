"""Where in the result topics a stream starts: the event ids the bridge sends (``<topic>/<partition>/<offset>``,
what a browser's ``EventSource`` returns as ``Last-Event-ID``), ``?from=<topic>:<partition>:<offset>`` and
``?since=<ISO time>``. Pure parsing; :mod:`streams.results_bridge.hub` turns a start into offsets."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from streams.errors import StreamsError

_COORDINATES = re.compile(r"^(?P<topic>[A-Za-z0-9._-]{1,249})[/:](?P<partition>[0-9]{1,6})[/:](?P<offset>[0-9]{1,19})$")


class StartError(StreamsError):
    """A ``since``, ``from`` or ``Last-Event-ID`` that names no position."""


@dataclass(frozen=True)
class Coordinates:
    topic: str
    partition: int
    offset: int

    @property
    def event_id(self) -> str:
        return f"{self.topic}/{self.partition}/{self.offset}"


@dataclass(frozen=True)
class Start:
    """Replay from ``after`` (the event a client last received: everything after it, on every partition, from
    its time on) or from ``since_ms`` (epoch milliseconds); neither: live events only."""

    since_ms: int | None = None
    after: Coordinates | None = None

    @property
    def live_only(self) -> bool:
        return self.since_ms is None and self.after is None


def parse_coordinates(text: str) -> Coordinates:
    found = _COORDINATES.fullmatch(text.strip())
    if not found:
        raise StartError(f"{text[:100]!r} is not an event id: <topic>/<partition>/<offset> (or with ':')")
    return Coordinates(found["topic"], int(found["partition"]), int(found["offset"]))


def parse_since(text: str) -> int:
    """Epoch milliseconds of an ISO 8601 time; one without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as err:
        raise StartError(f"since={text[:60]!r} is not an ISO 8601 time") from err
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp() * 1000)


def start_of(since: str | None, from_: str | None, last_event_id: str | None) -> Start:
    """``Last-Event-ID`` (a reconnecting EventSource) wins over ``from``, which wins over ``since``."""
    resume = last_event_id or from_
    if resume:
        return Start(after=parse_coordinates(resume))
    if since:
        return Start(since_ms=parse_since(since))
    return Start()
