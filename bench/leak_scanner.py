"""An independent leak checker for de-identified DICOM files: was any planted PHI value left behind?

It imports nothing from ``radlake`` (only pydicom and the standard library), so the benchmark does not
grade radlake with the code that gates radlake's own output (``radlake.deid.verification``).

Rules
-----
*What is looked for.* The caller passes the values the test-data generator planted in one input file,
each with its DICOM VR (``radlake/synthetic/phi_dicom.py`` records them in ``Plant``; the benchmark keeps
those actually present in the input). Each planted value yields search forms:

- the value itself, stripped of DICOM padding (spaces, NUL);
- person names (PN): also every ``^``/``=`` component (a family or given name alone is a leak);
- dates (DA, and the date part of DT): also ``YYYY-MM-DD``, ``YYYY/MM/DD`` and ``YYYY.MM.DD``,
  so a date a tool merely reformatted still counts;
- times (TM): also ``HHMMSS`` without the fraction (a time a tool truncated still counts);
- other values planted inside free text (``radlake/synthetic/free_text_phi.py``: phones, e-mail
  addresses, IDs): a phone number (digits and ``+().-`` or spaces, at least :data:`MIN_PHONE_DIGITS`
  digits) also as its digits alone (a phone a tool re-spaced still counts); an e-mail address also
  as its local part.

Forms shorter than :data:`MIN_LENGTH` characters are dropped (a sex ``F`` or a one-digit number
would be found everywhere); a planted value with no form left is not searched.

*Where.* In the output file, twice:

1. every element pydicom parses — the file meta group, public and private elements (with or without
   a private creator, ``UN`` included), and the elements of every sequence item at any depth — as the
   element's encoded value bytes (decoded as Latin-1), or its converted value for elements pydicom
   has already converted; the pixel data (``7FE0,0010`` and the float pixel data variants) is
   skipped at every level;
2. the raw file bytes with the top-level Pixel Data *value* cut out (preamble, tags, lengths,
   anything pydicom would not show as an element, and elements after the pixel data included).

*What counts as a leak.* A form found case-insensitively at either place, unless it starts (ends)
with a digit and the character before (after) the match is a digit too: a date is not "found" inside
the digits of a longer number or UID, ``1.2.3`` is not found inside ``1.2.34`` (it is inside
``1.2.3.4``: a new UID that extends the original still gives the original away). A planted value is
counted once per output file however many forms or places matched; :class:`Hit` records where.

*Failures.* An output that is missing, empty, cut short (a value runs past the end of the file, or bytes
are left after the last element), or that pydicom cannot read (or whose elements cannot be walked) is a
failure of the tool, reported apart from leaks and never skipped (see :func:`scan_file`).

Nothing is excluded here: which planted values a profile may keep is the caller's decision (the
benchmark passes every planted value, because the Basic profile without options keeps none of them).
"""

from __future__ import annotations

import bisect
import io
import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.tag import Tag

MIN_LENGTH = 4
MIN_PHONE_DIGITS = 7
PIXEL_TAGS = frozenset({0x7FE00008, 0x7FE00009, 0x7FE00010})  # float, double float and integer pixel data
DATE_SEPARATORS = ("-", "/", ".")
UNDEFINED_LENGTH = 0xFFFFFFFF
DEFLATED = "1.2.840.10008.1.2.1.99"
_DIGITS = frozenset("0123456789")
_DATE = re.compile(r"\d{8}")
_PHONE = re.compile(r"[\d\s+().-]+")

KIND_BY_VR = {"PN": "name", "DA": "date/time", "DT": "date/time", "TM": "date/time", "UI": "UID"}
KINDS = ("name", "ID/text", "date/time", "UID")


@dataclass(frozen=True)
class Planted:
    """One planted value and the lower-case strings searched for it."""

    text: str
    kind: str  # one of KINDS
    forms: tuple[str, ...]


