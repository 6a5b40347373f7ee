"""Where a local lake keeps its Delta tables: every folder holding a ``_delta_log`` (no Delta reader needed)."""

from __future__ import annotations

import os
from collections.abc import Iterator


def find_tables(root: str) -> Iterator[str]:
    """Relative paths of the Delta tables under a local lake root (folders holding ``_delta_log``)."""
    for current, dirs, _files in os.walk(root):
        if "_delta_log" in dirs:
            yield os.path.relpath(current, root)
            dirs.clear()
        else:
            dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
