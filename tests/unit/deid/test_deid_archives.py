"""Archives: what is safe is extracted under generated names; everything else is refused with a reason."""

from __future__ import annotations

import tarfile

import pytest

from radlake.deid.archives import Limits, check_member_name, extract, is_archive
from radlake.deid.errors import QuarantineReason
from radlake.synthetic import phi_dicom


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


def test_nesting_depth(tmp_path, dicom):
    nested = phi_dicom.zip_archive([("IM", dicom)])
    for _ in range(3):
        nested = phi_dicom.zip_archive([("deeper.zip", nested)])
    members, refusals = _extract(tmp_path, nested, limits=Limits(max_depth=2))
    assert members == []
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_TOO_DEEP]


def test_corrupt_archive(tmp_path, dicom):
    data = phi_dicom.tar_archive([("IM1", dicom)])[:200]
    members, refusals = _extract(tmp_path, data, "cut.tgz")
    assert _reasons(refusals) == [QuarantineReason.ARCHIVE_UNREADABLE]


def test_dicom_is_not_an_archive(tmp_path, dicom):
    path = tmp_path / "x.dcm"
    path.write_bytes(dicom)
    assert not is_archive(path)
