"""The de-identification benchmark's bookkeeping: pairing outputs with inputs, summary lines, its docs section."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

pytest.importorskip("dicognito")
pytest.importorskip("deid")

from bench import deid_bench  # noqa: E402
from bench.leak_scanner import planted_values  # noqa: E402
from bench.report import write_section  # noqa: E402


def image(**values: str) -> bytes:
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID, ds.Modality = CTImageStorage, "2.25.1", "CT"
    ds.Rows = ds.Columns = 4
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 16, 15, 0
    for keyword, value in values.items():
        setattr(ds, keyword, value)
    ds.PixelData = bytes(32)
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    buffer = io.BytesIO()
    pydicom.dcmwrite(buffer, ds, enforce_file_format=True)
    return buffer.getvalue()


def test_every_input_is_paired_and_missing_or_bad_outputs_are_failures(tmp_path: Path):
    values = planted_values([("MRN48213377", "LO")])
    planted = {name: values for name in ("a.dcm", "b.dcm", "c.dcm", "d.dcm")}
    (tmp_path / "a.dcm").write_bytes(image(PatientID="P0001"))
    (tmp_path / "b.dcm").write_bytes(image(OtherPatientIDs="MRN48213377"))
    (tmp_path / "c.dcm").write_bytes(b"not dicom at all")
    outputs = {name: tmp_path / name for name in ("a.dcm", "b.dcm", "c.dcm")}  # d.dcm: no output at all
    report = deid_bench.leak_report(planted, outputs)
    assert report["inputs"] == 4
    assert report["failures"] == 2
    assert report["leaked_values"] == 1 and report["files_with_leaks"] == 1
    assert deid_bench.failures_only(list(planted), outputs) == 2


def test_summary_lines_are_one_json_object_per_figure():
    row = {"files_per_s_1": 100.0, "cpu_ms_per_file_1": 10.0, "leaks": {"per_file": 0.0, "failures": 0, "inputs": 4}}
    rows = {"raw-floor": dict(row, files_per_s_1=1000.0), "pydicom-floor": dict(row, files_per_s_1=200.0),
            "radlake": dict(row, files_per_s_1=150.0), "dicognito": dict(row, files_per_s_1=50.0)}
    deid_bench.add_ratios(rows, [1])
    lines = deid_bench.summary_lines({"typical": rows}, [1])
    assert all(set(line) == {"benchmark", "measure", "ratio", "goal"} for line in lines)
    assert all(line["benchmark"] == "deid" for line in lines)
    by_measure = {line["measure"]: line["ratio"] for line in lines}
    assert by_measure["radlake files/s / raw read+write floor (typical header, 1 proc)"] == 0.15
    assert by_measure["radlake files/s / pydicom read+write floor (typical header, 1 proc)"] == 0.75
    assert by_measure["radlake / dicognito files/s (typical header, 1 proc)"] == 3.0
    json.dumps(lines)


def test_docs_section_replaces_the_hand_written_one(tmp_path: Path):
    md = tmp_path / "benchmarks.md"
    md.write_text("# Benchmarks\n\n## Radiomics\n\nkept\n\n## De-identification: old (issue 4)\n\nold figures\n\n"
                  "<!-- BEGIN streams -->\n## Streams\nkept too\n<!-- END streams -->\n")
    deid_bench.adopt_legacy_section(md)
    write_section("deid", deid_bench.TITLE, "python bench/deid_bench.py --quick", "new figures", path=md)
    deid_bench.adopt_legacy_section(md)  # no-op once the markers are there
    write_section("deid", deid_bench.TITLE, "python bench/deid_bench.py --quick", "newer figures", path=md)
    text = md.read_text()
    assert "old figures" not in text and "new figures" not in text and text.count("newer figures") == 1
    assert "## Radiomics\n\nkept" in text and "kept too" in text
    assert text.count("<!-- BEGIN deid -->") == 1
