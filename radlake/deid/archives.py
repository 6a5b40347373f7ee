"""Safe extraction of zip and tar(.gz/.bz2/.xz) uploads.

Member names are checked and reported, never used as paths: each accepted member is written to
``dest/<index>`` and carries its display name ``archive!member`` for reports. Refused, each with a
reason: absolute paths, ``..`` traversal, symlinks, hard links, devices/FIFOs, encrypted zip members,
unsupported compression methods, members over :data:`MAX_MEMBER_BYTES`, corrupt or truncated streams (every
error a decompressor raises is a reason, never an exception). Archives inside archives are opened up to
``max_depth`` levels.

One upload has one budget, shared by every archive nested in it: its expanded size
(:data:`MAX_UPLOAD_EXPANDED_BYTES`), its member count (:data:`MAX_MEMBERS`) and its compression ratio
(expanded bytes over the bytes uploaded, :data:`MAX_RATIO`, judged once more than :data:`RATIO_FLOOR_BYTES`
have been expanded). Each is checked on the sizes an archive declares and again on the bytes actually
decompressed, chunk by chunk, so neither memory (one :data:`CHUNK` at a time) nor disk grows past the budget.
An upload over its budget is refused whole (``ARCHIVE_BOMB``, ``ARCHIVE_TOO_LARGE``,
``ARCHIVE_TOO_MANY_MEMBERS``): what was extracted from it is deleted and no member is released.
"""

from __future__ import annotations

import io
import lzma
import shutil
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

# Defaults (docs/ingestion.md lists them). A member is one instance, which the engine holds whole.
MAX_MEMBER_BYTES = 2 << 30
MAX_UPLOAD_EXPANDED_BYTES = 16 << 30  # everything one upload expands to, nested archives included
MAX_RATIO = 200.0  # expanded / uploaded bytes; DICOM compresses 2-10x, zeros 1000x (deflate) to 10^6x (bzip2)
RATIO_FLOOR_BYTES = 8 << 20  # a small upload may be very compressible
MAX_MEMBERS = 100_000  # files in one upload, nested archives' members included
MAX_DEPTH = 2

# What reading a damaged or hostile archive raises: zipfile.BadZipFile (bad headers, CRC), tarfile.TarError,
# lzma.LZMAError (.xz), OSError (bz2 and gzip data errors; gzip.BadGzipFile is one), zlib.error, EOFError
# (truncated streams), ValueError/struct errors on garbage headers. Only the read side is guarded with them:
# an error writing the extraction (disk full) is the edge's, not the sender's, and propagates.
_READ_ERRORS = (zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError, zlib.error, EOFError, OSError, ValueError,
                UnicodeDecodeError)


@dataclass(frozen=True)
class Limits:
    max_member_bytes: int = MAX_MEMBER_BYTES
    max_total_bytes: int = MAX_UPLOAD_EXPANDED_BYTES
    max_ratio: float = MAX_RATIO
    ratio_floor_bytes: int = RATIO_FLOOR_BYTES
    max_members: int = MAX_MEMBERS
    max_depth: int = MAX_DEPTH


@dataclass(frozen=True)
class Member:
    display: str
    path: Path


@dataclass(frozen=True)
class Refusal:
    display: str
    reason: QuarantineReason
    message: str


