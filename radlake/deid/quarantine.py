"""Quarantine: the original bytes kept aside, and one JSON line per refused input with its reason.

Layout under the output folder::

    quarantine/quarantine.jsonl          one record per quarantined input (appended, with its time)
    quarantine/files/<sha256>.bin        the original bytes, content-addressed (identical inputs share one)

Originals may hold PHI: :func:`expire` deletes the originals and records older than a retention (an
original's time is the last time it was quarantined). Writers hold an exclusive lock on the record file,
so an expiry never loses a record appended meanwhile.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from radlake.deid.errors import QuarantineReason

QUARANTINE_DIR = "quarantine"
JOURNAL = "quarantine.jsonl"


@dataclass(frozen=True)
class QuarantineRecord:
    input: str
    reason: QuarantineReason
    message: str
    original_sop_instance_uid: str | None = None
    sha256: str | None = None
    stored_as: str | None = None
    provider: str | None = None
    quarantined_at: str | None = None  # ISO 8601, UTC; set when the record is appended

    def to_json(self) -> str:
        return json.dumps(
            {
                "quarantined_at": self.quarantined_at,
                "input": self.input,
                "original_sop_instance_uid": self.original_sop_instance_uid,
                "reason": self.reason.value,
                "message": self.message,
                "sha256": self.sha256,
                "stored_as": self.stored_as,
                "provider": self.provider,
            },
            sort_keys=True,
        )


def quarantine_dir(out_dir: Path) -> Path:
    return out_dir / QUARANTINE_DIR


def keep_original(out_dir: Path, data: bytes, sha256: str) -> str:
    """Store the original bytes (once per content); returns the path relative to ``out_dir``."""
    relative = Path(QUARANTINE_DIR) / "files" / f"{sha256}.bin"
    target = out_dir / relative
    if target.exists():
        os.utime(target)  # quarantined again now: its retention starts again
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return str(relative)


@contextmanager
def _locked(out_dir: Path) -> Iterator[Path]:
    path = quarantine_dir(out_dir) / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    with (path.parent / f".{JOURNAL}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield path
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def append_records(out_dir: Path, records: list[QuarantineRecord]) -> None:
    """Append records to ``quarantine/quarantine.jsonl`` (one writer: the coordinating process)."""
    if not records:
        return
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with _locked(out_dir) as path, path.open("a", encoding="utf-8") as journal:
        for record in records:
            stamped = record if record.quarantined_at else replace(record, quarantined_at=now)
            journal.write(stamped.to_json() + "\n")


def expire(out_dir: Path, cutoff: datetime, now: datetime | None = None) -> tuple[int, int]:
    """Delete the originals last quarantined before ``cutoff`` and the records from before it; returns
    (originals deleted, records deleted). A record written before records had a time gets ``now``: it goes
    one retention later."""
    now_text = (now or datetime.now(timezone.utc)).isoformat(timespec="seconds")
    files = quarantine_dir(out_dir) / "files"
    originals = 0
    with _locked(out_dir) as path:
        for original in (files.glob("*.bin") if files.is_dir() else ()):
            if datetime.fromtimestamp(original.stat().st_mtime, timezone.utc) < cutoff:
                original.unlink(missing_ok=True)
                originals += 1
        if not path.exists():
            return originals, 0
        kept, dropped, stamped = [], 0, False
        for line in path.read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if not record.get("quarantined_at"):
                record["quarantined_at"], stamped = now_text, True
                line = json.dumps(record, sort_keys=True)
            if datetime.fromisoformat(record["quarantined_at"]) >= cutoff:
                kept.append(line)
            else:
                dropped += 1
        if dropped or stamped:
            tmp = path.with_name(f".{JOURNAL}.{os.getpid()}.tmp")
            tmp.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")
            os.replace(tmp, path)
    return originals, dropped
