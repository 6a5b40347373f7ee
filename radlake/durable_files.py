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
from collections.abc import Iterable, Sequence
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


Data = bytes | memoryview | Iterable[bytes | memoryview]


def write_durably(target: Path, data: Data) -> None:
    """Write ``data`` (bytes, or chunks) to ``target``: whole or not at all, and on disk when this returns."""
    write_many_durably([(target, data)])


def write_many_durably(files: Sequence[tuple[Path, Data]]) -> None:
    """:func:`write_durably` for many files at once: every temporary file written, then each fsync'd (the
    first fsync's journal commit carries most of the others' data, so a batch costs far less than one
    fsync after each write), then renamed, then each folder fsync'd once."""
    written: list[tuple[str, Path]] = []
    try:
        for target, data in files:
            make_dirs(target.parent)
            fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=PART_SUFFIX, dir=target.parent)
            written.append((tmp, target))
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, bytes | memoryview):
                    out.write(data)
                else:
                    out.writelines(data)
        for tmp, _ in written:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        while written:
            tmp, target = written[0]
            os.replace(tmp, target)
            written.pop(0)
    except BaseException:
        for tmp, _ in written:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        raise
    for folder in sorted({target.parent for target, _ in files}):
        fsync_dir(folder)
