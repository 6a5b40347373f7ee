"""The byte path: Table E.1-1 applied to the encoded Part-10 stream, without building pydicom datasets.

For the common input — Explicit VR Little Endian, well-formed, ASCII text — the pipeline does not parse
the file into a pydicom :class:`~pydicom.dataset.Dataset` and encode a new one. This path walks the
encoded data elements once (:func:`parse`), validates what :func:`radlake.dicom_io.read_part10` and the
burned-in guard validate, collects the input's identifying values from the elements the profile acts on
(:func:`identifiers`), and writes the output by copying every kept element's bytes as they are (the
pixel data among them) and encoding only the elements the profile replaces (:func:`rewrite`), noting
where in the output it wrote the dates it shifted (for the verification scan's rule on them).
:func:`prepare` and :func:`finish` are its side of :class:`radlake.deid.path_interface.DeidPath`.

The decisions are the ones of the dataset path (:mod:`radlake.deid.dataset_path`,
:mod:`radlake.deid.verification`), most of them made by the same code
(:mod:`radlake.deid.instance_context`): the same actions, the same tokens, the same replacement values
and padding, new file meta, sequences and items written with defined lengths, elements in tag order. A
kept element keeps its original encoding instead of pydicom's re-encoding of it, so an output may differ
from the dataset path's in the padding of kept values; pydicom reads both the same.

Anything this path does not handle exactly raises :class:`Unsupported` before a byte is written, and
the dataset path takes that instance: other transfer syntaxes, non-ASCII text, ``UN`` elements whose
VR pydicom would look up, odd or truncated lengths, elements out of order, elements after the pixel
data, DICOMDIR, and every case that ends in quarantine (missing UIDs, short pixel data, burned-in
annotation), so that the reason is found by the dataset path's code.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache, partial

from pydicom.datadict import dictionary_VR
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset

from radlake.deid.burned_in import HIGH_RISK_MODALITIES, HIGH_RISK_SOP_CLASSES
from radlake.deid.confidentiality_profile import (
    CODE_MEANING,
    CODING_SCHEME_DESIGNATOR,
    FREE_TEXT_VRS,
    Action,
    Option,
    Profile,
    Rules,
)
from radlake.deid.errors import QuarantineReason
from radlake.deid.instance_context import (
    CLEANED_TEXT_VRS,
    DUMMY_BY_VR,
    DUMMY_TEXT,
    InstanceContext,
    build_hmac_messages,
    choose_provider,
    file_meta_elements,
    method_elements,
    pseudonym_and_offset,
    retains_safe_private,
    safe_private,
)
from radlake.deid.instance_result import InstanceResult, Status
from radlake.deid.path_interface import DEID_ERRORS, Prepared, Unsupported
from radlake.deid.verification import (
    REMOVING_ACTIONS,
    TEXT_VRS,
    Identifiers,
    ShiftedSpan,
    descriptor_tags,
    excluding_shifted_dates,
    identifiers_from_parts,
    kept_text_parts,
    scan_bytes,
    value_tokens,
)
from radlake.dicom_io import MAX_ELEMENT_BYTES, MAX_SEQUENCE_DEPTH, MEDIA_STORAGE_DIRECTORY, uid_values

EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
PIXEL_DATA = 0x7FE00010
SPECIFIC_CHARACTER_SET = 0x00080005
DIRECTORY_RECORD_SEQUENCE = 0x00041220
ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
UNDEFINED = 0xFFFFFFFF

_VRS = {vr.encode(): vr for vr in (
    "AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "OB", "OD", "OF", "OL", "OV", "OW",
    "PN", "SH", "SL", "SQ", "SS", "ST", "SV", "TM", "UC", "UI", "UL", "UN", "UR", "US", "UT", "UV")}
_LONG_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"})
_STRING_VRS = frozenset({"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UC", "UI",
                         "UR", "UT"})
_SPLIT_STRIP_WHOLE = frozenset({"AS", "CS", "DA", "DT", "TM", "UI", "DS", "IS"})  # pydicom multi_string
_SPLIT_STRIP_EACH = frozenset({"LO", "SH", "UC"})  # pydicom convert_text
_SINGLE = frozenset({"LT", "ST", "UT"})  # pydicom convert_single_string
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})
_PAD_NUL = frozenset({"UI", "OB", "UN"})
_DUMMY_PACKED = {"US": "<H", "SS": "<h", "UL": "<I", "SL": "<i", "UV": "<Q", "SV": "<q", "FL": "<f", "FD": "<d"}
_VALID_UID = re.compile(r"(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*")

_HEADER_2 = struct.Struct("<HH2sH")
_HEADER_4 = struct.Struct("<HH2sHI")
_TAG_LENGTH = struct.Struct("<HHI")
_US = struct.Struct("<H")
_UL = struct.Struct("<I")
_PREAMBLE = b"\x00" * 128 + b"DICM"


class Refused(Exception):
    """An input over a bound (sequence depth, element length): quarantined here, no other path tries it."""

    def __init__(self, reason: QuarantineReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(slots=True)
class Element:
    """One encoded data element: where its header starts, where its value starts and ends."""

    tag: int
    vr: str
    start: int
    value_start: int
    end: int
    items: tuple[tuple[Element, ...], ...] | None = None  # sequences


@dataclass(frozen=True)
class Parsed:
    data: bytes
    transfer_syntax: str
    media_storage_sop_instance_uid: str | None
    elements: tuple[Element, ...]
    top: Mapping[int, Element]


# ------------------------------------------------------------------------------------- path interface


def prepare(data: bytes, rules: Rules, provider_override: str | None) -> Prepared[Parsed]:
    """The instance parsed, with its provider, identifiers and MAC messages; :class:`Unsupported` otherwise."""
    try:
        parsed = parse(data)
    except Refused as err:
        return InstanceResult(Status.QUARANTINED, provider_override or "unknown", err.reason, str(err))
    except DEID_ERRORS as err:
        raise Unsupported(f"{type(err).__name__}: {err}") from err
    try:
        provider = choose_provider(provider_override, lambda tag: _single(parsed.data, parsed.top.get(tag)))
        found = identifiers(parsed, rules)
        return Prepared(parsed, provider, found, hmac_messages(parsed, provider, found))
    except DEID_ERRORS as err:
        raise Unsupported(f"{type(err).__name__}: {err}") from err


def finish(prepared: Prepared[Parsed], rules: Rules, digests: Mapping[bytes, bytes]) -> InstanceResult:
    """The rewrite and the blocking scan; :class:`Unsupported` when the dataset path must take over."""
    parsed = prepared.instance
    try:
        out = rewrite(parsed, rules, digests, prepared.provider, prepared.identifiers)
    except DEID_ERRORS as err:
        raise Unsupported(f"{type(err).__name__}: {err}") from err
    uid = original_sop_instance_uid(parsed)
    found = prepared.identifiers
    hits = scan_bytes(out.header, found.tokens)
    if hits:  # rare: only then is it worth placing the dates this path shifted
        hits = excluding_shifted_dates(out.header, hits, found.dates, out.shifted())
    leaks = sorted({hit.token for hit in hits})
    if leaks:
        return InstanceResult.leaked(prepared.provider, uid, leaks)
    return InstanceResult.released(prepared.provider, uid, out.parts,
                                   f"{out.study_uid}/{out.series_uid}/{out.sop_uid}.dcm")


# ---------------------------------------------------------------------------------------------- parse


def _parse_dataset(data: bytes, pos: int, end: int, delimited: bool,
                   depth: int = 0) -> tuple[tuple[Element, ...], int]:
    """Elements from ``pos`` to ``end`` (or to an item delimiter when ``delimited``), inside ``depth``
    sequences; :class:`Refused` past :data:`MAX_SEQUENCE_DEPTH` or for a value over :data:`MAX_ELEMENT_BYTES`."""
    elements: list[Element] = []
    last = -1
    unpack_tag_length = _TAG_LENGTH.unpack_from
    while pos < end:
        if pos + 8 > end:
            raise Unsupported("element header past the end")
        start = pos
        group, number, length4 = unpack_tag_length(data, pos)
        tag = group << 16 | number
        if tag == ITEM_DELIMITER and delimited:
            return tuple(elements), pos + 8
        if group == 0xFFFE or tag <= last:
            raise Unsupported("delimiter or element out of order")
        last = tag
        vr = _VRS.get(data[pos + 4 : pos + 6])
        if vr is None:
            raise Unsupported("unknown VR")
        if vr in _LONG_VRS:
            if pos + 12 > end:
                raise Unsupported("element header past the end")
            (length,) = _UL.unpack_from(data, pos + 8)
            value_start = pos + 12
        else:
            length = length4 >> 16
            value_start = pos + 8
        if vr == "SQ" and depth >= MAX_SEQUENCE_DEPTH:
            raise Refused(QuarantineReason.SEQUENCE_TOO_DEEP,
                          f"sequences nested deeper than {MAX_SEQUENCE_DEPTH} levels")
        if length == UNDEFINED:
            if vr != "SQ":
                raise Unsupported("undefined length outside a sequence")
            items, pos = _parse_items(data, value_start, end, True, depth + 1)
            elements.append(Element(tag, vr, start, value_start, pos, items))
            continue
        if length > MAX_ELEMENT_BYTES and tag != PIXEL_DATA and vr != "SQ":
            raise Refused(QuarantineReason.ELEMENT_TOO_LONG, f"a value of {length} bytes, over {MAX_ELEMENT_BYTES}")
        value_end = value_start + length
        if value_end > end or length & 1:
            raise Unsupported("odd length or value past the end")
        items = _parse_items(data, value_start, value_end, False, depth + 1)[0] if vr == "SQ" else None
        if vr in _STRING_VRS:
            text = data[value_start:value_end]
            if not text.isascii() or b"\x1b" in text:
                raise Unsupported("non-ASCII text or escape sequences")
        elements.append(Element(tag, vr, start, value_start, value_end, items))
        pos = value_end
    if delimited:
        raise Unsupported("item without delimiter")
    return tuple(elements), pos


def _parse_items(data: bytes, pos: int, end: int, delimited: bool,
                 depth: int) -> tuple[tuple[tuple[Element, ...], ...], int]:
    items = []
    while pos < end:
        if pos + 8 > end:
            raise Unsupported("item header past the end")
        group, number, length = _TAG_LENGTH.unpack_from(data, pos)
        tag = group << 16 | number
        if tag == SEQUENCE_DELIMITER and delimited:
            return tuple(items), pos + 8
        if tag != ITEM:
            raise Unsupported("not an item")
        if length == UNDEFINED:
            elements, pos = _parse_dataset(data, pos + 8, end, True, depth)
        else:
            item_end = pos + 8 + length
            if item_end > end:
                raise Unsupported("item past the end")
            elements, _ = _parse_dataset(data, pos + 8, item_end, False, depth)
            pos = item_end
        items.append(elements)
    if delimited:
        raise Unsupported("sequence without delimiter")
    return tuple(items), pos


def _text(data: bytes, element: Element) -> str:
    return data[element.value_start : element.end].decode("ascii")


def _single(data: bytes, element: Element | None) -> str:
    """A single-valued string as pydicom gives it, stripped; several values are not handled here."""
    if element is None:
        return ""
    text = _text(data, element)
    if "\\" in text:
        raise Unsupported("multi-valued attribute where one value is expected")
    return text.rstrip("\x00 ")


def _coding_scheme(data: bytes, elements: tuple[Element, ...]) -> str | None:
    """The Coding Scheme Designator among an item's ``elements`` (for the rule on local Code Meanings)."""
    for element in elements:
        if element.tag == CODING_SCHEME_DESIGNATOR:
            if element.vr != "SH":
                raise Unsupported("Coding Scheme Designator of another VR")
            return _single(data, element)
    return None


