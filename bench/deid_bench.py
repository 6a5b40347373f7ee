"""De-identification side by side: two floors, radlake, dicognito and pydicom ``deid``, with an independent leak check.

    .venv/bin/python bench/deid_bench.py [--files 400] [--files-full N] [--files-freetext N]
        [--header typical|full|freetext|both|all]
        [--workers N] [--repeat 3] [--quick] [--vault] [--json FILE] [--summary FILE] [--write-docs]

``--quick`` (60 typical + 20 full-header + 40 free-text files, 2 rounds; about 3 minutes on 2 busy cores) is what
``make bench`` runs: ``python bench/deid_bench.py --quick --write-docs --summary FILE``. ``--summary``
appends one JSON line per headline figure (``{"benchmark": "deid", "measure", "ratio", "goal"}``);
``--write-docs`` replaces the ``deid`` section of docs/benchmarks.md (``bench/report.py``).

Generates CT instances (512x512 int16, fake PHI from ``radlake/synthetic/phi_dicom.py``: a typical CT
header's identifying attributes, or every PS3.15 Table E.1-1 attribute; private tags with and without a
creator, a private sequence, nested sequences, an overlay and a curve with text), and a third corpus
(``radlake/synthetic/free_text_phi.py``: names, phones, addresses, dates and IDs of *other* persons in ten
descriptors, a local code's Code Meaning and SR content items). Then every tool reads
the same files and writes one output per input, on 1 process and on ``--workers`` processes, in the
same run, tools interleaved round by round; the best of ``--repeat`` rounds is kept (wall files/s and
CPU ms per file over this process and its children).

Tools:

- ``raw-floor``: the file's bytes read and written to the output folder unchanged (the cost of I/O
  alone; radlake's fast path copies most bytes as they are, so this is its true floor);
- ``pydicom-floor``: ``pydicom.dcmread`` + encode to bytes (``save_as`` into a buffer) + write;
- ``radlake``: ``radlake.deid.engine.run`` with the Basic profile without options (plus the patient
  pseudonym), local HMAC key unless ``--vault`` (then the stack's Vault Transit);
  ``radlake-default``: the same with radlake's default profile (its options keep some values on purpose);
- ``dicognito``: one ``Anonymizer`` per process, reused for every file as its docs say
  (``anonymize(dataset)`` + ``save_as``);
- ``deid``: one default ``DeidRecipe()`` per process, ``replace_identifiers(dicom_files=[...],
  deid=recipe, save=True, output_folder=...)`` over each batch of files, as its docs show.

Peers are imported at the top of this module and built once per process before timing starts (pool
workers are forked from it and inherit them); the same batches of files go to the same number of
processes for every tool.

Leaks are counted by ``bench/leak_scanner.py``, which imports nothing from ``radlake.deid`` (rules: its
module doc). The planted values of each input are the generator's own record (``phi_dicom.Plant``, per
instance, plus the study date it also writes into a private element) that are present in the input file.
Each output is paired with its input by name (floors and peers write ``<out>/<input name>``) or by
radlake's own ledger (``Outcome.source`` -> ``Outcome.output``); an input without a readable output is a
failure and is counted in its own column, never skipped. Nothing planted is exempt: the Basic profile
without options keeps none of the attributes the generator fills (Table E.1-1's Basic column has no K or
C), so every planted value left in radlake's or a peer's output is a leak. The floors' rows are the
positive control: the checker must find every planted value there.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import json
import logging
import os
import re
import resource
import shlex
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import pydicom

# Run as a script (python bench/deid_bench.py), the repository root is not on sys.path by itself.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.leak_scanner import (  # noqa: E402
    KINDS,
    MIN_LENGTH,
    Planted,
    planted_values,
    readable,
    scan_file,
)
from bench.report import BENCHMARKS_MD, write_section  # noqa: E402
from platform_layer.settings import get_settings  # noqa: E402
from platform_layer.vault import transit_session  # noqa: E402
from radlake.deid.confidentiality_profile import Profile  # noqa: E402
from radlake.deid.engine import Job, run  # noqa: E402
from radlake.deid.instance_result import Status  # noqa: E402
from radlake.deid.pseudonyms import LocalHmacSpec, PseudonymiserSpec  # noqa: E402
from radlake.synthetic import free_text_phi, phi_dicom  # noqa: E402

SECTION = "deid"
TITLE = "De-identification: radlake vs dicognito vs pydicom `deid` (issue 4)"
BASIC = Profile(name="basic", options=frozenset())
FLOORS = ("raw-floor", "pydicom-floor")
PEERS = ("dicognito", "deid")
ALL_TOOLS = (*FLOORS, "radlake", "radlake-default", *PEERS)
CHUNK = 8  # files per task handed to a pool worker (radlake batches 32 itself)
QUICK_FILES = 60  # typical header
QUICK_FILES_FULL = 20  # full Table E.1-1 header: deid alone needs ~0.3-0.5 s per file there
QUICK_FILES_FREETEXT = 40  # other persons in free text
HEADERS = ("typical", "full", "freetext")
QUICK_REPEAT = 2  # ~40 s a round on 2 cores at load 4-5: two fit in 2 minutes
PER_SERIES = 100
Results = dict[str, dict[str, dict[str, object]]]  # header -> tool -> figures


# ------------------------------------------------------------------------------------------- inputs


def generate(folder: Path, count: int, header: str) -> dict[str, list[tuple[str, str]]]:
    """Write ``count`` instances (series of 100, one patient each); return each file's planted (value, VR).

    Instances are built one by one (as ``phi_dicom.ct_series`` does) so that each gets its own ``Plant``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if header == "freetext":
        return generate_free_text(folder, count)
    only = phi_dicom.TYPICAL_CT_PHI if header == "typical" else None
    study_date = phi_dicom.STUDY_DATE.strftime("%Y%m%d")  # also written into private (0009,1002)
    planted: dict[str, list[tuple[str, str]]] = {}
    for start in range(0, count, PER_SERIES):
        series = start // PER_SERIES + 1
        patient = phi_dicom.Patient(patient_id=f"MRN{48213377 + series}")
        base = phi_dicom.phantom(512, series * 1000 + 1)
        for i in range(min(PER_SERIES, count - start)):
            plant = phi_dicom.Plant()
            ds = phi_dicom.ct_instance(i, patient=patient, study=series, series=1, size=512,
                                       pixels=np.roll(base, i, axis=0), plant=plant, only=only)
            name = f"s{series:03d}_{i:04d}.dcm"
            (folder / name).write_bytes(phi_dicom.to_bytes(ds))
            planted[name] = [(p.value, p.vr) for p in plant.values] + [(study_date, "DA")]
    return planted


