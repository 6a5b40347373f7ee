"""The benchmark's independent leak checker finds planted values wherever they hide, and nothing in clean files."""

from __future__ import annotations

import ast
import io
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

from bench import leak_scanner
from bench.leak_scanner import planted_values, readable, scan_bytes, scan_file

NAME = "Quixleyhart^Marguerite"
PLANTED = planted_values([(NAME, "PN"), ("MRN48213377", "LO"), ("20231107", "DA"),
                          ("1.2.826.0.1.3680043.10.999.1", "UI"), ("F", "CS")])


def clean() -> Dataset:
    """A small CT image without any planted value."""
    ds = Dataset()
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = "2.25.1234"
    ds.StudyInstanceUID = "2.25.5678"
    ds.PatientName = "Anon^Ymous"
    ds.PatientID = "P0001"
    ds.Modality = "CT"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 16, 15, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = bytes(32)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    return ds


def encode(ds: Dataset, preamble: bytes | None = None) -> bytes:
    buffer = io.BytesIO()
    if preamble is not None:
        ds.preamble = preamble.ljust(128, b"\x00")
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def leaked(data: bytes) -> dict[str, str]:
    result = scan_bytes(data, PLANTED)
    assert result.readable, result.error
    return result.leaked


def test_clean_file_reports_nothing():
    result = scan_bytes(encode(clean()), PLANTED)
    assert result.readable and result.hits == []


def test_value_in_a_private_tag_is_found():
    ds = clean()
    ds.add(DataElement(0x00090010, "LO", "ACME_PRIVATE_01"))
    ds.add(DataElement(0x00091003, "LO", "MRN48213377"))
    result = scan_bytes(encode(ds), PLANTED)
    assert result.leaked == {"MRN48213377": "ID/text"}
    assert "(0009,1003)" in {hit.where for hit in result.hits}


def test_value_in_a_private_element_without_creator_stored_as_un_is_found():
    ds = clean()
    ds.add(DataElement(0x00131011, "UN", b"seen mrn48213377\x00"))  # case-insensitive, inside text
    assert leaked(encode(ds)) == {"MRN48213377": "ID/text"}


def test_value_nested_in_sequences_at_any_depth_is_found():
    inner = Dataset()
    inner.add(DataElement(0x00290010, "LO", "ACME_NESTED"))
    inner.add(DataElement(0x00291001, "LO", "referred by Dr Quixleyhart"))  # a name component, private, depth 3
    middle = Dataset()
    middle.ReferencedStudySequence = Sequence([inner])
    outer = Dataset()
    outer.ReferencedImageSequence = Sequence([middle])
    ds = clean()
    ds.add(DataElement(0x00081110, "SQ", Sequence([outer])))
    result = scan_bytes(encode(ds), PLANTED)
    assert result.leaked == {NAME: "name"}
    assert "(0008,1110)[0]>(0008,1140)[0]>(0008,1110)[0]>(0029,1001)" in {hit.where for hit in result.hits}


def test_value_in_raw_bytes_outside_any_element_is_found():
    data = encode(clean(), preamble=b"MRN48213377")  # the 128-byte preamble is no element
    hits = scan_bytes(data, PLANTED).hits
    assert [(h.value, h.where) for h in hits] == [("MRN48213377", "byte 0")]


def test_pixel_data_is_not_searched():
    ds = clean()
    ds.PixelData = b"MRN48213377\x00" + bytes(20)
    assert leaked(encode(ds)) == {}


def test_reformatted_dates_count_but_digits_inside_a_uid_do_not():
    ds = clean()
    ds.StudyDescription = "CT of 2023-11-07"
    assert leaked(encode(ds)) == {"20231107": "date/time"}
    ds = clean()
    ds.SeriesInstanceUID = "2.25.9920231107123"  # the date's digits inside a longer number
    ds.ImageComments = "1.2.826.0.1.3680043.10.999.12"  # a longer UID that starts like the planted one
    assert leaked(encode(ds)) == {}
    ds.ImageComments = "1.2.826.0.1.3680043.10.999.1.7"  # an extension of the original UID gives it away
    assert leaked(encode(ds)) == {"1.2.826.0.1.3680043.10.999.1": "UID"}


def test_short_values_are_not_searched_and_names_are_split():
    texts = {p.text: p.forms for p in PLANTED}
    assert "F" not in texts
    assert set(texts[NAME]) == {"quixleyhart^marguerite", "quixleyhart", "marguerite"}
    assert set(texts["20231107"]) == {"20231107", "2023-11-07", "2023/11/07", "2023.11.07"}


def test_missing_empty_and_unreadable_outputs_are_failures(tmp_path: Path):
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    assert not scan_file(None, PLANTED).readable
    assert not scan_file(tmp_path / "absent.dcm", PLANTED).readable
    assert not scan_file(empty, PLANTED).readable
    assert readable(None) and readable(empty)
    truncated = tmp_path / "truncated.dcm"
    data = encode(clean())
    for cut in (10, 40):  # inside the pixel data value; inside its element header (pydicom stops quietly)
        truncated.write_bytes(data[: len(data) - cut])
        assert not scan_file(truncated, PLANTED).readable
        assert readable(truncated).startswith("truncated")
    whole = tmp_path / "whole.dcm"
    whole.write_bytes(data)
    assert readable(whole) == "" and scan_file(whole, PLANTED).readable


def test_checker_imports_nothing_from_radlake():
    tree = ast.parse(Path(leak_scanner.__file__).read_text())
    modules = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    modules |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not [m for m in modules if m.split(".")[0] == "radlake"]


def test_free_text_phones_are_searched_as_digits_and_e_mails_by_their_local_part():
    assert "442079460958" in leak_scanner.forms_of("+44 20 7946 0958", "LO")
    assert "5550142" in leak_scanner.forms_of("555-0142", "LO")
    assert "48213377" not in leak_scanner.forms_of("MRN48213377", "LO")  # an ID is searched as it is
    assert "g.finch" in leak_scanner.forms_of("g.finch@example.org", "LO")
