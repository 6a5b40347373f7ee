"""Archives: what is safe is extracted under generated names; everything else is refused with a reason."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from radlake.deid.archives import Limits, check_member_name, extract, is_archive
from radlake.deid.errors import QuarantineReason
from radlake.synthetic import phi_dicom

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="module")
def dicom() -> bytes:
    return phi_dicom.to_bytes(phi_dicom.ct_instance(0, size=16))


def _extract(tmp_path, data: bytes, name: str = "upload.bin", limits: Limits = Limits()):
    archive = tmp_path / name
    archive.write_bytes(data)
    assert is_archive(archive)
    return extract(archive, tmp_path / "out", limits)


def _reasons(refusals):
    return sorted(r.reason for r in refusals)


def test_zip_with_nested_folders_and_dicomdir(tmp_path, dicom):
    data = phi_dicom.zip_archive([("DICOMDIR", phi_dicom.dicomdir_bytes()), ("PAT1/STUDY1/SER1/IM1", dicom),
                                  ("PAT1/STUDY1/SER1/IM2", dicom)])
    members, refusals = _extract(tmp_path, data)
    assert refusals == []
    assert [m.display.split("!")[1] for m in members] == ["DICOMDIR", "PAT1/STUDY1/SER1/IM1", "PAT1/STUDY1/SER1/IM2"]
    assert all(m.path.parent == tmp_path / "out" for m in members)
    assert members[1].path.read_bytes() == dicom


def test_tar_gz_and_nested_zip(tmp_path, dicom):
    inner = phi_dicom.zip_archive([("a/IM1", dicom)])
    members, refusals = _extract(tmp_path, phi_dicom.tar_archive([("x/IM0", dicom), ("x/inner.zip", inner)]))
    assert refusals == []
    assert [m.display.split("!", 1)[1] for m in members] == ["x/IM0", "x/inner.zip!a/IM1"]


@pytest.mark.parametrize(
    ("name", "reason"),
    [("../../etc/passwd", QuarantineReason.ARCHIVE_PATH_TRAVERSAL), ("/etc/cron.d/x", QuarantineReason.ARCHIVE_ABSOLUTE_PATH),
     ("C:\\Windows\\x", QuarantineReason.ARCHIVE_ABSOLUTE_PATH), ("ok/../../x", QuarantineReason.ARCHIVE_PATH_TRAVERSAL)],
)
def test_member_names(tmp_path, dicom, name, reason):
    assert check_member_name(name) == (False, reason)
    members, refusals = _extract(tmp_path, phi_dicom.zip_archive([(name, dicom), ("fine/IM1", dicom)]))
    assert _reasons(refusals) == [reason]
    assert len(members) == 1
    assert not (tmp_path / "etc").exists()


def test_links_and_special_members_are_refused(tmp_path, dicom):
    data = phi_dicom.tar_archive([("IM1", dicom)], links=[("evil", "/etc/shadow", tarfile.SYMTYPE),
                                                          ("hard", "IM1", tarfile.LNKTYPE),
                                                          ("fifo", "", tarfile.FIFOTYPE)])
    members, refusals = _extract(tmp_path, data)
    assert _reasons(refusals) == sorted([QuarantineReason.ARCHIVE_SYMLINK, QuarantineReason.ARCHIVE_HARDLINK,
                                         QuarantineReason.ARCHIVE_SPECIAL_FILE])
    assert len(members) == 1
    members, refusals = _extract(tmp_path, phi_dicom.zip_with_symlink("link", "/etc/shadow"), "z.zip")
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_SYMLINK]


def test_encrypted_member(tmp_path, dicom):
    members, refusals = _extract(tmp_path, phi_dicom.zip_encrypted_member("IM1", dicom))
    assert members == []
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_ENCRYPTED_MEMBER]


def test_bombs(tmp_path):
    limits = Limits(max_member_bytes=32 << 20, ratio_floor_bytes=1 << 20, max_ratio=100)
    members, refusals = _extract(tmp_path, phi_dicom.zip_bomb(64 << 20), limits=limits)
    assert members == []
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_BOMB]
    gz_bomb = phi_dicom.tar_archive([("zeros", bytes(16 << 20))])
    members, refusals = _extract(tmp_path, gz_bomb, "b.tgz", limits)
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_BOMB]


@pytest.mark.parametrize("name", ["bomb-1GiB.tar.bz2", "bomb-1GiB.zip"])
def test_a_kilobyte_that_expands_to_a_gibibyte_is_refused_whole(tmp_path, name):
    members, refusals = _extract(tmp_path, (DATA / name).read_bytes(), name)
    assert members == []
    assert [(r.display, r.reason) for r in refusals] == [(str(tmp_path / name), QuarantineReason.ARCHIVE_BOMB)]
    assert not (tmp_path / "out").exists()  # what was extracted before the refusal is gone


def test_nested_bomb_is_refused_whole(tmp_path, dicom):
    bomb = (DATA / "bomb-1GiB.tar.bz2").read_bytes()
    nested = phi_dicom.zip_archive([("IM1", dicom)] + [(f"part{i}.tar.bz2", bomb) for i in range(16)])
    members, refusals = _extract(tmp_path, nested, "nested.zip")
    assert members == []
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_BOMB]


def test_the_ratio_is_judged_on_the_whole_upload(tmp_path):
    """Forty members of 512 KiB of zeros: none is a bomb alone, the upload is."""
    limits = Limits(ratio_floor_bytes=4 << 20, max_ratio=100)
    data = phi_dicom.zip_archive([(f"IM{i}", bytes(512 << 10)) for i in range(40)])
    members, refusals = _extract(tmp_path, data, limits=limits)
    assert members == []
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_BOMB]


def test_the_size_budget_is_shared_by_nested_archives(tmp_path):
    """Two inner archives of 6 MiB each: within a fresh 20 MiB budget each, not within one for the upload."""
    inner = [phi_dicom.zip_archive([("IM", os.urandom(6 << 20))], compression=zipfile.ZIP_STORED) for _ in range(2)]
    data = phi_dicom.zip_archive([("a.zip", inner[0]), ("b.zip", inner[1])], compression=zipfile.ZIP_STORED)
    members, refusals = _extract(tmp_path, data, limits=Limits(max_total_bytes=20 << 20))
    assert members == []
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_TOO_LARGE]
    members, refusals = _extract(tmp_path, data, limits=Limits(max_total_bytes=30 << 20))
    assert (len(members), refusals) == (2, [])


def test_the_member_count_is_capped_across_nested_archives(tmp_path, dicom):
    inner = phi_dicom.zip_archive([(f"IM{i}", dicom) for i in range(6)])
    members, refusals = _extract(tmp_path, phi_dicom.zip_archive([("a.zip", inner), ("b.zip", inner)]),
                                 limits=Limits(max_members=10))
    assert members == []
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_TOO_MANY_MEMBERS]
    flat = phi_dicom.tar_archive([(f"IM{i}", dicom) for i in range(11)])
    members, refusals = _extract(tmp_path, flat, "flat.tgz", Limits(max_members=10))
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_TOO_MANY_MEMBERS]


def test_a_member_over_the_member_cap_is_refused_alone(tmp_path, dicom):
    data = phi_dicom.tar_archive([("big", bytes(2 << 20)), ("IM1", dicom)])
    members, refusals = _extract(tmp_path, data, "t.tgz", Limits(max_member_bytes=1 << 20))
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_TOO_LARGE]
    assert [m.display.split("!")[1] for m in members] == ["IM1"]


def _corrupt(data: bytes, at: float) -> bytes:
    pos = int(len(data) * at)
    return data[:pos] + bytes(b ^ 0x5A for b in data[pos : pos + 64]) + data[pos + 64 :]


def _tar(dicom: bytes, mode: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tf:
        for i in range(3):
            info = tarfile.TarInfo(f"IM{i}")
            info.size = len(dicom) + i
            tf.addfile(info, io.BytesIO(dicom + bytes(i)))
    return buffer.getvalue()


def _zip_with_method(dicom: bytes, method: int) -> bytes:
    """A stored zip whose headers claim ``method`` (9: Deflate64, which zipfile cannot read)."""
    raw = bytearray(phi_dicom.zip_archive([("IM1", dicom)], compression=zipfile.ZIP_STORED))
    for signature, offset in ((b"PK\x03\x04", 8), (b"PK\x01\x02", 10)):
        pos = raw.find(signature)
        raw[pos + offset : pos + offset + 2] = method.to_bytes(2, "little")
    return bytes(raw)


@pytest.mark.parametrize(
    ("name", "make", "reasons"),
    [
        # lzma.LZMAError, in the header or in a member's data
        ("corrupt.tar.xz", lambda d: _corrupt(_tar(d, "w:xz"), 0.5), {QuarantineReason.ARCHIVE_UNREADABLE}),
        ("head.tar.xz", lambda d: _corrupt(_tar(d, "w:xz"), 0.0), {QuarantineReason.ARCHIVE_UNREADABLE}),
        ("cut.tar.xz", lambda d: _tar(d, "w:xz")[:-40], {QuarantineReason.ARCHIVE_UNREADABLE}),
        # OSError ("Invalid data stream") and EOFError from bz2
        ("corrupt.tar.bz2", lambda d: _corrupt(_tar(d, "w:bz2"), 0.5), {QuarantineReason.ARCHIVE_UNREADABLE}),
        ("cut.tar.bz2", lambda d: _tar(d, "w:bz2")[:-40], {QuarantineReason.ARCHIVE_UNREADABLE}),
        # zlib.error, gzip.BadGzipFile (CRC), EOFError from gzip
        ("corrupt.tgz", lambda d: _corrupt(_tar(d, "w:gz"), 0.5), {QuarantineReason.ARCHIVE_UNREADABLE}),
        ("crc.tgz", lambda d: _tar(d, "w:gz")[:-8] + b"\0" * 8, {QuarantineReason.ARCHIVE_UNREADABLE}),
        ("cut.tgz", lambda d: _tar(d, "w:gz")[:-40], {QuarantineReason.ARCHIVE_UNREADABLE}),
        # tarfile.TarError: a damaged header block
        ("header.tar", lambda d: _corrupt(_tar(d, "w"), 0.0), {QuarantineReason.ARCHIVE_UNREADABLE}),
        # zipfile.BadZipFile (bad CRC, bad local header) and zlib.error from a member's data
        ("corrupt.zip", lambda d: _corrupt(phi_dicom.zip_archive([("IM1", d)]), 0.5),
         {QuarantineReason.ARCHIVE_UNREADABLE}),
        ("stored-crc.zip", lambda d: _corrupt(phi_dicom.zip_archive([("IM1", d)], compression=zipfile.ZIP_STORED), 0.5),
         {QuarantineReason.ARCHIVE_UNREADABLE}),
        # NotImplementedError: a compression method zipfile does not read
        ("deflate64.zip", lambda d: _zip_with_method(d, 9), {QuarantineReason.ARCHIVE_UNSUPPORTED_COMPRESSION}),
    ],
)
def test_every_decompressor_error_is_a_reason(tmp_path, dicom, name, make, reasons):
    archive = tmp_path / name
    archive.write_bytes(make(dicom))
    members, refusals = extract(archive, tmp_path / "out")
    assert refusals and {r.reason for r in refusals} <= reasons, refusals
    for member in members:  # what came before the damage is whole
        assert member.path.read_bytes() in (dicom, dicom + bytes(1), dicom + bytes(2))


def test_an_encrypted_member_read_anyway_is_a_reason(tmp_path, dicom):
    """zipfile raises RuntimeError for an encrypted member; the flag check refuses it before, this is the net."""
    archive = tmp_path / "enc.zip"
    archive.write_bytes(phi_dicom.zip_encrypted_member("IM1", dicom))
    with zipfile.ZipFile(archive) as zf, pytest.raises(RuntimeError):
        zf.open("IM1").read()
    assert _reasons(extract(archive, tmp_path / "out")[1]) == [QuarantineReason.ARCHIVE_ENCRYPTED_MEMBER]


_PEAK_RSS = """
import resource, sys, tempfile
from pathlib import Path
from radlake.deid.archives import Limits, extract
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
limits = Limits(max_ratio=float("inf"), max_member_bytes=2 << 30, max_total_bytes=2 << 30)
with tempfile.TemporaryDirectory() as work:
    members, refusals = extract(Path(sys.argv[1]), Path(work) / "out", limits)
    sizes = [m.path.stat().st_size for m in members]
print(before, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, sizes, [r.reason.value for r in refusals])
"""


def test_extracting_a_bomb_keeps_memory_bounded(tmp_path):
    """With the ratio check off the 1 GiB member is decompressed to disk whole; memory stays flat."""
    completed = subprocess.run([sys.executable, "-c", _PEAK_RSS, str(DATA / "bomb-1GiB.tar.bz2")],
                               capture_output=True, text=True, check=True, cwd=ROOT,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    before, peak, rest = completed.stdout.split(" ", 2)
    assert rest.strip() == f"[{1 << 30}] []"
    print(f"peak RSS {int(peak) >> 10} MiB, {int(peak) - int(before)} KiB over the {int(before) >> 10} MiB after imports")
    assert int(peak) - int(before) < 64 << 10  # KiB: a few decompression buffers, not the 1 GiB expanded


def test_corrupt_archive(tmp_path, dicom):
    data = phi_dicom.tar_archive([("IM1", dicom)])[:200]
    members, refusals = _extract(tmp_path, data, "cut.tgz")
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_UNREADABLE]


def test_dicom_is_not_an_archive(tmp_path, dicom):
    path = tmp_path / "x.dcm"
    path.write_bytes(dicom)
    assert not is_archive(path)
