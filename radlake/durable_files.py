"""Files that are whole after a crash or a power loss, or absent: write, fsync, rename, fsync the folder.

An acknowledgement (an edge's 2xx, a ``radlake deid`` report) may only name files written this way: the
data reaches the disk before the rename makes it visible, and the rename reaches the disk (the folder's
fsync) before the function returns. Each writer writes its own temporary file (``mkstemp``: a name no other
writer, thread or process, can share), so concurrent writers of one target never interleave their bytes;
the last rename wins, and for content-addressed targets every writer's bytes are the same.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

PART_SUFFIX = ".part"


def make_dirs(folder: Path) -> None:
    """``mkdir -p`` whose new folders survive a crash (each one's parent is fsync'd after it is made)."""
    missing: list[Path] = []
    current = folder
    while not current.exists():
        missing.append(current)
        current = current.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another writer made it meanwhile
            path.mkdir()
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Persist a folder's entries (a rename or a new file in it)."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(target: Path, data: bytes | memoryview | Iterable[bytes | memoryview]) -> None:
    """Write ``data`` (bytes, or chunks) to ``target``: whole or not at all, and on disk when this returns."""
    make_dirs(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PART_SUFFIX, dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            if isinstance(data, bytes | memoryview):
                out.write(data)
            else:
                out.writelines(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(target.parent)