class _OverBudget(Exception):
    """The whole upload is refused: it expands beyond its budget, its ratio or its member count."""

    def __init__(self, reason: QuarantineReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _MemberRefused(Exception):
    """One member is refused (too large, lies about its size, unreadable); the others go on."""

    def __init__(self, reason: QuarantineReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class _Budget:
    """What one upload may still expand to, shared by the archives nested in it."""

    limits: Limits
    uploaded: int  # bytes of the outermost upload: the ratio's denominator
    expanded: int = 0
    members: int = 0

    def declare(self, sizes: int, count: int) -> None:
        """Refuse early on what an archive declares (zip central directory, a tar header)."""
        self._check(self.expanded + sizes, self.members + count)

    def spend(self, size: int) -> None:
        self.expanded += size
        self._check(self.expanded, self.members)

    def count(self) -> None:
        self.members += 1
        self._check(self.expanded, self.members)

    def _check(self, expanded: int, members: int) -> None:
        limits = self.limits
        if members > limits.max_members:
            raise _OverBudget(QuarantineReason.ARCHIVE_TOO_MANY_MEMBERS,
                              f"the upload holds more than {limits.max_members} members")
        if expanded > limits.ratio_floor_bytes and expanded / max(self.uploaded, 1) > limits.max_ratio:
            raise _OverBudget(QuarantineReason.ARCHIVE_BOMB,
                              f"the upload expands more than {limits.max_ratio:.0f} times its {self.uploaded} bytes")
        if expanded > limits.max_total_bytes:
            raise _OverBudget(QuarantineReason.ARCHIVE_TOO_LARGE,
                              f"the upload expands beyond {limits.max_total_bytes} bytes")


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


def extract(archive: Path, dest: Path, limits: Limits = Limits(),
            display: str | None = None) -> tuple[list[Member], list[Refusal]]:
    """Extract what is safe from ``archive`` into ``dest``; returns accepted members and refusals. An upload
    over its budget comes back as no member and one refusal naming the upload."""
    label = display or str(archive)
    budget = _Budget(limits, archive.stat().st_size)
    try:
        return _extract(archive, dest, budget, label, 0)
    except _OverBudget as err:
        shutil.rmtree(dest, ignore_errors=True)
        return [], [Refusal(label, err.reason, str(err))]


def _extract(archive: Path, dest: Path, budget: _Budget, label: str,
             depth: int) -> tuple[list[Member], list[Refusal]]:
    limits = budget.limits
    dest.mkdir(parents=True, exist_ok=True)
    members: list[Member] = []
    refusals: list[Refusal] = []
    is_zip = zipfile.is_zipfile(archive)
    try:
        entries = _zip_entries(archive, budget, label, refusals) if is_zip else _tar_entries(archive, budget, label,
                                                                                             refusals)
        for index, (name, size_hint, opener) in enumerate(entries):
            target = dest / f"{index:07d}"
            member_label = f"{label}!{name}"
            try:
                _copy(opener, target, min(limits.max_member_bytes, size_hint), budget)
            except _MemberRefused as err:
                target.unlink(missing_ok=True)
                if not is_zip and err.reason is QuarantineReason.ARCHIVE_UNREADABLE:
                    raise  # a tar's stream is broken from here on
                refusals.append(Refusal(member_label, err.reason, str(err)))
                continue
            if is_archive(target):
                if depth + 1 >= limits.max_depth:
                    refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_TOO_DEEP,
                                            f"archive nested deeper than {limits.max_depth} levels"))
                else:
                    inner, inner_refusals = _extract(target, dest / f"{index:07d}.d", budget, member_label, depth + 1)
                    members += inner
                    refusals += inner_refusals
                target.unlink(missing_ok=True)
                continue
            members.append(Member(member_label, target))
    except _MemberRefused as err:
        # The archive itself is unreadable. A zip's members carry their own CRC: those read before stay. A
        # compressed tar's one checksum covers the whole stream, so none of its members can be trusted.
        if not is_zip:
            shutil.rmtree(dest, ignore_errors=True)
            members = []
        refusals.append(Refusal(label, err.reason, str(err)))
    return members, refusals


Entry = tuple[str, int, Callable[[], IO[bytes] | None]]


def _unreadable(err: BaseException) -> _MemberRefused:
    if isinstance(err, NotImplementedError):
        return _MemberRefused(QuarantineReason.ARCHIVE_UNSUPPORTED_COMPRESSION, f"{type(err).__name__}: {err}")
    if isinstance(err, RuntimeError):  # zipfile: "File ... is encrypted, password required"
        return _MemberRefused(QuarantineReason.ARCHIVE_ENCRYPTED_MEMBER, "encrypted member (cannot be inspected)")
    return _MemberRefused(QuarantineReason.ARCHIVE_UNREADABLE, f"{type(err).__name__}: {err}")


