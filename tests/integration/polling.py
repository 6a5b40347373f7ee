"""Waiting for something the stack does on its own time (a scrape, an alert, a restart): poll with a generous
deadline, never assert a duration."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

T = TypeVar("T")


def poll(check: Callable[[], T | None], what: str, timeout_s: float = 120.0, interval_s: float = 0.5) -> T:
    """The first truthy answer of ``check``; fails naming ``what`` (and the last answer) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval_s)
    pytest.fail(f"{what}: not seen within {timeout_s:.0f}s (last answer: {last!r})")
