"""Which OS processes serve a provider's edge: each IngestDicom processor records the process it runs in under
``<edge_dir>/processes/<pid>``. NiFi places Python processors in processes itself; these files are how the
platform checks that no two providers share one (:func:`nifi.providers.isolate_edges`)."""

from __future__ import annotations

import os
from pathlib import Path

PROCESSES_DIR = "processes"


def _alive(pid: int) -> bool:
    return Path("/proc", str(pid)).exists()


def announce_process(edge_dir: Path) -> Path:
    """Record the process this edge processor runs in (and forget processes that are gone); the caller removes the
    file when it stops."""
    folder = edge_dir / PROCESSES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.iterdir():
        if stale.name.isdigit() and not _alive(int(stale.name)):
            stale.unlink(missing_ok=True)
    path = folder / str(os.getpid())
    path.write_text(f"{os.getpid()}\n")
    return path


def edge_processes(edge_dir: Path) -> list[int]:
    """The live processes serving the edge whose folder is ``edge_dir``."""
    folder = edge_dir / PROCESSES_DIR
    if not folder.is_dir():
        return []
    return sorted(int(f.name) for f in folder.iterdir() if f.name.isdigit() and _alive(int(f.name)))
