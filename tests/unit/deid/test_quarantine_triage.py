"""Removing a released or discarded input from a quarantine: its older records go, a record written anew (the
engine refused it again) stays, and the kept original goes only when nothing points at it any more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from radlake.deid.errors import QuarantineReason
from radlake.deid.quarantine import QuarantineRecord, append_records, keep_original, read_records, remove


def _quarantine(folder, data: bytes, sha: str, at: datetime) -> None:
    stored = keep_original(folder, data, sha)
    append_records(folder, [QuarantineRecord("part 1", QuarantineReason.NOT_DICOM, "m", sha256=sha, stored_as=stored,
                                             quarantined_at=at.isoformat(timespec="seconds"))])


def test_release_keeps_a_new_refusal_and_its_original(tmp_path):
    now = datetime.now(UTC).replace(microsecond=0)
    _quarantine(tmp_path, b"x", "a" * 64, now - timedelta(days=1))
    _quarantine(tmp_path, b"y", "b" * 64, now - timedelta(days=1))
    _quarantine(tmp_path, b"x", "a" * 64, now + timedelta(seconds=1))  # refused again by the current engine
    assert remove(tmp_path, "a" * 64, before=now) == (0, 1)
    assert [(r.sha256[0], r.quarantined_at > now.isoformat()) for r in read_records(tmp_path)] == [
        ("b", False), ("a", True)]
    assert (tmp_path / "quarantine" / "files" / f"{'a' * 64}.bin").exists()


def test_discard_takes_every_record_and_the_original(tmp_path):
    now = datetime.now(UTC)
    _quarantine(tmp_path, b"x", "a" * 64, now)
    _quarantine(tmp_path, b"x", "a" * 64, now)
    assert remove(tmp_path, "a" * 64) == (1, 2)
    assert read_records(tmp_path) == [] and remove(tmp_path, "a" * 64) == (0, 0)
