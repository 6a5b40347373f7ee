"""Quarantine: the original bytes kept aside, and one JSON line per refused input with its reason.

Layout under the output folder::

    quarantine/quarantine.jsonl          one record per quarantined input (appended, with its time)
    quarantine/files/<sha256>.bin        the original bytes, content-addressed (identical inputs share one)

Originals may hold PHI: :func:`expire` deletes the originals and records older than a retention (an
original's time is the last time it was quarantined). Writers hold an exclusive lock on the record file,
so an expiry never loses a record appended meanwhile.

Given a :class:`~radlake.deid.sealing.Sealer`, originals are stored sealed (envelope encryption, opened only
for their own digest) and a record keeps in the clear only what expiry and counting need (time, reason,
digest, where the original is, provider): the input's name, the original SOP Instance UID and the message go
into the record's ``sealed`` field. :func:`read_records` and :func:`read_original` open them with the key
service's unwrap.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from radlake.deid.archives import extract, is_archive
from radlake.deid.errors import QuarantineReason
from radlake.deid.sealing import DataKeys, Sealer, SealError, is_sealed, sealed_length, unseal
from radlake.dicom_io import patient_id
from radlake.durable_files import fsync_dir, write_durably

QUARANTINE_DIR = "quarantine"
JOURNAL = "quarantine.jsonl"
RECORD_CONTEXT = b"quarantine record"
SEALED = "(sealed)"


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

    def to_json(self, sealer: Sealer | None = None) -> str:
        identifying = {"input": self.input, "original_sop_instance_uid": self.original_sop_instance_uid,
                       "message": self.message}
        record: dict[str, object] = {
            "quarantined_at": self.quarantined_at,
            "reason": self.reason.value,
            "sha256": self.sha256,
            "stored_as": self.stored_as,
            "provider": self.provider,
        }
        if sealer is None:
            record.update(identifying)
        else:
            sealed = sealer.seal(json.dumps(identifying, sort_keys=True).encode(), RECORD_CONTEXT)
            record["sealed"] = base64.b64encode(sealed).decode("ascii")
        return json.dumps(record, sort_keys=True)

    @classmethod
    def from_json(cls, line: str, keys: DataKeys | None = None) -> QuarantineRecord:
        """A record from its line; sealed fields are opened with ``keys`` (without keys they read as sealed)."""
        record = json.loads(line)
        if "sealed" in record:
            if keys is None:
                record.update(input=SEALED, original_sop_instance_uid=None, message=SEALED)
            else:
                record.update(json.loads(unseal(base64.b64decode(record["sealed"]), keys, RECORD_CONTEXT)))
        return cls(record["input"], QuarantineReason(record["reason"]), record["message"],
                   record.get("original_sop_instance_uid"), record.get("sha256"), record.get("stored_as"),
                   record.get("provider"), record.get("quarantined_at"))


def quarantine_dir(out_dir: Path) -> Path:
    return out_dir / QUARANTINE_DIR


def keep_original(out_dir: Path, data: bytes, sha256: str, sealer: Sealer | None = None) -> str:
    """Store the original bytes (once per content), sealed for their digest when a ``sealer`` is given;
    returns the path relative to ``out_dir``."""
    relative = Path(QUARANTINE_DIR) / "files" / f"{sha256}.bin"
    target = out_dir / relative
    if target.exists() and _intact(target, data, sha256, sealer):
        os.utime(target)  # quarantined again now: its retention starts again
    else:
        write_durably(target, sealer.seal(data, sha256.encode("ascii")) if sealer is not None else data)
    return str(relative)


def _intact(target: Path, data: bytes, sha256: str, sealer: Sealer | None) -> bool:
    """Whether a kept original is whole: plain ones by their hash; sealed ones (which the edge cannot open)
    by their length, a seal's header and tag around ``data``'s length."""
    try:
        blob = target.read_bytes()
    except OSError:
        return False
    if sealer is None:
        return hashlib.sha256(blob).hexdigest() == sha256
    return sealed_length(blob) == len(data)


def read_original(out_dir: Path, record: QuarantineRecord, keys: DataKeys | None = None) -> bytes:
    """The original bytes a record points at (opened with ``keys`` when stored sealed). Raises
    ``FileNotFoundError`` when it expired and :class:`~radlake.deid.sealing.SealError` when it does not open."""
    if not record.stored_as or not record.sha256:
        raise FileNotFoundError(f"the record of {record.input} keeps no original")
    blob = (out_dir / record.stored_as).read_bytes()
    if not is_sealed(blob):
        return blob
    if keys is None:
        raise SealError(f"{record.stored_as} is sealed: opening it needs the key service")
    return unseal(blob, keys, record.sha256.encode("ascii"))


@dataclass(frozen=True)
class PatientOriginals:
    """What :func:`originals_of_patient` found among the kept originals."""

    holding: list[str]  # digests of originals with an instance of the patient (a DICOM file, or in an archive)
    unattributed: list[str]  # digests of originals that are neither readable DICOM nor an archive holding some
    searched: int


def originals_of_patient(out_dir: Path, patient_id: str, scratch: Path,
                         keys: DataKeys | None = None) -> PatientOriginals:
    """Open every kept original (sealed ones with ``keys``) and name those holding an instance whose PatientID
    is ``patient_id`` as the provider sent it: for erasure, which must reach refused input too. Archives are
    expanded under ``scratch`` within the edge's limits, one at a time, and removed again."""
    kept = {r.sha256: r for r in read_records(out_dir) if r.stored_as and r.sha256}
    holding, unattributed = [], []
    for digest, record in sorted(kept.items()):
        try:
            data = read_original(out_dir, record, keys)
        except FileNotFoundError:  # expired meanwhile
            continue
        found = _patients(data, scratch)
        if found is None:
            unattributed.append(digest)
        elif patient_id in found:
            holding.append(digest)
    return PatientOriginals(holding, unattributed, len(kept))


