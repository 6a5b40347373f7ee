"""Quarantine: the original bytes kept aside, and one JSON line per refused input with its reason.

Layout under the output folder::

    quarantine/quarantine.jsonl          one record per quarantined input (appended)
    quarantine/files/<sha256>.bin        the original bytes, content-addressed (identical inputs share one)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
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

    def to_json(self) -> str:
        return json.dumps(
            {
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
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
    return str(relative)


def append_records(out_dir: Path, records: list[QuarantineRecord]) -> None:
    """Append records to ``quarantine/quarantine.jsonl`` (one writer: the coordinating process)."""
    if not records:
        return
    path = quarantine_dir(out_dir) / JOURNAL
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as journal:
        for record in records:
            journal.write(record.to_json() + "\n")
