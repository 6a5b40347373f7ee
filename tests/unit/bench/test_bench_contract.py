"""Every benchmark script follows the contract bench/run_all.py relies on; the docs helpers adopt hand-written sections."""

from __future__ import annotations

import re
from pathlib import Path

import pydicom
import pytest

from bench import run_all
from bench.report import adopt_legacy_section, write_section

BENCH = Path(run_all.__file__).resolve().parent


@pytest.mark.parametrize("name", [*run_all.ORDER, run_all.STACK])
def test_every_script_takes_the_flags_run_all_passes_and_has_a_main(name):
    # Read, not imported: the scripts import torch, Spark and the stack's clients.
    source = (BENCH / f"{name}_bench.py").read_text()
    for flag in ("--quick", "--write-docs", "--summary"):
        assert re.search(rf"add_argument\(\s*\"{flag}\"", source), f"{name}_bench.py lacks {flag}"
    assert "def main(argv: list[str] | None = None) -> int:" in source
    assert "os.getloadavg()" in source


def test_a_hand_written_section_is_adopted_once_then_replaced(tmp_path):
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## Radiomics: radlake vs pyradiomics (issue 7)\n\nold, by hand\n\n"
                   "## De-identification: by hand too\n\ntext\n\n<!-- BEGIN lake -->\n## Lake\nx\n<!-- END lake -->\n")
    assert adopt_legacy_section("radiomics", "## Radiomics: radlake vs pyradiomics", doc)
    assert not adopt_legacy_section("radiomics", "## Radiomics: radlake vs pyradiomics", doc)
    write_section("radiomics", "Radiomics: radlake vs pyradiomics (issue 7)", "python bench/radiomics_bench.py", "new",
                  doc)
    text = doc.read_text()
    assert "old, by hand" not in text and text.count("## Radiomics") == 1 and "\nnew\n" in text
    assert "## De-identification: by hand too\n\ntext" in text and "<!-- BEGIN lake -->\n## Lake\nx" in text


def test_the_ingest_bench_generates_the_size_it_is_asked_for(tmp_path):
    ingest_bench = pytest.importorskip("bench.ingest_bench")
    paths = ingest_bench.generate(tmp_path, 3, 32)
    assert len(paths) == 3
    for path in paths:
        ds = pydicom.dcmread(path)
        assert (ds.Rows, ds.Columns) == (32, 32) and ds.pixel_array.shape == (32, 32)