def _us(data: bytes, element: Element | None, default: int | None = None) -> int:
    if element is None or element.end == element.value_start:
        if default is None:
            raise Unsupported("missing image attribute")
        return default
    if element.vr != "US" or element.end - element.value_start != 2:
        raise Unsupported("image attribute not a single US")
    return _US.unpack_from(data, element.value_start)[0]


def parse(data: bytes) -> Parsed:
    """Validate and index an instance the byte-level path can release; :class:`Unsupported` otherwise."""
    if len(data) < 140 or data[128:132] != b"DICM":
        raise Unsupported("no preamble")
    pos = 132
    meta: dict[int, Element] = {}
    while pos + 8 <= len(data) and data[pos : pos + 2] == b"\x02\x00":
        group, number, length4 = _TAG_LENGTH.unpack_from(data, pos)
        vr = _VRS.get(data[pos + 4 : pos + 6])
        if vr is None or vr == "SQ":
            raise Unsupported("file meta")
        if vr in _LONG_VRS:
            (length,) = _UL.unpack_from(data, pos + 8)
            value_start = pos + 12
        else:
            length = length4 >> 16
            value_start = pos + 8
        if length == UNDEFINED or value_start + length > len(data):
            raise Unsupported("file meta")
        meta[group << 16 | number] = Element(group << 16 | number, vr, pos, value_start, value_start + length)
        pos = value_start + length
    ts_element = meta.get(0x00020010)
    if ts_element is None or ts_element.vr != "UI":
        raise Unsupported("no transfer syntax")
    transfer_syntax = data[ts_element.value_start : ts_element.end].decode("latin-1").rstrip("\x00 ")
    if transfer_syntax != EXPLICIT_VR_LITTLE_ENDIAN:
        raise Unsupported("transfer syntax")
    media_uid = meta.get(0x00020003)
    media_uid_text = None
    if media_uid is not None:
        if media_uid.vr != "UI" or not data[media_uid.value_start : media_uid.end].isascii():
            raise Unsupported("media storage SOP instance UID")
        media_uid_text = _text(data, media_uid)
    elements, _ = _parse_dataset(data, pos, len(data), False)
    top = {e.tag: e for e in elements}
    _validate(data, elements, top)
    return Parsed(data, transfer_syntax, media_uid_text, elements, top)


