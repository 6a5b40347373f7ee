"""The deny list of erased patients, as every consumer of the lake's events honours it.

``radlake erase`` records each erased pseudonym in ``governance/erasures`` (it stays there on purpose). The
topics still hold that patient's events until their retention expires them, so a consumer that reads old
offsets — a dashboard replaying through the results bridge, an inference worker reset to the beginning — must
drop them: :class:`ErasedPatients` answers "is this pseudonym erased?" from that table, read again (only the
log entries added since) at most every ``refresh_s`` seconds, so an erasure counts within seconds everywhere.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from lake_schemas.tables import ERASURES
from platform_layer import governance
from platform_layer.settings import Settings

log = logging.getLogger(__name__)


class ErasedPatients:
    def __init__(self, settings: Settings, *, refresh_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._settings, self.refresh_s, self._clock = settings, refresh_s, clock
        self._erased: frozenset[str] = frozenset()
        self._read_at: float | None = None
        self._lock = threading.Lock()

    def _current(self) -> frozenset[str]:
        with self._lock:
            now = self._clock()
            if self._read_at is None or now - self._read_at >= self.refresh_s:
                try:
                    rows = governance.table_rows(self._settings, ERASURES)
                except governance.GovernanceError as err:
                    if self._read_at is None:
                        raise  # never read: nothing can be decided
                    log.warning("the deny list could not be read again, using the last one: %s", err)
                else:
                    self._erased = frozenset(r["pseudonym"] for r in rows if r.get("pseudonym"))
                self._read_at = now
            return self._erased

    def __contains__(self, pseudonym: object) -> bool:
        return bool(pseudonym) and pseudonym in self._current()
