"""Envelope encryption of PHI kept at rest (radlake/deid/sealing.py) and the sealed quarantine.

The key service here wraps data keys with AES key wrap (RFC 3394) under a key-encryption key of its own: the
same contract as Vault Transit's ``datakey``/``decrypt``, which the integration tests use for real.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from datetime import datetime, timedelta, timezone

import pytest
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from radlake.deid.errors import QuarantineReason
from radlake.deid.quarantine import (
    SEALED,
    QuarantineRecord,
    append_records,
    expire,
    keep_original,
    quarantine_dir,
    read_original,
    read_records,
)
from radlake.deid.sealing import Sealer, SealError, is_sealed, unseal


class WrappingKeys:
    def __init__(self) -> None:
        self.kek, self.generated, self.unwrapped = os.urandom(32), 0, 0

    def generate(self) -> tuple[bytes, str]:
        self.generated += 1
        key = os.urandom(32)
        return key, aes_key_wrap(self.kek, key).hex()

    def unwrap(self, wrapped: str) -> bytes:
        self.unwrapped += 1
        try:
            return aes_key_unwrap(self.kek, bytes.fromhex(wrapped))
        except (InvalidUnwrap, ValueError) as err:
            raise SealError(f"not ours: {err}") from err


PHI = b"Patient Ola Nordmann, born 1950-01-01, MRN 0001"


def test_a_sealed_blob_shows_nothing_and_opens_only_for_its_context():
    keys = WrappingKeys()
    blob = Sealer(keys).seal(PHI, b"context-a")
    assert is_sealed(blob) and b"Nordmann" not in blob and PHI not in blob
    assert unseal(blob, keys, b"context-a") == PHI
    with pytest.raises(SealError, match="another"):
        unseal(blob, keys, b"context-b")
    damaged = bytearray(blob)
    damaged[-1] ^= 1
    with pytest.raises(SealError):
        unseal(bytes(damaged), keys, b"context-a")
    with pytest.raises(SealError, match="not a sealed blob"):
        unseal(PHI, keys, b"context-a")
    with pytest.raises(SealError):  # another key service cannot unwrap the data key
        unseal(blob, WrappingKeys(), b"context-a")


def test_one_data_key_serves_a_bounded_number_of_blobs_and_time():
    keys, now = WrappingKeys(), [0.0]
    sealer = Sealer(keys, uses_per_key=3, key_life_s=60, clock=lambda: now[0])
    blobs = [sealer.seal(PHI, b"c") for _ in range(4)]
    assert keys.generated == 2 and len(set(blobs)) == 4  # a fresh nonce each time
    now[0] += 61
    sealer.seal(PHI, b"c")
    assert keys.generated == 3
    assert all(unseal(b, keys, b"c") == PHI for b in blobs)


def test_a_sealed_quarantine_keeps_in_the_clear_only_what_expiry_and_counting_need(tmp_path):
    keys = WrappingKeys()
    sealer = Sealer(keys)
    digest = "ab" * 32
    stored = keep_original(tmp_path, PHI, digest, sealer)
    record = QuarantineRecord("nordmann-notes.txt", QuarantineReason.NOT_DICOM, "no DICM magic", "1.2.826.0.99",
                              digest, stored, "st-olav")
    append_records(tmp_path, [record], sealer)
    assert PHI not in (tmp_path / stored).read_bytes()
    line = (quarantine_dir(tmp_path) / "quarantine.jsonl").read_text()
    assert "nordmann" not in line and "1.2.826.0.99" not in line and "no DICM" not in line
    assert set(json.loads(line)) == {"quarantined_at", "reason", "sha256", "stored_as", "provider", "sealed"}

    [listed] = read_records(tmp_path)  # without the key service: counted, not read
    assert (listed.input, listed.original_sop_instance_uid, listed.reason) == (SEALED, None, QuarantineReason.NOT_DICOM)
    [opened] = read_records(tmp_path, keys)
    assert (opened.input, opened.original_sop_instance_uid, opened.message) == (
        "nordmann-notes.txt", "1.2.826.0.99", "no DICM magic")
    assert read_original(tmp_path, opened, keys) == PHI
    with pytest.raises(SealError, match="needs the key service"):
        read_original(tmp_path, opened)

    # a sealed original renamed onto another digest does not open
    other = "cd" * 32
    os.replace(tmp_path / stored, tmp_path / stored.replace(digest, other))
    moved = QuarantineRecord("x", QuarantineReason.NOT_DICOM, "", None, other, stored.replace(digest, other))
    with pytest.raises(SealError):
        read_original(tmp_path, moved, keys)


def test_sealed_records_expire_like_clear_ones(tmp_path):
    keys, now = WrappingKeys(), datetime(2026, 12, 7, tzinfo=timezone.utc)
    old = QuarantineRecord("old", QuarantineReason.NOT_DICOM, "m", quarantined_at=(now - timedelta(days=40)).isoformat())
    new = QuarantineRecord("new", QuarantineReason.NOT_DICOM, "m", quarantined_at=(now - timedelta(days=1)).isoformat())
    append_records(tmp_path, [old, new], Sealer(keys))
    assert expire(tmp_path, now - timedelta(days=30), now=now) == (0, 1)
    assert [r.input for r in read_records(tmp_path, keys)] == ["new"]


@pytest.mark.parametrize("sealed", [True, False], ids=["sealed", "plain"])
def test_a_damaged_kept_original_is_written_again(tmp_path, sealed):
    keys = WrappingKeys()
    sealer = Sealer(keys) if sealed else None
    digest = hashlib.sha256(PHI).hexdigest()
    stored_as = keep_original(tmp_path, PHI, digest, sealer)
    (tmp_path / stored_as).write_bytes((tmp_path / stored_as).read_bytes()[:-5])  # cut by a crash
    assert keep_original(tmp_path, PHI, digest, sealer) == stored_as
    record = QuarantineRecord("x", QuarantineReason.NOT_DICOM, "", sha256=digest, stored_as=stored_as)
    assert read_original(tmp_path, record, keys) == PHI


def test_threads_keeping_one_original_do_not_share_a_temporary_file(tmp_path):
    data = os.urandom(4 << 20)
    digest = hashlib.sha256(data).hexdigest()
    barrier = threading.Barrier(8)
    errors = []

    def keep():
        barrier.wait()
        try:
            keep_original(tmp_path, data, digest)
        except OSError as err:
            errors.append(err)

    threads = [threading.Thread(target=keep) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    files = list((quarantine_dir(tmp_path) / "files").iterdir())
    assert [f.name for f in files] == [f"{digest}.bin"] and files[0].read_bytes() == data