def _validate(data: bytes, elements: tuple[Element, ...], top: Mapping[int, Element]) -> None:
    """What :func:`radlake.dicom_io.read_part10` and the burned-in guard check, for a release."""
    pixel = top.get(PIXEL_DATA)
    if pixel is None or pixel.vr not in ("OB", "OW"):
        raise Unsupported("no native pixel data")
    sop_class = _single(data, top.get(0x00080016))
    if sop_class == MEDIA_STORAGE_DIRECTORY or DIRECTORY_RECORD_SEQUENCE in top:
        raise Unsupported("DICOMDIR")
    for tag in (0x00080016, 0x00080018, 0x0020000D, 0x0020000E):
        element = top.get(tag)
        value = _single(data, element) if element is not None and element.vr == "UI" else ""
        if not value or len(value) > 64 or _VALID_UID.fullmatch(value) is None:
            raise Unsupported("required UID")
    if 0x7FE00008 in top or 0x7FE00009 in top:
        raise Unsupported("float pixel data")
    frames_element = top.get(0x00280008)
    frames_text = _single(data, frames_element) if frames_element is not None else ""
    if frames_element is not None and frames_element.vr != "IS":
        raise Unsupported("number of frames")
    try:
        frames = int(frames_text) if frames_text.strip() else 1
    except ValueError as err:
        raise Unsupported("number of frames") from err
    expected = (_us(data, top.get(0x00280010)) * _us(data, top.get(0x00280011))
                * (_us(data, top.get(0x00280002), 1) or 1) * (frames or 1) * _us(data, top.get(0x00280100))) // 8
    if pixel.end - pixel.value_start < expected or pixel.end == pixel.value_start:
        raise Unsupported("pixel data shorter than the image attributes")
    flag = _single(data, top.get(0x00280301)).strip().upper()
    if flag == "YES":
        raise Unsupported("burned-in annotation")
    if flag != "NO" and (sop_class in HIGH_RISK_SOP_CLASSES
                         or _single(data, top.get(0x00080060)).upper() in HIGH_RISK_MODALITIES):
        raise Unsupported("burned-in annotation unknown on a high-risk class")
    charset = top.get(SPECIFIC_CHARACTER_SET)
    if charset is not None and "2022" in _text(data, charset):
        raise Unsupported("code extensions")


