"""The admin's overview (``radlake status``): what it shows, and the arithmetic on what was read (pure).

Readers (Prometheus's HTTP API, Kafka, delta-rs, the edges' quarantine journals, the supervisor's log) live in
:mod:`monitoring.status_data`; each section of an :class:`Overview` says which source filled it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ProviderRow:
    provider: str
    per_min_5: float  # instances per minute over the last 5 minutes
    per_min_60: float
    last_upload: datetime | None
    quarantined: dict[str, int] = field(default_factory=dict)  # reason -> count


@dataclass(frozen=True)
class GroupRow:
    group: str
    lag: int
    trend: int | None  # change of the lag over the trend window (None: no earlier sample)


@dataclass(frozen=True)
class TableRow:
    table: str
    version: int
    last_commit: datetime | None


@dataclass(frozen=True)
class AlertRow:
    name: str
    severity: str
    summary: str
    since: str


@dataclass(frozen=True)
class SupervisedRow:
    component: str
    restarts: int
    failed_restarts: int
    gave_up: bool


@dataclass(frozen=True)
class Overview:
    at: datetime
    sources: dict[str, str]  # section -> where it was read from
    providers: list[ProviderRow]
    groups: list[GroupRow]
    tables: list[TableRow]
    alerts: list[AlertRow]
    supervised: list[SupervisedRow]
    problems: list[str] = field(default_factory=list)  # a part that could not be read, one line each

    def to_json(self) -> str:
        return json.dumps(asdict(self), default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v),
                          indent=2, sort_keys=True)


def rates(arrivals: Mapping[str, Iterable[datetime]], now: datetime) -> dict[str, tuple[float, float, datetime]]:
    """Per provider: instances per minute over the last 5 and 60 minutes, and the latest arrival."""
    found = {}
    for provider, stamps in arrivals.items():
        times = list(stamps)
        if not times:
            continue
        last5 = sum(1 for t in times if (now - t).total_seconds() <= 300)
        last60 = sum(1 for t in times if (now - t).total_seconds() <= 3600)
        found[provider] = (last5 / 5.0, last60 / 60.0, max(times))
    return found


def trend(now: int, before: int | None) -> int | None:
    return None if before is None else now - before


def age(since: datetime | None, now: datetime) -> str:
    """``42s``, ``3m07s``, ``2h05m``, ``4d03h``; ``-`` for never."""
    if since is None:
        return "-"
    seconds = max(0, int((now - since).total_seconds()))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    if seconds < 86400:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 86400}d{seconds % 86400 // 3600:02d}h"