def generate_free_text(folder: Path, count: int) -> dict[str, list[tuple[str, str]]]:
    """``count`` instances naming other persons in their free text (series of 100, one patient each);
    only the free-text values are planted (the patient's own are the other corpora's business)."""
    planted: dict[str, list[tuple[str, str]]] = {}
    for start in range(0, count, PER_SERIES):
        series = start // PER_SERIES + 1
        base = phi_dicom.phantom(512, series * 1000 + 7)
        for i in range(min(PER_SERIES, count - start)):
            plant = phi_dicom.Plant()
            ds = free_text_phi.free_text_instance(i, study=series, size=512, plant=plant,
                                                  pixels=np.roll(base, i, axis=0))
            name = f"f{series:03d}_{i:04d}.dcm"
            (folder / name).write_bytes(phi_dicom.to_bytes(ds))
            planted[name] = [(p.value, p.vr) for p in plant.values]
    return planted


def present_in_inputs(folder: Path, planted: dict[str, list[tuple[str, str]]]) -> dict[str, list[Planted]]:
    """Per input, the planted values that are really in it (the generator overwrites a few it recorded)."""
    kept = {}
    for name, pairs in planted.items():
        values = planted_values(pairs)
        found = scan_file(folder / name, values).leaked
        kept[name] = [v for v in values if v.text in found]
    return kept