def original_sop_instance_uid(parsed: Parsed) -> str:
    return _single(parsed.data, parsed.top.get(0x00080018))


def patient_id(parsed: Parsed) -> str:
    return _single(parsed.data, parsed.top.get(0x00100020))


# ------------------------------------------------------------------------------------- values, tokens


def _value(data: bytes, element: Element) -> object:
    """The element's value as pydicom converts it (for the VRs whose values carry tokens)."""
    vr = element.vr
    raw = data[element.value_start : element.end]
    if vr in _BINARY_VRS:
        return raw
    text = raw.decode("ascii")
    if vr in _SPLIT_STRIP_WHOLE:
        parts = text.rstrip(" \x00").split("\\")
    elif vr in _SPLIT_STRIP_EACH:
        parts = [part.rstrip("\x00 ") for part in text.split("\\")]
    elif vr == "PN":
        parts = text.rstrip("\x00 ").split("\\")
    elif vr == "AE":
        parts = [part.strip() for part in text.split("\\")]
    elif vr in _SINGLE:
        return text.rstrip("\x00 ")
    elif vr == "UR":
        return text.rstrip()
    else:
        raise Unsupported(f"value of VR {vr}")
    return parts[0] if len(parts) == 1 else parts


def _check_un(data: bytes, element: Element, siblings: Mapping[int, Element]) -> None:
    """pydicom gives an ``UN`` element the VR of its dictionary (the private one when its creator is present)."""
    if not element.tag >> 16 & 1:
        if _public_un_is_converted(element.tag):
            raise Unsupported("UN element of a known public attribute")
        return
    number = element.tag & 0xFFFF
    if 0x10 <= number < 0x100 or (number & 0xFF00 and (element.tag & 0xFFFF0000 | number >> 8) in siblings):
        raise Unsupported("private UN element with a creator")


