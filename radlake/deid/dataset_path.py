"""The dataset path: an instance read into a pydicom dataset, Table E.1-1 applied, encoded by pydicom.

It takes every instance: those the byte path (:mod:`radlake.deid.byte_path`) leaves to it, and all
of them when the byte path is off. :func:`prepare` reads and validates the input
(:func:`radlake.dicom_io.read_part10`, the burned-in guard), :func:`finish` de-identifies, encodes and
runs the blocking verification scan (:mod:`radlake.deid.verification`).

De-identification itself is a pure function from (dataset, rules, MACs) to a new dataset, in two
steps so that the keyed-HMAC service can be called once for many instances:

1. :func:`hmac_messages` lists every message whose MAC the instance needs (patient pseudonym, date
   offset, every UID under action ``U``), from one walk over the input
   (:func:`radlake.deid.verification.collect_identifiers`) that also finds its PHI tokens.
2. :func:`deidentify` takes those MACs and builds a new dataset; the input is never modified. It notes
   the tag path of every element whose dates it shifted, for the verification scan's rule on them
   (:func:`verify`).

The table applies at every nesting level: sequences are recursed into unless their action is ``X``
(removed) or ``Z`` (emptied).
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from functools import partial

import pydicom
from pydicom import config
from pydicom.datadict import keyword_for_tag
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from radlake import dicom_io
from radlake.deid.burned_in import check_burned_in
from radlake.deid.confidentiality_profile import (
    CODE_MEANING,
    CODING_SCHEME_DESIGNATOR,
    FREE_TEXT_VRS,
    Action,
    Rules,
)
from radlake.deid.instance_context import (
    CLEANED_TEXT_VRS,
    DUMMY_BY_VR,
    DUMMY_TEXT,
    MEDIA_STORAGE_SOP_INSTANCE_UID,
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
from radlake.deid.path_interface import DEID_ERRORS, Prepared
from radlake.deid.verification import (
    TEXT_VRS,
    Identifiers,
    Tokens,
    collect_identifiers,
    header_bytes,
    holds_date,
    scan_bytes,
    scan_dataset,
)
from radlake.dicom_io import element_vr, uid_values

# (input date, shifted value) per value, by the tag path of the output element (as ``dataset_strings`` writes it)
ShiftedElements = Mapping[str, tuple[tuple[str, str], ...]]


@dataclass(frozen=True)
class Deidentified:
    dataset: Dataset
    tokens: Tokens  # the input's PHI values, for the verification scan
    provider: str
    pseudonym: str
    dates: frozenset[str] = frozenset()  # which of the tokens are input dates
    shifted: ShiftedElements = field(default_factory=dict)  # the elements whose dates were shifted


def prepare(data: bytes, rules: Rules, provider_override: str | None) -> Prepared[Dataset] | InstanceResult:
    """The instance read, with its provider, identifiers and MAC messages; else why it is not released."""
    fallback_provider = provider_override or "unknown"
    read = dicom_io.read_part10(data)
    if not read.ok:
        uid = str(read.dataset.get("SOPInstanceUID", "")) if read.dataset is not None else dicom_io.sop_instance_uid(data)
        return InstanceResult(Status.QUARANTINED, fallback_provider, read.reason, read.message, uid or None)
    ds = read.dataset
    assert ds is not None
    if dicom_io.is_dicomdir(ds):
        return InstanceResult(Status.SKIPPED, fallback_provider, "DICOMDIR", "directory index, not an instance")
    provider = choose_provider(provider_override, lambda tag: str(ds.get(keyword_for_tag(tag), "") or ""))
    uid = str(ds.SOPInstanceUID)
    ok, reason = check_burned_in(ds)
    if not ok:
        return InstanceResult(Status.QUARANTINED, provider, reason, "burned-in annotation guard", uid)
    try:
        identifiers = collect_identifiers(ds, rules)
        messages = hmac_messages(ds, rules, provider, identifiers)
    except DEID_ERRORS as err:
        return InstanceResult.failed(provider, uid, err)
    return Prepared(ds, provider, identifiers, messages)


def finish(prepared: Prepared[Dataset], rules: Rules, digests: Mapping[bytes, bytes]) -> InstanceResult:
    """De-identify, encode and verify; failures quarantine the instance."""
    ds = prepared.instance
    uid = str(ds.SOPInstanceUID)
    try:
        result = deidentify(ds, rules, digests, prepared.provider, prepared.identifiers)
        encoded = encode(result.dataset)
    except DEID_ERRORS as err:
        return InstanceResult.failed(prepared.provider, uid, err)
    leaks = verify(result, encoded)
    if leaks:
        return InstanceResult.leaked(prepared.provider, uid, leaks)
    return InstanceResult.released(prepared.provider, uid, (encoded,), output_path(result.dataset))


def output_path(ds: Dataset) -> str:
    """One folder per pseudonymous study and series."""
    return f"{ds.StudyInstanceUID}/{ds.SeriesInstanceUID}/{ds.SOPInstanceUID}.dcm"


def encode(ds: Dataset) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def verify(result: Deidentified, encoded: bytes) -> list[str]:
    """The blocking scan: tokens of the input found in the output (raw bytes and trailing elements).

    An input date found is looked for again in the output without the elements whose dates were shifted,
    and in each shifted value against its own input date (:mod:`radlake.deid.verification`).
    """
    ds = result.dataset
    pixel = ds.get(0x7FE00010)
    length = len(pixel.value) if pixel is not None and isinstance(pixel.value, bytes) else None
    leaks = _scan(ds, encoded, length, result.tokens)
    dates = leaks & result.dates
    if dates and result.shifted:
        leaks -= dates
        without = _without(ds, result.shifted.keys())
        leaks.update(_scan(without, encode(without), length, Tokens(frozenset(dates))))
        leaks.update(original for pairs in result.shifted.values() for original, value in pairs
                     if original in dates and holds_date(value, original))
    return sorted(leaks)


def _scan(ds: Dataset, encoded: bytes, pixel_data_length: int | None, tokens: Tokens) -> set[str]:
    """``tokens`` found in ``encoded`` (``ds`` encoded) outside the pixel data value, and in the elements after it."""
    hits = scan_bytes(header_bytes(encoded, pixel_data_length), tokens)
    trailing = Dataset()
    for elem in ds:
        if int(elem.tag) > 0x7FE00010:
            trailing.add(elem)
    if len(trailing):
        hits += scan_dataset(trailing, tokens)
    return {hit.token for hit in hits}


def _without(ds: Dataset, paths: Collection[str], path: str = "") -> Dataset:
    """``ds`` without the elements at the tag ``paths``; the other elements shared, sequences rebuilt."""
    out = Dataset()
    for tag in ds.keys():
        where = f"{path}{tag}"
        if where in paths:
            continue
        raw = ds.get_item(tag)
        if element_vr(ds, tag, raw) == "SQ":
            items = [_without(item, paths, f"{where}[{i}].") for i, item in enumerate(ds[tag].value or ())]
            out.add(_new(tag, "SQ", Sequence(items)))
        else:
            out[tag] = raw
    if not path and getattr(ds, "file_meta", None) is not None:
        out.file_meta = ds.file_meta
    return out


def _patient_id(ds: Dataset) -> str:
    return str(ds.get("PatientID", "") or "")


def hmac_messages(ds: Dataset, rules: Rules, provider: str, identifiers: Identifiers | None = None) -> list[bytes]:
    """The messages whose keyed MACs :func:`deidentify` needs for this instance."""
    found = identifiers if identifiers is not None else collect_identifiers(ds, rules)
    meta = getattr(ds, "file_meta", None)
    media_uids: Iterable[str] = ()
    if meta is not None and MEDIA_STORAGE_SOP_INSTANCE_UID in meta:
        media_uids = uid_values(meta[MEDIA_STORAGE_SOP_INSTANCE_UID].value)
    return build_hmac_messages(provider, _patient_id(ds), found.uids, media_uids)


def deidentify(ds: Dataset, rules: Rules, digests: Mapping[bytes, bytes], provider: str,
               identifiers: Identifiers | None = None) -> Deidentified:
    """A new, de-identified dataset (with new file meta) for ``ds``; ``ds`` is left as it was.

    ``identifiers`` is what :func:`hmac_messages` worked from (computed again when not given).
    """
    pseudonym, offset = pseudonym_and_offset(rules, digests, provider, _patient_id(ds))
    found = identifiers if identifiers is not None else collect_identifiers(ds, rules)
    ctx = InstanceContext(rules, digests, pseudonym, offset, found.tokens, provider)
    shifted: dict[str, tuple[tuple[str, str], ...]] = {}
    out = _transform(ds, ctx, shifted)
    for elem in method_elements(rules.profile):
        out.add(elem)
        shifted.pop(str(elem.tag), None)
    out.file_meta = _file_meta(ds, out)
    return Deidentified(out, found.tokens, provider, pseudonym, found.dates, shifted)


def _transform(ds: Dataset, ctx: InstanceContext, shifted: dict[str, tuple[tuple[str, str], ...]],
               path: str = "") -> Dataset:
    """Elements the table keeps are carried over raw (no value conversion); the others are rebuilt.

    ``shifted`` receives the elements whose dates were shifted, by tag path (``path`` is this dataset's)."""
    out = Dataset()
    private: list[BaseTag] = []
    for tag in ds.keys():
        if tag.is_private:
            private.append(tag)
            continue
        if tag.element == 0:  # group length: retired
            continue
        action = ctx.rules.action(tag)
        if action is Action.REMOVE:
            continue
        raw = ds.get_item(tag)
        vr = element_vr(ds, tag, raw) if action is None or action is Action.KEEP else ""
        if action is None and (vr in FREE_TEXT_VRS or tag == CODE_MEANING):
            action = ctx.rules.unlisted_action(int(tag), vr, partial(_coding_scheme, ds))
            if action is Action.REMOVE:
                continue
        if (action is None or action is Action.KEEP) and vr != "SQ":
            out[tag] = raw
            continue
        new = _apply(ds[tag], action, ctx, shifted, path)
        if new is not None:
            out.add(new)
    for elem in _safe_private(ds, private, ctx, shifted, path):
        out.add(elem)
    return out


def _apply(elem: DataElement, action: Action | None, ctx: InstanceContext,
           shifted: dict[str, tuple[tuple[str, str], ...]], path: str) -> DataElement | None:
    vr = elem.VR
    if action is Action.REMOVE:
        return None
    if vr == "SQ":
        if action is Action.ZERO:
            return _new(elem.tag, "SQ", Sequence())
        return _new(elem.tag, "SQ", Sequence([_transform(item, ctx, shifted, f"{path}{elem.tag}[{i}].")
                                              for i, item in enumerate(elem.value or ())]))
    if action is None or action is Action.KEEP:
        return elem
    if action is Action.ZERO:
        return _new(elem.tag, vr, None if vr not in TEXT_VRS | {"DA", "TM", "DT", "UI", "AS"} else "")
    if action is Action.UID or (action is Action.DUMMY and vr == "UI"):
        return _new(elem.tag, vr, _one_or_list(ctx.new_uids(uid_values(elem.value))))
    if action is Action.PSEUDONYM:
        return _new(elem.tag, vr, ctx.pseudonym)
    if action is Action.DUMMY:
        return _new(elem.tag, vr, DUMMY_BY_VR.get(vr, DUMMY_TEXT))
    # Action.CLEAN
    if vr in ("DA", "DT"):
        pairs = ctx.shifted_dates(elem.value if isinstance(elem.value, MultiValue | list | tuple) else [elem.value])
        if pairs:
            shifted[f"{path}{elem.tag}"] = tuple(pairs)
        return _new(elem.tag, vr, _shift_dates([moved for _, moved in pairs], vr))
    if vr in CLEANED_TEXT_VRS:
        return _new(elem.tag, vr, _clean_text(elem.value, vr, ctx))
    return elem


def _new(tag: BaseTag, vr: str, value: object) -> DataElement:
    """A replacement element; values are radlake's own, so pydicom's per-value validation is skipped."""
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def _one_or_list(values: list[str]) -> str | list[str]:
    return values[0] if len(values) == 1 else values


def _shift_dates(shifted: list[str], vr: str) -> str | list[str]:
    if vr == "DA" or len(shifted) != 1:
        return shifted[0] if len(shifted) == 1 else (shifted or "")
    return shifted[0]


def _clean_text(value: object, vr: str, ctx: InstanceContext) -> str | list[str]:
    if isinstance(value, MultiValue | list | tuple):
        return ctx.cleaned_texts(value, vr)
    return ctx.cleaned_texts([value], vr)[0]


def _coding_scheme(ds: Dataset) -> str | None:
    """The Coding Scheme Designator of the item ``ds`` (for the rule on local Code Meanings)."""
    elem = ds.get(CODING_SCHEME_DESIGNATOR)
    return None if elem is None or elem.value is None else str(elem.value)


def _safe_private(ds: Dataset, private: list[BaseTag], ctx: InstanceContext,
                  shifted: dict[str, tuple[tuple[str, str], ...]], path: str) -> list[DataElement]:
    """Private elements on the profile's allow-list (Retain Safe Private), with their creators."""
    if not retains_safe_private(ctx.rules):
        return []
    kept: dict[int, DataElement] = {}
    pairs = ((tag, ds[tag]) for tag in private)
    for creator_tag, creator, elem in safe_private(ctx.rules, pairs, ds.get, _creator_name):
        new = _apply(elem, Action.KEEP, ctx, shifted, path)
        if new is not None:
            kept[creator_tag] = creator
            kept[int(elem.tag)] = new
    return [kept[tag] for tag in sorted(kept)]


def _creator_name(creator: DataElement, _element: DataElement) -> str:
    return str(creator.value).strip()


def _file_meta(source: Dataset, out: Dataset) -> FileMetaDataset:
    """Fresh file meta: nothing from the source's meta but its transfer syntax."""
    meta = FileMetaDataset()
    elements = file_meta_elements(out.SOPClassUID, out.SOPInstanceUID, source.file_meta.TransferSyntaxUID)
    for tag, vr, value in elements:
        meta.add_new(tag, vr, value)
    return meta
