"""Blocking verification: no value of the input's PHI attributes may appear anywhere in the output.

:func:`collect_tokens` lists the identifying values of an input instance — every value whose
Table E.1-1 action removes or replaces it (names and their components, IDs, dates, UIDs, addresses,
free text), private elements, curves and overlays — at every nesting level. :func:`scan_bytes`
looks for each of them, case-insensitively, in the encoded output (everything but the pixel data
value, which de-identification never changes); :func:`scan_dataset` does the same on parsed values.
A hit quarantines the instance.

Matching rules keep false alarms rare without missing real leaks: a token that starts (ends) with
a letter must not be glued to another letter on that side; a token that starts with a digit must not
follow a digit (so a date is not "found" inside the digits of a ``2.25.`` UID), and may be followed by
anything (so a date still matches the start of a DT); a UID must not be glued to a digit or dot
on either side (``1.2.3`` is not found inside ``1.2.34``). Times (TM) are not tokens: alone they identify
nobody, and with Modified Dates they are kept. Values from private elements and from free-text
descriptors are dropped as tokens when they equal a value the profile keeps (e.g. ``SIEMENS`` in a
private tag and in Manufacturer).

Dates the engine shifted are checked against their own input date only. Input dates a few days apart
are common, so a date moved back by the patient's offset can equal *another* date of the same input
(StudyDate 20231107 moved back one day is the input's SeriesDate 20231106). Each path records where it
wrote a shifted value (the byte path: its bytes in the output, :data:`ShiftedSpan`; the dataset path:
the element's tag path) and the input date it came from; an input date (a token from a DA or DT
value, :attr:`Identifiers.dates`) found only in values shifted from other dates is not a leak. Found in
the value shifted from it (an offset of 0), or anywhere else — free text, private elements, an element
the engine did not shift, at any nesting level — it is one, as every other token is.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from radlake.deid.confidentiality_profile import Action, Option, Rules, load_table
from radlake.dicom_io import element_vr, uid_values

MIN_ALPHA = 3
MIN_DIGITS = 4
_SPLIT_PN = re.compile(r"[\^=\s,]+")
_DATES_IN_TEXT = re.compile(
    r"\b\d{4}[-/.]\d{1,2}[-/.]\d{1,2}\b|\b\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}\b|\b(?:19|20)\d{6}\b|\d{5,}"
)
_UID = re.compile(r"[0-9.]+")
_ALNUM = re.compile(r"[^\W_]")  # one character for which str.isalnum() is true
_UID_CHARS = frozenset("0123456789.")
_BINARY_VRS = frozenset({"OB", "OW", "OF", "OD", "OL", "OV", "UN"})
_NUMERIC_VRS = frozenset({"US", "SS", "UL", "SL", "UV", "SV", "FL", "FD", "AT", "IS", "DS", "AS", "TM", "CS"})
TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})
# the actions that remove or replace a value: the input's value is a token
REMOVING_ACTIONS = frozenset({Action.REMOVE, Action.ZERO, Action.DUMMY, Action.UID, Action.PSEUDONYM})


@dataclass(frozen=True)
class Tokens:
    """Identifying values of one input instance (lower-cased)."""

    values: frozenset[str]

    def __len__(self) -> int:
        return len(self.values)


@dataclass(frozen=True)
class Hit:
    token: str
    where: str


@lru_cache(maxsize=1)
def descriptor_tags() -> frozenset[int]:
    """Tags of the rows the Clean Descriptors option covers (free-text descriptions)."""
    return frozenset(
        int(row.tag, 16)
        for row in load_table()
        if Option.CLEAN_DESCRIPTORS in row.options and "x" not in row.tag and row.tag != "private"
    )


def _usable(token: str) -> bool:
    token = token.strip()
    if token.isdigit():
        return len(token) >= MIN_DIGITS
    return len(token) >= MIN_ALPHA and (token.isalnum() or _ALNUM.search(token) is not None)


def element_tokens(elem: DataElement) -> Iterator[str]:
    """Candidate tokens of one non-sequence element."""
    return value_tokens(elem.VR, elem.value)


def value_tokens(vr: str, value: object) -> Iterator[str]:
    """Candidate tokens of a non-sequence value of VR ``vr``, as pydicom converts it."""
    if vr in _NUMERIC_VRS or vr == "SQ":
        return
    if vr in _BINARY_VRS:
        if isinstance(value, bytes) and len(value) <= 1024:
            text = value.rstrip(b"\x00 ").decode("latin-1")
            if text and all(32 <= ord(c) < 127 for c in text):
                yield from (t for t in text.split("\\") if _usable(t))
        return
    values = (value,) if value is None or isinstance(value, str) or not isinstance(value, MultiValue | list | tuple) \
        else value
    for item in values:
        text = str(item if item is not None else "").strip().rstrip("\x00").strip()
        if not text:
            continue
        if vr == "DA" or vr == "DT":
            if len(text) >= 8 and text[:8].isdigit():
                yield text[:8]
            continue
        if _usable(text):
            yield text
        if vr == "PN":
            yield from (part for part in _SPLIT_PN.split(text) if _usable(part))


@dataclass(frozen=True)
class Identifiers:
    """What one walk over an input finds: its PHI tokens, the UIDs the profile replaces (in order), and
    which of the tokens are input dates (from DA or DT values)."""

    tokens: Tokens
    uids: tuple[str, ...]
    dates: frozenset[str] = frozenset()


def collect_identifiers(ds: Dataset, rules: Rules) -> Identifiers:
    """The PHI tokens of ``ds`` under ``rules`` (see the module doc) and the UIDs under ``U``/``D``."""
    strong: set[str] = set()
    weak: set[str] = set()
    kept: set[str] = set()
    dates: set[str] = set()
    uids: list[str] = []
    _collect(ds, rules, strong, weak, kept, dates, uids)
    return identifiers_from_parts(strong, weak, kept, dates, uids)


def tokens_from_parts(strong: set[str], weak: set[str], kept: set[str]) -> Tokens:
    """Strong values always count; weak ones (private, descriptors) only when no kept value equals them."""
    kept_lower = {k.lower() for k in kept}
    return Tokens(frozenset({t.lower() for t in strong} | ({t.lower() for t in weak} - kept_lower)))


def identifiers_from_parts(strong: set[str], weak: set[str], kept: set[str], dates: set[str],
                           uids: list[str]) -> Identifiers:
    """The tokens of :func:`tokens_from_parts`; ``dates`` (the tokens of DA/DT values: digits) as far as
    they are tokens."""
    tokens = tokens_from_parts(strong, weak, kept)
    return Identifiers(tokens, tuple(uids), tokens.values.intersection(dates))


def date_tokens(vr: str, tokens: Iterator[str], dates: set[str]) -> Iterable[str]:
    """``tokens`` of a value of VR ``vr``; those of a DA or DT value are also added to ``dates``."""
    if vr != "DA" and vr != "DT":
        return tokens
    found = tuple(tokens)
    dates.update(found)
    return found


def collect_tokens(ds: Dataset, rules: Rules) -> Tokens:
    """The PHI values of ``ds`` under ``rules`` (see the module doc for what counts)."""
    return collect_identifiers(ds, rules).tokens


def _collect(ds: Dataset, rules: Rules, strong: set[str], weak: set[str], kept: set[str], dates: set[str],
             uids: list[str] | None) -> None:
    """One walk; ``uids`` is None inside what the profile drops (private or removed sequences)."""
    descriptors = descriptor_tags()
    for tag in ds.keys():
        raw = ds.get_item(tag)
        vr = element_vr(ds, tag, raw)
        if tag.is_private:
            if vr == "SQ":
                for item in ds[tag].value or ():
                    _collect(item, rules, weak, weak, kept, dates, None)
            elif tag.element >= 0x1000:
                weak.update(date_tokens(vr, element_tokens(ds[tag]), dates))
            continue
        if tag == 0x7FE00010:
            continue
        action = rules.action(tag)
        if vr == "SQ":
            removed = action is Action.REMOVE or action is Action.ZERO
            for item in ds[tag].value or ():
                _collect(item, rules, strong, weak, set() if removed else kept, dates, None if removed else uids)
            continue
        if action in REMOVING_ACTIONS or (action is Action.CLEAN and vr in ("DA", "DT")):
            elem = ds[tag]
            (weak if int(tag) in descriptors else strong).update(date_tokens(vr, element_tokens(elem), dates))
            if uids is not None and vr == "UI" and action in (Action.UID, Action.DUMMY):
                uids.extend(uid_values(elem.value))
        elif (action is None or action is Action.KEEP) and vr in TEXT_VRS:
            kept.update(_kept_texts(raw))


def _kept_texts(raw: object) -> Iterator[str]:
    """Values of a kept text element, from its raw bytes when it was never converted."""
    value = getattr(raw, "value", None)
    if isinstance(value, bytes):
        text = value.decode("utf-8", "replace")
    elif isinstance(value, MultiValue | list | tuple):
        text = "\\".join(str(v) for v in value)
    else:
        text = str(value if value is not None else "")
    return kept_text_parts(text)


def kept_text_parts(text: str) -> Iterator[str]:
    """The values of a kept text element and their name components (backslash-separated ``text``)."""
    for part in text.split("\\"):
        part = part.strip(" \x00")
        if part:
            yield part
            yield from (p for p in _SPLIT_PN.split(part) if p)


def _matches(hay: str, token: str) -> Iterator[tuple[int, int]]:
    """Spans of ``token`` in ``hay`` (both lower-case) under the boundary rules of the module doc."""
    start = hay.find(token)
    if start < 0:
        return
    uid = _is_uid(token)
    while start >= 0:
        if _bounded(hay, token, start, uid):
            yield start, start + len(token)
        start = hay.find(token, start + 1)


def _bounded(hay: str, token: str, start: int, uid: bool) -> bool:
    """Whether the occurrence of ``token`` at ``start`` is a match under the boundary rules."""
    end = start + len(token)
    before = hay[start - 1] if start > 0 else ""
    after = hay[end] if end < len(hay) else ""
    first, last = token[0], token[-1]
    if first.isalpha() and before.isalpha():
        return False
    if first.isdigit() and before.isdigit():
        return False
    if last.isalpha() and after.isalpha():
        return False
    return not (uid and (before in _UID_CHARS or after in _UID_CHARS))


# Where a token starting with an ASCII letter (digit) can match: at a letter (digit) not preceded by
# one (a superset of the positions the boundary rules allow; each is checked with them).
_RUN_STARTS = re.compile(r"(?<![a-z])[a-z]|(?<![0-9])[0-9]")
_ASCII_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyz0123456789")


def _is_uid(token: str) -> bool:
    return "." in token and _UID.fullmatch(token) is not None


@lru_cache(maxsize=64)
def _scan_index(tokens: Tokens) -> tuple[dict[str, list[str]], list[str]]:
    """Tokens starting with an ASCII letter or digit by their first three characters, and the others."""
    groups: dict[str, list[str]] = {}
    others = []
    for token in tokens.values:
        if token[0] in _ASCII_ALNUM:
            groups.setdefault(token[:3], []).append(token)
        else:
            others.append(token)
    return groups, others


@lru_cache(maxsize=64)
def _by_prefix(tokens: Tokens) -> dict[str, tuple[str, ...]]:
    """Tokens grouped by their first three characters (every token has at least three)."""
    groups: dict[str, list[str]] = {}
    for token in tokens.values:
        groups.setdefault(token[:3], []).append(token)
    return {prefix: tuple(group) for prefix, group in groups.items()}


def _candidates(lowered: str, tokens: Tokens) -> set[str]:
    index = _by_prefix(tokens)
    return {t for i in range(len(lowered) - 2) for t in index.get(lowered[i : i + 3], ())}


def redact(text: str, tokens: Tokens) -> str:
    """Clean a free-text value: drop every token occurrence and date/number-like runs, squeeze spaces."""
    lowered = text.lower()
    spans = [span for token in _candidates(lowered, tokens) if token in lowered for span in _matches(lowered, token)]
    spans += [m.span() for m in _DATES_IN_TEXT.finditer(text)]
    if not spans:
        return text
    keep = [True] * len(text)
    for start, end in spans:
        for i in range(start, end):
            keep[i] = False
    cleaned = "".join(c for c, k in zip(text, keep, strict=True) if k)
    return re.sub(r"\s{2,}", " ", cleaned).strip()


def scan_text(hay: str, tokens: Tokens, where: str) -> list[Hit]:
    """Tokens found in ``hay`` (every way below finds exactly the matches of :func:`_matches`).

    Few tokens or a short text: the candidate tokens are searched for. Otherwise one pass over the places where
    a token starting with a letter or digit can start, and a search for the other tokens.
    """
    lowered = hay.lower()
    n = len(lowered)
    # cost model measured on CT headers: searching costs ~tokens * (0.25 + n / 3000) us, the pass ~n / 17 + tokens us
    if n < 4 * len(tokens.values):  # a short value: the tokens sharing one of its 3-grams
        candidates = _candidates(lowered, tokens)
        return [Hit(token, where) for token in sorted(candidates) if next(_matches(lowered, token), None)]
    if len(tokens.values) * (n - 1900) < 175 * n:
        return [Hit(token, where) for token in sorted(tokens.values) if next(_matches(lowered, token), None)]
    index, others = _scan_index(tokens)
    found: set[str] = set()
    get = index.get
    for match in _RUN_STARTS.finditer(lowered):
        start = match.start()
        group = get(lowered[start : start + 3])
        if group is not None:
            for token in group:
                if (token not in found and lowered.startswith(token, start)
                        and _bounded(lowered, token, start, _is_uid(token))):
                    found.add(token)
    found.update(token for token in others if next(_matches(lowered, token), None))
    return [Hit(token, where) for token in sorted(found)]


def scan_bytes(data: bytes, tokens: Tokens) -> list[Hit]:
    """Tokens found in encoded bytes (decoded as Latin-1, so UTF-8 tokens are compared byte-wise)."""
    hay = data.decode("latin-1")
    byte_tokens = Tokens(frozenset(t.encode("utf-8").decode("latin-1") for t in tokens.values))
    return scan_text(hay, byte_tokens, "raw bytes")


# (start, end, input date): ``data[start:end]`` is a value the engine wrote by shifting that input date
# (the date's token: the input value's first 8 characters).
ShiftedSpan = tuple[int, int, str]


def excluding_shifted_dates(data: bytes, hits: list[Hit], dates: Collection[str],
                            shifted: Sequence[ShiftedSpan]) -> list[Hit]:
    """``hits`` of :func:`scan_bytes` in ``data`` less the input dates (those of ``hits`` in ``dates``)
    whose every match lies in a value shifted from another date (see the module doc)."""
    if not shifted:
        return hits
    hay = data.decode("latin-1")  # dates are digits: no need to lower-case
    return [hit for hit in hits if hit.token not in dates or not _only_shifted_from_others(hay, hit.token, shifted)]


def _only_shifted_from_others(hay: str, date: str, shifted: Sequence[ShiftedSpan]) -> bool:
    """Whether every match of the input date ``date`` in ``hay`` lies in a value shifted from another date."""
    return all(any(first <= start and end <= last and original != date for first, last, original in shifted)
               for start, end in _matches(hay, date))


def holds_date(value: str, date: str) -> bool:
    """Whether a value the engine shifted holds the input date ``date`` (its own: it must not)."""
    return next(_matches(value.lower(), date), None) is not None


def dataset_strings(ds: Dataset, path: str = "") -> Iterator[tuple[str, str]]:
    """(where, text) for every element value of ``ds`` that is text or short bytes, recursively."""
    for elem in ds:
        where = f"{path}{elem.tag}"
        if elem.VR == "SQ":
            for i, item in enumerate(elem.value or ()):
                yield from dataset_strings(item, f"{where}[{i}].")
        elif int(elem.tag) != 0x7FE00010:
            for token in element_tokens(elem):
                yield where, token
            if elem.VR in _NUMERIC_VRS and elem.value is not None and not isinstance(elem.value, bytes):
                yield where, str(elem.value)


def scan_dataset(ds: Dataset, tokens: Tokens) -> list[Hit]:
    """Tokens found in the parsed values of ``ds`` (file meta included)."""
    hits: list[Hit] = []
    sources: Iterable[Dataset] = [ds.file_meta, ds] if getattr(ds, "file_meta", None) is not None else [ds]
    for part in sources:
        for where, text in dataset_strings(part):
            hits += scan_text(text, tokens, where)
    return hits


def header_bytes(encoded: bytes, pixel_data_length: int | None) -> bytes:
    """The encoded file without the pixel data value (which header de-identification never changes)."""
    if not pixel_data_length:
        return encoded
    for marker in (b"\xe0\x7f\x10\x00OW\x00\x00", b"\xe0\x7f\x10\x00OB\x00\x00", b"\xe0\x7f\x10\x00"):
        pos = encoded.find(marker)
        while pos >= 0:
            length_at = pos + len(marker)
            length = int.from_bytes(encoded[length_at : length_at + 4], "little")
            if length == pixel_data_length or length == 0xFFFFFFFF:
                end = length_at + 4 + (length if length != 0xFFFFFFFF else len(encoded))
                return encoded[:pos] + encoded[end:]
            pos = encoded.find(marker, pos + 1)
    return encoded