@lru_cache(maxsize=1024)
def _public_un_is_converted(tag: int) -> bool:
    try:
        return dictionary_VR(tag) != "UN"
    except KeyError:
        return False


def identifiers(parsed: Parsed, rules: Rules) -> Identifiers:
    """As :func:`radlake.deid.verification.collect_identifiers`, from the encoded elements."""
    strong: set[str] = set()
    weak: set[str] = set()
    kept: set[str] = set()
    dates: set[str] = set()
    uids: list[str] = []
    _collect(parsed.data, parsed.elements, parsed.top, rules, strong, weak, kept, dates, uids, descriptor_tags())
    return identifiers_from_parts(strong, weak, kept, dates, uids)


def _collect(data: bytes, elements: tuple[Element, ...], siblings: Mapping[int, Element] | None, rules: Rules,
             strong: set[str], weak: set[str], kept: set[str], dates: set[str], uids: list[str] | None,
             descriptors: frozenset[int]) -> None:
    if siblings is None:
        siblings = {e.tag: e for e in elements}
    for element in elements:
        tag, vr = element.tag, element.vr
        if vr == "UN":
            _check_un(data, element, siblings)
        if tag >> 16 & 1:
            if vr == "SQ":
                for item in element.items or ():
                    _collect(data, item, None, rules, weak, weak, kept, dates, None, descriptors)
            elif tag & 0xFFFF >= 0x1000:
                tokens: Iterable[str] = value_tokens(vr, _value(data, element))
                if vr == "DA" or vr == "DT":
                    tokens = tuple(tokens)
                    dates.update(tokens)
                weak.update(tokens)
            continue
        if tag == PIXEL_DATA:
            continue
        action = rules.action(tag)
        if vr == "SQ":
            removed = action is Action.REMOVE or action is Action.ZERO
            for item in element.items or ():
                _collect(data, item, None, rules, strong, weak, set() if removed else kept, dates,
                         None if removed else uids, descriptors)
            continue
        if action in REMOVING_ACTIONS or (action is Action.CLEAN and (vr == "DA" or vr == "DT")):
            value = _value(data, element) if vr in _STRING_VRS or vr in _BINARY_VRS else None
            tokens = value_tokens(vr, value)
            if vr == "DA" or vr == "DT":  # as verification.date_tokens, inline on the hot path
                tokens = tuple(tokens)
                dates.update(tokens)
            (weak if tag in descriptors else strong).update(tokens)
            if uids is not None and vr == "UI" and action in (Action.UID, Action.DUMMY):
                uids.extend(uid_values(value))
        elif (action is None or action is Action.KEEP) and vr in TEXT_VRS:
            kept.update(kept_text_parts(data[element.value_start : element.end].decode("utf-8", "replace")))


