"""Action C on free text: identifiers of anyone removed, clinical meaning kept, in both paths alike."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from bench.leak_scanner import planted_values, scan_bytes
from radlake.deid.confidentiality_profile import Action, Profile, compile_rules
from radlake.deid.descriptor_cleaning import (
    MARKER,
    clean_descriptor,
    clinical_vocabulary,
    is_local_coding_scheme,
    removed_spans,
)
from radlake.deid.instance_result import Status
from radlake.deid.pipeline import deidentify_instances
from radlake.deid.pseudonyms import LocalHmac
from radlake.synthetic import free_text_phi, phi_dicom

VOCABULARY = clinical_vocabulary()
BASIC = Profile(name="basic", options=frozenset())
KEY = LocalHmac(b"k" * 32)


def clean(text: str, max_length: int | None = None) -> str:
    return clean_descriptor(text, VOCABULARY, max_length)


@pytest.mark.parametrize(("text", "identifying"), [
    ("CT CHEST for Gerald Pemberton", ["Gerald", "Pemberton"]),
    ("CT CHEST FOR GERALD PEMBERTON", ["GERALD", "PEMBERTON"]),
    ("PEMBERTON^GERALD^J COR MPR", ["PEMBERTON", "GERALD"]),
    ("per Dr Head", ["Head"]),  # a clinical word, but after an honorific it is a name
    ("Mrs O'Brien-Smythe and Nurse Jackie", ["O'Brien", "Smythe", "Jackie"]),
    ("Lives with spouse Mark Stone", ["Mark", "Stone"]),  # Stone is a clinical word, Title case after a relation
    ("Call daughter Anna before visit", ["Anna"]),
    ("Prof. Okonkwo reviewed", ["Okonkwo"]),
    ("Sister Whitcombe on ward", ["Whitcombe"]),
    ("neighbour thaddeus okonkwo has key", ["thaddeus", "okonkwo"]),
    ("Ref: Dr A. B. Okafor", ["A.", "B.", "Okafor"]),  # initials after an honorific, though "a" is a word
])
def test_person_names_in_every_form_are_removed(text, identifying):
    cleaned = clean(text)
    assert MARKER in cleaned
    for name in identifying:
        assert name.lower() not in cleaned.lower()


@pytest.mark.parametrize(("text", "identifying"), [
    ("call +44 20 7946 0958", "7946"),
    ("ph (555) 301-4477", "301"),
    ("ext 555-0142", "0142"),
    ("results to g.pemberton@example-hospital.org", "pemberton"),
    ("see https://portal.example.org/p/123", "portal"),
    ("Lives at 17 Larchmont Road, Eastbury EB4 7QT", "Larchmont"),
    ("Lives at 17 Larchmont Road, Eastbury EB4 7QT", "EB4"),
    ("seen 12/03/2021", "12/03"),
    ("seen 2022-08-19", "2022"),
    ("seen March 14, 2023", "March"),
    ("seen 3 Feb 2020", "Feb"),
    ("MRN 48213377", "48213377"),
    ("ACC20231107-0042 CT CHEST", "ACC2023"),
    ("Hospital No: K77310", "K77310"),
])
def test_phones_addresses_dates_and_ids_are_removed(text, identifying):
    assert identifying.lower() not in clean(text).lower()


@pytest.mark.parametrize("text", [
    "CT CHEST W/O CONTRAST", "Lung nodule follow-up", "PET-CT WHOLE BODY", "CT ABD/PELVIS WO CONTRAST",
    "MR KNEE LT", "MS PROTOCOL BRAIN", "DR CHEST PA", "AXIAL 1.0 B30f", "Sag T1 FS post gad",
    "XR CHEST 1 VIEW PORTABLE", "3 PHASE CT LIVER", "CTA HEAD AND NECK", "US CAROTID DOPPLER BILATERAL",
    "Axial 1.25mm lung", "L4-5 disc", "SISTER WITH BREAST CANCER", "ASIR 40% 0.625",
])
def test_clinical_descriptions_are_kept_as_they_are(text):
    assert clean(text) == text


def _false_removal_rate(descriptions: list[str]) -> float:
    tokens = removed = 0
    for text in descriptions:
        spans = removed_spans(text, VOCABULARY)
        words = text.split()
        tokens += len(words)
        pos = 0
        for word in words:
            start = text.index(word, pos)
            pos = start + len(word)
            removed += any(s < pos and start < e for s, e in spans)
    return removed / tokens


def test_false_removals_on_realistic_descriptions_stay_rare():
    """The tuned list (0.14 % when written) must stay under 1 %; the held-out list is reported, not tuned:
    it only guards against a vocabulary that breaks (docs/deid.md has both rates)."""
    assert _false_removal_rate(free_text_phi.clinical_descriptions()) < 0.01
    holdout = free_text_phi.clinical_descriptions(free_text_phi.CLINICAL_DESCRIPTIONS_FILE.with_name(
        "clinical_descriptions_holdout.txt"))
    assert _false_removal_rate(holdout) < 0.15


def test_cleaning_is_idempotent_and_respects_the_vr_length():
    text = "CT CHEST for Gerald Pemberton, per Dr Finch"
    once = clean(text)
    assert once == f"CT CHEST for {MARKER}, per Dr {MARKER}"
    assert clean(once) == once
    assert clean("Driver Finch", max_length=16) == f"Driver {MARKER}"  # 16 characters: fits
    short = clean("Retired Pemberton", max_length=16)
    assert short == "Retired"  # the marker would not fit an SH: the run is dropped


def test_local_coding_schemes():
    assert is_local_coding_scheme("99LOCAL") and is_local_coding_scheme("L") and is_local_coding_scheme("ACME")
    assert not any(is_local_coding_scheme(s) for s in ("DCM", "SCT", "LN", "RADLEX", "UCUM", "FMA", "sct "))


def _instance(**attributes: object) -> Dataset:
    ds = phi_dicom.ct_instance(0, size=16, only=frozenset())
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def _code(value: str, scheme: str | None, meaning: str) -> Dataset:
    item = Dataset()
    item.CodeValue = value
    if scheme is not None:
        item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def _deidentify_both(ds: Dataset, profile: Profile) -> Dataset:
    """The output of both paths, which must be byte for byte the same."""
    data = phi_dicom.to_bytes(ds)
    rules = compile_rules(profile)
    fast = deidentify_instances([data], rules, KEY)[0]
    slow = deidentify_instances([data], rules, KEY, byte_level=False)[0]
    assert fast.status is Status.DEIDENTIFIED and slow.status is Status.DEIDENTIFIED
    assert fast.encoded == slow.encoded
    return pydicom.dcmread(io.BytesIO(fast.encoded))


@pytest.mark.parametrize("profile", [BASIC, Profile()], ids=["basic", "default"])
def test_local_code_meanings_are_cleaned_standard_ones_kept(profile):
    ds = _instance(ProcedureCodeSequence=Sequence([
        _code("CTCH1", "99LOCAL", "CT CHEST per Dr Pemberton"),
        _code("CTCH2", None, "CT CHEST for Gerald Finch"),
        _code("399208008", "SCT", "Plain chest X-ray"),
    ]))
    items = _deidentify_both(ds, profile).ProcedureCodeSequence
    assert items[0].CodeMeaning == f"CT CHEST per Dr {MARKER}"
    assert items[1].CodeMeaning == f"CT CHEST for {MARKER}"
    assert items[2].CodeMeaning == "Plain chest X-ray"


def test_sr_text_items_are_cleaned_and_person_names_replaced_under_basic():
    text = Dataset()
    text.ValueType = "TEXT"
    text.ConceptNameCodeSequence = Sequence([_code("121106", "DCM", "Comment")])
    text.TextValue = "Discussed with Dr Gerald Pemberton (020 7946 0183) on 12/03/2021"
    person = Dataset()
    person.ValueType = "PNAME"
    person.PersonName = "Pemberton^Gerald"
    out = _deidentify_both(_instance(ContentSequence=Sequence([text, person])), BASIC)
    cleaned = out.ContentSequence[0].TextValue
    assert "pemberton" not in cleaned.lower() and "7946" not in cleaned and "2021" not in cleaned
    assert "Dr" in cleaned
    assert "pemberton" not in str(out.ContentSequence[1].PersonName).lower()


def test_drop_descriptors_removes_instead_of_cleaning():
    profile = Profile(drop_descriptors=True)
    rules = compile_rules(profile)
    assert rules.action(0x00081030) is Action.REMOVE and rules.free_text is Action.REMOVE
    text = Dataset()
    text.ValueType = "TEXT"
    text.TextValue = "Lung nodule"
    # (a value the profile removes is also cleaned out of every other text: not the one of the code below)
    ds = _instance(StudyDescription="CT THORAX", ImageComments="Lung nodule", ContentSequence=Sequence([text]),
                   ProcedureCodeSequence=Sequence([_code("X1", "99LOCAL", "CT CHEST for Finch")]))
    out = _deidentify_both(ds, profile)
    assert "StudyDescription" not in out and "ImageComments" not in out
    assert "TextValue" not in out.ContentSequence[0]
    # Code Meaning is Type 1: still there, cleaned
    assert out.ProcedureCodeSequence[0].CodeMeaning == f"CT CHEST for {MARKER}"


def test_the_projects_allow_list_keeps_its_terms(tmp_path):
    profile_file = tmp_path / "profile.yaml"
    profile_file.write_text("descriptor_allow_list: ['Brightwell protocol', 'QIBA']\n")
    from radlake.deid.confidentiality_profile import load_profile  # noqa: PLC0415 - the loader is what is tested

    profile = load_profile(profile_file)
    ds = _instance(ProtocolName="Brightwell protocol QIBA", StudyDescription="CT CHEST for Pemberton")
    out = _deidentify_both(ds, profile)
    assert out.ProtocolName == "Brightwell protocol QIBA"
    assert out.StudyDescription == f"CT CHEST for {MARKER}"
    assert _deidentify_both(ds, Profile()).ProtocolName == f"{MARKER} protocol {MARKER}"


@pytest.mark.parametrize("profile", [BASIC, Profile()], ids=["basic", "default"])
def test_corpus_of_other_persons_leaves_nothing_and_both_paths_agree(profile):
    """Every planted value is looked for by the benchmark's scanner, which shares no code with the engine."""
    datasets, plant = free_text_phi.free_text_series(9, size=16)
    datas = [phi_dicom.to_bytes(ds) for ds in datasets]
    planted = planted_values([(p.value, p.vr) for p in plant.values])
    assert all(scan_bytes(data, planted).leaked for data in datas)  # positive control: the input has them
    rules = compile_rules(profile)
    fast = deidentify_instances(datas, rules, KEY)
    slow = deidentify_instances(datas, rules, KEY, byte_level=False)
    for a, b in zip(fast, slow, strict=True):
        assert a.status is Status.DEIDENTIFIED
        assert a.encoded == b.encoded
        assert scan_bytes(a.encoded, planted).leaked == {}
