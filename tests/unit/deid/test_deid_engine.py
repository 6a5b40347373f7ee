"""The engine on generated CT series full of fake PHI: nothing planted survives, the rest stays."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import date

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import ImplicitVRLittleEndian

from radlake.deid.confidentiality_profile import Action, Option, Profile, Rules, SafePrivate, compile_rules
from radlake.deid.dataset_path import deidentify, hmac_messages
from radlake.deid.instance_context import shift_date
from radlake.deid.instance_result import Status
from radlake.deid.pipeline import deidentify_instances
from radlake.deid.pseudonyms import LocalHmac
from radlake.deid.verification import collect_tokens, redact, scan_bytes
from radlake.synthetic import phi_dicom
from radlake.synthetic.phi_dicom import Planted

RETAINED = ("PixelSpacing", "SliceThickness", "ImagePositionPatient", "ImageOrientationPatient", "RescaleIntercept",
            "RescaleSlope", "KVP", "ConvolutionKernel", "Modality", "SOPClassUID", "Rows", "Columns",
            "BitsAllocated", "PixelRepresentation", "ImageType", "InstanceNumber")


def _removed(planted: Planted, rules: Rules) -> bool:
    """Must this planted value be gone from the output under ``rules``?"""
    for tag in planted.within:
        if tag >> 16 & 1 or rules.action(tag) in (Action.REMOVE, Action.ZERO):
            return True
    if planted.tag >> 16 & 1:
        return True
    action = rules.action(planted.tag)
    if action is None or action is Action.KEEP:
        return False
    if action is Action.CLEAN:
        return planted.vr in ("DA", "DT")
    return True


def _needles(planted: Planted) -> Iterator[str]:
    """The planted text and its name components (single letters such as sex ``F`` say nothing)."""
    if len(planted.value) >= 3:
        yield planted.value
    if planted.vr == "PN":
        yield from (part for part in planted.value.split("^") if len(part) >= 3)


def _found(token: str, hay: str) -> bool:
    pattern = r"(?<![0-9a-z.])" + re.escape(token.lower()) + r"(?![0-9a-z.])"
    return re.search(pattern, hay) is not None


def _parsed_text(ds: Dataset) -> str:
    parts = []
    for part in (ds.file_meta, ds):
        for elem in part.iterall():
            if elem.VR == "SQ" or elem.tag == 0x7FE00010:
                continue
            value = elem.value
            parts.append(value.decode("latin-1") if isinstance(value, bytes) else str(value))
    return "\n".join(parts).lower()


def _run(datas, rules, key=b"k" * 32):
    return deidentify_instances(datas, rules, LocalHmac(key))


@pytest.mark.parametrize("profile_name", ["basic", "default"])
def test_no_planted_value_survives_parsed_or_raw(series, series_bytes, basic_rules, default_rules, profile_name):
    rules = basic_rules if profile_name == "basic" else default_rules
    results = _run(series_bytes, rules)
    assert [r.status for r in results] == [Status.DEIDENTIFIED] * len(results), [r.leaks for r in results]
    must_go = {needle for p in series[1].values if _removed(p, rules) for needle in _needles(p)}
    assert len(must_go) > 500
    for result in results:
        raw = result.encoded.decode("latin-1").lower()
        parsed = _parsed_text(pydicom.dcmread(io.BytesIO(result.encoded)))
        survivors = sorted(t for t in must_go if _found(t, raw) or _found(t, parsed))
        assert survivors == []


def test_basic_profile_leaves_no_planted_text_at_all(series, series_bytes, basic_rules):
    results = _run(series_bytes, basic_rules)
    everything = {needle for p in series[1].values if p.vr not in ("US", "FL") for needle in _needles(p)}
    for result in results:
        raw = result.encoded.decode("latin-1").lower()
        assert sorted(t for t in everything if _found(t, raw)) == []


def test_uid_references_resolve_across_instances(series_bytes, default_rules):
    outputs = [pydicom.dcmread(io.BytesIO(r.encoded)) for r in _run(series_bytes, default_rules)]
    for previous, current in zip(outputs, outputs[1:]):
        assert current.ReferencedImageSequence[0].ReferencedSOPInstanceUID == previous.SOPInstanceUID
        assert current.SourceImageSequence[0].ReferencedSOPInstanceUID == previous.SOPInstanceUID
    for ds in outputs:
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SOPInstanceUID.startswith("2.25.")
    assert len({ds.StudyInstanceUID for ds in outputs}) == 1
    assert len({ds.SeriesInstanceUID for ds in outputs}) == 1
    assert len({ds.FrameOfReferenceUID for ds in outputs}) == 1
    assert len({ds.SOPInstanceUID for ds in outputs}) == len(outputs)


def test_same_input_same_output_and_other_key_other_pseudonyms(series_bytes, default_rules):
    first = _run(series_bytes, default_rules)
    again = _run(series_bytes, default_rules)
    other = _run(series_bytes, default_rules, key=b"another project key")
    assert [r.encoded for r in first] == [r.encoded for r in again]
    a = pydicom.dcmread(io.BytesIO(first[0].encoded))
    b = pydicom.dcmread(io.BytesIO(other[0].encoded))
    assert a.PatientID != b.PatientID
    assert a.StudyInstanceUID != b.StudyInstanceUID
    assert a.SOPInstanceUID != b.SOPInstanceUID


def test_retained_attributes_and_pixels_unchanged(series, series_bytes, default_rules):
    results = _run(series_bytes, default_rules)
    for source, result in zip(series[0], results):
        out = pydicom.dcmread(io.BytesIO(result.encoded))
        for keyword in RETAINED:
            assert out[keyword].value == source[keyword].value, keyword
        assert out.PixelData == source.PixelData
        # Retain Patient Characteristics and Retain Device Identity
        assert out.PatientSex == source.PatientSex
        assert out.PatientAge == source.PatientAge
        assert out.Manufacturer == source.Manufacturer


def test_dates_move_back_by_one_offset_per_patient(series, series_bytes, default_rules):
    source = series[0][0]
    out = pydicom.dcmread(io.BytesIO(_run(series_bytes[:1], default_rules)[0].encoded))
    assert out.StudyDate != source.StudyDate
    assert out.PatientBirthDate == ""  # Z, no option keeps it

    def days(a: str, b: str) -> int:
        return (date(int(a[:4]), int(a[4:6]), int(a[6:])) - date(int(b[:4]), int(b[4:6]), int(b[6:]))).days

    assert days(source.StudyDate, source.SeriesDate) == days(out.StudyDate, out.SeriesDate)
    assert out.AcquisitionDateTime[8:] == source.AcquisitionDateTime[8:]
    assert out.LongitudinalTemporalInformationModified == "MODIFIED"


def test_shift_date():
    assert shift_date("20240301", 1) == "20240229"
    assert shift_date("20240301101500.5+0100", 1) == "20240229101500.5+0100"
    assert shift_date("2024", 1) == ""
    assert shift_date("2023-13-45", 1) == ""


def test_deidentification_is_recorded(series_bytes, default_rules):
    out = pydicom.dcmread(io.BytesIO(_run(series_bytes[:1], default_rules)[0].encoded))
    assert out.PatientIdentityRemoved == "YES"
    assert "2024b" in out.DeidentificationMethod[1]
    codes = {item.CodeValue for item in out.DeidentificationMethodCodeSequence}
    assert codes == {"113100", "113105", "113107", "113108", "113109"}
    assert out.file_meta.ImplementationVersionName == "RADLAKE_DEID_1"
    assert "SourceApplicationEntityTitle" not in out.file_meta


def test_patient_gets_the_pseudonym_everywhere(series_bytes, default_rules):
    outputs = [pydicom.dcmread(io.BytesIO(r.encoded)) for r in _run(series_bytes, default_rules)]
    assert len({str(ds.PatientID) for ds in outputs}) == 1
    assert outputs[0].PatientID.startswith("RL")
    assert str(outputs[0].PatientName) == outputs[0].PatientID


def test_clean_descriptors_keep_the_clinical_words(series_bytes, default_rules):
    out = pydicom.dcmread(io.BytesIO(_run(series_bytes[:1], default_rules)[0].encoded))
    assert out.StudyDescription == "CT CHEST for"
    assert out.SeriesDescription == "AXIAL 1.0 B30f"


def test_safe_private_allow_list(series_bytes):
    profile = Profile(options=frozenset({Option.RETAIN_SAFE_PRIVATE}),
                      safe_private=(SafePrivate(group=0x0019, creator="ACME_SAFE", element=0x01),))
    out = pydicom.dcmread(io.BytesIO(_run(series_bytes[:1], compile_rules(profile))[0].encoded))
    assert out[0x00191001].value == "0.5"
    assert out[0x00190010].value == "ACME_SAFE"
    assert 0x00091001 not in out and 0x00131010 not in out and 0x00110010 not in out
    assert not [e for e in out.iterall() if e.tag.is_private and e.tag.group not in (0x0019,)]


def test_input_dataset_is_not_modified(series, default_rules):
    ds = series[0][1]
    before = phi_dicom.to_bytes(ds)
    messages = hmac_messages(ds, default_rules, "provider")
    deidentify(ds, default_rules, dict(zip(messages, LocalHmac(b"k").hmac_many(messages))), "provider")
    assert phi_dicom.to_bytes(ds) == before


def test_phi_in_an_unlisted_attribute_is_caught_by_verification(series, default_rules):
    ds = phi_dicom.ct_instance(7, size=16)
    ds.BodyPartExamined = "QUIXLEYHART"  # not in Table E.1-1, so kept, but it is the patient's name
    result = _run([phi_dicom.to_bytes(ds)], default_rules)[0]
    assert result.status is Status.QUARANTINED
    assert result.reason == "VERIFICATION_FAILED"
    assert "quixleyhart" in result.leaks


def test_tokens_cover_private_nested_and_overlay_text(series, default_rules):
    tokens = collect_tokens(series[0][0], default_rules).values
    for planted in ("zqprivseq", "zqprivnested", "zqorphan", "zqorphanbytes", "zqoverlaylabel", "zqprivinref",
                    "mrn48213377", "19580214"):
        assert planted in tokens


def test_redact_and_scan_boundaries():
    tokens = collect_tokens(phi_dicom.ct_instance(0, size=16), compile_rules(Profile()))
    assert redact("Follow-up of Quixleyhart, M. on 2023-11-07 (MRN48213377)", tokens) == "Follow-up of , M. on ()"
    assert scan_bytes(b"1.2.826.0.1.3680043.10.999.1.1.05", tokens) == []  # a UID is not found inside a longer one
    assert [h.token for h in scan_bytes(b"x\\QUIXLEYHART^Y", tokens)] == ["quixleyhart"]


def test_implicit_vr_input_private_tags_as_un(series, default_rules):

    datas = [phi_dicom.to_bytes(phi_dicom.with_transfer_syntax(ds, ImplicitVRLittleEndian)) for ds in series[0]]
    results = _run(datas, default_rules)
    assert [r.status for r in results] == [Status.DEIDENTIFIED] * len(results), [r.leaks for r in results]
    must_go = {needle for p in series[1].values if _removed(p, default_rules) for needle in _needles(p)}
    for result in results:
        raw = result.encoded.decode("latin-1").lower()
        assert sorted(t for t in must_go if _found(t, raw)) == []
        out = pydicom.dcmread(io.BytesIO(result.encoded))
        assert out.file_meta.TransferSyntaxUID == ImplicitVRLittleEndian
        assert not [e for e in out.iterall() if e.tag.is_private]
