"""The state dir holds what must stay on the host (keys, journals, quarantine, spool, the lake when it is
local): only its owner may read it.

:func:`lock_down` makes the state dir 0700 (the first time, it also takes group and other bits off
whatever an earlier version left in it), and sets this process's umask to 077 so that every file and folder radlake and the
processes it starts create is 0600 / 0700. Every command, every component start and every Spark
session calls it first.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from platform_layer.settings import Settings

PRIVATE_UMASK = 0o077
_OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO

_locked: set[Path] = set()


def lock_down(settings: Settings) -> None:
    os.umask(PRIVATE_UMASK)
    root = settings.state_dir
    if root in _locked:
        return
    root.mkdir(parents=True, exist_ok=True, mode=0o700)
    was_open = bool(root.stat().st_mode & _OPEN_BITS)
    root.chmod(0o700)
    _locked.add(root)
    if not was_open:  # created here, or locked down by an earlier run (whose processes all ran with umask 077)
        return
    for path, mode in _open_paths(root):
        try:
            path.chmod(stat.S_IMODE(mode) & ~_OPEN_BITS)
        except FileNotFoundError:  # removed meanwhile by a running component
            continue


def _open_paths(root: Path) -> Iterator[tuple[Path, int]]:
    """Files and folders under ``root`` (not links) with group or other bits, and their modes."""
    for folder, dirs, files in os.walk(root):
        for name in (*dirs, *files):
            path = Path(folder) / name
            try:
                mode = path.lstat().st_mode
            except FileNotFoundError:  # removed meanwhile by a running component
                continue
            if not stat.S_ISLNK(mode) and mode & _OPEN_BITS:
                yield path, mode


def open_entries(root: Path) -> list[str]:
    """Files and folders under ``root`` that a group or other users could read, write or enter."""
    return [f"{oct(stat.S_IMODE(mode))} {path.relative_to(root)}" for path, mode in _open_paths(root)]


def write_private(path: Path, text: str | bytes) -> None:
    """Write ``text`` (or bytes) to ``path`` atomically, readable by the owner only."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb" if isinstance(text, bytes) else "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
