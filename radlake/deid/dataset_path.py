"""Applying Table E.1-1 actions to a dataset: a pure function from (dataset, rules, MACs) to a new dataset.

Two steps, so that the keyed-HMAC service can be called once for many instances:

1. :func:`hmac_messages` lists every message whose MAC the instance needs (patient pseudonym, date
   offset, every UID under action ``U``), from one walk over the input
   (:func:`radlake.deid.verification.collect_identifiers`) that also finds its PHI tokens.
2. :func:`deidentify` takes those MACs and builds a new dataset; the input is never modified.

The table applies at every nesting level: sequences are recursed into unless their action is ``X``
(removed) or ``Z`` (emptied).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass

from pydicom import config
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag

from radlake.deid.confidentiality_profile import (
    BASIC_PROFILE_CODE,
    OPTION_CODES,
    STANDARD_EDITION,
    TABLE_VERSION,
    Action,
    Option,
    Rules,
)
from radlake.deid.pseudonyms import (
    date_offset_from_digest,
    date_offset_message,
    patient_message,
    pseudonym_from_digest,
    uid_from_digest,
    uid_message,
)
from radlake.deid.verification import Identifiers, Tokens, collect_identifiers, redact
from radlake.dicom_io import element_vr, uid_values

IMPLEMENTATION_CLASS_UID = "2.25.160473389270128463755431358720893471771"
IMPLEMENTATION_VERSION_NAME = "RADLAKE_DEID_1"
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003

TEXT_VRS = frozenset({"LO", "SH", "LT", "ST", "UT", "UC", "PN", "AE", "UR", "CS"})
DUMMY_TEXT = "ANONYMIZED"
DUMMY_BY_VR: Mapping[str, object] = {
    "DA": "19000101",
    "TM": "000000",
    "DT": "19000101000000",
    "AS": "000Y",
    "IS": "0",
    "DS": "0",
    "US": 0,
    "SS": 0,
    "UL": 0,
    "SL": 0,
    "UV": 0,
    "SV": 0,
    "FL": 0.0,
    "FD": 0.0,
    "AT": 0,
    "OB": b"\x00\x00",
    "OW": b"\x00\x00",
    "UN": b"\x00\x00",
}
_DATE = re.compile(r"^(\d{4})(\d{2})(\d{2})")


@dataclass(frozen=True)
class Deidentified:
    dataset: Dataset
    tokens: Tokens  # the input's PHI values, for the verification scan
    provider: str
    pseudonym: str


def provider_of(ds: Dataset, override: str | None) -> str:
    """The provider that issued the patient ID: given explicitly, else Issuer of Patient ID, else institution."""
    if override:
        return override
    for keyword in ("IssuerOfPatientID", "InstitutionName"):
        value = str(ds.get(keyword, "") or "").strip()
        if value:
            return value
    return "unknown"


def hmac_messages(ds: Dataset, rules: Rules, provider: str, identifiers: Identifiers | None = None) -> list[bytes]:
    """The messages whose keyed MACs :func:`deidentify` needs for this instance."""
    found = identifiers if identifiers is not None else collect_identifiers(ds, rules)
    patient_id = str(ds.get("PatientID", "") or "")
    messages = [patient_message(provider, patient_id), date_offset_message(provider, patient_id)]
    messages += [uid_message(uid) for uid in found.uids]
    meta = getattr(ds, "file_meta", None)
    if meta is not None and MEDIA_STORAGE_SOP_INSTANCE_UID in meta:
        messages += [uid_message(uid) for uid in uid_values(meta[MEDIA_STORAGE_SOP_INSTANCE_UID].value)]
    return messages


@dataclass(frozen=True)
class _Context:
    rules: Rules
    digests: Mapping[bytes, bytes]
    pseudonym: str
    offset_days: int
    tokens: Tokens


def deidentify(ds: Dataset, rules: Rules, digests: Mapping[bytes, bytes], provider: str,
               identifiers: Identifiers | None = None) -> Deidentified:
    """A new, de-identified dataset (with new file meta) for ``ds``; ``ds`` is left as it was.

    ``identifiers`` is what :func:`hmac_messages` worked from (computed again when not given).
    """
    patient_id = str(ds.get("PatientID", "") or "")
    pseudonym = pseudonym_from_digest(digests[patient_message(provider, patient_id)])
    offset = date_offset_from_digest(
        digests[date_offset_message(provider, patient_id)], rules.profile.max_date_shift_days
    )
    tokens = (identifiers if identifiers is not None else collect_identifiers(ds, rules)).tokens
    ctx = _Context(rules, digests, pseudonym, offset, tokens)
    out = _transform(ds, ctx)
    for elem in method_elements(rules):
        out.add(elem)
    out.file_meta = _file_meta(ds, out)
    return Deidentified(out, tokens, provider, pseudonym)


def _transform(ds: Dataset, ctx: _Context) -> Dataset:
    """Elements the table keeps are carried over raw (no value conversion); the others are rebuilt."""
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
        if (action is None or action is Action.KEEP) and element_vr(ds, tag, raw) != "SQ":
            out[tag] = raw
            continue
        new = _apply(ds[tag], action, ctx)
        if new is not None:
            out.add(new)
    for elem in _safe_private(ds, private, ctx):
        out.add(elem)
    return out


def _apply(elem: DataElement, action: Action | None, ctx: _Context) -> DataElement | None:
    vr = elem.VR
    if action is Action.REMOVE:
        return None
    if vr == "SQ":
        if action is Action.ZERO:
            return _new(elem.tag, "SQ", Sequence())
        return _new(elem.tag, "SQ", Sequence([_transform(item, ctx) for item in elem.value or ()]))
    if action is None or action is Action.KEEP:
        return elem
    if action is Action.ZERO:
        return _new(elem.tag, vr, None if vr not in TEXT_VRS | {"DA", "TM", "DT", "UI", "AS"} else "")
    if action is Action.UID or (action is Action.DUMMY and vr == "UI"):
        return _new(elem.tag, vr, _map_uids(elem.value, ctx))
    if action is Action.PSEUDONYM:
        return _new(elem.tag, vr, ctx.pseudonym)
    if action is Action.DUMMY:
        return _new(elem.tag, vr, DUMMY_BY_VR.get(vr, DUMMY_TEXT))
    # Action.CLEAN
    if vr in ("DA", "DT"):
        return _new(elem.tag, vr, _shift_dates(elem.value, ctx.offset_days, vr))
    if vr in TEXT_VRS and vr != "CS":
        return _new(elem.tag, vr, _clean_text(elem.value, ctx.tokens))
    return elem


def _new(tag: BaseTag, vr: str, value: object) -> DataElement:
    """A replacement element; values are radlake's own, so pydicom's per-value validation is skipped."""
    return DataElement(tag, vr, value, validation_mode=config.IGNORE)


def _map_uids(value: object, ctx: _Context) -> str | list[str]:
    mapped = [uid_from_digest(ctx.digests[uid_message(uid)]) for uid in uid_values(value)]
    return mapped[0] if len(mapped) == 1 else mapped


def shift_date(value: str, days: int) -> str:
    """``YYYYMMDD`` (or a DT starting with one) moved back ``days``; anything else becomes empty."""
    text = value.strip()
    match = _DATE.match(text)
    if match is None:
        return ""
    try:
        date = dt.date(int(match[1]), int(match[2]), int(match[3])) - dt.timedelta(days=days)
    except (ValueError, OverflowError):
        return ""
    return date.strftime("%Y%m%d") + text[8:]


def _shift_dates(value: object, days: int, vr: str) -> str | list[str]:
    values = value if isinstance(value, MultiValue | list | tuple) else [value]
    shifted = [shift_date(str(v or ""), days) for v in values]
    shifted = [s for s in shifted if s]
    if vr == "DA" or len(shifted) != 1:
        return shifted[0] if len(shifted) == 1 else (shifted or "")
    return shifted[0]


def _clean_text(value: object, tokens: Tokens) -> str | list[str]:
    if isinstance(value, MultiValue | list | tuple):
        return [redact(str(v or ""), tokens) for v in value]
    return redact(str(value or ""), tokens)


def _safe_private(ds: Dataset, private: list[BaseTag], ctx: _Context) -> list[DataElement]:
    """Private elements on the profile's allow-list (Retain Safe Private), with their creators."""
    rules = ctx.rules
    if rules.private is not Action.CLEAN or not rules.safe_private:
        return []
    kept: dict[int, DataElement] = {}
    for tag in private:
        elem = ds[tag]
        group, element = elem.tag.group, elem.tag.element
        block = element >> 8
        if element < 0x1000 or block < 0x10:
            continue
        creator_tag = (group << 16) | block
        creator = ds.get(creator_tag)
        if creator is None:
            continue
        if (group, str(creator.value).strip(), element & 0xFF) in rules.safe_private:
            new = _apply(elem, Action.KEEP, ctx)
            if new is not None:
                kept[creator_tag] = creator
                kept[int(elem.tag)] = new
    return [kept[tag] for tag in sorted(kept)]


