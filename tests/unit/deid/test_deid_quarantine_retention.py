"""Quarantined originals and their records are deleted after the retention (radlake/deid/quarantine.py)."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone

from radlake.deid.errors import QuarantineReason
from radlake.deid.quarantine import QuarantineRecord, append_records, expire, keep_original, quarantine_dir

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def _record(name: str, stored: str | None, at: datetime | None) -> QuarantineRecord:
    return QuarantineRecord(name, QuarantineReason.TRUNCATED_FILE, "truncated", "1.2.3", "ab" * 32, stored, "p",
                            at.isoformat(timespec="seconds") if at else None)


def _age(path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def test_originals_and_records_older_than_the_retention_go_recent_ones_stay(tmp_path):
    old_file = keep_original(tmp_path, b"old original", "aa" * 32)
    new_file = keep_original(tmp_path, b"new original", "bb" * 32)
    _age(tmp_path / old_file, NOW - timedelta(days=40))
    _age(tmp_path / new_file, NOW - timedelta(days=2))
    append_records(tmp_path, [_record("old", old_file, NOW - timedelta(days=40)),
                              _record("new", new_file, NOW - timedelta(days=2))])
    assert expire(tmp_path, NOW - timedelta(days=30), now=NOW) == (1, 1)
    assert not (tmp_path / old_file).exists() and (tmp_path / new_file).exists()
    records = [json.loads(line) for line in (quarantine_dir(tmp_path) / "quarantine.jsonl").read_text().splitlines()]
    assert [r["input"] for r in records] == ["new"]


def test_an_original_quarantined_again_starts_its_retention_again(tmp_path):
    stored = keep_original(tmp_path, b"same bytes", "cc" * 32)
    _age(tmp_path / stored, NOW - timedelta(days=40))
    keep_original(tmp_path, b"same bytes", "cc" * 32)  # the same input refused again, today
    assert expire(tmp_path, NOW - timedelta(days=30), now=NOW)[0] == 0
    assert (tmp_path / stored).exists()


def test_records_get_their_time_when_appended_and_records_without_one_go_a_retention_later(tmp_path):
    append_records(tmp_path, [_record("stamped now", None, None)])
    journal = quarantine_dir(tmp_path) / "quarantine.jsonl"
    assert json.loads(journal.read_text())["quarantined_at"]
    legacy = json.dumps({"input": "legacy", "reason": "NOT_DICOM", "message": "m"})  # written by an older version
    journal.write_text(journal.read_text() + legacy + "\n")
    assert expire(tmp_path, NOW - timedelta(days=30), now=NOW) == (0, 0)
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    assert records[1]["input"] == "legacy" and records[1]["quarantined_at"] == NOW.isoformat(timespec="seconds")
    assert expire(tmp_path, NOW + timedelta(days=1), now=NOW + timedelta(days=31)) == (0, 2)
