"""The verification scan and the dates the engine shifted: a shifted date that equals another date of the
input is no leak; an input date anywhere else, or a shifted date equal to its own input date, is one."""

from __future__ import annotations

import io
from collections import Counter

import pydicom
import pytest
from pydicom.dataelem import DataElement
from pydicom.multival import MultiValue

from radlake.deid import byte_path, dataset_path
from radlake.deid.confidentiality_profile import Option, Profile, SafePrivate, compile_rules
from radlake.deid.instance_result import InstanceResult, Status
from radlake.deid.pseudonyms import LocalHmac, date_offset_from_digest, date_offset_message
from radlake.deid.verification import Tokens, collect_identifiers, excluding_shifted_dates, scan_bytes
from radlake.synthetic import phi_dicom

KEY = b"k" * 32
PROVIDER = "provider-a"
PATHS = {"byte": byte_path, "dataset": dataset_path}
# Modified Dates, and one private element kept as it is (Retain Safe Private)
SHIFTING = Profile(options=frozenset({Option.RETAIN_LONGITUDINAL_MODIFIED_DATES, Option.RETAIN_SAFE_PRIVATE}),
                   safe_private=(SafePrivate(group=0x0019, creator="ACME_SAFE", element=0x01),))


def _patient_with_offset(want: int, max_days: int = 3650) -> str:
    key = LocalHmac(KEY)
    return next(f"MRN{n}" for n in range(10**6) if date_offset_from_digest(
        key.hmac_many([date_offset_message(PROVIDER, f"MRN{n}")])[0], max_days) == want)


def _instance(offset: int) -> pydicom.Dataset:
    """A generated CT image (dates one day apart) of a patient whose dates move back ``offset`` days, with
    one more date inside a sequence the profile recurses into."""
    ds = phi_dicom.ct_instance(0, patient=phi_dicom.Patient(patient_id=_patient_with_offset(offset)), size=16)
    ds.ReferencedImageSequence[0].add(DataElement(0x00080020, "DA", "20231108"))  # Study Date, nested: C
    del ds[0x00111001], ds[0x00110010]  # a private sequence: the byte path would leave the instance (allow-list)
    return ds


def _run(path, data: bytes, rules) -> InstanceResult:
    """One instance through one path, without falling back to the other."""
    prepared = path.prepare(data, rules, PROVIDER)
    assert not isinstance(prepared, InstanceResult)
    digests = dict(zip(prepared.messages, LocalHmac(KEY).hmac_many(prepared.messages), strict=True))
    return path.finish(prepared, rules, digests)


def _input_dates(ds: pydicom.Dataset) -> set[str]:
    return {str(e.value)[:8] for e in ds.iterall() if e.VR in ("DA", "DT") and e.value}


def _minus(date: str, days: int) -> str:
    return f"{int(date) - days}"  # the generated dates are mid-month


@pytest.mark.parametrize("offset", [1, 2, 3])
@pytest.mark.parametrize("name", sorted(PATHS))
def test_a_date_shifted_onto_another_input_date_is_not_a_leak(name, offset):
    ds = _instance(offset)
    rules = compile_rules(SHIFTING)
    result = _run(PATHS[name], phi_dicom.to_bytes(ds), rules)
    assert result.status is Status.DEIDENTIFIED, result.leaks
    out = pydicom.dcmread(io.BytesIO(result.encoded))
    assert out.ReferencedImageSequence[0].StudyDate == _minus(ds.ReferencedImageSequence[0].StudyDate, offset)
    if offset < 3:  # the case at hand: shifted dates that are other dates of the input, nested ones too
        assert {out.StudyDate, out.ReferencedImageSequence[0].StudyDate} <= _input_dates(ds)


@pytest.mark.parametrize("where", ["free text", "nested", "private"])
@pytest.mark.parametrize("name", sorted(PATHS))
def test_an_input_date_in_an_element_the_engine_did_not_shift_is_still_a_leak(name, where):
    ds = _instance(1)  # 20231108 (the study date) is shifted onto 20231107, another date: that alone is no leak
    if where == "free text":
        ds.Manufacturer = "ACME 20231107"  # kept (not in Table E.1-1)
    elif where == "nested":
        ds.ReferencedImageSequence[0].add(DataElement(0x00080070, "LO", "20231107"))
    else:
        ds[0x00191001].value = "20231107"  # the allow-listed private element (a DS)
    result = _run(PATHS[name], phi_dicom.to_bytes(ds), compile_rules(SHIFTING))
    assert result.status is Status.QUARANTINED and result.reason == "VERIFICATION_FAILED"
    assert list(result.leaks) == ["20231107"]


