"""The handler watchdog reports a handler that blocks the loop, with the loop thread's stack, once per call."""

from __future__ import annotations

import logging
import threading
import time

from streams.watchdog import HandlerWatchdog


def _blocked_in_a_dependency(watchdog: HandlerWatchdog, release: threading.Event) -> None:
    watchdog.enter("instances")
    release.wait(10)
    watchdog.leave()


def test_a_blocked_handler_is_reported_once_with_its_stack(caplog):
    watchdog = HandlerWatchdog(threshold_s=0.05, interval_s=0.02)
    release = threading.Event()
    loop = threading.Thread(target=_blocked_in_a_dependency, args=(watchdog, release))
    with caplog.at_level(logging.ERROR, logger="streams.watchdog"):
        loop.start()
        watchdog.start()
        deadline = time.monotonic() + 10
        while watchdog.stuck_reports == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # several more checks of the same call
        assert watchdog.busy_seconds() > 0.05
        release.set()
        loop.join()
        watchdog.stop()
    assert watchdog.stuck_reports == 1
    [record] = caplog.records
    assert "handler instances busy for" in record.getMessage()
    assert "_blocked_in_a_dependency" in record.getMessage()
    assert watchdog.busy_seconds() == 0.0


def test_an_idle_or_quick_handler_is_not_reported():
    watchdog = HandlerWatchdog(threshold_s=30)
    assert not watchdog.check()
    watchdog.enter("ticks")
    assert not watchdog.check()
    watchdog.leave()
    assert watchdog.stuck_reports == 0
