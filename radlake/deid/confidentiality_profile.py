"""PS3.15 Annex E: the Basic Application Level Confidentiality Profile, its options, and Table E.1-1.

The table is data (``ps3_15_table_e1_1.csv``, provenance in ``TABLE_E1_1.md``); this module loads it,
applies the options a project selected, and compiles one action per tag (:class:`Rules`).

Combined actions (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) let the standard's user pick by the
attribute's type in the IOD. Without per-IOD type information we take the choice that is valid for
every type: anything offering ``U`` becomes ``U`` (sequences of references keep resolving), else ``D``,
else ``Z``. All are at least as protective as ``X`` for the value itself.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from importlib import resources
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from radlake.deid.descriptor_cleaning import Vocabulary, clinical_vocabulary, is_local_coding_scheme
from radlake.deid.errors import ProfileError

STANDARD_EDITION = "2024b"
TABLE_VERSION = "ps3.15-2024b.1"
TABLE_FILE = "ps3_15_table_e1_1.csv"


class Action(StrEnum):
    """Table E.1-1 action codes, plus ``P`` (radlake: replace with the keyed-HMAC patient pseudonym)."""

    DUMMY = "D"
    ZERO = "Z"
    REMOVE = "X"
    KEEP = "K"
    CLEAN = "C"
    UID = "U"
    PSEUDONYM = "P"


class Option(StrEnum):
    """Options of the Basic profile (PS3.15 E.3); values are the CSV column names."""

    RETAIN_SAFE_PRIVATE = "retain_safe_private"
    RETAIN_UIDS = "retain_uids"
    RETAIN_DEVICE_IDENTITY = "retain_device_identity"
    RETAIN_INSTITUTION_IDENTITY = "retain_institution_identity"
    RETAIN_PATIENT_CHARACTERISTICS = "retain_patient_characteristics"
    RETAIN_LONGITUDINAL_FULL_DATES = "retain_longitudinal_full_dates"
    RETAIN_LONGITUDINAL_MODIFIED_DATES = "retain_longitudinal_modified_dates"
    CLEAN_DESCRIPTORS = "clean_descriptors"
    CLEAN_STRUCTURED_CONTENT = "clean_structured_content"
    CLEAN_GRAPHICS = "clean_graphics"


# PS3.16 CID 7050 "De-identification Method" codes (scheme DCM).
BASIC_PROFILE_CODE = ("113100", "Basic Application Confidentiality Profile")
OPTION_CODES: Mapping[Option, tuple[str, str]] = {
    Option.CLEAN_GRAPHICS: ("113103", "Clean Graphics Option"),
    Option.CLEAN_STRUCTURED_CONTENT: ("113104", "Clean Structured Content Option"),
    Option.CLEAN_DESCRIPTORS: ("113105", "Clean Descriptors Option"),
    Option.RETAIN_LONGITUDINAL_FULL_DATES: ("113106", "Retain Longitudinal Temporal Information Full Dates Option"),
    Option.RETAIN_LONGITUDINAL_MODIFIED_DATES: (
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    Option.RETAIN_PATIENT_CHARACTERISTICS: ("113108", "Retain Patient Characteristics Option"),
    Option.RETAIN_DEVICE_IDENTITY: ("113109", "Retain Device Identity Option"),
    Option.RETAIN_UIDS: ("113110", "Retain UIDs Option"),
    Option.RETAIN_SAFE_PRIVATE: ("113111", "Retain Safe Private Option"),
    Option.RETAIN_INSTITUTION_IDENTITY: ("113112", "Retain Institution Identity Option"),
}

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
CODING_SCHEME_DESIGNATOR = 0x00080102
CODE_MEANING = 0x00080104
# VRs that hold free text whatever the attribute: an attribute the table does not list is cleaned by them.
FREE_TEXT_VRS = frozenset({"LT", "ST", "UT"})


@dataclass(frozen=True)
class TableRow:
    """One row of Table E.1-1: ``tag`` is 8 hex digits, ``50xxxxxx``/``60xx3000``/``60xx4000``, or ``private``."""

    tag: str
    name: str
    basic: str
    options: Mapping[Option, str]


def parse_table(lines: Iterable[str]) -> tuple[TableRow, ...]:
    """Rows of the Table E.1-1 CSV (``#`` lines are provenance comments)."""
    reader = csv.DictReader(line for line in lines if not line.startswith("#"))
    rows = []
    for record in reader:
        try:
            options = {opt: record[opt.value] for opt in Option if record[opt.value]}
            rows.append(TableRow(record["tag"], record["name"], record["basic_profile"], options))
        except KeyError as err:
            raise ProfileError(f"Table E.1-1 file lacks column {err}") from err
    return tuple(rows)


@lru_cache(maxsize=1)
def load_table() -> tuple[TableRow, ...]:
    """The packaged Table E.1-1 (edition :data:`STANDARD_EDITION`)."""
    text = resources.files("radlake.deid").joinpath(TABLE_FILE).read_text(encoding="utf-8")
    return parse_table(text.splitlines())


def collapse(code: str) -> Action:
    """One action for a table cell, choosing among combined codes as explained in the module doc."""
    parts = {part.rstrip("*") for part in code.split("/")}
    for choice in ("U", "D", "Z", "X", "C", "K"):
        if choice in parts:
            return Action(choice)
    raise ProfileError(f"unknown Table E.1-1 action {code!r}")


def row_action(row: TableRow, options: frozenset[Option]) -> Action:
    """The action for a row under the selected options: an enabled option's K wins over its C.

    Exception: under Modified Dates a date the row says to modify is always modified, even when
    another option (e.g. Retain Device Identity for calibration dates) would keep it, because one
    original date next to shifted ones gives the patient's offset away.
    """
    if (Option.RETAIN_LONGITUDINAL_MODIFIED_DATES in options
            and row.options.get(Option.RETAIN_LONGITUDINAL_MODIFIED_DATES) == "C"):
        return Action.CLEAN
    selected = [row.options[opt] for opt in options if opt in row.options]
    if "K" in selected:
        return Action.KEEP
    if "C" in selected:
        return Action.CLEAN
    return collapse(row.basic)


class SafePrivate(BaseModel):
    """A private element allowed through under Retain Safe Private: (group, creator, element byte)."""

    model_config = ConfigDict(frozen=True)

    group: int
    creator: str
    element: int = Field(ge=0, le=0xFF)

    @field_validator("group", "element", mode="before")
    @classmethod
    def _hex(cls, value: object) -> object:
        return int(value, 16) if isinstance(value, str) else value


class Profile(BaseModel):
    """What a project selected: options, safe private allow-list, per-tag overrides, date shift range."""

    model_config = ConfigDict(frozen=True)

    name: str = "radlake-default"
    options: frozenset[Option] = frozenset(
        {
            Option.RETAIN_LONGITUDINAL_MODIFIED_DATES,
            Option.RETAIN_PATIENT_CHARACTERISTICS,
            Option.RETAIN_DEVICE_IDENTITY,
            Option.CLEAN_DESCRIPTORS,
        }
    )
    safe_private: tuple[SafePrivate, ...] = ()
    # tag (8 hex digits) -> action; the defaults give the patient a pseudonym instead of Z/D.
    overrides: Mapping[str, Action] = Field(
        default_factory=lambda: {f"{PATIENT_ID:08x}": Action.PSEUDONYM, f"{PATIENT_NAME:08x}": Action.PSEUDONYM}
    )
    # Modified Dates: every date of a patient moves back by the same 1..max_date_shift_days days.
    max_date_shift_days: int = Field(default=3650, ge=1)
    # Cleaning free text (action C, radlake.deid.descriptor_cleaning): words this project's descriptors
    # may keep besides the shipped clinical vocabulary (a local protocol name, a site's abbreviations) ...
    descriptor_allow_list: tuple[str, ...] = ()
    # ... or no cleaning at all: every descriptor the table cleans, and free text it does not list, is removed.
    drop_descriptors: bool = False

    @field_validator("overrides", mode="before")
    @classmethod
    def _tags(cls, value: object) -> object:
        if isinstance(value, Mapping):
            return {str(k).strip("()").replace(",", "").lower(): v for k, v in value.items()}
        return value

    @field_validator("options")
    @classmethod
    def _exclusive_dates(cls, value: frozenset[Option]) -> frozenset[Option]:
        both = {Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES}
        if both <= value:
            raise ValueError("retain_longitudinal_full_dates and _modified_dates exclude each other")
        return value


def load_profile(path: Path) -> Profile:
    """A :class:`Profile` from a YAML or JSON file."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
        return Profile.model_validate(data or {})
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise ProfileError(f"cannot load profile {path}: {err}") from err


@dataclass(frozen=True)
class Rules:
    """Table E.1-1 compiled for one profile: what to do with each tag."""

    by_tag: Mapping[int, Action]
    curve: Action
    overlay: Action
    private: Action
    safe_private: frozenset[tuple[int, str, int]]
    profile: Profile
    vocabulary: Vocabulary  # what cleaned free text may keep
    free_text: Action  # for free text the table does not list: CLEAN, or REMOVE under drop_descriptors

    def action(self, tag: int) -> Action | None:
        """The action for a public tag, or ``None`` when Table E.1-1 does not list it (kept)."""
        action = self.by_tag.get(tag)
        if action is not None:
            return action
        group = tag >> 16
        if 0x5000 <= group <= 0x501E and not group & 1:
            return self.curve
        if 0x6000 <= group <= 0x601E and not group & 1:
            return self.overlay
        return None

    def unlisted_action(self, tag: int, vr: str, coding_scheme: Callable[[], str | None]) -> Action | None:
        """The rule for a public attribute Table E.1-1 does not list (:meth:`action` gave ``None``).

        Free text (VR LT, ST, UT: Text Value of SR content items among them) is cleaned, or removed under
        ``drop_descriptors``; a Code Meaning in an item whose Coding Scheme Designator (``coding_scheme``,
        asked only here) is missing or local (``99*``, ``L``, a site's own) is cleaned, since only a
        standard scheme's meanings are known text. Anything else is kept, as the table's absence implies.
        """
        if vr in FREE_TEXT_VRS:
            return self.free_text
        if tag == CODE_MEANING:
            scheme = coding_scheme()
            if scheme is None or is_local_coding_scheme(scheme):
                return Action.CLEAN
        return None


def compile_rules(profile: Profile) -> Rules:
    """Resolve every Table E.1-1 row for ``profile``."""
    by_tag: dict[int, Action] = {}
    curve = overlay = private = Action.REMOVE
    for row in load_table():
        action = row_action(row, profile.options)
        if row.tag == "private":
            private = action
        elif row.tag.startswith("50xx"):
            curve = action
        elif row.tag.startswith("60xx"):
            # Overlays: the whole repeating group goes (labels, descriptions and data can carry text);
            # Clean Graphics cannot be done without rendering, so C is treated as X as well.
            overlay = Action.REMOVE
        else:
            if profile.drop_descriptors and action is Action.CLEAN and row.options.get(Option.CLEAN_DESCRIPTORS) == "C":
                action = Action.REMOVE
            by_tag[int(row.tag, 16)] = action
    if curve is Action.CLEAN:
        curve = Action.REMOVE
    for tag, action in profile.overrides.items():
        by_tag[int(tag, 16)] = Action(action)
    allowed = frozenset((p.group, p.creator.strip(), p.element) for p in profile.safe_private)
    vocabulary = clinical_vocabulary().with_terms(profile.descriptor_allow_list)
    free_text = Action.REMOVE if profile.drop_descriptors else Action.CLEAN
    return Rules(by_tag, curve, overlay, private, allowed, profile, vocabulary, free_text)