# ------------------------------------------------------------------------------------ per-file tools

_PEERS: dict[str, object] = {}


def _peer(tool: str) -> object:
    """The peer's object for this process, imported and built once before any timing (forked workers
    inherit the parent's). Imported here, not at the top: radlake's own workers re-import this script, and
    they should not pay for the peers (``deid`` alone pulls in matplotlib)."""
    if tool not in _PEERS:
        if tool == "dicognito":
            from dicognito.anonymizer import Anonymizer  # noqa: PLC0415 - heavy optional peer, see above

            _PEERS[tool] = Anonymizer(seed="bench")
        else:
            from deid.config import DeidRecipe  # noqa: PLC0415 - heavy optional peer, see above
            from deid.dicom import replace_identifiers  # noqa: PLC0415
            from deid.logger import bot  # noqa: PLC0415

            bot.level = -5  # deid prints a warning per file otherwise
            _PEERS[tool] = (DeidRecipe(), replace_identifiers)
    return _PEERS[tool]


def _raw_floor(paths: list[Path], out: Path) -> None:
    for src in paths:
        (out / src.name).write_bytes(src.read_bytes())


def _pydicom_floor(paths: list[Path], out: Path) -> None:
    for src in paths:
        ds = pydicom.dcmread(src)
        buffer = io.BytesIO()
        ds.save_as(buffer)
        (out / src.name).write_bytes(buffer.getbuffer())


def _dicognito(paths: list[Path], out: Path) -> None:
    anonymizer = _peer("dicognito")
    for src in paths:
        try:
            ds = pydicom.dcmread(src)
            anonymizer.anonymize(ds)  # type: ignore[attr-defined]
            ds.save_as(out / src.name)
        except Exception as err:  # the missing output is counted as a failure by the leak check
            print(f"  dicognito failed on {src.name}: {err}", file=sys.stderr)


def _pydicom_deid(paths: list[Path], out: Path) -> None:
    recipe, replace_identifiers = _peer("deid")  # type: ignore[misc]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        try:
            replace_identifiers(dicom_files=[str(p) for p in paths], deid=recipe, save=True,
                                output_folder=str(out), overwrite=True)
            return
        except Exception:  # one bad file stops deid's loop: redo the batch file by file
            pass
    for src in paths:
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
                replace_identifiers(dicom_files=[str(src)], deid=recipe, save=True,
                                    output_folder=str(out), overwrite=True)
        except Exception as err:
            print(f"  deid failed on {src.name}: {err}", file=sys.stderr)


PER_FILE: dict[str, Callable[[list[Path], Path], None]] = {
    "raw-floor": _raw_floor, "pydicom-floor": _pydicom_floor, "dicognito": _dicognito, "deid": _pydicom_deid,
}


def _quiet() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)


def _chunk(job: tuple[str, list[Path], Path]) -> None:
    tool, paths, out = job
    PER_FILE[tool](paths, out)


def _init_worker(tool: str) -> None:
    _quiet()
    if tool in PEERS:
        _peer(tool)


def per_file(tool: str, paths: list[Path], out: Path, workers: int) -> dict[str, Path]:
    jobs = [(tool, paths[i:i + CHUNK], out) for i in range(0, len(paths), CHUNK)]
    if workers == 1:
        for job in jobs:
            _chunk(job)
    else:
        with Pool(workers, initializer=_init_worker, initargs=(tool,)) as pool:
            for _ in pool.imap_unordered(_chunk, jobs):
                pass
    return {p.name: out / p.name for p in paths if (out / p.name).is_file()}


def radlake(paths: list[Path], out: Path, workers: int, spec: PseudonymiserSpec, profile: Profile) -> dict[str, Path]:
    result = run([paths[0].parent], Job(out, profile, None, spec), workers=workers)
    # radlake names outputs by their new UIDs: its ledger says which input each came from.
    return {Path(o.source).name: out / o.output for o in result.outcomes
            if o.status is Status.DEIDENTIFIED and o.output}


