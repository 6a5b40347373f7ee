"""The edge's folders keep nothing longer than they must (nifi/edge/housekeeping.py)."""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone

from nifi.edge.housekeeping import Housekeeping, sweep
from radlake.deid.errors import QuarantineReason
from radlake.deid.quarantine import QuarantineRecord, append_records, keep_original

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def _age(path, when: datetime) -> None:
    os.utime(path, (when.timestamp(), when.timestamp()))


def test_sweep_expires_quarantine_and_removes_what_a_crash_left_behind(tmp_path):
    stored = keep_original(tmp_path, b"original with PHI", "dd" * 32)
    _age(tmp_path / stored, NOW - timedelta(days=31))
    append_records(tmp_path, [QuarantineRecord("part 1", QuarantineReason.NOT_DICOM, "m", stored_as=stored,
                                               quarantined_at=(NOW - timedelta(days=31)).isoformat())])
    stale_work = tmp_path / "work" / "req-stale"
    live_work = tmp_path / "work" / "req-live"
    stale_spool = tmp_path / "spool" / "uuid-1"
    live_spool = tmp_path / "spool" / "uuid-2"
    for folder in (stale_work, live_work, stale_spool, live_spool):
        folder.mkdir(parents=True)
        (folder / "body").write_bytes(b"request body")
    _age(stale_work, NOW - timedelta(hours=2))
    _age(live_work, NOW - timedelta(minutes=5))
    _age(stale_spool, NOW - timedelta(days=2))
    _age(live_spool, NOW - timedelta(hours=3))
    swept = sweep(tmp_path, timedelta(days=30), now=NOW)
    assert (swept.originals, swept.records, swept.leftovers) == (1, 1, 2)
    assert not stale_work.exists() and not stale_spool.exists()
    assert live_work.exists() and live_spool.exists()


def test_housekeeping_sweeps_on_the_first_call_then_at_most_every_period(tmp_path):
    clock = [0.0]
    housekeeping = Housekeeping(tmp_path, timedelta(days=30), every_s=3600, clock=lambda: clock[0])
    leftover = tmp_path / "work" / "req-old"
    leftover.mkdir(parents=True)
    _age(leftover, datetime.now(timezone.utc) - timedelta(hours=2))
    housekeeping()
    assert not leftover.exists()
    leftover.mkdir()
    _age(leftover, datetime.now(timezone.utc) - timedelta(hours=2))
    clock[0] = 1800.0
    housekeeping()
    assert leftover.exists()  # not due yet
    clock[0] = 3601.0
    housekeeping()
    assert not leftover.exists()


def test_refused_drop_folder_files_go_with_the_quarantine_retention(tmp_path):
    refused = tmp_path / "refused"
    refused.mkdir()
    old, recent = refused / "old-big.zip", refused / "recent-big.zip"
    for path in (old, recent):
        path.write_bytes(b"archive with PHI")
    _age(old, NOW - timedelta(days=31))
    _age(recent, NOW - timedelta(days=29))
    assert sweep(tmp_path, timedelta(days=30), now=NOW).originals == 1
    assert not old.exists() and recent.exists()
