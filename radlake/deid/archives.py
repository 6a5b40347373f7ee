"""Safe extraction of zip and tar(.gz/.bz2/.xz) uploads.

Member names are checked and reported, never used as paths: each accepted member is written to
``dest/<index>`` and carries its display name ``archive!member`` for reports. Refused, each with a
reason: absolute paths, ``..`` traversal, symlinks, hard links, devices/FIFOs, encrypted zip members,
and decompression bombs (per-member and total size, and compression ratio, checked on declared sizes
and again while copying). Archives inside archives are opened up to ``max_depth`` levels.
"""

from __future__ import annotations

import stat
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from radlake.deid.errors import QuarantineReason

CHUNK = 1 << 20


@dataclass(frozen=True)
class Limits:
    max_member_bytes: int = 4 << 30
    max_total_bytes: int = 64 << 30
    max_ratio: float = 200.0
    ratio_floor_bytes: int = 8 << 20  # ratios are only judged above this size
    max_members: int = 1_000_000
    max_depth: int = 2


@dataclass(frozen=True)
class Member:
    display: str
    path: Path


@dataclass(frozen=True)
class Refusal:
    display: str
    reason: QuarantineReason
    message: str


class _Bomb(Exception):
    pass


def is_archive(path: Path) -> bool:
    """Zip or tar by content (a DICOM file is neither: its magic sits at byte 128)."""
    try:
        with path.open("rb") as handle:
            head = handle.read(512)
    except OSError:
        return False
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return True
    if head[:2] == b"\x1f\x8b" or head[:3] == b"BZh" or head[:6] == b"\xfd7zXZ\x00":
        return True
    return len(head) >= 262 and head[257:262] == b"ustar"


def check_member_name(name: str) -> tuple[bool, QuarantineReason | None]:
    """``(ok, reason)`` for a member name: relative, no ``..``, no drive letter, no NUL."""
    normalised = name.replace("\\", "/")
    if "\x00" in name or normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        return False, QuarantineReason.ARCHIVE_ABSOLUTE_PATH
    if ".." in PurePosixPath(normalised).parts:
        return False, QuarantineReason.ARCHIVE_PATH_TRAVERSAL
    return True, None


def extract(archive: Path, dest: Path, limits: Limits = Limits(), display: str | None = None,
            depth: int = 0) -> tuple[list[Member], list[Refusal]]:
    """Extract what is safe from ``archive`` into ``dest``; returns accepted members and refusals."""
    label = display or str(archive)
    dest.mkdir(parents=True, exist_ok=True)
    members: list[Member] = []
    refusals: list[Refusal] = []
    try:
        if zipfile.is_zipfile(archive):
            entries = _zip_entries(archive, limits, label, refusals)
        else:
            entries = _tar_entries(archive, limits, label, refusals)
        budget = limits.max_total_bytes
        for index, (name, size_hint, opener) in enumerate(entries):
            if index >= limits.max_members:
                refusals.append(Refusal(label, QuarantineReason.ARCHIVE_BOMB, f"more than {limits.max_members} members"))
                break
            target = dest / f"{index:07d}"
            member_label = f"{label}!{name}"
            limit = min(limits.max_member_bytes, size_hint if size_hint is not None else limits.max_member_bytes)
            try:
                budget -= _copy(opener, target, min(limit, budget))
            except _Bomb as err:
                target.unlink(missing_ok=True)
                refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_BOMB, str(err)))
                if budget <= 0:
                    break
                continue
            if is_archive(target):
                if depth + 1 >= limits.max_depth:
                    refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_TOO_DEEP,
                                            f"archive nested deeper than {limits.max_depth} levels"))
                else:
                    inner, inner_refusals = extract(target, dest / f"{index:07d}.d", limits, member_label, depth + 1)
                    members += inner
                    refusals += inner_refusals
                target.unlink(missing_ok=True)
                continue
            members.append(Member(member_label, target))
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, zlib.error, OSError, ValueError,
            NotImplementedError, RuntimeError) as err:
        refusals.append(Refusal(label, QuarantineReason.ARCHIVE_UNREADABLE, f"{type(err).__name__}: {err}"))
    return members, refusals