@dataclass(frozen=True)
class Hit:
    value: str  # the planted value
    kind: str
    form: str  # the search form that matched
    where: str  # "(0009,1001)", "(0008,1140)[0]>(0029,1001)" or "byte 1234"


@dataclass
class ScanResult:
    readable: bool
    error: str = ""
    hits: list[Hit] = field(default_factory=list)

    @property
    def leaked(self) -> dict[str, str]:
        """Planted value -> kind, for every planted value found at least once."""
        return {hit.value: hit.kind for hit in self.hits}


def _date_forms(date: str) -> list[str]:
    return [date] + [sep.join((date[:4], date[4:6], date[6:8])) for sep in DATE_SEPARATORS]


def forms_of(text: str, vr: str) -> tuple[str, ...]:
    """The search forms of one planted value (see the module doc), lower case, without duplicates."""
    value = text.strip(" \x00")
    found = {value}
    if vr == "PN":
        found.update(part.strip() for part in re.split(r"[\^=]", value))
    elif vr == "DA" and _DATE.fullmatch(value):
        found.update(_date_forms(value))
    elif vr == "DT" and _DATE.match(value):
        found.update(_date_forms(value[:8]))
    elif vr == "TM":
        found.add(value.split(".")[0])
    else:
        digits = "".join(c for c in value if c in _DIGITS)
        if len(digits) >= MIN_PHONE_DIGITS and digits != value and _PHONE.fullmatch(value):
            found.add(digits)
        if "@" in value:
            found.add(value.split("@")[0])
    return tuple(sorted({f.lower() for f in found if len(f) >= MIN_LENGTH}))


def planted_values(values: Iterable[tuple[str, str]]) -> list[Planted]:
    """(text, VR) pairs -> searchable planted values, one per distinct text (case-insensitive)."""
    seen: dict[str, Planted] = {}
    for text, vr in values:
        key = text.strip(" \x00").lower()
        if key in seen:
            continue
        forms = forms_of(text, vr)
        if forms:
            seen[key] = Planted(text.strip(" \x00"), KIND_BY_VR.get(vr, "ID/text"), forms)
    return list(seen.values())


def _find(haystack: str, needle: str) -> int:
    """First match of ``needle`` that does not continue a run of digits on either side; -1 if none."""
    digit_start, digit_end = needle[0] in _DIGITS, needle[-1] in _DIGITS
    start = 0
    while (i := haystack.find(needle, start)) >= 0:
        j = i + len(needle)
        if not ((digit_start and i > 0 and haystack[i - 1] in _DIGITS)
                or (digit_end and j < len(haystack) and haystack[j] in _DIGITS)):
            return i
        start = i + 1
    return -1


def _element_text(elem: DataElement | RawDataElement) -> str:
    if isinstance(elem, RawDataElement):
        return (elem.value or b"").decode("latin-1")
    value = elem.value
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def _walk(ds: Dataset, path: str, texts: list[str], places: list[str]) -> None:
    """Every element's text, sequence items at any depth, pixel data skipped."""
    for tag in list(ds.keys()):
        if int(tag) in PIXEL_TAGS:
            continue
        tag = Tag(tag)
        where = f"{path}({tag.group:04X},{tag.element:04X})"
        raw = ds.get_item(tag)
        if raw is None:
            continue
        # Encoded bytes where the VR is known and not a sequence: exactly what is in the file, and no
        # conversion that could fail. Implicit VR (None), SQ and UN (may hold a sequence) are converted.
        elem = raw if isinstance(raw, RawDataElement) and raw.VR not in (None, "SQ", "UN") else ds[tag]
        if elem.VR == "SQ":
            for n, item in enumerate(elem.value or []):
                _walk(item, f"{where}[{n}]>", texts, places)
            continue
        texts.append(_element_text(elem))
        places.append(where)


