"""The byte-level path gives what the dataset path gives, and leaves to it what it does not handle."""

from __future__ import annotations

import io
import random

import pydicom
import pytest
from pydicom.uid import ImplicitVRLittleEndian

from radlake.deid import byte_path as rewriter
from radlake.deid.confidentiality_profile import Option, Profile, SafePrivate, compile_rules
from radlake.deid.instance_result import Status
from radlake.deid.pipeline import deidentify_instances
from radlake.deid.pseudonyms import LocalHmac
from radlake.deid.verification import Tokens, _matches, _usable, collect_identifiers, scan_text
from radlake.synthetic import phi_dicom

PROFILES = {
    "basic": Profile(name="basic", options=frozenset()),
    "default": Profile(),
    "safe-private": Profile(options=frozenset({Option.RETAIN_SAFE_PRIVATE}),
                            safe_private=(SafePrivate(group=0x0019, creator="ACME_SAFE", element=0x01),)),
    "retain-everything": Profile(options=frozenset({
        Option.RETAIN_UIDS, Option.RETAIN_DEVICE_IDENTITY, Option.RETAIN_INSTITUTION_IDENTITY,
        Option.RETAIN_PATIENT_CHARACTERISTICS, Option.RETAIN_LONGITUDINAL_FULL_DATES, Option.CLEAN_DESCRIPTORS})),
}


@pytest.fixture(scope="module")
def typical_bytes() -> list[bytes]:
    return [phi_dicom.to_bytes(ds) for ds in phi_dicom.ct_series(3, size=16, only=phi_dicom.TYPICAL_CT_PHI)[0]]


def _takes(data: bytes) -> bool:
    try:
        rewriter.parse(data)
    except rewriter.Unsupported:
        return False
    return True


def _both(datas, rules):
    key = LocalHmac(b"k" * 32)
    return deidentify_instances(datas, rules, key), deidentify_instances(datas, rules, key, byte_level=False)


@pytest.mark.parametrize("header", ["full", "typical"])
@pytest.mark.parametrize("profile_name", sorted(PROFILES))
def test_same_outcome_and_bytes_as_the_dataset_path(series_bytes, typical_bytes, header, profile_name):
    datas = series_bytes if header == "full" else typical_bytes
    rules = compile_rules(PROFILES[profile_name])
    assert all(_takes(data) for data in datas)
    for data in datas:
        parsed = rewriter.parse(data)
        expected = collect_identifiers(pydicom.dcmread(io.BytesIO(data)), rules)
        found = rewriter.identifiers(parsed, rules)
        assert found.tokens == expected.tokens
        assert found.dates == expected.dates
        assert sorted(found.uids) == sorted(expected.uids)
    fast, slow = _both(datas, rules)
    for a, b in zip(fast, slow, strict=True):
        assert (a.status, a.reason, a.leaks, a.relative_path, a.original_sop_uid, a.provider, a.verified) == (
            b.status, b.reason, b.leaks, b.relative_path, b.original_sop_uid, b.provider, b.verified)
        # these well-formed inputs are padded as pydicom pads, so even the kept elements' bytes agree
        assert a.encoded == b.encoded


def test_phi_in_a_kept_attribute_is_caught_on_the_byte_level_path(default_rules):
    ds = phi_dicom.ct_instance(7, size=16)
    ds.BodyPartExamined = "QUIXLEYHART"
    data = phi_dicom.to_bytes(ds)
    assert _takes(data)
    result = deidentify_instances([data], default_rules, LocalHmac(b"k"))[0]
    assert result.status is Status.QUARANTINED and "quixleyhart" in result.leaks


def _non_ascii(ds):
    ds = phi_dicom.ct_instance(2, size=16)
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Müller^Jürgen"
    ds.StudyDescription = "CT Thorax Müller"
    return ds


@pytest.mark.parametrize(
    "make",
    [
        lambda ds: phi_dicom.to_bytes(phi_dicom.with_transfer_syntax(ds, ImplicitVRLittleEndian)),
        lambda ds: phi_dicom.to_bytes(_non_ascii(ds)),
        lambda ds: phi_dicom.to_bytes(phi_dicom.burned_in(ds, "YES")),
        lambda ds: phi_dicom.to_bytes(ds)[:-100],
        lambda ds: phi_dicom.to_bytes(phi_dicom.without_pixel_data(ds)),
        lambda ds: phi_dicom.dicomdir_bytes(),
    ],
    ids=["implicit-vr", "non-ascii", "burned-in", "truncated", "no-pixels", "dicomdir"],
)
def test_what_the_byte_level_path_leaves_to_the_dataset_path(default_rules, make):
    data = make(phi_dicom.ct_instance(3, size=16))
    assert not _takes(data)
    fast, slow = _both([data], default_rules)
    assert (fast[0].status, fast[0].reason, fast[0].encoded) == (slow[0].status, slow[0].reason, slow[0].encoded)


def _reference_scan(hay: str, tokens: Tokens) -> list[str]:
    """The scan as first written: every token searched for with :func:`_matches`."""
    lowered = hay.lower()
    return [token for token in sorted(tokens.values) if next(_matches(lowered, token), None)]


def test_scan_finds_exactly_what_searching_every_token_finds(series_bytes, basic_rules):
    rng = random.Random(4)
    alphabet = "ab1.2 \\^x\u00e9\u00b2Z-"  # letters, digits, UID dots, a Latin-1 letter and a superscript digit
    for _ in range(400):
        values = {"".join(rng.choice(alphabet) for _ in range(rng.randint(3, 6))).lower() for _ in range(rng.randint(1, 400))}
        tokens = Tokens(frozenset(v for v in values if _usable(v)))
        hay = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 6000)))
        if tokens.values:
            assert [h.token for h in scan_text(hay, tokens, "")] == _reference_scan(hay, tokens)
    for data in series_bytes:  # the input's own header: every kind of token, most of them present
        tokens = collect_identifiers(pydicom.dcmread(io.BytesIO(data)), basic_rules).tokens
        hay = data[: data.find(b"\xe0\x7f\x10\x00")].decode("latin-1")
        assert [h.token for h in scan_text(hay, tokens, "")] == _reference_scan(hay, tokens)


def test_giving_up_while_rewriting_falls_back_to_the_dataset_path(typical_bytes):
    # a profile that removes the SOP Instance UID: the byte-level rewrite cannot build the file meta
    rules = compile_rules(Profile(overrides={"(0008,0018)": "X"}))
    assert _takes(typical_bytes[0])
    fast, slow = _both(typical_bytes[:1], rules)
    assert (fast[0].status, fast[0].reason, fast[0].message) == (slow[0].status, slow[0].reason, slow[0].message)
    assert fast[0].reason == "DEID_FAILED"
