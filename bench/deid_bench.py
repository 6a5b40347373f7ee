"""De-identification side by side: the bare pydicom floor, radlake, dicognito, pydicom ``deid``.

    .venv/bin/python bench/deid_bench.py --files 400 [--workers 2] [--vault] [--json out.json]

Generates a CT set (512x512 int16, fake PHI in every PS3.15 Table E.1-1 attribute, private tags,
overlays, nested sequences), then for each tool measures files/s on one core and on ``--workers``
processes, in the same run. Afterwards every tool's output is scanned with radlake's verification
scan (the input's PHI tokens under the Basic profile without options, looked for case-insensitively in
the output's bytes outside the pixel data) and the leaked tokens are counted. On one process the CPU
time per file is recorded too: on a shared machine it is steadier than wall time.

radlake runs the Basic profile without options here (the peers' defaults do not retain dates or
device identity either); pseudonyms come from a local HMAC key unless ``--vault`` is given, in which
case the stack's Vault Transit is used (``RADLAKE_VAULT_ADDR``/``RADLAKE_VAULT_TOKEN`` or the local stack).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import platform
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path

import pydicom

from radlake.deid.confidentiality_profile import Profile, compile_rules
from radlake.deid.engine import Job, run
from radlake.deid.pseudonyms import LocalHmacSpec, PseudonymiserSpec
from radlake.deid.verification import collect_tokens, header_bytes, scan_bytes
from radlake.synthetic import phi_dicom

BASIC = Profile(name="basic", options=frozenset())


def generate(folder: Path, count: int, header: str, per_series: int = 100) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, count, per_series):
        n = min(per_series, count - start)
        series = start // per_series + 1
        patient = phi_dicom.Patient(patient_id=f"MRN{48213377 + series}")
        only = phi_dicom.TYPICAL_CT_PHI if header == "typical" else None
        datasets, _ = phi_dicom.ct_series(n, patient=patient, study=series, series=1, size=512, only=only)
        for i, ds in enumerate(datasets):
            path = folder / f"s{series:03d}_{i:04d}.dcm"
            path.write_bytes(phi_dicom.to_bytes(ds))
            paths.append(path)
    return paths


# ------------------------------------------------------------------------------ per-file tool functions


def _floor(args: tuple[Path, Path]) -> None:
    src, out = args
    ds = pydicom.dcmread(src)
    ds.save_as(out / src.name, enforce_file_format=True)


_DICOGNITO = {}


def _dicognito(args: tuple[Path, Path]) -> None:
    from dicognito.anonymizer import Anonymizer

    src, out = args
    anonymizer = _DICOGNITO.setdefault("a", Anonymizer(seed="bench"))
    ds = pydicom.dcmread(src)
    anonymizer.anonymize(ds)
    ds.save_as(out / src.name, enforce_file_format=True)


_DEID = {}


def _pydicom_deid(args: tuple[Path, Path]) -> None:
    from deid.config import DeidRecipe
    from deid.dicom import replace_identifiers

    src, out = args
    recipe = _DEID.setdefault("r", DeidRecipe())
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        replace_identifiers(dicom_files=[str(src)], deid=recipe, save=True, output_folder=str(out), overwrite=True)


def _quiet() -> None:
    warnings.simplefilter("ignore")
    logging.disable(logging.CRITICAL)
    with contextlib.suppress(ImportError):
        from deid.logger import bot

        bot.level = -5


def per_file(fn: Callable[[tuple[Path, Path]], None], paths: list[Path], out: Path, workers: int) -> float:
    out.mkdir(parents=True, exist_ok=True)
    jobs = [(p, out) for p in paths]
    start = time.perf_counter()
    if workers == 1:
        for job in jobs:
            fn(job)
    else:
        with Pool(workers, initializer=_quiet) as pool:
            for _ in pool.imap_unordered(fn, jobs, chunksize=8):
                pass
    return time.perf_counter() - start


def radlake(paths: list[Path], out: Path, workers: int, spec: PseudonymiserSpec, profile: Profile) -> float:
    start = time.perf_counter()
    result = run([paths[0].parent], Job(out, profile, None, spec), workers=workers)
    elapsed = time.perf_counter() - start
    counts = result.report["by_status"]
    if counts.get("deidentified") != len(paths):
        print(f"  radlake outcomes: {counts} {result.report['by_reason']}", file=sys.stderr)
    return elapsed


# ------------------------------------------------------------------------------------------ leak scan


def leaks(inputs: list[Path], out: Path) -> dict[str, object]:
    """Tokens of each input (Basic profile) found in the tool's output file for it, outside pixel data."""
    rules = compile_rules(BASIC)
    outputs = sorted(p for p in out.rglob("*") if p.is_file() and not p.name.endswith((".json", ".jsonl", ".bin")))
    by_sop = {}
    for path in outputs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            by_sop[path] = path.read_bytes()
    total, files_with, distinct = 0, 0, set()
    # outputs are renamed by some tools: pair by InstanceNumber (kept by every tool) instead of by name
    index = {}
    for path, data in by_sop.items():
        ds = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        index[str(ds.get("InstanceNumber")) + "/" + str(ds.get("ImagePositionPatient"))] = data
    for src in inputs:
        ds = pydicom.dcmread(src)
        key = str(ds.get("InstanceNumber")) + "/" + str(ds.get("ImagePositionPatient"))
        data = index.get(key)
        if data is None:
            continue
        tokens = collect_tokens(ds, rules)
        found = scan_bytes(header_bytes(data, len(ds.PixelData)), tokens)
        total += len(found)
        files_with += bool(found)
        distinct.update(h.token for h in found)
    return {"outputs": len(by_sop), "leaked_tokens": total, "files_with_leaks": files_with,
            "distinct_tokens": len(distinct), "examples": sorted(distinct)[:8]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=400)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--header", choices=["full", "typical"], default="full",
                        help="PHI in every Table E.1-1 attribute (full) or in a typical CT header's")
    parser.add_argument("--vault", action="store_true", help="use Vault Transit for radlake's pseudonyms")
    parser.add_argument("--project", default="bench")
    parser.add_argument("--tools", default="floor,radlake,radlake-default,dicognito,deid")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep", type=Path, help="work folder to keep (default: a temporary one)")
    args = parser.parse_args(argv)
    _quiet()

    work = args.keep or Path(tempfile.mkdtemp(prefix="deid-bench-"))
    spec: PseudonymiserSpec
    if args.vault:
        from radlake.deid.cli import vault_spec
        from radlake.settings import get_settings

        spec = vault_spec(get_settings(), args.project)
    else:
        spec = LocalHmacSpec(b"bench-project-key")
    t0 = time.perf_counter()
    inputs = generate(work / "in", args.files, args.header)
    print(f"generated {len(inputs)} files in {time.perf_counter() - t0:.1f}s "
          f"({sum(p.stat().st_size for p in inputs) / len(inputs) / 1024:.0f} KiB each)", file=sys.stderr)
    for path in inputs:  # warm the page cache for everyone
        path.read_bytes()

    tools: dict[str, Callable[[Path, int], float]] = {
        "floor": lambda out, w: per_file(_floor, inputs, out, w),
        "radlake": lambda out, w: radlake(inputs, out, w, spec, BASIC),
        "radlake-default": lambda out, w: radlake(inputs, out, w, spec, Profile()),
        "dicognito": lambda out, w: per_file(_dicognito, inputs, out, w),
        "deid": lambda out, w: per_file(_pydicom_deid, inputs, out, w),
    }
    selected = [t for t in args.tools.split(",") if t in tools]
    results: dict[str, dict[str, object]] = {}
    for name in selected:
        row: dict[str, object] = {}
        for workers in sorted({1, args.workers}):
            out = work / f"out-{name}-{workers}"
            shutil.rmtree(out, ignore_errors=True)
            cpu = time.process_time()
            seconds = tools[name](out, workers)
            if workers == 1:  # everything ran in this process: CPU time is robust to a busy machine
                row["cpu_ms_per_file_1"] = round((time.process_time() - cpu) / len(inputs) * 1000, 2)
            row[f"files_per_s_{workers}"] = round(len(inputs) / seconds, 1)
            print(f"{name:16s} workers={workers}: {seconds:7.2f}s  {len(inputs) / seconds:8.1f} files/s",
                  file=sys.stderr)
        row["leaks"] = leaks(inputs, work / f"out-{name}-1") if name != "floor" else None
        results[name] = row
    floor = results.get("floor", {})
    for name, row in results.items():
        for key in [k for k in row if k.startswith("files_per_s_")]:
            if floor.get(key):
                row[key.replace("files_per_s", "vs_floor")] = round(row[key] / floor[key], 3)
        if floor.get("cpu_ms_per_file_1") and row.get("cpu_ms_per_file_1"):
            row["cpu_vs_floor_1"] = round(floor["cpu_ms_per_file_1"] / row["cpu_ms_per_file_1"], 3)
    summary = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, {platform.system()}",
        "python": platform.python_version(),
        "pydicom": pydicom.__version__,
        "files": len(inputs),
        "header": args.header,
        "pseudonyms": "vault-transit" if args.vault else "local-hmac",
        "results": results,
    }
    text = json.dumps(summary, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