def method_elements(rules: Rules) -> list[DataElement]:
    """PatientIdentityRemoved, DeidentificationMethod(+CodeSequence), LongitudinalTemporalInformationModified."""
    options = rules.profile.options
    method = [f"radlake {rules.profile.name}"[:64], f"PS3.15 {STANDARD_EDITION} Table E.1-1 ({TABLE_VERSION})"[:64]]
    codes = [BASIC_PROFILE_CODE] + [OPTION_CODES[o] for o in sorted(options, key=lambda o: OPTION_CODES[o][0])]
    items = []
    for value, meaning in codes:
        item = Dataset()
        item.CodeValue = value
        item.CodingSchemeDesignator = "DCM"
        item.CodeMeaning = meaning
        items.append(item)
    if Option.RETAIN_LONGITUDINAL_FULL_DATES in options:
        temporal = "UNMODIFIED"
    elif Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in options:
        temporal = "MODIFIED"
    else:
        temporal = "REMOVED"
    return [
        DataElement(0x00120062, "CS", "YES"),  # Patient Identity Removed
        DataElement(0x00120063, "LO", method),  # De-identification Method
        DataElement(0x00120064, "SQ", Sequence(items)),  # De-identification Method Code Sequence
        DataElement(0x00280303, "CS", temporal),  # Longitudinal Temporal Information Modified
    ]


def _file_meta(source: Dataset, out: Dataset) -> FileMetaDataset:
    """Fresh file meta: nothing from the source's meta but its transfer syntax."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = out.SOPClassUID
    meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    meta.TransferSyntaxUID = source.file_meta.TransferSyntaxUID
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta

