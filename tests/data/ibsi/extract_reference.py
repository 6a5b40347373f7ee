"""Extract the IBSI 1 digital-phantom reference values from the IBSI reference manual source.

Usage: python extract_reference.py 03_Image_features.rst > digital_phantom_reference.csv
       python extract_reference.py 03_Image_features.rst --ct > ct_phantom_reference.csv

The input is ``docs/03_Image_features.rst`` of https://github.com/theibsi/ibsi-doc (see PROVENANCE).
Each feature section there has a heading, its permanent identifier in grey italics, a formula whose
left-hand side is the feature tag ``F_{\\mathit{tag}}``, and a table of reference values; this
script keeps the rows whose data column is ``dig. phantom`` (or, with ``--ct``, ``config. A`` to
``config. E`` of the lung-cancer CT phantom).
"""

from __future__ import annotations

import csv
import re
import sys

AGGREGATION_IDS = {
    "": "DHQ4",
    "2D, averaged": "BTW3",
    "2D, slice-merged": "SUJT",
    "2.5D, direction-merged": "JJUI",
    "2.5D, merged": "ZW7Z",
    "3D, averaged": "ITBB",
    "3D, merged": "IAZD",
    "2D": "8QNN",
    "2.5D": "62GR",
    "3D": "KOBO",
}


# Sections whose formula does not carry the tag in the form the parser reads, or whose identifier is
# mistyped in this revision of the manual source: heading -> (tags in row order, identifier, note).
FIXUPS = {
    "10\\ :sup:`th` intensity percentile": (["stat.p10"], "QG58", ""),
    "90\\ :sup:`th` intensity percentile": (["stat.p90"], "8DWT", ""),
    "10\\ :sup:`th` discretised intensity percentile": (
        ["ih.p10"], "GPMT", "source lists 1PR8 (the id of ih.min); GPMT per DICOM PS3.16 CID 7478"),
    "90\\ :sup:`th` discretised intensity percentile": (
        ["ih.p90"], "OZ0C", "source lists GPMT; OZ0C per DICOM PS3.16 CID 7478"),
    "Small zone emphasis": (["szm.sze"], "5QRC", "identifier missing in source; 5QRC per DICOM PS3.16 CID 7476"),
    "Complexity": (["ngt.complexity"], "HDEZ", "source formula tag reads ntg.complexity"),
    "Volume at intensity fraction": (["ivh.v10", "ivh.v90"], "BC2M", ""),
    "Intensity at volume fraction": (["ivh.i10", "ivh.i90"], "GBPN", ""),
    "Volume fraction difference between intensity fractions": (["ivh.v10minusv90"], "DDTU", ""),
    "Intensity fraction difference between volume fractions": (["ivh.i10minusi90"], "CNV2", ""),
}


def parse_number(text: str) -> float | None:
    text = text.strip()
    if text in {"—", "-", ""}:
        return None
    text = text.replace(":math:`-`\\ ", "-").replace("\\ ", "")
    sci = re.fullmatch(r":math:`(-?[0-9.]+) \\times 10\^\{(-?[0-9]+)\}`", text)
    if sci:
        return float(sci.group(1)) * 10 ** int(sci.group(2))
    return float(text)


def significant_text(text: str) -> str:
    text = text.strip().replace(":math:`-`\\ ", "-")
    sci = re.fullmatch(r":math:`(-?[0-9.]+) \\times 10\^\{(-?[0-9]+)\}`", text)
    return f"{sci.group(1)}e{sci.group(2)}" if sci else text


def rows(lines: list[str], wanted: frozenset[str] = frozenset({"dig. phantom"})):
    heading = code = tag = None
    seen: dict[tuple[str, str, str], int] = {}
    for i, line in enumerate(lines):
        if i + 1 < len(lines) and re.fullmatch(r"\^{4,}", lines[i + 1].strip()) and line.strip():
            heading, code, tag = line.strip(), None, None
            continue
        match = re.search(r'color:grey;font-style:italic;text-align:right">([0-9A-Z]{4})<', line)
        if match and heading and code is None:
            code = match.group(1)
        match = re.search(r"F_\{\\mathit\{([a-z0-9.]+)\}\}", line)
        if match and heading and tag is None:
            tag = match.group(1)
        data = re.match(r"\s*\|\s*(dig\. phantom|config\. [A-E])\s*\|", line)
        if data and data.group(1) in wanted:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if len(cells) == 4:
                aggregation, (value, tol, consensus) = "", cells[1:]
            else:
                aggregation, value, tol, consensus = cells[1:]
            if parse_number(value) is None:
                continue  # no reference value for this configuration
            note = ""
            if heading in FIXUPS:
                tags, code, note = FIXUPS[heading]
                counter = (heading, cells[0], cells[1] if len(cells) == 6 else "")
                tag = tags[min(seen.get(counter, 0), len(tags) - 1)]
                seen[counter] = seen.get(counter, 0) + 1
            yield {
                "data": cells[0],
                "tag": tag.lower(),
                "ibsi_id": code,
                "name": heading,
                "aggregation": aggregation,
                "aggregation_id": AGGREGATION_IDS[aggregation],
                "value": significant_text(value),
                "tolerance": "" if parse_number(tol) is None else significant_text(tol),
                "consensus": consensus,
                "note": note,
            }


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0], encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    ct = len(args) > 1 and args[1] == "--ct"
    wanted = frozenset(f"config. {c}" for c in "ABCDE") if ct else frozenset({"dig. phantom"})
    fields = (["data"] if ct else []) + ["tag", "ibsi_id", "name", "aggregation", "aggregation_id", "value", "tolerance", "consensus", "note"]
    out = csv.DictWriter(sys.stdout, fieldnames=fields, lineterminator="\n", extrasaction="ignore")
    out.writeheader()
    for row in rows(lines, wanted):
        out.writerow(row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
