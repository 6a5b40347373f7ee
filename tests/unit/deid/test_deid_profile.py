"""Table E.1-1 as data: provenance, known rows, combined actions, options and their precedence."""

from __future__ import annotations

import pytest

from radlake.deid.confidentiality_profile import (
    STANDARD_EDITION,
    Action,
    Option,
    Profile,
    ProfileError,
    TableRow,
    collapse,
    compile_rules,
    load_profile,
    load_table,
    row_action,
)


def _row(tag: str) -> TableRow:
    return next(row for row in load_table() if row.tag == tag)


def test_table_is_the_whole_2024b_table():
    table = load_table()
    assert STANDARD_EDITION == "2024b"
    assert len(table) == 621
    assert len({row.tag for row in table}) == 621


@pytest.mark.parametrize(
    ("tag", "basic"),
    [
        ("00100010", "Z"),  # Patient's Name
        ("00100020", "Z/D"),  # Patient ID
        ("00100030", "Z"),  # Patient's Birth Date
        ("00080018", "U"),  # SOP Instance UID
        ("00081140", "X/Z/U*"),  # Referenced Image Sequence
        ("private", "X"),
        ("60xx3000", "X"),  # Overlay Data
        ("50xxxxxx", "X"),  # Curve Data
    ],
)
def test_known_rows(tag, basic):
    assert _row(tag).basic == basic


@pytest.mark.parametrize(
    ("code", "action"),
    [("X/Z", Action.ZERO), ("X/D", Action.DUMMY), ("X/Z/D", Action.DUMMY), ("Z/D", Action.DUMMY),
     ("X/Z/U*", Action.UID), ("X", Action.REMOVE), ("K", Action.KEEP)],
)
def test_combined_actions_collapse_to_a_choice_valid_for_every_type(code, action):
    assert collapse(code) is action


def test_unknown_action_is_a_profile_error():
    with pytest.raises(ProfileError):
        collapse("Q")


def test_options_select_their_column():
    sex = _row("00100040")
    assert row_action(sex, frozenset()) is Action.ZERO
    assert row_action(sex, frozenset({Option.RETAIN_PATIENT_CHARACTERISTICS})) is Action.KEEP
    study_date = _row("00080020")
    assert row_action(study_date, frozenset({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES})) is Action.CLEAN
    assert row_action(study_date, frozenset({Option.RETAIN_LONGITUDINAL_FULL_DATES})) is Action.KEEP
    description = _row("00081030")
    assert row_action(description, frozenset()) is Action.REMOVE
    assert row_action(description, frozenset({Option.CLEAN_DESCRIPTORS})) is Action.CLEAN


def test_modified_dates_win_over_device_identity_for_calibration_dates():
    calibration = _row("00181200")  # Date of Last Calibration
    options = frozenset({Option.RETAIN_DEVICE_IDENTITY, Option.RETAIN_LONGITUDINAL_MODIFIED_DATES})
    assert row_action(calibration, options) is Action.CLEAN
    assert row_action(calibration, frozenset({Option.RETAIN_DEVICE_IDENTITY})) is Action.KEEP


def test_default_profile_pseudonymises_the_patient_and_removes_private_curves_overlays():
    rules = compile_rules(Profile())
    assert rules.action(0x00100020) is Action.PSEUDONYM
    assert rules.action(0x00100010) is Action.PSEUDONYM
    assert rules.action(0x60003000) is Action.REMOVE
    assert rules.action(0x60020022) is Action.REMOVE  # overlay description, second overlay group
    assert rules.action(0x50002500) is Action.REMOVE
    assert rules.private is Action.REMOVE
    assert rules.action(0x00280030) is None  # Pixel Spacing is not in the table: kept


def test_profile_file(tmp_path):
    path = tmp_path / "project.yaml"
    path.write_text(
        "name: lung-screening\n"
        "options: [retain_safe_private, retain_longitudinal_modified_dates]\n"
        "safe_private: [{group: '0019', creator: ACME_SAFE, element: '01'}]\n"
        "overrides: {'(0010,0020)': P}\n"
        "max_date_shift_days: 365\n"
    )
    profile = load_profile(path)
    rules = compile_rules(profile)
    assert profile.name == "lung-screening"
    assert rules.private is Action.CLEAN
    assert (0x0019, "ACME_SAFE", 0x01) in rules.safe_private
    assert rules.action(0x00100010) is Action.ZERO  # no override for the name in this profile


def test_bad_profiles_are_profile_errors(tmp_path):
    both = tmp_path / "both.yaml"
    both.write_text("options: [retain_longitudinal_full_dates, retain_longitudinal_modified_dates]\n")
    unknown = tmp_path / "unknown.json"
    unknown.write_text('{"options": ["retain_everything"]}')
    for path in (both, unknown, tmp_path / "missing.yaml"):
        with pytest.raises(ProfileError):
            load_profile(path)