def _patients(data: bytes, scratch: Path) -> set[str] | None:
    """The PatientIDs in one original (a file, or an archive's members); None when none can be read."""
    single = patient_id(data)
    if single is not None:
        return {single}
    scratch.mkdir(parents=True, exist_ok=True, mode=0o700)
    packed, unpacked = scratch / "original.bin", scratch / "members"
    try:
        write_durably(packed, data)
        if not is_archive(packed):
            return None
        members, _refused = extract(packed, unpacked)
        found = {p for member in members if (p := patient_id(member.path.read_bytes())) is not None}
        return found or None
    finally:
        packed.unlink(missing_ok=True)
        shutil.rmtree(unpacked, ignore_errors=True)


def read_records(out_dir: Path, keys: DataKeys | None = None) -> list[QuarantineRecord]:
    """Every record, oldest first (sealed fields opened with ``keys``, else read as sealed)."""
    with _locked(out_dir) as path:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return [QuarantineRecord.from_json(line, keys) for line in lines if line.strip()]


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


def append_records(out_dir: Path, records: list[QuarantineRecord], sealer: Sealer | None = None) -> None:
    """Append records to ``quarantine/quarantine.jsonl`` (one writer: the coordinating process), their
    identifying fields sealed when a ``sealer`` is given."""
    if not records:
        return
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with _locked(out_dir) as path, path.open("a", encoding="utf-8") as journal:
        for record in records:
            stamped = record if record.quarantined_at else replace(record, quarantined_at=now)
            journal.write(stamped.to_json(sealer) + "\n")
        journal.flush()
        os.fsync(journal.fileno())  # a quarantine answer is final: its record must outlive a power loss
    fsync_dir(path.parent)


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
            write_durably(path, "".join(f"{line}\n" for line in kept).encode("utf-8"))
    return originals, dropped


def remove(out_dir: Path, sha256: str, *, before: datetime | None = None) -> tuple[int, int]:
    """Delete the records of one input (by its digest) quarantined before ``before`` (default: all), and its
    kept original once no record is left to point at it: the input was released (the engine took it again,
    and may have quarantined it anew) or discarded. Returns (originals deleted, records deleted)."""
    original = quarantine_dir(out_dir) / "files" / f"{sha256}.bin"
    with _locked(out_dir) as path:
        lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []

        def gone(line: str) -> bool:
            record = json.loads(line)
            return record.get("sha256") == sha256 and (
                before is None or not record.get("quarantined_at")
                or datetime.fromisoformat(record["quarantined_at"]) < before)

        kept = [line for line in lines if line.strip() and not gone(line)]
        if len(kept) != len(lines):
            write_durably(path, "".join(f"{line}\n" for line in kept).encode("utf-8"))
        removed = 0
        if original.exists() and not any(json.loads(line).get("sha256") == sha256 for line in kept):
            original.unlink()
            removed = 1
    return removed, len(lines) - len(kept)