@pytest.mark.parametrize("name", sorted(PATHS))
def test_a_shifted_date_equal_to_its_own_input_date_is_a_leak(name, monkeypatch):
    path = PATHS[name]
    real = path.pseudonym_and_offset
    monkeypatch.setattr(path, "pseudonym_and_offset", lambda *args: (real(*args)[0], 0))  # an offset of 0 days
    ds = _instance(1)
    result = _run(path, phi_dicom.to_bytes(ds), compile_rules(SHIFTING))
    assert result.status is Status.QUARANTINED and result.reason == "VERIFICATION_FAILED"
    assert {"20231106", "20231107", "20231108"} <= set(result.leaks) <= _input_dates(ds)


def test_an_input_date_is_excused_only_inside_values_shifted_from_another():
    tokens = Tokens(frozenset({"20231106", "20231107", "quixleyhart"}))
    dates = frozenset({"20231106", "20231107"})
    data = b"DA\x08\x0020231106DT\x0e\x0020231106101010"
    from_other = [(4, 12, "20231107"), (16, 30, "20231107")]

    def found(data: bytes, shifted, dates=dates) -> list[str]:
        return [hit.token for hit in excluding_shifted_dates(data, scan_bytes(data, tokens), dates, shifted)]

    assert found(data, []) == ["20231106"]
    assert found(data, from_other) == []
    assert found(data, from_other[:1]) == ["20231106"]  # the DT was not shifted
    assert found(data, [from_other[0], (16, 30, "20231106")]) == ["20231106"]  # shifted from itself
    assert found(data + b"LO\x08\x0020231106", from_other) == ["20231106"]  # copied elsewhere
    assert found(data, from_other, dates=frozenset()) == ["20231106"]  # not an input date
    assert found(b"DA\x0c\x00QUIXLEYHART ", [(4, 16, "20231107")]) == ["quixleyhart"]


def test_identifiers_know_the_input_dates(series, default_rules):
    ds = series[0][0]
    found = collect_identifiers(ds, default_rules)
    assert {"20231106", "20231107", "20231108", "19580214"} <= found.dates <= found.tokens.values
    assert all(len(d) == 8 and d.isdigit() for d in found.dates)
    assert "mrn48213377" not in found.dates
    parsed = byte_path.parse(phi_dicom.to_bytes(ds))
    assert byte_path.identifiers(parsed, default_rules).dates == found.dates


def test_the_byte_path_records_where_it_wrote_each_shifted_date():
    ds = _instance(1)
    ds.AcquisitionDate = ["20231106", "20231108"]  # several values
    rules = compile_rules(SHIFTING)
    parsed = byte_path.parse(phi_dicom.to_bytes(ds))
    found = byte_path.identifiers(parsed, rules)
    messages = byte_path.hmac_messages(parsed, PROVIDER, found)
    digests = dict(zip(messages, LocalHmac(KEY).hmac_many(messages), strict=True))
    out = byte_path.rewrite(parsed, rules, digests, PROVIDER, found)
    spans = out.shifted()
    written = Counter(out.header[start:end].decode() for start, end, _ in spans)
    decoded = pydicom.dcmread(io.BytesIO(out.parts[0] + bytes(out.parts[1])))
    shifted = Counter(value for e in decoded.iterall() if e.VR in ("DA", "DT") and not e.tag.is_private
                      for value in (e.value if isinstance(e.value, MultiValue) else [e.value])
                      if value and e.tag != 0x00100030)  # birth date: Z
    assert written == shifted and len(spans) > 10
    assert all(_minus(original, 1) == out.header[start : start + 8].decode() for start, _, original in spans)


def test_the_dataset_path_records_the_tag_path_of_each_shifted_element():
    ds = _instance(1)
    rules = compile_rules(SHIFTING)
    messages = dataset_path.hmac_messages(ds, rules, PROVIDER)
    result = dataset_path.deidentify(ds, rules, dict(zip(messages, LocalHmac(KEY).hmac_many(messages))), PROVIDER)
    assert result.shifted["(0008,1140)[0].(0008,0020)"] == (("20231108", "20231107"),)
    assert result.shifted["(0008,0020)"] == (("20231108", "20231107"),)
    assert "(0010,0030)" not in result.shifted  # birth date: Z
