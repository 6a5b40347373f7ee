"""DICOMweb STOW-RS (DICOM PS3.18 §10.5): the request body and the store response.

:func:`spool_multipart_related` streams a ``multipart/related; type="application/dicom"`` body into one file
per part, in bounded chunks and under a part cap and a request cap (the edge never holds a body or an
over-large part in memory); :func:`parse_multipart_related` splits a body already in memory; :func:`store_response` builds the DICOM JSON response (PS3.18 Table 10.5.3-1):
Referenced SOP Sequence (0008,1199) for stored instances, Failed SOP Sequence (0008,1198) with a
Failure Reason (0008,1197) for refused ones, and the HTTP status (200 all stored, 202 some refused,
409 none stored).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from nifi.edge.errors import StowError

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"

# PS3.4 Annex GG / PS3.18 Table 10.5.3-1 failure reasons.
PROCESSING_FAILURE = 0x0110
SOP_CLASS_NOT_SUPPORTED = 0x0122
OUT_OF_RESOURCES = 0xA700
DATASET_DOES_NOT_MATCH_SOP_CLASS = 0xA900
CANNOT_UNDERSTAND = 0xC000
REFERENCED_TS_NOT_SUPPORTED = 0xC122

# radlake quarantine reason -> STOW failure reason
_FAILURE_REASONS = {
    "NOT_DICOM": CANNOT_UNDERSTAND,
    "EMPTY_FILE": CANNOT_UNDERSTAND,
    "MISSING_FILE_META": CANNOT_UNDERSTAND,
    "TRUNCATED_FILE": CANNOT_UNDERSTAND,
    "INVALID_DATASET": CANNOT_UNDERSTAND,
    "MISSING_REQUIRED_ATTRIBUTE": DATASET_DOES_NOT_MATCH_SOP_CLASS,
    "NO_PIXEL_DATA": DATASET_DOES_NOT_MATCH_SOP_CLASS,
    "UNSUPPORTED_TRANSFER_SYNTAX": REFERENCED_TS_NOT_SUPPORTED,
    "PART_TOO_LARGE": OUT_OF_RESOURCES,
}

REQUEST_TOO_LARGE = "REQUEST_TOO_LARGE"
PART_TOO_LARGE = "PART_TOO_LARGE"
# Part headers are a few lines; more than this before the blank line is not a STOW-RS request.
MAX_PART_HEADER_BYTES = 64 << 10
CHUNK = 1 << 20


@dataclass(frozen=True)
class Part:
    headers: dict[str, str]  # lower-case names
    content: bytes

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


@dataclass(frozen=True)
class MediaType:
    type: str
    params: dict[str, str]


_PARAM = re.compile(r';\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def parse_media_type(value: str) -> MediaType:
    """``multipart/related; type="application/dicom"; boundary=x`` → type and lower-cased parameter names."""
    main, _, rest = value.partition(";")
    params = {}
    for name, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            raw = raw[1:-1].replace('\\"', '"')
        params[name.lower()] = raw
    return MediaType(main.strip().lower(), params)


def check_stow_content_type(value: str) -> tuple[bool, str | None]:
    """``(ok, reason)``: a STOW-RS body must be multipart/related with a boundary and type application/dicom."""
    media = parse_media_type(value or "")
    if media.type != "multipart/related":
        return False, f"expected multipart/related, got {media.type or 'no content type'}"
    if not media.params.get("boundary"):
        return False, "multipart/related without a boundary parameter"
    kind = media.params.get("type", DICOM).lower()
    if kind != DICOM:
        return False, f"only type={DICOM} is accepted (bulk data / metadata requests are not supported)"
    return True, None


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.decode("latin-1").split("\r\n"):
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise StowError(f"malformed part header line {line[:60]!r}")
        headers[name.strip().lower()] = value.strip()
    return headers


def parse_multipart_related(body: bytes, content_type: str) -> list[Part]:
    """The parts of a ``multipart/related`` body (RFC 2046 §5.1); raises :class:`StowError` if malformed."""
    ok, reason = check_stow_content_type(content_type)
    if not ok:
        raise StowError(reason or "unsupported media type", status=415)
    boundary = parse_media_type(content_type).params["boundary"].encode("latin-1")
    delimiter = b"--" + boundary
    start = body.find(delimiter)
    if start < 0:
        raise StowError("the body does not contain the boundary")
    parts: list[Part] = []
    position = start + len(delimiter)
    while True:
        if body[position : position + 2] == b"--":
            return parts  # close delimiter
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            raise StowError("the body ends inside a boundary line")
        header_end = body.find(b"\r\n\r\n", line_end)
        if header_end < 0 and body[line_end + 2 : line_end + 4] == b"\r\n":
            header_end = line_end
        if header_end < 0:
            raise StowError(f"part {len(parts) + 1} has no header/body separator")
        headers = _headers(body[line_end + 2 : header_end]) if header_end > line_end else {}
        content_start = header_end + 4
        next_delimiter = body.find(b"\r\n" + delimiter, content_start)
        if next_delimiter < 0:
            raise StowError(f"part {len(parts) + 1} is not closed by a boundary (truncated body?)")
        parts.append(Part(headers, body[content_start:next_delimiter]))
        position = next_delimiter + 2 + len(delimiter)


@dataclass(frozen=True)
class StowLimits:
    max_part_bytes: int = 2 << 30
    max_request_bytes: int = 8 << 30


@dataclass(frozen=True)
class SpooledPart:
    """One part of a streamed body: its file (0600, in the caller's spool folder), or, when it went over the part
    cap, no file and ``refused`` set (the bytes were read and dropped, never held)."""

    headers: dict[str, str]
    path: Path | None
    size: int  # bytes of the part's content as sent
    sha256: str  # of the content as sent (a refused part's too: its quarantine event is keyed by it)
    refused: str | None = None


class _PartFile:
    """A part's content written as it arrives. The first 132 bytes are held back so that :func:`as_part10` can
    add a missing preamble before anything is written."""

    _HEAD = 132

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._head: bytes | None = b""
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self._head is not None:
            self._head += data
            if len(self._head) < self._HEAD:
                return
            data, self._head = as_part10(self._head), None
        _write_all(self._fd, data)

    def close(self) -> None:
        if self._head is not None:
            _write_all(self._fd, as_part10(self._head))
            self._head = None
        os.close(self._fd)

    def discard(self) -> None:
        os.close(self._fd)
        self.path.unlink(missing_ok=True)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def spool_multipart_related(stream: BinaryIO, content_type: str, spool_dir: Path,
                            limits: StowLimits = StowLimits(), chunk: int = CHUNK) -> list[SpooledPart]:
    """Stream a ``multipart/related`` body (RFC 2046 §5.1) into ``spool_dir/part-NNNNN`` files, holding at most
    about two chunks in memory. A part over ``limits.max_part_bytes`` is dropped as it streams and comes back
    refused (``PART_TOO_LARGE``); a body over ``limits.max_request_bytes`` raises :class:`StowError` 413
    ``REQUEST_TOO_LARGE`` (its files are the caller's to remove with ``spool_dir``), as does a malformed body
    (400) or media type (415)."""
    ok, reason = check_stow_content_type(content_type)
    if not ok:
        raise StowError(reason or "unsupported media type", status=415)
    delimiter = b"--" + parse_media_type(content_type).params["boundary"].encode("latin-1")
    separator = b"\r\n" + delimiter  # what ends a part's content
    parts: list[SpooledPart] = []
    buffer = b""
    total = 0
    ended = False

    def fill() -> bool:
        nonlocal buffer, total, ended
        if ended:
            return False
        data = stream.read(chunk)
        if not data:
            ended = True
            return False
        total += len(data)
        if total > limits.max_request_bytes:
            raise StowError(f"the request is larger than the edge accepts ({limits.max_request_bytes} bytes)",
                            status=413, reason=REQUEST_TOO_LARGE)
        buffer += data
        return True

    # preamble: everything before the first delimiter is ignored (kept short: the tail that may hold its start)
    while (start := buffer.find(delimiter)) < 0:
        buffer = buffer[-len(delimiter):]
        if not fill():
            raise StowError("the body does not contain the boundary")
    buffer = buffer[start + len(delimiter):]
    while True:
        while len(buffer) < 2 and fill():
            pass
        if buffer[:2] == b"--":
            return parts  # close delimiter
        while (line_end := buffer.find(b"\r\n")) < 0:
            if len(buffer) > MAX_PART_HEADER_BYTES or not fill():
                raise StowError("the body ends inside a boundary line")
        while (header_end := buffer.find(b"\r\n\r\n", line_end)) < 0:
            if len(buffer) > MAX_PART_HEADER_BYTES or not fill():
                raise StowError(f"part {len(parts) + 1} has no header/body separator")
        headers = _headers(buffer[line_end + 2 : header_end]) if header_end > line_end else {}
        buffer = buffer[header_end + 4:]
        part: _PartFile | None = _PartFile(spool_dir / f"part-{len(parts) + 1:05d}")
        size = 0
        digest = hashlib.sha256()
        try:
            while True:
                end = buffer.find(separator)
                # without the separator, all but its possible start in the buffer's tail is content
                ready = end if end >= 0 else max(0, len(buffer) - len(separator))
                size += ready
                digest.update(buffer[:ready])
                if part is not None and size > limits.max_part_bytes:
                    part.discard()
                    part = None
                if part is not None and ready:
                    part.write(buffer[:ready])
                buffer = buffer[ready:]
                if end >= 0:
                    break
                if not fill():
                    raise StowError(f"part {len(parts) + 1} is not closed by a boundary (truncated body?)")
        except BaseException:
            if part is not None:
                part.discard()
            raise
        if part is not None:
            part.close()
            parts.append(SpooledPart(headers, part.path, size, digest.hexdigest()))
        else:
            parts.append(SpooledPart(headers, None, size, digest.hexdigest(), PART_TOO_LARGE))
        buffer = buffer[len(separator):]


def as_part10(content: bytes) -> bytes:
    """A part that starts with its File Meta Information (group 0002) but lacks the 128-byte preamble and
    ``DICM`` (pydicom writes in-memory datasets so, and dicomweb-client sends them so) gets them added;
    anything else is returned unchanged and judged by the de-identification engine."""
    if content[:2] == b"\x02\x00" and content[128:132] != b"DICM":
        return bytes(128) + b"DICM" + content
    return content


def build_multipart_related(instances: Sequence[bytes], boundary: str) -> tuple[bytes, str]:
    """A STOW-RS request body for Part-10 instances, and its Content-Type (used by ``radlake upload``)."""
    delimiter = f"--{boundary}".encode("ascii")
    chunks: list[bytes] = []
    for data in instances:
        chunks += [delimiter, b"\r\nContent-Type: application/dicom\r\n\r\n", data, b"\r\n"]
    chunks += [delimiter, b"--\r\n"]
    return b"".join(chunks), f'multipart/related; type="{DICOM}"; boundary={boundary}'


@dataclass(frozen=True)
class Stored:
    sop_class_uid: str
    sop_instance_uid: str  # as the sender sent it
    retrieve_url: str  # where the stored (pseudonymous) instance lives


@dataclass(frozen=True)
class Failed:
    sop_class_uid: str | None
    sop_instance_uid: str | None
    reason_code: str  # radlake reason, e.g. TRUNCATED_FILE


def failure_reason(reason_code: str) -> int:
    """The STOW failure reason (PS3.18 Table 10.5.3-1) for a radlake quarantine reason."""
    return _FAILURE_REASONS.get(reason_code, PROCESSING_FAILURE)


def _ui(value: str) -> dict:
    return {"vr": "UI", "Value": [value]}


def store_response(study_url: str | None, stored: Sequence[Stored], failed: Sequence[Failed]) -> tuple[int, dict]:
    """HTTP status and DICOM JSON body of a STOW-RS response."""
    body: dict[str, dict] = {}
    if study_url:
        body["00081190"] = {"vr": "UR", "Value": [study_url]}
    if failed:
        items = []
        for f in failed:
            item: dict[str, dict] = {}
            if f.sop_class_uid:
                item["00081150"] = _ui(f.sop_class_uid)
            if f.sop_instance_uid:
                item["00081155"] = _ui(f.sop_instance_uid)
            item["00081197"] = {"vr": "US", "Value": [failure_reason(f.reason_code)]}
            items.append(item)
        body["00081198"] = {"vr": "SQ", "Value": items}
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": [
            {"00081150": _ui(s.sop_class_uid), "00081155": _ui(s.sop_instance_uid),
             "00081190": {"vr": "UR", "Value": [s.retrieve_url]}}
            for s in stored
        ]}
    if failed and not stored:
        return 409, body
    if failed:
        return 202, body
    return 200, body