def hmac_messages(parsed: Parsed, provider: str, found: Identifiers) -> list[bytes]:
    """As :func:`radlake.deid.dataset_path.hmac_messages`, from the encoded elements."""
    media_uid = parsed.media_storage_sop_instance_uid
    media_uids = uid_values(_split_ui(media_uid)) if media_uid is not None else ()
    return build_hmac_messages(provider, patient_id(parsed), found.uids, media_uids)


def _split_ui(text: str) -> str | list[str]:
    parts = text.rstrip(" \x00").split("\\")
    return parts[0] if len(parts) == 1 else parts


# -------------------------------------------------------------------------------------------- rewrite


@dataclass(frozen=True)
class Rewritten:
    parts: tuple[bytes, bytes | memoryview]  # the encoded file: header, then the pixel data element as it came
    header: bytes  # the encoded bytes before the pixel data element, for the verification scan
    study_uid: str
    series_uid: str
    sop_uid: str
    shifted: Callable[[], list[ShiftedSpan]]  # where in ``header`` the dates this path shifted are


# The dates shifted in one dataset or item, by the tag of the output element holding them; each span is
# relative to that element's encoded bytes.
Shifted = dict[int, list[ShiftedSpan]]


def rewrite(parsed: Parsed, rules: Rules, digests: Mapping[bytes, bytes], provider: str,
            found: Identifiers) -> Rewritten:
    """The de-identified Part-10 bytes, as :func:`radlake.deid.dataset_path.deidentify` and the encoder make them."""
    ctx = InstanceContext(rules, digests, *pseudonym_and_offset(rules, digests, provider, patient_id(parsed)),
                          found.tokens, provider)
    uids: dict[int, str] = {}
    shifted: Shifted = {}
    chunks = _transform(parsed.data, parsed.elements, parsed.top, ctx, uids, shifted)
    for tag, chunk in _encoded_method_elements(rules.profile.name, rules.profile.options):
        chunks[tag] = chunk
        shifted.pop(tag, None)
    pixel = chunks.pop(PIXEL_DATA, None)
    if pixel is None or max(chunks) > PIXEL_DATA:
        raise Unsupported("pixel data not kept, or elements after it in the output")
    tags = sorted(chunks)
    body = [chunks[tag] for tag in tags]
    try:
        sop_class, sop_instance = uids[0x00080016], uids[0x00080018]
        study, series = uids[0x0020000D], uids[0x0020000E]
    except KeyError as err:
        raise Unsupported("a required UID is not in the output") from err
    meta = _file_meta(sop_class, sop_instance, parsed.transfer_syntax)
    if any("\\" in uid for uid in (sop_class, sop_instance, study, series)):
        raise Unsupported("multi-valued UID in the output")
    header = b"".join([_PREAMBLE, meta, *body])
    placed = partial(_placed, tags, chunks, shifted, len(_PREAMBLE) + len(meta))  # placed when the scan asks
    return Rewritten((header, pixel), header, study, series, sop_instance, placed)


