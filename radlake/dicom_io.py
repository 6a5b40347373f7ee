"""Reading DICOM Part-10 bytes with clear outcomes, and ``(ok, reason)`` validators.

Bad input is expected here (hospitals send everything), so nothing in this module raises for it:
:func:`read_part10` returns a :class:`ReadResult` whose ``reason`` names what is wrong, and the
validators return ``(ok, reason)``. Reason codes are :class:`radlake.deid.errors.QuarantineReason`
values.
"""

from __future__ import annotations

import io
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pydicom
from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.multival import MultiValue
from pydicom.tag import BaseTag
from pydicom.uid import UID

from radlake.annotations import needs_pixel_data
from radlake.deid.errors import QuarantineReason

PREAMBLE_LENGTH = 128
MAGIC = b"DICM"
MEDIA_STORAGE_DIRECTORY = "1.2.840.10008.1.3.10"
PIXEL_DATA_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)
UNDEFINED_LENGTH = 0xFFFFFFFF
SEQUENCE_DELIMITER_LE = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
SEQUENCE_DELIMITER_BE = b"\xff\xfe\xe0\xdd\x00\x00\x00\x00"
REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")

Check = tuple[bool, QuarantineReason | None]

# Bounds on what an input may make a reader do. Real instances nest sequences a few levels (an SR content
# tree rarely more than 8); recursion in pydicom and in the byte path grows with the depth.
MAX_SEQUENCE_DEPTH = 16
# The longest value other than the pixel data (the verification scan reads and tokenises every value).
MAX_ELEMENT_BYTES = 64 << 20

# Errors pydicom raises on malformed bytes (it has no single base class for them). RecursionError: a
# sequence nested deeper than the interpreter's stack (read_part10 names it SEQUENCE_TOO_DEEP).
PARSE_ERRORS = (InvalidDicomError, EOFError, ValueError, struct.error, OSError, KeyError, TypeError, IndexError,
                NotImplementedError, AttributeError, OverflowError, UnicodeError, RecursionError)


@dataclass(frozen=True)
class ReadResult:
    dataset: Dataset | None
    reason: QuarantineReason | None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.reason is None


def check_preamble(data: bytes) -> Check:
    """Part-10 files start with a 128-byte preamble and ``DICM``."""
    if not data:
        return False, QuarantineReason.EMPTY_FILE
    if len(data) >= PREAMBLE_LENGTH + 4 and data[PREAMBLE_LENGTH : PREAMBLE_LENGTH + 4] == MAGIC:
        return True, None
    if _looks_like_raw_dataset(data):
        return False, QuarantineReason.MISSING_FILE_META
    return False, QuarantineReason.NOT_DICOM


def _looks_like_raw_dataset(data: bytes) -> bool:
    """A dataset without preamble and meta usually starts with a group 0x0002..0x0010 tag."""
    if len(data) < 8:
        return False
    group = int.from_bytes(data[0:2], "little")
    return group in (0x0002, 0x0008, 0x0010)


def check_transfer_syntax(ds: Dataset) -> Check:
    """The transfer syntax is one pydicom can parse and re-encode without touching the pixel data."""
    meta = getattr(ds, "file_meta", None)
    ts = getattr(meta, "TransferSyntaxUID", None) if meta is not None else None
    if ts is None:
        return False, QuarantineReason.MISSING_FILE_META
    uid = UID(str(ts))
    if not uid.is_transfer_syntax:
        return False, QuarantineReason.UNSUPPORTED_TRANSFER_SYNTAX
    return True, None


def check_complete(ds: Dataset, data: bytes) -> Check:
    """pydicom stops quietly at end of file; a cut file shows as a short value or an open sequence."""
    last = None
    for tag in ds.keys():
        raw = ds.get_item(tag)
        length = getattr(raw, "length", None)
        value = getattr(raw, "value", None)
        if length is not None and length != UNDEFINED_LENGTH and isinstance(value, bytes) and len(value) < length:
            return False, QuarantineReason.TRUNCATED_FILE
        last = raw
    if getattr(last, "length", None) == UNDEFINED_LENGTH:
        meta = getattr(ds, "file_meta", None)
        ts = UID(str(getattr(meta, "TransferSyntaxUID", "") or ""))
        delimiter = SEQUENCE_DELIMITER_BE if ts == "1.2.840.10008.1.2.2" else SEQUENCE_DELIMITER_LE
        if not data.endswith(delimiter):
            return False, QuarantineReason.TRUNCATED_FILE
    return True, None


def check_bounds(ds: Dataset) -> Check:
    """No sequence nested deeper than :data:`MAX_SEQUENCE_DEPTH` levels, no value but the pixel data longer
    than :data:`MAX_ELEMENT_BYTES`. Walks with its own stack: the check must not recurse as deep as the input."""
    max_depth, max_bytes = MAX_SEQUENCE_DEPTH, MAX_ELEMENT_BYTES
    stack: list[tuple[Dataset, int]] = [(ds, 0)]
    while stack:
        current, depth = stack.pop()
        for tag in current.keys():
            raw = current.get_item(tag)
            length = getattr(raw, "length", 0) or 0
            if tag != PIXEL_DATA_TAGS[0] and length != UNDEFINED_LENGTH and length > max_bytes:
                return False, QuarantineReason.ELEMENT_TOO_LONG
            if element_vr(current, tag, raw) == "SQ":
                if depth + 1 > max_depth:
                    return False, QuarantineReason.SEQUENCE_TOO_DEEP
                stack.extend((item, depth + 1) for item in current[tag].value or ())
    return True, None