Entry = tuple[str, int | None, Callable[[], IO[bytes] | None]]


def _zip_entries(archive: Path, limits: Limits, label: str, refusals: list[Refusal]) -> Iterator[Entry]:
    with zipfile.ZipFile(archive) as zf:
        declared = 0
        for info in zf.infolist():
            if info.is_dir():
                continue
            name = info.filename
            refusal = _refuse_zip(info, limits, declared)
            if refusal is not None:
                refusals.append(Refusal(f"{label}!{name}", *refusal))
                continue
            declared += info.file_size
            yield name, info.file_size, (lambda info=info: zf.open(info))


def _refuse_zip(info: zipfile.ZipInfo, limits: Limits, declared: int) -> tuple[QuarantineReason, str] | None:
    ok, reason = check_member_name(info.filename)
    if not ok and reason is not None:
        return reason, f"member name {info.filename!r} is not a plain relative path"
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        return QuarantineReason.ARCHIVE_SYMLINK, "symbolic link member"
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):
        return QuarantineReason.ARCHIVE_SPECIAL_FILE, f"member is not a regular file (mode {mode:o})"
    if info.flag_bits & 0x1:
        return QuarantineReason.ARCHIVE_ENCRYPTED_MEMBER, "encrypted member (cannot be inspected)"
    if info.file_size > limits.max_member_bytes or declared + info.file_size > limits.max_total_bytes:
        return QuarantineReason.ARCHIVE_BOMB, f"declared size {info.file_size} over the limits"
    if info.file_size > limits.ratio_floor_bytes and info.file_size / max(info.compress_size, 1) > limits.max_ratio:
        return QuarantineReason.ARCHIVE_BOMB, (
            f"compression ratio {info.file_size / max(info.compress_size, 1):.0f} over {limits.max_ratio:.0f}"
        )
    return None


def _tar_entries(archive: Path, limits: Limits, label: str, refusals: list[Refusal]) -> Iterator[Entry]:
    compressed = archive.stat().st_size
    with tarfile.open(archive, mode="r:*") as tf:
        total = 0
        for info in tf:
            name = info.name
            member_label = f"{label}!{name}"
            ok, reason = check_member_name(name)
            if not ok and reason is not None:
                refusals.append(Refusal(member_label, reason, f"member name {name!r} is not a plain relative path"))
                continue
            if info.issym():
                refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_SYMLINK, f"symlink to {info.linkname!r}"))
                continue
            if info.islnk():
                refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_HARDLINK, f"hard link to {info.linkname!r}"))
                continue
            if info.isdir():
                continue
            if not info.isfile():
                refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_SPECIAL_FILE, "device, FIFO or other special member"))
                continue
            total += info.size
            if info.size > limits.max_member_bytes or total > limits.max_total_bytes:
                refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_BOMB, f"size {info.size} over the limits"))
                continue
            if total > limits.ratio_floor_bytes and total / max(compressed, 1) > limits.max_ratio:
                refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_BOMB,
                                        f"archive expands {total / max(compressed, 1):.0f}x, over {limits.max_ratio:.0f}"))
                return
            yield name, info.size, (lambda info=info: tf.extractfile(info))


def _copy(opener: Callable[[], IO[bytes] | None], target: Path, limit: int) -> int:
    """Stream a member to ``target``; more than ``limit`` bytes (declared size or budget) is a bomb."""
    written = 0
    source = opener()
    if source is None:
        raise _Bomb("member has no content stream")
    with source, target.open("wb") as out:
        while chunk := source.read(CHUNK):
            written += len(chunk)
            if written > limit:
                raise _Bomb(f"member expands beyond {limit} bytes (declared size or the archive's budget)")
            out.write(chunk)
    return written