def _placed(tags: list[int], chunks: Mapping[int, bytes | memoryview], shifted: Shifted,
            base: int) -> list[ShiftedSpan]:
    """The spans of ``shifted`` where the ``chunks`` of ``tags`` are written one after the other from ``base``."""
    spans = []
    pos = base
    for tag in tags:
        for start, end, original in shifted.get(tag, ()):
            spans.append((pos + start, pos + end, original))
        pos += len(chunks[tag])
    return spans


def _transform(data: bytes, elements: tuple[Element, ...], siblings: Mapping[int, Element] | None,
               ctx: InstanceContext, uids: dict[int, str] | None, shifted: Shifted) -> dict[int, bytes | memoryview]:
    """Encoded output elements by tag; ``uids`` receives the top level's output UID values, ``shifted`` the
    dates this level's elements shifted."""
    rules = ctx.rules
    view = memoryview(data)
    out: dict[int, bytes | memoryview] = {}
    private: list[Element] = []
    for element in elements:
        tag, vr = element.tag, element.vr
        if tag >> 16 & 1:
            private.append(element)
            continue
        if not tag & 0xFFFF:
            continue
        action = rules.action(tag)
        if action is None and (vr in FREE_TEXT_VRS or tag == CODE_MEANING):
            action = rules.unlisted_action(tag, vr, partial(_coding_scheme, data, elements))
        if action is Action.REMOVE:
            continue
        if (action is None or action is Action.KEEP) and vr != "SQ":
            out[tag] = view[element.start : element.end]
            if uids is not None and vr == "UI":
                uids[tag] = _text(data, element).rstrip("\x00 ")
            continue
        encoded = _apply(data, element, action, ctx, uids, shifted)
        if encoded is not None:
            out[tag] = encoded
    if private and retains_safe_private(rules):
        out.update(_safe_private(data, private, siblings or {e.tag: e for e in elements}, rules))
    return out


def _apply(data: bytes, element: Element, action: Action | None, ctx: InstanceContext,
           uids: dict[int, str] | None, shifted: Shifted) -> bytes | None:
    tag, vr = element.tag, element.vr
    if vr == "SQ":
        if action is Action.ZERO:
            return _encode(tag, vr, b"")
        items = []
        spans: list[ShiftedSpan] = []
        pos = 12  # the sequence's header: SQ has a 4-byte length
        for item in element.items or ():
            inner: Shifted = {}
            chunks = _transform(data, item, None, ctx, None, inner)
            tags = sorted(chunks)
            encoded = b"".join([chunks[t] for t in tags])
            if inner:
                spans += _placed(tags, chunks, inner, pos + 8)
            items.append(_TAG_LENGTH.pack(0xFFFE, 0xE000, len(encoded)) + encoded)
            pos += 8 + len(encoded)
        if spans:
            shifted[tag] = spans
        return _encode(tag, vr, b"".join(items))
    if action is Action.ZERO:
        return _encode(tag, vr, b"")
    if action is Action.UID or (action is Action.DUMMY and vr == "UI"):
        if vr != "UI":
            raise Unsupported(f"U on VR {vr}")
        mapped = ctx.new_uids(uid_values(_value(data, element)))
        if uids is not None and len(mapped) == 1:
            uids[tag] = mapped[0]
        elif uids is not None:
            uids.pop(tag, None)
        return _encode_strings(tag, vr, mapped)
    if action is Action.PSEUDONYM:
        if vr not in CLEANED_TEXT_VRS or vr == "AE":
            raise Unsupported(f"P on VR {vr}")
        return _encode_strings(tag, vr, [ctx.pseudonym])
    if action is Action.DUMMY:
        if vr in _DUMMY_PACKED:
            return _encode(tag, vr, struct.pack(_DUMMY_PACKED[vr], DUMMY_BY_VR[vr]))
        if vr == "AT":
            return _encode(tag, vr, b"\x00\x00\x00\x00")
        if vr in ("OB", "OW", "UN"):
            return _encode(tag, vr, b"\x00\x00")
        if vr not in _STRING_VRS:
            raise Unsupported(f"D on VR {vr}")
        return _encode_strings(tag, vr, [str(DUMMY_BY_VR.get(vr, DUMMY_TEXT))])
    if action is Action.CLEAN:
        if vr == "DA" or vr == "DT":
            value = _value(data, element)
            pairs = ctx.shifted_dates(value if isinstance(value, list) else [value])
            if pairs:
                spans, pos = [], 8  # DA and DT have a 2-byte length: the value follows 8 bytes of header
                for original, moved in pairs:
                    spans.append((pos, pos + len(moved), original))
                    pos += len(moved) + 1  # and a backslash
                shifted[tag] = spans
            return _encode_strings(tag, vr, [moved for _, moved in pairs])
        if vr in CLEANED_TEXT_VRS:
            value = _value(data, element)
            return _encode_strings(tag, vr, ctx.cleaned_texts(value if isinstance(value, list) else [value], vr))
    # C on other VRs and K/None (private elements on the allow-list) keep the element
    if uids is not None and vr == "UI":
        uids[tag] = _text(data, element).rstrip("\x00 ")
    return bytes(data[element.start : element.end])


