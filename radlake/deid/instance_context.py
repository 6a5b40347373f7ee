"""What both de-identification paths decide alike for one instance, whichever of them encodes it.

The dataset path (:mod:`radlake.deid.dataset_path`) holds an instance as a pydicom dataset, the byte
path (:mod:`radlake.deid.byte_path`) as encoded elements; both must release the same values. The
choices that do not depend on how the instance is held are made here, once: the provider that issued
the patient ID, the messages whose keyed MACs an instance needs, the context of one instance
(:class:`InstanceContext`: pseudonym, date offset, MACs, PHI tokens) and the replacement values it
gives, the private elements the Retain Safe Private option keeps, the de-identification method
attributes and the output's file meta.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from radlake.deid.confidentiality_profile import (
    BASIC_PROFILE_CODE,
    OPTION_CODES,
    STANDARD_EDITION,
    TABLE_VERSION,
    Action,
    Option,
    Profile,
    Rules,
)
from radlake.deid.descriptor_cleaning import MAX_LENGTH, clean_descriptor
from radlake.deid.pseudonyms import (
    date_offset_from_digest,
    date_offset_message,
    patient_message,
    pseudonym_from_digest,
    uid_from_digest,
    uid_message,
)
from radlake.deid.verification import TEXT_VRS, Tokens, redact

IMPLEMENTATION_CLASS_UID = "2.25.160473389270128463755431358720893471771"
IMPLEMENTATION_VERSION_NAME = "RADLAKE_DEID_1"
MEDIA_STORAGE_SOP_INSTANCE_UID = 0x00020003
PROVIDER_TAGS = (0x00100021, 0x00080080)  # Issuer of Patient ID, Institution Name

CLEANED_TEXT_VRS = TEXT_VRS - {"CS"}  # the VRs whose values action C cleans as free text
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

CreatorT = TypeVar("CreatorT")
ElementT = TypeVar("ElementT")


def choose_provider(override: str | None, value_of: Callable[[int], str]) -> str:
    """The provider that issued the patient ID: given explicitly, else Issuer of Patient ID, else institution.

    ``value_of`` gives the instance's value of a tag (empty when absent); it is asked only as far as needed.
    """
    if override:
        return override
    for tag in PROVIDER_TAGS:
        value = value_of(tag).strip()
        if value:
            return value
    return "unknown"


def build_hmac_messages(provider: str, patient_id: str, uids: Iterable[str],
                        media_storage_uids: Iterable[str]) -> list[bytes]:
    """The messages whose keyed MACs one instance needs: its patient's pseudonym and date offset, then
    every UID it replaces (those under ``U``/``D`` in the dataset, then the file meta's Media Storage SOP
    Instance UID)."""
    messages = [patient_message(provider, patient_id), date_offset_message(provider, patient_id)]
    messages += [uid_message(provider, uid) for uid in uids]
    messages += [uid_message(provider, uid) for uid in media_storage_uids]
    return messages


def pseudonym_and_offset(rules: Rules, digests: Mapping[bytes, bytes], provider: str,
                         patient_id: str) -> tuple[str, int]:
    """The patient's pseudonym and date offset, from the MACs of :func:`build_hmac_messages`."""
    pseudonym = pseudonym_from_digest(digests[patient_message(provider, patient_id)])
    offset = date_offset_from_digest(
        digests[date_offset_message(provider, patient_id)], rules.profile.max_date_shift_days
    )
    return pseudonym, offset


@dataclass(frozen=True)
class InstanceContext:
    """What de-identifying one instance works from besides the instance itself."""

    rules: Rules
    digests: Mapping[bytes, bytes]
    pseudonym: str
    offset_days: int
    tokens: Tokens  # the input's PHI values: cleaned out of free text
    provider: str  # UIDs are keyed per provider

    def new_uids(self, uids: Iterable[str]) -> list[str]:
        """The ``2.25.`` UIDs that replace ``uids``."""
        return [uid_from_digest(self.digests[uid_message(self.provider, uid)]) for uid in uids]

    def shifted_dates(self, values: Iterable[object]) -> list[tuple[str, str]]:
        """(input date, shifted value) for DA or DT values moved back by the patient's offset; values that
        are not dates are dropped. The input date is the value's token (its first 8 characters), the one
        the verification checks the shifted value against."""
        shifted = []
        for value in values:
            text = str(value or "")
            moved = shift_date(text, self.offset_days)
            if moved:
                shifted.append((text.strip()[:8], moved))
        return shifted

    def cleaned_texts(self, values: Iterable[object], vr: str) -> list[str]:
        """Free-text values of VR ``vr``: the input's PHI tokens and date- or number-like runs removed, then
        what the descriptor cleaner does not know to be clinical (:func:`clean_descriptor`)."""
        vocabulary, limit = self.rules.vocabulary, MAX_LENGTH.get(vr)
        return [clean_descriptor(redact(str(v or ""), self.tokens), vocabulary, limit) for v in values]


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


def retains_safe_private(rules: Rules) -> bool:
    """Whether the profile keeps the private elements on its allow-list (Retain Safe Private)."""
    return rules.private is Action.CLEAN and bool(rules.safe_private)


def safe_private(
    rules: Rules,
    private: Iterable[tuple[int, ElementT]],
    creator_of: Callable[[int], CreatorT | None],
    creator_name: Callable[[CreatorT, ElementT], str],
) -> Iterator[tuple[int, CreatorT, ElementT]]:
    """(creator tag, creator, element) for each private element on the profile's allow-list.

    ``private`` gives the (tag, element) of the private elements of one dataset or item, in tag order;
    ``creator_of`` the element at a tag of the same dataset, if any; ``creator_name`` the name a Private
    Creator element holds (a path may refuse a pair there). An element outside a reserved block, or
    whose block has no creator, is never kept.
    """
    for tag, element in private:
        group, number = tag >> 16, tag & 0xFFFF
        block = number >> 8
        if number < 0x1000 or block < 0x10:
            continue
        creator_tag = group << 16 | block
        creator = creator_of(creator_tag)
        if creator is None:
            continue
        if (group, creator_name(creator, element), number & 0xFF) in rules.safe_private:
            yield creator_tag, creator, element


def method_elements(profile: Profile) -> list[DataElement]:
    """PatientIdentityRemoved, DeidentificationMethod(+CodeSequence), LongitudinalTemporalInformationModified."""
    options = profile.options
    method = [f"radlake {profile.name}"[:64], f"PS3.15 {STANDARD_EDITION} Table E.1-1 ({TABLE_VERSION})"[:64]]
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


def file_meta_elements(sop_class_uid: str, sop_instance_uid: str,
                       transfer_syntax: str) -> list[tuple[int, str, object]]:
    """The output's file meta as (tag, VR, value), in tag order: nothing of the input's meta but its transfer syntax."""
    return [
        (0x00020001, "OB", b"\x00\x01"),  # File Meta Information Version
        (0x00020002, "UI", sop_class_uid),  # Media Storage SOP Class UID
        (MEDIA_STORAGE_SOP_INSTANCE_UID, "UI", sop_instance_uid),
        (0x00020010, "UI", transfer_syntax),  # Transfer Syntax UID
        (0x00020012, "UI", IMPLEMENTATION_CLASS_UID),
        (0x00020013, "SH", IMPLEMENTATION_VERSION_NAME),
    ]
