"""The provider-side upload journal: one JSON line per acknowledged unit (a study's STOW-RS request or an
archive) and per acknowledged study manifest, appended and fsync'ed as soon as the edge answers.

A resumed ``radlake upload`` skips every unit whose id is in the journal; unit ids are derived from the
content (kind + the sorted SHA-256 of the inputs), so the same files give the same ids in every run and a
changed file is sent again. A line cut short by a crash is ignored (its unit is simply sent again: the
edge gives re-sent instances the same event ids). The journal stays on the provider's side: it holds the
provider's own (original) UIDs next to the pseudonymous ones, so it is written 0600 in a 0700 folder and
:func:`expire` forgets lines older than a retention (``radlake upload`` runs it first; a unit forgotten is
simply sent again if its files are uploaded again, and the edge recognises its instances as duplicates).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from nifi.edge.errors import JournalError
from radlake.durable_files import write_durably


def unit_id(kind: str, input_sha256s: Iterable[str]) -> str:
    digest = hashlib.sha256(kind.encode())
    for sha in sorted(input_sha256s):
        digest.update(sha.encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class JournalState:
    acks: dict[str, dict] = field(default_factory=dict)  # unit id -> ack record (the last one)
    manifests: dict[str, dict] = field(default_factory=dict)  # original study UID -> manifest record
    skipped_lines: int = 0

    def acknowledged(self, unit: str) -> bool:
        return unit in self.acks

    def outcomes(self) -> list[dict]:
        """Every acknowledged outcome (edge report lines), in journal order."""
        return [o for ack in self.acks.values() for o in ack.get("outcomes", [])]


def parse(lines: Sequence[str]) -> JournalState:
    """Pure: journal lines → state. Unparseable lines (a torn last write) are counted and ignored."""
    acks: dict[str, dict] = {}
    manifests: dict[str, dict] = {}
    skipped = 0
    for line in lines:
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            kind = record["type"]
        except (ValueError, KeyError, TypeError):
            skipped += 1
            continue
        if kind == "ack":
            acks[record["unit_id"]] = record
        elif kind == "manifest":
            manifests[record["original_study_uid"]] = record
    return JournalState(acks, manifests, skipped)


def load(path: Path) -> JournalState:
    if not path.exists():
        return JournalState()
    try:
        return parse(path.read_text(encoding="utf-8").splitlines())
    except OSError as err:
        raise JournalError(f"cannot read the upload journal {path}: {err}") from err


def append(path: Path, record: dict) -> None:
    """Append one record durably (flush + fsync) before the next unit is sent."""
    line = json.dumps({**record, "at": datetime.now(timezone.utc).isoformat()}, sort_keys=True)
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with os.fdopen(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as err:
        raise JournalError(f"cannot write the upload journal {path}: {err}") from err


def expire(path: Path, cutoff: datetime) -> int:
    """Forget the records written before ``cutoff`` (and lines that cannot be read: a torn write); the
    journal is replaced whole, durably. Returns how many lines went."""
    if not path.exists():
        return 0
    try:
        lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        kept = [line for line in lines if _written_at(line) is not None and _written_at(line) >= cutoff]
        if len(kept) != len(lines):
            write_durably(path, "".join(f"{line}\n" for line in kept).encode("utf-8"))
    except OSError as err:
        raise JournalError(f"cannot expire the upload journal {path}: {err}") from err
    return len(lines) - len(kept)


def _written_at(line: str) -> datetime | None:
    try:
        return datetime.fromisoformat(json.loads(line)["at"])
    except (ValueError, KeyError, TypeError):
        return None


def ack_record(unit: str, kind: str, upload_id: str, status: int, outcomes: list[dict], inputs: int,
               size_bytes: int, study: str | None, timings: dict | None = None) -> dict:
    return {"type": "ack", "unit_id": unit, "kind": kind, "upload_id": upload_id, "status": status,
            "inputs": inputs, "bytes": size_bytes, "original_study_uid": study, "outcomes": outcomes,
            "timings": timings or {}}


def manifest_record(original_study: str, upload_id: str, answer: dict) -> dict:
    return {"type": "manifest", "original_study_uid": original_study, "upload_id": upload_id,
            "study_uid": answer.get("study_uid"), "event_id": answer.get("event_id"),
            "expected_instances": answer.get("expected_instances")}
