"""The supervisor's record of what it did: one JSON object per line in ``<state>/supervisor/events.jsonl``.

The supervisor (``infra.supervision``) writes it; the lag exporter turns it into metrics and ``radlake status``
shows it, so its shape is declared here, once. ``event`` is one of :data:`EVENTS`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from platform_layer.settings import Settings

# watching: the supervisor (re)started and watches the component; restarted: it came back healthy;
# restart-failed: a restart attempt ended without a healthy component; gave-up: the crash-loop limit was reached;
# recovered: a component it had given up on is healthy again (someone ran `stack up`); renewed: a certificate of
# the component was issued anew and is served; renew-failed: renewing one failed (tried again at the next pass)
EVENTS = ("watching", "restarted", "restart-failed", "gave-up", "recovered", "renewed", "renew-failed")


@dataclass(frozen=True)
class SupervisionEvent:
    time: float  # Unix seconds
    component: str
    event: str
    reason: str = ""  # why it acted: "exited", "unhealthy for 60s", the start error...
    restarts_in_window: int = 0
    backoff_s: float = 0.0


def supervisor_dir(settings: Settings) -> Path:
    return settings.state_dir / "supervisor"


def events_file(state_dir: Path) -> Path:
    return state_dir / "supervisor" / "events.jsonl"


def append(path: Path, event: SupervisionEvent) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+b") as out:
        out.seek(0, 2)
        # a line cut short by a crash while writing stays on its own line, unreadable, and the next is whole
        torn = out.tell() > 0 and (out.seek(-1, 2), out.read(1))[1] != b"\n"
        out.write((("\n" if torn else "") + json.dumps(asdict(event), sort_keys=True) + "\n").encode())


def read(path: Path) -> list[SupervisionEvent]:
    """The events in order; a line being written (or not the supervisor's) is skipped."""
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    events = []
    for line in lines:
        try:
            events.append(SupervisionEvent(**json.loads(line)))
        except (ValueError, TypeError):
            continue
    return events


@dataclass(frozen=True)
class ComponentRecord:
    """What the events say about one component."""

    restarts: int
    failed_restarts: int
    gave_up: bool
    last_event: SupervisionEvent


def summary(events: Iterable[SupervisionEvent]) -> dict[str, ComponentRecord]:
    found: dict[str, ComponentRecord] = {}
    for event in events:
        before = found.get(event.component, ComponentRecord(0, 0, False, event))
        gave_up = event.event == "gave-up" or (before.gave_up and event.event not in ("recovered", "watching"))
        found[event.component] = ComponentRecord(before.restarts + (event.event == "restarted"),
                                                 before.failed_restarts + (event.event == "restart-failed"),
                                                 gave_up, event)
    return found


def now() -> float:
    return time.time()