def _truncated(ds: Dataset, size: int) -> str:
    """pydicom stops quietly at a value or an element header cut short by the end of the file: say so.

    The last top-level element must end where the file ends (skipped for deflated files, whose value
    offsets are in the inflated stream, and after an undefined-length last element).
    """
    meta = getattr(ds, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID") == DEFLATED:
        return ""
    end = 0
    for tag in ds.keys():
        raw = ds.get_item(tag)
        if not isinstance(raw, RawDataElement) or raw.value_tell is None:
            return ""  # already converted: no offsets to check
        if raw.length == UNDEFINED_LENGTH:
            end = -1
            continue
        end = raw.value_tell + raw.length
        if end > size:
            return f"truncated: {Tag(tag)} needs {raw.length} bytes, the file ends first"
    if end >= 0 and end != size:
        return f"truncated: {size - end} bytes after the last element"
    return ""


def _outside_pixels(data: bytes, ds: Dataset) -> bytes:
    """The file's bytes with the top-level Pixel Data value cut out (all of it when there is none)."""
    raw = ds.get_item(0x7FE00010)
    if not isinstance(raw, RawDataElement) or raw.value_tell is None:
        return data
    start = raw.value_tell
    if raw.length == UNDEFINED_LENGTH:  # encapsulated: up to the sequence delimitation item
        end = data.find(b"\xfe\xff\xdd\xe0\x00\x00\x00\x00", start)
        end = len(data) if end < 0 else end + 8
    else:
        end = start + raw.length
    return data[:start] + data[end:]


def scan_bytes(data: bytes, planted: Iterable[Planted]) -> ScanResult:
    """Look for every planted value in one output file's bytes (rules: module doc)."""
    if not data:
        return ScanResult(False, "empty file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(io.BytesIO(data), force=True)
            if len(ds) == 0:
                return ScanResult(False, "no data elements")
            if cut := _truncated(ds, len(data)):
                return ScanResult(False, cut)
            texts: list[str] = []
            places: list[str] = []
            meta = getattr(ds, "file_meta", None)
            if meta is not None:
                _walk(meta, "", texts, places)
            _walk(ds, "", texts, places)
    except Exception as err:  # any reason pydicom gives up is the tool's failure, not a skip
        return ScanResult(False, f"unreadable: {type(err).__name__}: {err}")
    # One lower-case text with a NUL between elements (no form contains NUL, so no match spans two).
    starts, offset = [], 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + 1
    parsed = "\x00".join(texts).lower()
    raw = _outside_pixels(data, ds).decode("latin-1").lower()  # Latin-1 keeps byte offsets
    hits: list[Hit] = []
    for value in planted:
        for form in value.forms:
            i = _find(parsed, form)
            if i >= 0:
                hits.append(Hit(value.text, value.kind, form, places[bisect.bisect_right(starts, i) - 1]))
            i = _find(raw, form)
            if i >= 0:
                hits.append(Hit(value.text, value.kind, form, f"byte {i}"))
    return ScanResult(True, "", hits)


def readable(path: Path | None) -> str:
    """Why ``path`` is not a readable output (missing, empty, pydicom gives up), or "" when it is.

    A lighter check than :func:`scan_file` (no element is converted), for outputs whose leaks are
    not scanned.
    """
    if path is None:
        return "no output"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            size = path.stat().st_size
            if size == 0:
                return "empty file"
            ds = pydicom.dcmread(path, force=True)
            if len(ds) == 0:
                return "no data elements"
            return _truncated(ds, size)
    except Exception as err:
        return f"unreadable: {type(err).__name__}: {err}"
    return ""


def scan_file(path: Path | None, planted: Iterable[Planted]) -> ScanResult:
    """:func:`scan_bytes` of the file at ``path``; a missing path or an unreadable file is a failure."""
    if path is None:
        return ScanResult(False, "no output")
    try:
        data = path.read_bytes()
    except OSError as err:
        return ScanResult(False, f"unreadable: {err}")
    return scan_bytes(data, planted)
