"""What the edge keeps on the provider side may hold PHI (quarantined originals and their records, request
bodies spooled by NiFi, per-request work folders): nothing stays longer than it must.

:class:`Housekeeping` sweeps the edge's folders when the edge starts and then at most once an hour, from
the request path: quarantined originals and records older than the retention are deleted
(:func:`radlake.deid.quarantine.expire`), and so are drop-folder files moved to ``refused/`` (too large for the
quarantine to keep), and work folders and spooled bodies that a crash left behind
are removed (a request's own live far shorter than the age they are removed at).
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from radlake.deid.quarantine import expire

log = logging.getLogger(__name__)

WORK_LEFTOVER_AGE = timedelta(hours=1)
SPOOL_LEFTOVER_AGE = timedelta(days=1)
REFUSED_DIR = "refused"  # drop-folder files the edge refused and could not keep in its quarantine


@dataclass(frozen=True)
class Swept:
    originals: int
    records: int
    leftovers: int


def _remove_older(folder: Path, cutoff: datetime) -> int:
    removed = 0
    for entry in (folder.iterdir() if folder.is_dir() else ()):
        try:
            if datetime.fromtimestamp(entry.lstat().st_mtime, timezone.utc) >= cutoff:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
            removed += 1
        except FileNotFoundError:  # finished meanwhile
            continue
    return removed


def sweep(edge_dir: Path, quarantine_retention: timedelta, now: datetime | None = None) -> Swept:
    now = now or datetime.now(timezone.utc)
    originals, records = expire(edge_dir, now - quarantine_retention, now=now)
    originals += _remove_older(edge_dir / REFUSED_DIR, now - quarantine_retention)
    leftovers = (_remove_older(edge_dir / "work", now - WORK_LEFTOVER_AGE)
                 + _remove_older(edge_dir / "spool", now - SPOOL_LEFTOVER_AGE))
    return Swept(originals, records, leftovers)


class Housekeeping:
    """Call it on every request: it sweeps at most every ``every_s`` seconds (and on the first call)."""

    def __init__(self, edge_dir: Path, quarantine_retention: timedelta, *, every_s: float = 3600.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._edge_dir = edge_dir
        self._retention = quarantine_retention
        self._every_s = every_s
        self._clock = clock
        self._last: float | None = None

    def __call__(self) -> None:
        if self._last is not None and self._clock() - self._last < self._every_s:
            return
        self._last = self._clock()
        try:
            swept = sweep(self._edge_dir, self._retention)
        except OSError as err:  # a full or read-only disk must not stop ingestion; the next sweep retries
            log.warning("edge housekeeping failed: %s", err)
            return
        if swept.originals or swept.records or swept.leftovers:
            log.info("edge housekeeping: %d quarantined originals and %d records past the retention, %d leftovers "
                     "removed", swept.originals, swept.records, swept.leftovers)