def check_required_uids(ds: Dataset) -> Check:
    for keyword in REQUIRED_UIDS:
        value = ds.get(keyword)
        if not value or not UID(str(value)).is_valid:
            return False, QuarantineReason.MISSING_REQUIRED_ATTRIBUTE
    return True, None


def check_pixel_data(ds: Dataset) -> Check:
    """Pixel data is present and, when native, as long as the image attributes say. Annotation classes other
    than SEG (RTSTRUCT, SR, KOS, presentation states: :mod:`radlake.annotations`) have none and need none."""
    tag = next((t for t in PIXEL_DATA_TAGS if t in ds), None)
    if tag is None:
        if not needs_pixel_data(ds.get("SOPClassUID")):
            return True, None
        return False, QuarantineReason.NO_PIXEL_DATA
    if tag != 0x7FE00010:
        return True, None
    ts = UID(str(ds.file_meta.TransferSyntaxUID))
    value = ds[tag].value
    if ts.is_compressed:
        return (True, None) if value else (False, QuarantineReason.TRUNCATED_FILE)
    try:
        expected = (
            int(ds.Rows) * int(ds.Columns) * int(ds.get("SamplesPerPixel", 1) or 1)
            * int(ds.get("NumberOfFrames", 1) or 1) * int(ds.BitsAllocated)
        ) // 8
    except (AttributeError, TypeError, ValueError):
        return False, QuarantineReason.INVALID_DATASET
    if value is None or len(value) < expected:
        return False, QuarantineReason.TRUNCATED_FILE
    return True, None


def read_part10(data: bytes, *, stop_before_pixels: bool = False) -> ReadResult:
    """Parse Part-10 bytes fully (values are converted lazily by pydicom; element framing is checked)."""
    ok, reason = check_preamble(data)
    if not ok:
        return ReadResult(None, reason, "no DICM magic after a 128-byte preamble")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=stop_before_pixels)
    except RecursionError:
        return ReadResult(None, QuarantineReason.SEQUENCE_TOO_DEEP, "sequences nested beyond the reader's stack")
    except PARSE_ERRORS as err:
        reason = QuarantineReason.TRUNCATED_FILE if _is_truncation(err) else QuarantineReason.INVALID_DATASET
        return ReadResult(None, reason, f"{type(err).__name__}: {err}")
    ok, reason = check_transfer_syntax(ds)
    if not ok:
        return ReadResult(ds, reason, "check_transfer_syntax")
    ok, reason = check_complete(ds, data)  # first: it reads the elements as they were read, unconverted
    if not ok:
        return ReadResult(ds, reason, "check_complete: the file ends inside an element")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ok, reason = check_bounds(ds)  # before anything walks the dataset recursively
    except RecursionError:
        ok, reason = False, QuarantineReason.SEQUENCE_TOO_DEEP
    except PARSE_ERRORS as err:
        return ReadResult(None, QuarantineReason.INVALID_DATASET, f"{type(err).__name__}: {err}")
    if not ok:
        return ReadResult(None, reason, f"check_bounds: over {MAX_SEQUENCE_DEPTH} sequence levels or "
                                        f"a value over {MAX_ELEMENT_BYTES} bytes")
    if is_dicomdir(ds):
        return ReadResult(ds, None)
    ok, reason = check_required_uids(ds)
    if not ok:
        return ReadResult(ds, reason, "check_required_uids")
    if not stop_before_pixels:
        ok, reason = check_pixel_data(ds)
        if not ok:
            return ReadResult(ds, reason, "check_pixel_data")
    return ReadResult(ds, None)


def _is_truncation(err: Exception) -> bool:
    text = str(err).lower()
    return isinstance(err, EOFError | struct.error) or any(
        word in text for word in ("truncat", "end of file", "unexpected end", "insufficient", "bytes available")
    )


def is_dicomdir(ds: Dataset) -> bool:
    return str(ds.get("SOPClassUID", "")) == MEDIA_STORAGE_DIRECTORY or "DirectoryRecordSequence" in ds


def sop_instance_uid(data: bytes) -> str | None:
    """The SOPInstanceUID of Part-10 bytes when it can be read, for quarantine records."""
    return _one_element(data, "SOPInstanceUID")


def patient_id(data: bytes) -> str | None:
    """The PatientID of Part-10 bytes (or a raw dataset) when it can be read, for finding a patient's
    quarantined originals; None when the bytes are not DICOM or carry none."""
    return _one_element(data, "PatientID")


def _one_element(data: bytes, keyword: str) -> str | None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True, specific_tags=[keyword])
        value = ds.get(keyword)
    except PARSE_ERRORS:
        return None
    return str(value).strip() if value else None


def element_vr(ds: Dataset, tag: BaseTag, raw: object) -> str:
    """The VR of an element without converting its value when the file says it (explicit VR)."""
    vr = getattr(raw, "VR", None)
    if vr:
        return str(vr)
    if not tag.is_private:
        try:
            return dictionary_VR(tag).split(" ")[0]
        except KeyError:
            pass
    return str(ds[tag].VR)


def uid_values(value: object) -> Iterator[str]:
    """The non-empty UIDs of a (possibly multi-valued) UI value, without padding."""
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    for item in values:
        text = str(item or "").strip().rstrip("\x00")
        if text:
            yield text