def _zip_entries(archive: Path, budget: _Budget, label: str, refusals: list[Refusal]) -> Iterator[Entry]:
    declared_count = _zip_declared_count(archive)
    if declared_count is not None:  # before zipfile reads the whole central directory into memory
        budget.declare(0, declared_count)
    try:
        zf = zipfile.ZipFile(archive)
    except (*_READ_ERRORS, NotImplementedError, RuntimeError) as err:
        raise _unreadable(err) from err
    with zf:
        infos = [info for info in zf.infolist() if not info.is_dir()]
        budget.declare(sum(info.file_size for info in infos), len(infos))
        for info in infos:
            budget.count()
            name = info.filename
            refusal = _refuse_zip(info, budget.limits)
            if refusal is not None:
                refusals.append(Refusal(f"{label}!{name}", *refusal))
                continue
            yield name, info.file_size, (lambda info=info: zf.open(info))


def _zip_declared_count(archive: Path) -> int | None:
    """Entries the end-of-central-directory record declares (zip64 included), None when it cannot be read."""
    try:
        with archive.open("rb") as handle:
            end = zipfile._EndRecData(handle)  # noqa: SLF001 - the one reader of this record; stable since 2.x
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return int(end[zipfile._ECD_ENTRIES_TOTAL]) if end else None  # noqa: SLF001


def _refuse_zip(info: zipfile.ZipInfo, limits: Limits) -> tuple[QuarantineReason, str] | None:
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
    if info.file_size > limits.max_member_bytes:
        return QuarantineReason.ARCHIVE_TOO_LARGE, f"declared size {info.file_size} over {limits.max_member_bytes}"
    return None


def _tar_entries(archive: Path, budget: _Budget, label: str, refusals: list[Refusal]) -> Iterator[Entry]:
    try:
        tf = tarfile.open(archive, mode="r:*")
    except (*_READ_ERRORS, NotImplementedError, RuntimeError) as err:
        raise _unreadable(err) from err
    with tf:
        while True:
            try:
                info = tf.next()  # reads (decompresses) past the previous member to the next header
            except (*_READ_ERRORS, NotImplementedError, RuntimeError) as err:
                raise _unreadable(err) from err
            if info is None:
                _drain(tf, budget)
                return
            name = info.name
            member_label = f"{label}!{name}"
            if info.isdir():
                continue
            budget.count()
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
            if not info.isfile():
                refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_SPECIAL_FILE, "device, FIFO or other special member"))
                continue
            budget.declare(info.size, 0)  # a tar header's size is exact: the stream is framed by it
            if info.size > budget.limits.max_member_bytes:
                refusals.append(Refusal(member_label, QuarantineReason.ARCHIVE_TOO_LARGE,
                                        f"size {info.size} over {budget.limits.max_member_bytes}"))
                continue
            yield name, info.size, (lambda info=info: tf.extractfile(info))


def _drain(tf: tarfile.TarFile, budget: _Budget) -> None:
    """Read a compressed tar to its end: tarfile stops at the end-of-archive blocks (or at a damaged header,
    silently), and gzip, bzip2 and xz check their stream's integrity only at its end."""
    stream = tf.fileobj
    if stream is None or isinstance(stream, io.BufferedReader | io.FileIO):
        return  # not compressed: nothing to check, nothing hidden after the end marker that matters
    while True:
        try:
            chunk = stream.read(CHUNK)
        except (*_READ_ERRORS, NotImplementedError, RuntimeError) as err:
            raise _unreadable(err) from err
        if not chunk:
            return
        budget.spend(len(chunk))


def _copy(opener: Callable[[], IO[bytes] | None], target: Path, limit: int, budget: _Budget) -> None:
    """Stream a member to ``target`` one chunk at a time; more than ``limit`` bytes (its declared size or the
    member cap) refuses the member, the upload's budget refuses the upload."""
    written = 0
    try:
        source = opener()
    except (*_READ_ERRORS, NotImplementedError, RuntimeError) as err:
        raise _unreadable(err) from err
    if source is None:
        raise _MemberRefused(QuarantineReason.ARCHIVE_UNREADABLE, "member has no content stream")
    with source, target.open("wb") as out:
        while True:
            try:
                chunk = source.read(CHUNK)
            except (*_READ_ERRORS, NotImplementedError, RuntimeError) as err:
                raise _unreadable(err) from err
            if not chunk:
                return
            written += len(chunk)
            if written > limit:
                raise _MemberRefused(QuarantineReason.ARCHIVE_BOMB,
                                     f"member expands beyond {limit} bytes (its declared size or the member cap)")
            budget.spend(len(chunk))
            out.write(chunk)
