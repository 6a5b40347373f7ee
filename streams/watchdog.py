"""A thread that makes a stuck handler visible.

The worker's handlers run on one asyncio loop; a call that blocks inside one (a dependency that stops
answering) stops every handler, the tick timer and the web server with it, so nothing on the loop can report
it. This thread can: when a handler has been running longer than ``threshold_s`` it logs an error with the
stack of the loop's thread, once per handler call, and keeps the busy time for the ``/metrics`` gauge.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback

log = logging.getLogger(__name__)


class HandlerWatchdog:
    def __init__(self, threshold_s: float = 30.0, interval_s: float = 5.0) -> None:
        self.threshold_s = threshold_s
        self.interval_s = interval_s
        self._since: float | None = None  # monotonic start of the handler now running
        self._what = ""
        self._loop_thread = threading.get_ident()
        self._reported: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.stuck_reports = 0

    def enter(self, what: str) -> None:
        self._loop_thread = threading.get_ident()
        self._what = what
        self._since = time.monotonic()

    def leave(self) -> None:
        self._since = None

    def busy_seconds(self) -> float:
        since = self._since
        return 0.0 if since is None else time.monotonic() - since

    def check(self) -> bool:
        """Report the running handler if it is past the threshold (once per handler call)."""
        since = self._since
        if since is None or since == self._reported or time.monotonic() - since < self.threshold_s:
            return False
        self._reported = since
        self.stuck_reports += 1
        frame = sys._current_frames().get(self._loop_thread)  # noqa: SLF001 - the only way to see another thread's stack
        stack = "".join(traceback.format_stack(frame, limit=25)) if frame is not None else "(no frame)"
        log.error("handler %s busy for %.0f s (a dependency not answering?); the loop is at:\n%s",
                  self._what, time.monotonic() - since, stack)
        return True

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="handler-watchdog", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.check()