@dataclass
class Timing:
    seconds: float
    cpu_seconds: float


def timed(fn: Callable[[], dict[str, Path]]) -> tuple[Timing, dict[str, Path]]:
    """Wall time, and CPU time of this process plus its (reaped) children: pool workers count too."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu, start = time.process_time(), time.perf_counter()
    outputs = fn()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    return Timing(seconds, time.process_time() - cpu + child_cpu), outputs


# ------------------------------------------------------------------------------------------ leak check


def leak_report(planted: dict[str, list[Planted]], outputs: dict[str, Path]) -> dict[str, object]:
    """Every input paired with its output (by name or radlake's ledger); missing/unreadable = failure."""
    leaked, files_with, failures = 0, 0, 0
    by_kind = dict.fromkeys(KINDS, 0)
    examples: dict[str, str] = {}
    failure_examples: list[str] = []
    for name, values in planted.items():
        result = scan_file(outputs.get(name), values)
        if not result.readable:
            failures += 1
            if len(failure_examples) < 3:
                failure_examples.append(f"{name}: {result.error}")
            continue
        found = result.leaked
        leaked += len(found)
        files_with += bool(found)
        for kind in found.values():
            by_kind[kind] += 1
        for hit in result.hits:
            if len(examples) < 6 and hit.value not in examples:
                examples[hit.value] = hit.where
    files = len(planted)
    return {"inputs": files, "failures": failures, "failure_examples": failure_examples,
            "leaked_values": leaked, "per_file": round(leaked / files, 2) if files else 0.0,
            "files_with_leaks": files_with, "by_kind": by_kind, "examples": examples}


def failures_only(names: list[str], outputs: dict[str, Path]) -> int:
    """Inputs without a readable output (the multi-process runs: leaks are checked on the 1-process run)."""
    return sum(bool(readable(outputs.get(name))) for name in names)


# ---------------------------------------------------------------------------------------------- report


def _versions() -> dict[str, str]:
    found = {}
    for dist in ("radlake", "pydicom", "dicognito", "deid"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def add_ratios(rows: dict[str, dict[str, object]], worker_counts: list[int]) -> None:
    """Each tool's files/s as a fraction of each floor's, and the floor's CPU ms over the tool's."""
    for name, row in rows.items():
        for w in worker_counts:
            for floor in FLOORS:
                base = rows.get(floor)
                if base:
                    key = floor.replace("-floor", "")
                    row[f"vs_{key}_floor_{w}"] = round(row[f"files_per_s_{w}"] / base[f"files_per_s_{w}"], 3)
                    cpu = row[f"cpu_ms_per_file_{w}"]
                    row[f"cpu_vs_{key}_floor_{w}"] = round(base[f"cpu_ms_per_file_{w}"] / cpu, 3)


def summary_lines(results: Results, worker_counts: list[int]) -> list[dict[str, object]]:
    """One JSON object per headline figure, for ``make bench`` (bench/run_all.py) to collect."""
    lines = []

    def add(measure: str, ratio: float, goal: str = "") -> None:
        lines.append({"benchmark": "deid", "measure": measure, "ratio": round(float(ratio), 4), "goal": goal})

    for header, rows in results.items():
        lake, cognito = rows.get("radlake"), rows.get("dicognito")
        for w in worker_counts:
            if lake and "raw-floor" in rows:
                add(f"radlake files/s / raw read+write floor ({header} header, {w} proc)", lake[f"vs_raw_floor_{w}"])
            if lake and "pydicom-floor" in rows:
                add(f"radlake files/s / pydicom read+write floor ({header} header, {w} proc)",
                    lake[f"vs_pydicom_floor_{w}"], ">= 0.8")
            if lake and cognito:
                add(f"radlake / dicognito files/s ({header} header, {w} proc)",
                    lake[f"files_per_s_{w}"] / cognito[f"files_per_s_{w}"], "> 1")
        for tool, row in rows.items():
            if tool in FLOORS:
                continue
            leaks = row["leaks"]
            cleans = header == "freetext"  # every profile must remove other persons' identifiers
            note = ", default profile: keeps some values by design" if tool == "radlake-default" and not cleans else ""
            goal = "0" if tool == "radlake" or (cleans and tool == "radlake-default") else ""
            add(f"planted PHI values left per file, {tool} ({header} header{note})", leaks["per_file"], goal)
            add(f"inputs without a readable output, {tool} ({header} header)",
                leaks["failures"] / leaks["inputs"], goal)
    return lines


def _fmt(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:.0f}"


def markdown(summary: dict[str, object], worker_counts: list[int]) -> str:
    results: Results = summary["results"]  # type: ignore[assignment]
    versions = ", ".join(f"{k} {v}" for k, v in summary["versions"].items())  # type: ignore[union-attr]
    load = summary["load_average"]
    procs = " / ".join(f"{w} proc" for w in worker_counts)
    files = ", ".join(f"{n} ({h} header)" for h, n in summary["files"].items())  # type: ignore[union-attr]
    out = [
        "*Written by `bench/deid_bench.py --write-docs`; do not edit by hand.*",
        "",
        f"- load average (1/5/15 min): start {load['start']}, end {load['end']}",  # type: ignore[index]
        f"- versions: {versions}",
        f"- inputs: {files} generated CT instances, 512x512 int16, series of "
        f"{PER_SERIES}, Explicit VR Little Endian; pseudonyms: {summary['pseudonyms']}; "
        f"best of {summary['repeat']} interleaved rounds",
        "",
        "**What runs.** *raw floor*: the file's bytes read and written unchanged. *pydicom floor*: "
        "`dcmread` + `save_as` into bytes + write. *radlake*: `radlake.deid.engine.run`, Basic profile "
        "without options; *radlake-default*: its default profile (options keep some values on purpose). "
        "*dicognito*: one `Anonymizer` per process, `anonymize` + `save_as`. *deid*: one default "
        "`DeidRecipe()` per process, `replace_identifiers` over each batch. Peers are imported once and "
        "built once per process before timing; every tool gets the same files on the same processes.",
        "",
        "**Inputs.** *typical*: fake PHI in the ~40 identifying attributes a CT header carries; *full*: "
        "in every attribute of PS3.15 Table E.1-1 (~620, a stress case). Both add private elements with "
        "and without a creator, a private sequence, PHI two sequence levels down, an overlay and a curve "
        "with text. *freetext*: names (every form: `Dr X`, `for X`, `spouse X`, `X^Y`, capitals), phones, "
        "e-mail and street addresses, dates and IDs of *other* persons inside ten descriptors (study and "
        "series descriptions, protocol name, image and study comments, requested procedure and performed "
        "step descriptions, additional patient history, patient comments, occupation), a local code's Code "
        "Meaning in Procedure Code Sequence and SR TEXT/PNAME/DATE content items; only those values are "
        "planted, and every profile must remove them (radlake-default by cleaning).",
    ]
    for header, rows in results.items():
        out += [
            "",
            f"### {header} header ({summary['files'][header]} files)",  # type: ignore[index]
            "",
            f"Speed ({procs}); `x floor` = tool files/s / floor files/s (1 = as fast as the floor):",
            "",
            "| tool | files/s | x raw floor | x pydicom floor "
            "| CPU ms/file, 1 proc (raw floor / tool; pydicom floor / tool) |",
            "|---|---|---|---|---|",
        ]
        for tool, row in rows.items():
            speed = " / ".join(_fmt(row[f"files_per_s_{w}"]) for w in worker_counts)  # type: ignore[arg-type]
            ratios = [" / ".join(f"{row[f'vs_{floor}_floor_{w}']:.3f}" for w in worker_counts)
                      if f"vs_{floor}_floor_1" in row else "-" for floor in ("raw", "pydicom")]
            cpu = " / ".join(f"{row[f'cpu_vs_{floor}_floor_1']:.2f}" for floor in ("raw", "pydicom")
                             if f"cpu_vs_{floor}_floor_1" in row)
            cpu = f" ({cpu})" if cpu else ""
            out.append(f"| {tool} | {speed} | {ratios[0]} | {ratios[1]} | {row['cpu_ms_per_file_1']:.2f}{cpu} |")
        per_file = summary["planted_per_file"][header]  # type: ignore[index]
        out += [
            "",
            f"Leaks ({per_file} planted values per input on average; the floors are the positive control):",
            "",
            f"| tool | no readable output ({procs}) | planted values left | per file | files with leaks "
            "| names / IDs & text / dates & times / UIDs | e.g. |",
            "|---|---|---|---|---|---|---|",
        ]
        for tool, row in rows.items():
            leaks = row["leaks"]
            kinds = " / ".join(str(leaks["by_kind"][k]) for k in KINDS)
            examples = "; ".join(f"`{v}` in {w}" for v, w in list(leaks["examples"].items())[:3])
            failed = " / ".join(str(row[f"failures_{w}"]) for w in worker_counts)
            out.append(f"| {tool} | {failed} "
                       f"| {leaks['leaked_values']} | {leaks['per_file']} | {leaks['files_with_leaks']} "
                       f"| {kinds} | {examples} |")
    out += [
        "",
        "**Leak rules** (`bench/leak_scanner.py`, which imports nothing from `radlake.deid`): the planted "
        "values of each input are the generator's record (`phi_dicom.Plant`, per instance, and the study "
        "date it writes into a private element) that are present in the input (found there by the same "
        "checker: the generator overwrites a few values it recorded). Searched "
        f"case-insensitively, forms of at least {MIN_LENGTH} characters: the value, every person-name "
        "component, dates also as `YYYY-MM-DD`/`YYYY/MM/DD`/`YYYY.MM.DD`, times also without the "
        "fraction, free-text phones also as digits alone and e-mail addresses also as their local part; a match that starts or ends inside a longer run of digits does not count (a date inside "
        "a UID's digits). Searched in every element pydicom parses from the output (file meta, private "
        "elements, `UN`, sequence items at any depth; pixel data skipped) and in the raw bytes with the "
        "Pixel Data value cut out. A planted value counts once per file. Outputs are paired with inputs by "
        "file name (floors, peers) or by radlake's ledger (input -> output path); an input without a "
        "readable output is a failure, in its own column. Nothing is exempt: the Basic profile without "
        "options keeps none of the attributes the generator fills (Table E.1-1's Basic column has no K or "
        "C). radlake-default is measured against the same list: what it keeps under its options "
        "(descriptors, device identity, patient characteristics, modified dates) shows up as left.",
    ]
    goals = []
    for header, rows in results.items():
        lake, cognito = rows.get("radlake"), rows.get("dicognito")
        if not lake:
            continue
        w = worker_counts[0]
        clean = not lake["leaks"]["leaked_values"] and not lake["leaks"]["failures"]
        parts = [f"zero leaks and failures: {'met' if clean else 'NOT met'}"]
        if "vs_pydicom_floor_1" in lake:
            parts.append(f">= 0.8 of the pydicom floor (1 proc): {lake[f'vs_pydicom_floor_{w}']:.2f}, "
                         f"{'met' if lake[f'vs_pydicom_floor_{w}'] >= 0.8 else 'NOT met'}")
        if "vs_raw_floor_1" in lake:
            parts.append(f"of the raw floor: {lake[f'vs_raw_floor_{w}']:.2f}")
        if cognito:
            ratio = lake[f"files_per_s_{w}"] / cognito[f"files_per_s_{w}"]
            parts.append(f"faster than dicognito: {ratio:.1f}x, {'met' if ratio > 1 else 'NOT met'}")
        if header == "freetext" and "radlake-default" in rows:
            default = rows["radlake-default"]["leaks"]
            ok = not default["leaked_values"] and not default["failures"]
            parts.append(f"radlake-default (cleans descriptors) zero leaks: {'met' if ok else 'NOT met'}")
        goals.append(f"- {header}: " + "; ".join(parts))
    if goals:
        out += ["", "**Goals** (radlake, Basic profile):", "", *goals]
    out += ["", "The machine is shared: wall-clock files/s move with other jobs (see the load average); "
            "CPU ms per file is steadier."]
    return "\n".join(out)


def adopt_legacy_section(path: Path, name: str = SECTION) -> None:
    """Put BEGIN/END markers around the hand-written section of earlier runs so write_section replaces it."""
    if not path.exists():
        return
    text = path.read_text()
    if f"<!-- BEGIN {name} -->" in text:
        return
    match = re.search(r"^## De-identification\b.*?(?=^## |^<!-- BEGIN |\Z)", text, re.S | re.M)
    if match:
        block = match.group(0).rstrip("\n")
        text = text[:match.start()] + f"<!-- BEGIN {name} -->\n{block}\n<!-- END {name} -->\n\n" + text[match.end():]
        path.write_text(text)


# ------------------------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400, help="instances with the typical header")
    parser.add_argument("--files-full", type=int, help="instances with the full header (default: --files)")
    parser.add_argument("--files-freetext", type=int, help="instances naming other persons in free text "
                        "(default: --files)")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK_FILES} typical + {QUICK_FILES_FULL} full-header + {QUICK_FILES_FREETEXT} "
                             f"free-text files, {QUICK_REPEAT} rounds: about 3 minutes on 2 busy cores")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; the best of them is kept")
    parser.add_argument("--header", choices=[*HEADERS, "both", "all"], default="all",
                        help="PHI in a typical CT header's identifying attributes, in every Table E.1-1 one, "
                             "other persons in free text; both = typical and full; all = the three")
    parser.add_argument("--vault", action="store_true", help="use Vault Transit for radlake's pseudonyms")
    parser.add_argument("--project", default="bench")
    parser.add_argument("--tools", default=",".join(ALL_TOOLS))
    parser.add_argument("--json", type=Path, help="write the full results here")
    parser.add_argument("--summary", type=Path, help="append one JSON line per headline figure to this file")
    parser.add_argument("--write-docs", action="store_true",
                        help=f"replace the {SECTION!r} section of docs/benchmarks.md")
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.files_full, args.repeat = QUICK_FILES, QUICK_FILES_FULL, QUICK_REPEAT
        args.files_freetext = QUICK_FILES_FREETEXT
    counts = {"typical": args.files, "full": args.files_full or args.files,
              "freetext": args.files_freetext or args.files}
    command = shlex.join(["python", "bench/deid_bench.py", *(sys.argv[1:] if argv is None else argv)])
    load_start = os.getloadavg()
    _quiet()

    selected = [t for t in args.tools.split(",") if t in ALL_TOOLS]
    unknown = [t for t in args.tools.split(",") if t not in ALL_TOOLS]
    if unknown or not selected:
        parser.error(f"unknown tools {unknown}; choose from {','.join(ALL_TOOLS)}")
    worker_counts = sorted({1, max(1, args.workers)})
    spec: PseudonymiserSpec
    run_scope = contextlib.ExitStack()  # the Vault run's token is revoked when the bench ends
    if args.vault:
        spec = run_scope.enter_context(transit_session(get_settings(), args.project))
    else:
        spec = LocalHmacSpec(b"bench-project-key")
    try:
        for tool in selected:
            if tool in PEERS:
                _peer(tool)  # built once, before any timing; pool workers inherit it

        work = args.keep or Path(tempfile.mkdtemp(prefix="deid-bench-"))
        headers = {"both": ["typical", "full"], "all": list(HEADERS)}.get(args.header, [args.header])
        results: Results = {}
        planted_per_file: dict[str, float] = {}
        try:
            for header in headers:
                t0 = time.perf_counter()
                folder = work / header / "in"
                shutil.rmtree(folder, ignore_errors=True)
                planted = present_in_inputs(folder, generate(folder, counts[header], header))
                inputs = sorted(folder.iterdir())
                planted_per_file[header] = round(sum(map(len, planted.values())) / len(planted), 1)
                print(f"{header}: generated {len(inputs)} files in {time.perf_counter() - t0:.1f}s "
                      f"({sum(p.stat().st_size for p in inputs) / len(inputs) / 1024:.0f} KiB each, "
                      f"{planted_per_file[header]} planted values each)", file=sys.stderr)
                for path in inputs:  # warm the page cache for everyone
                    path.read_bytes()
                runners: dict[str, Callable[[Path, int], dict[str, Path]]] = {
                    "radlake": lambda out, w: radlake(inputs, out, w, spec, BASIC),
                    "radlake-default": lambda out, w: radlake(inputs, out, w, spec, Profile()),
                    **{tool: (lambda out, w, tool=tool: per_file(tool, inputs, out, w)) for tool in PER_FILE},
                }
                best: dict[tuple[str, int], Timing] = {}
                outputs: dict[tuple[str, int], dict[str, Path]] = {}
                for round_ in range(args.repeat):
                    for tool in selected:  # interleaved, so a busy spell hits every tool alike
                        for w in worker_counts:
                            out = work / header / f"out-{tool}-{w}"
                            shutil.rmtree(out, ignore_errors=True)
                            out.mkdir(parents=True)
                            timing, outputs[tool, w] = timed(lambda: runners[tool](out, w))
                            old = best.get((tool, w))
                            best[tool, w] = Timing(min(timing.seconds, old.seconds) if old else timing.seconds,
                                                   min(timing.cpu_seconds, old.cpu_seconds) if old else timing.cpu_seconds)
                            print(f"  round {round_ + 1} {tool:16s} {w} proc: {timing.seconds:7.2f}s "
                                  f"{len(inputs) / timing.seconds:8.1f} files/s", file=sys.stderr)
                rows: dict[str, dict[str, object]] = {}
                names = [p.name for p in inputs]
                for tool in selected:
                    # Leaks on the last round's 1-process outputs; the other runs are checked for failures.
                    leaks = leak_report(planted, outputs[tool, 1])
                    row: dict[str, object] = {}
                    for w in worker_counts:
                        row[f"files_per_s_{w}"] = round(len(inputs) / best[tool, w].seconds, 1)
                        row[f"cpu_ms_per_file_{w}"] = round(best[tool, w].cpu_seconds / len(inputs) * 1000, 2)
                        row[f"failures_{w}"] = leaks["failures"] if w == 1 else failures_only(names, outputs[tool, w])
                    row["leaks"] = leaks
                    rows[tool] = row
                add_ratios(rows, worker_counts)
                results[header] = rows
        finally:
            if args.keep is None:
                shutil.rmtree(work, ignore_errors=True)

        summary = {
            "command": command,
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "load_average": {"start": [round(x, 2) for x in load_start],
                             "end": [round(x, 2) for x in os.getloadavg()]},
            "versions": _versions(),
            "files": {h: counts[h] for h in headers},
            "repeat": args.repeat,
            "workers": worker_counts,
            "pseudonyms": "vault-transit" if args.vault else "local-hmac",
            "planted_per_file": planted_per_file,
            "results": results,
        }
        text = json.dumps(summary, indent=2)
        if args.json:
            args.json.write_text(text + "\n")
        body = markdown(summary, worker_counts)
        print(body)
        if args.summary:
            with args.summary.open("a") as fh:
                for line in summary_lines(results, worker_counts):
                    fh.write(json.dumps(line) + "\n")
        if args.write_docs:
            adopt_legacy_section(BENCHMARKS_MD)
            write_section(SECTION, TITLE, command, body)
        return 0
    finally:
        run_scope.close()


if __name__ == "__main__":
    raise SystemExit(main())
