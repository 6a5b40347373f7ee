"""Bad input never crashes and never disappears: each case has its outcome and reason."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
)

from radlake import dicom_io
from radlake.deid import byte_path
from radlake.deid.errors import QuarantineReason
from radlake.deid.instance_result import Status
from radlake.deid.pipeline import deidentify_instances
from radlake.deid.pseudonyms import LocalHmac
from radlake.synthetic import phi_dicom


@pytest.fixture(scope="module")
def instance():
    return phi_dicom.ct_instance(3, size=16)


def _one(data: bytes, rules):
    return deidentify_instances([data], rules, LocalHmac(b"k"))[0]


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda ds: b"", QuarantineReason.EMPTY_FILE),
        (lambda ds: phi_dicom.NON_DICOM, QuarantineReason.NOT_DICOM),
        (lambda ds: phi_dicom.without_meta(ds), QuarantineReason.MISSING_FILE_META),
        (lambda ds: phi_dicom.truncated(phi_dicom.to_bytes(ds), 0.5), None),  # header cut: either reason
        (lambda ds: phi_dicom.to_bytes(ds)[:-100], QuarantineReason.TRUNCATED_FILE),  # pixel data cut
        (lambda ds: phi_dicom.to_bytes(phi_dicom.without_pixel_data(ds)), QuarantineReason.NO_PIXEL_DATA),
        (lambda ds: phi_dicom.to_bytes(phi_dicom.burned_in(ds, "YES")), QuarantineReason.BURNED_IN_ANNOTATION),
        (lambda ds: phi_dicom.to_bytes(phi_dicom.burned_in(ds, None)), QuarantineReason.BURNED_IN_ANNOTATION_UNKNOWN),
    ],
)
def test_rejected_with_a_reason(instance, default_rules, make, reason):
    result = _one(make(instance), default_rules)
    assert result.status is Status.QUARANTINED
    if reason is None:
        assert result.reason in (QuarantineReason.TRUNCATED_FILE, QuarantineReason.INVALID_DATASET)
    else:
        assert result.reason == reason
    assert result.encoded is None


def test_burned_in_no_on_secondary_capture_passes(instance, default_rules):
    assert _one(phi_dicom.to_bytes(phi_dicom.burned_in(instance, "NO")), default_rules).status is Status.DEIDENTIFIED


def test_quarantine_keeps_the_original_uid_when_readable(instance, default_rules):
    result = _one(phi_dicom.to_bytes(phi_dicom.without_pixel_data(instance)), default_rules)
    assert result.original_sop_uid == str(instance.SOPInstanceUID)


@pytest.mark.parametrize(
    "transfer_syntax", [ImplicitVRLittleEndian, ExplicitVRBigEndian, DeflatedExplicitVRLittleEndian, RLELossless]
)
def test_odd_transfer_syntaxes_are_deidentified_without_touching_pixels(instance, default_rules, transfer_syntax):
    source = phi_dicom.with_transfer_syntax(instance, transfer_syntax)
    result = _one(phi_dicom.to_bytes(source), default_rules)
    assert result.status is Status.DEIDENTIFIED, (result.reason, result.message, result.leaks)
    out = pydicom.dcmread(io.BytesIO(result.encoded))
    assert out.file_meta.TransferSyntaxUID == transfer_syntax
    assert out.PixelData == source.PixelData
    assert (out.pixel_array == instance.pixel_array).all()


@pytest.mark.filterwarnings("ignore::UserWarning")  # the invalid values are the point
def test_invalid_values_do_not_crash_and_do_not_leak(instance, default_rules):
    result = _one(phi_dicom.to_bytes(phi_dicom.with_invalid_values(instance)), default_rules)
    assert result.status is Status.DEIDENTIFIED, (result.reason, result.message)
    out = pydicom.dcmread(io.BytesIO(result.encoded))
    assert out.StudyDate == ""  # an unparseable date cannot be shifted: emptied
    assert b"2023-13-45" not in result.encoded


def test_dicomdir_is_skipped_not_released(default_rules):
    result = _one(phi_dicom.dicomdir_bytes(), default_rules)
    assert result.status is Status.SKIPPED
    assert result.reason == "DICOMDIR"


def test_validators_return_ok_and_reason(instance):
    assert dicom_io.check_preamble(phi_dicom.to_bytes(instance)) == (True, None)
    assert dicom_io.check_preamble(b"GIF89a" + bytes(200)) == (False, QuarantineReason.NOT_DICOM)
    assert dicom_io.check_pixel_data(phi_dicom.without_pixel_data(instance)) == (False, QuarantineReason.NO_PIXEL_DATA)
    assert dicom_io.check_required_uids(instance) == (True, None)


@pytest.mark.parametrize("byte_level", [True, False], ids=["byte path", "dataset path"])
@pytest.mark.parametrize(("depth", "refused"), [(dicom_io.MAX_SEQUENCE_DEPTH, False),
                                                (dicom_io.MAX_SEQUENCE_DEPTH + 1, True), (100, True), (5000, True)])
def test_sequence_depth_is_capped(instance, default_rules, depth, refused, byte_level):
    data = phi_dicom.nested_sequence(phi_dicom.to_bytes(instance), depth)
    result = deidentify_instances([data], default_rules, LocalHmac(b"k"), byte_level=byte_level)[0]
    if refused:
        assert (result.status, result.reason) == (Status.QUARANTINED, QuarantineReason.SEQUENCE_TOO_DEEP)
    else:
        assert result.status is Status.DEIDENTIFIED, (result.reason, result.message)


def test_implicit_vr_deep_sequence_is_refused_by_the_dataset_path(instance, default_rules):
    source = phi_dicom.with_transfer_syntax(instance, ImplicitVRLittleEndian)
    inner = pydicom.Dataset()
    inner.CodeValue = "1"
    for _ in range(dicom_io.MAX_SEQUENCE_DEPTH + 3):
        outer = pydicom.Dataset()
        outer.ContentSequence = [inner]
        inner = outer
    source.ContentSequence = inner.ContentSequence
    assert _one(phi_dicom.to_bytes(source), default_rules).reason == QuarantineReason.SEQUENCE_TOO_DEEP


@pytest.mark.parametrize("byte_level", [True, False], ids=["byte path", "dataset path"])
def test_element_length_is_capped(instance, default_rules, monkeypatch, byte_level):
    source = phi_dicom.with_transfer_syntax(instance, ExplicitVRLittleEndian)
    source.ImageComments = "x" * 4096
    data = phi_dicom.to_bytes(source)
    monkeypatch.setattr(dicom_io, "MAX_ELEMENT_BYTES", 1024)
    monkeypatch.setattr(byte_path, "MAX_ELEMENT_BYTES", 1024)
    result = deidentify_instances([data], default_rules, LocalHmac(b"k"), byte_level=byte_level)[0]
    assert (result.status, result.reason) == (Status.QUARANTINED, QuarantineReason.ELEMENT_TOO_LONG)