def _encode_strings(tag: int, vr: str, values: list[str]) -> bytes:
    try:
        value = "\\".join(values).encode("ascii")
    except UnicodeEncodeError as err:
        raise Unsupported("non-ASCII replacement") from err
    if len(value) & 1:
        value += b"\x00" if vr in _PAD_NUL else b" "
    return _encode(tag, vr, value)


def _encode(tag: int, vr: str, value: bytes) -> bytes:
    if vr in _LONG_VRS:
        return _HEADER_4.pack(tag >> 16, tag & 0xFFFF, vr.encode(), 0, len(value)) + value
    if len(value) > 0xFFFF:
        raise Unsupported("value too long for its VR")
    return _HEADER_2.pack(tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


def _safe_private(data: bytes, private: list[Element], siblings: Mapping[int, Element],
                  rules: Rules) -> dict[int, bytes]:
    """Allow-listed private elements with their creators, as the dataset path keeps them."""

    def creator_name(creator: Element, element: Element) -> str:
        if creator.vr not in ("LO", "UN") or element.vr in ("SQ", "UN"):
            raise Unsupported("allow-listed private element or creator of this VR")
        return _single(data, creator).strip()

    kept: dict[int, bytes] = {}
    for _, creator, element in safe_private(rules, ((e.tag, e) for e in private), siblings.get, creator_name):
        kept[creator.tag] = bytes(data[creator.start : creator.end])
        kept[element.tag] = bytes(data[element.start : element.end])
    return kept


@lru_cache(maxsize=16)
def _encoded_method_elements(name: str, options: frozenset[Option]) -> list[tuple[int, bytes]]:
    """PatientIdentityRemoved, DeidentificationMethod(+CodeSequence) and the temporal flag, encoded once
    per profile by pydicom's writer, exactly as the dataset path writes them."""
    ds = Dataset()
    for element in method_elements(Profile(name=name, options=options)):
        ds.add(element)
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, False
    write_dataset(fp, ds)
    encoded = fp.getvalue()
    elements, _ = _parse_dataset(encoded, 0, len(encoded), False)
    return [(e.tag, encoded[e.start : e.end]) for e in elements]


def _file_meta(sop_class: str, sop_instance: str, transfer_syntax: str) -> bytes:
    body = b"".join(
        _encode(tag, vr, value) if isinstance(value, bytes) else _encode_strings(tag, vr, [str(value)])
        for tag, vr, value in file_meta_elements(sop_class, sop_instance, transfer_syntax)
    )
    return _encode(0x00020000, "UL", _UL.pack(len(body))) + body
