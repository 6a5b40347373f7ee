"""Radiomics benchmark: radlake vs pyradiomics on the same ROIs, in the same run.

    python bench/radiomics_bench.py [--rois N] [--repeat 5] [--quick] [--out results.json] [--write-docs]
        [--summary FILE]

ROIs: generated CT volumes (radlake.synthetic.ct_volume) with spherical and irregular lesions of
known size, and the IBSI 1 digital phantom. Settings are equivalent on both sides: no resampling,
fixed bin number 32 (pyradiomics ``binCount``), 3D texture, GLCM/GLRLM averaged over the 13
directions, delta = 1, NGLDM alpha = 0, and the same feature classes (radlake: morphology,
intensity statistics and histogram, GLCM, GLRLM, GLSZM, NGTDM, NGLDM). A second radlake column,
"full", is the whole IBSI set: also local intensity, IVH, GLDZM, Moran's I and Geary's C, and every
2D/2.5D aggregation. Times are the best of ``--repeat`` runs.

Timing: wall time per ROI, (a) on one core (process pinned to CPU 0, one BLAS/OpenMP thread) and
(b) on all cores (a process pool with one worker per core, one ROI per task; per-ROI time is the
pool's wall time divided by the number of ROIs). Features both compute are compared value by value.

pyradiomics is not a dependency of radlake: PyPI has no wheel of it for CPython 3.11, its 3.1.0
sdist does not build (missing C header; its metadata says 3.0.1a1) and the 3.0.1 sdist needs numpy
and versioneer in the build environment. When it is missing the bench installs it into the running
interpreter's environment first (``--no-setup``: fail instead); ``--setup`` only installs it:

    python bench/radiomics_bench.py --setup   # pip install versioneer; pip install --no-build-isolation pyradiomics==3.0.1

``--write-docs`` replaces the ``radiomics`` section of docs/benchmarks.md (adopting the hand-written
section of earlier runs); ``--summary`` appends pyradiomics' time per ROI over radlake's and the
agreement as JSON lines.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import platform
import shlex
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import nibabel as nib
import numpy as np

# Run as ``python bench/radiomics_bench.py``: the repository root is not on the path then.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import adopt_legacy_section, write_section  # noqa: E402
from radlake.radiomics import compute_features  # noqa: E402
from radlake.radiomics.pyradiomics_names import PYRADIOMICS_TO_IBSI  # noqa: E402
from radlake.radiomics.settings import FAMILIES, settings_from_mapping  # noqa: E402
from radlake.synthetic.ct_volume import irregular_lesion, spherical_lesion  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BIN_COUNT = 32
PYRADIOMICS_PIN = "pyradiomics==3.0.1"
SECTION, TITLE = "radiomics", "Radiomics: radlake vs pyradiomics (issue 7)"
QUICK = {"rois": 6, "repeat": 3, "rounds": 2}  # every lesion size and shape: the ratio depends on them


def single_thread_env() -> None:
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS"):
        os.environ[name] = "1"


def make_rois(n: int) -> list[dict]:
    rois = []
    for k in range(n):
        make = spherical_lesion if k % 2 == 0 else irregular_lesion
        radius = (10.0, 15.0, 20.0)[k // 2 % 3]
        ct = make(radius_mm=radius, seed=k)
        rois.append({"name": f"{ct.kind}-r{radius:g}-s{k}", "image": ct.image, "mask": ct.mask,
                     "spacing": ct.spacing, "voxels": int(ct.mask.sum())})
    ibsi = ROOT / "tests" / "data" / "ibsi"
    image = np.asarray(nib.load(ibsi / "phantom.nii.gz").dataobj).transpose(2, 1, 0)
    mask = np.asarray(nib.load(ibsi / "mask.nii.gz").dataobj).transpose(2, 1, 0)
    rois.append({"name": "ibsi-digital-phantom", "image": image, "mask": mask, "spacing": (2.0, 2.0, 2.0),
                 "voxels": int(mask.sum())})
    return rois


# the IBSI families that pyradiomics' default classes cover (shape, firstorder, glcm, glrlm, glszm,
# gldm, ngtdm); "full" adds local intensity, IVH and GLDZM and every 2D/2.5D aggregation
EQUIVALENT_FAMILIES = ["morphology", "intensity_statistics", "intensity_histogram", "glcm", "glrlm", "glszm",
                       "ngtdm", "ngldm"]


def radlake_settings(full: bool):
    return settings_from_mapping({
        "discretisation": {"method": "fbn", "bin_number": BIN_COUNT},
        "aggregations": ["2D", "2.5D", "3D"] if full else ["3D"],
        "families": list(FAMILIES) if full else EQUIVALENT_FAMILIES,
        "moran_geary_max_voxels": None if full else 0,
    })


def run_radlake(roi: dict, full: bool = False) -> tuple[float, dict[str, float]]:
    settings = radlake_settings(full)
    start = time.perf_counter()
    values = compute_features(roi["image"], roi["mask"], roi["spacing"], settings)
    return time.perf_counter() - start, {v.name: v.value for v in values}


# pyradiomics (and the SimpleITK it brings) is imported where it is used: it is an optional peer that
# ``--setup`` installs, and the bench installs it before its first use.
def _pyradiomics_extractor():
    from radiomics import featureextractor  # noqa: PLC0415 - the peer is installed by --setup, after start

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = featureextractor.RadiomicsFeatureExtractor(
        binCount=BIN_COUNT, distances=[1], gldm_a=0, force2D=False, additionalInfo=False,
        correctMask=False, label=1,
    )
    extractor.disableAllFeatures()
    for cls in ("shape", "firstorder", "glcm", "glrlm", "glszm", "gldm", "ngtdm"):
        extractor.enableFeatureClassByName(cls)
    return extractor


def run_pyradiomics(roi: dict) -> tuple[float, dict[str, float]]:
    import SimpleITK as sitk  # noqa: PLC0415 - pyradiomics' dependency, installed with it by --setup

    image = sitk.GetImageFromArray(roi["image"].astype(np.float64))
    mask = sitk.GetImageFromArray(roi["mask"].astype(np.uint8))
    for img in (image, mask):
        img.SetSpacing(tuple(float(s) for s in roi["spacing"][::-1]))  # sitk spacing is (x, y, z)
    extractor = _pyradiomics_extractor()
    start = time.perf_counter()
    result = extractor.execute(image, mask)
    elapsed = time.perf_counter() - start
    return elapsed, {k.removeprefix("original_"): float(v) for k, v in result.items()}


_POOL_ROIS: list[dict] = []


def _start_worker(rois: list[dict]) -> None:
    global _POOL_ROIS
    single_thread_env()
    _POOL_ROIS = rois


def _task(args):
    tool, index = args
    roi = _POOL_ROIS[index]
    if tool == "radlake":
        return run_radlake(roi)[0]
    if tool == "radlake-all":
        return run_radlake(roi, full=True)[0]
    return run_pyradiomics(roi)[0]


def pooled_seconds_per_roi(tool: str, rois: list[dict], workers: int, rounds: int = 5) -> float:
    """Wall time per ROI of ``rounds`` passes over ``rois`` on a pool of ``workers`` processes. The
    ROIs reach every worker once, when it starts, so that a task carries only an index and the
    pool measures feature extraction, not the pickling of 3 MB volumes per task."""
    with ProcessPoolExecutor(max_workers=workers, initializer=_start_worker, initargs=(rois,)) as pool:
        list(pool.map(_task, [(tool, 0)] * workers))  # warm-up: imports and compilation in every worker
        tasks = [(tool, k) for _ in range(rounds) for k in range(len(rois))]
        start = time.perf_counter()
        list(pool.map(_task, tasks))
        return (time.perf_counter() - start) / len(tasks)


def agreement(ours: dict[str, float], theirs: dict[str, float]) -> list[dict]:
    rows = []
    for py_name, ibsi_name in PYRADIOMICS_TO_IBSI.items():
        if py_name not in theirs or ibsi_name not in ours:
            continue
        a, b = ours[ibsi_name], theirs[py_name]
        if py_name == "firstorder_Kurtosis":
            b -= 3.0  # pyradiomics: kurtosis; IBSI: excess kurtosis
        rel = abs(a - b) / max(abs(b), 1e-12)
        rows.append({"pyradiomics": py_name, "ibsi": ibsi_name, "radlake": a, "pyradiomics_value": b,
                     "rel_diff": rel})
    return rows


def setup_pyradiomics() -> int:
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    for command in (pip + ["versioneer[toml]"], pip + ["--no-build-isolation", PYRADIOMICS_PIN]):
        print(" ".join(command), file=sys.stderr)
        done = subprocess.run(command, check=False)
        if done.returncode:
            return done.returncode
    return 0


def ensure_pyradiomics(setup: bool):
    """The ``radiomics`` module, installed first when missing and ``setup`` allows it; None when unavailable."""
    try:
        return importlib.import_module("radiomics")
    except ImportError:
        if not setup:
            return None
    print("pyradiomics is not installed: installing it (see the module docstring)", file=sys.stderr)
    if setup_pyradiomics() != 0:
        return None
    importlib.invalidate_caches()
    try:
        return importlib.import_module("radiomics")
    except ImportError:
        return None


def _versions(pyradiomics_version: str) -> str:
    found = []
    for dist in ("numpy", "scipy", "numba", "SimpleITK"):
        try:
            found.append(f"{dist} {version(dist)}")
        except PackageNotFoundError:
            pass
    return f"pyradiomics {pyradiomics_version}, " + ", ".join(found) + f", Python {platform.python_version()}"


def summary_rows(summary: dict) -> list[dict]:
    compared = sum(r["features_compared"] for r in summary["per_roi"])
    agreeing = sum(r["within_1pct"] for r in summary["per_roi"])
    return [
        {"benchmark": "radiomics", "measure": "pyradiomics / radlake time per ROI, one core (mean over the lesions)",
         "ratio": round(summary["speedup_one_core"], 4), "goal": ">= 20"},
        {"benchmark": "radiomics", "measure": f"pyradiomics / radlake time per ROI, {summary['workers']} processes "
                                              "(pool)", "ratio": round(summary["speedup_all_cores"], 4), "goal": ""},
        {"benchmark": "radiomics", "measure": "features agreeing within 1 % / features both compute (every ROI)",
         "ratio": round(agreeing / max(compared, 1), 4), "goal": ">= 1"},
    ]


def body(summary: dict) -> str:
    start, end = summary["load_average"]["start"], summary["load_average"]["end"]
    one, pool = summary["one_core_s_per_roi"], summary["all_cores_s_per_roi"]
    lines = [
        f"Load average {start[0]:.2f}/{start[1]:.2f}/{start[2]:.2f} at the start, {end[0]:.2f}/{end[1]:.2f}/"
        f"{end[2]:.2f} at the end (1/5/15 min, {os.cpu_count()} cores). {summary['versions']}. Both libraries ran "
        f"interleaved in the same process; each figure is the best of {summary['repeat']} runs of the same ROI.",
        "",
        f"**Settings, equal on both sides**: no resampling, fixed bin number {BIN_COUNT} (`binCount={BIN_COUNT}`), "
        "3D, δ = 1, GLCM/GLRLM averaged over the 13 directions, NGLDM/GLDM α = 0, the same feature classes "
        "(shape/morphology, first order/intensity statistics + histogram, GLCM, GLRLM, GLSZM, GLDM/NGLDM, NGTDM; "
        "Moran's I / Geary's C off: pyradiomics has no equivalent). \"radlake full\" is the whole IBSI 1 set: "
        "local intensity, IVH, GLDZM, Moran's I and Geary's C too, and every 2D/2.5D aggregation.",
        "",
        "**ROIs**: synthetic CT volumes (`radlake/synthetic/ct_volume.py`), spherical and irregular lesions, plus "
        "the IBSI digital phantom.",
        "",
        "| ROI | voxels | radlake (ms) | radlake full (ms) | pyradiomics (ms) | speed-up | features agreeing within 1 % |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in summary["per_roi"]:
        lines.append(f"| {r['roi']} | {r['voxels']} | {r['radlake_s'] * 1000:.1f} | {r['radlake_full_s'] * 1000:.1f} | "
                     f"{r['pyradiomics_s'] * 1000:.1f} | **{r['speedup']:.1f}×** | {r['within_1pct']}/"
                     f"{r['features_compared']} ({r['within_1e-3']} within 0.1 %) |")
    disagreeing = sorted({name for r in summary["per_roi"] for name, _ in r["disagreeing"]})
    lines += [
        "",
        f"**Per ROI, mean over the lesions.** One core (process pinned to one CPU, one BLAS/OpenMP thread): "
        f"radlake {one['radlake'] * 1000:.1f} ms, radlake full {one['radlake-all'] * 1000:.1f} ms, pyradiomics "
        f"{one['pyradiomics'] * 1000:.1f} ms → **{summary['speedup_one_core']:.1f}×**. {summary['workers']} "
        f"processes (a pool whose workers receive the ROIs once at start-up, {summary['rounds']} rounds over the "
        f"lesions, pool wall time / ROIs): radlake {pool['radlake'] * 1000:.1f} ms, radlake full "
        f"{pool['radlake-all'] * 1000:.1f} ms, pyradiomics {pool['pyradiomics'] * 1000:.1f} ms → "
        f"**{summary['speedup_all_cores']:.1f}×**.",
        "",
        "**Agreement**: pyradiomics' kurtosis converted to IBSI's excess kurtosis; name mapping in "
        "`radlake/radiomics/pyradiomics_names.py`. "
        + (f"Features off by more than 1 % on some ROI: {', '.join(disagreeing)}." if disagreeing
           else "Every feature both libraries compute agrees within 1 % on every ROI."),
        "",
        "**Goal** (issue 7): ≥ 20× pyradiomics per ROI on one CPU core.",
        "",
        f"**GPU**: {summary['gpu']}.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rois", type=int, default=6, help="number of generated lesions (plus the phantom)")
    parser.add_argument("--repeat", type=int, default=5, help="runs of each ROI per tool (best is kept)")
    parser.add_argument("--rounds", type=int, default=5, help="passes over the lesions of the process pool")
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['rois']} lesions (plus the phantom), best of {QUICK['repeat']}, "
                             f"{QUICK['rounds']} pool rounds")
    parser.add_argument("--out", type=Path, default=None, help="write the full results here (JSON)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--setup", action="store_true", help="install pyradiomics 3.0.1 and exit")
    parser.add_argument("--no-setup", action="store_true", help="fail instead of installing a missing pyradiomics")
    parser.add_argument("--write-docs", action="store_true", help=f"replace the {SECTION!r} section of docs/benchmarks.md")
    parser.add_argument("--summary", type=Path, help="append the headline ratios to this file (JSON lines)")
    args = parser.parse_args(argv)
    if args.setup:
        return setup_pyradiomics()
    if args.quick:
        args.rois, args.repeat, args.rounds = QUICK["rois"], QUICK["repeat"], QUICK["rounds"]

    load_start = os.getloadavg()
    single_thread_env()
    radiomics = ensure_pyradiomics(not args.no_setup)
    if radiomics is None:
        print("pyradiomics is not installed; see the module docstring", file=sys.stderr)
        return 2
    rois = make_rois(args.rois)
    print(f"{len(rois)} ROIs: " + ", ".join(f"{r['name']} ({r['voxels']} vx)" for r in rois), file=sys.stderr)
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    run_radlake(rois[-1]), run_pyradiomics(rois[-1])  # warm-up (imports, caches)

    per_roi = []
    for roi in rois:
        t_ours, ours = min((run_radlake(roi) for _ in range(args.repeat)), key=lambda r: r[0])
        t_all = min(run_radlake(roi, full=True)[0] for _ in range(args.repeat))
        t_py, theirs = min((run_pyradiomics(roi) for _ in range(args.repeat)), key=lambda r: r[0])
        agree = agreement(ours, theirs)
        per_roi.append({
            "roi": roi["name"], "voxels": roi["voxels"], "radlake_s": t_ours, "radlake_full_s": t_all,
            "pyradiomics_s": t_py, "speedup": t_py / t_ours, "features_compared": len(agree),
            "within_1e-3": sum(r["rel_diff"] <= 1e-3 for r in agree),
            "within_1pct": sum(r["rel_diff"] <= 1e-2 for r in agree),
            "disagreeing": [(r["pyradiomics"], round(r["rel_diff"], 4)) for r in agree if r["rel_diff"] > 1e-2],
        })
        print(f"{roi['name']:24s} radlake {t_ours*1000:8.1f} ms  (full {t_all*1000:8.1f} ms)  "
              f"pyradiomics {t_py*1000:8.1f} ms  x{t_py / t_ours:6.1f}  agree {per_roi[-1]['within_1pct']}"
              f"/{len(agree)}", file=sys.stderr)
    os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))

    lesions = [r for r in rois if not r["name"].startswith("ibsi")]
    pooled = {tool: pooled_seconds_per_roi(tool, lesions, args.workers, args.rounds)
              for tool in ("radlake", "radlake-all", "pyradiomics")}
    one_core = {
        "radlake": float(np.mean([r["radlake_s"] for r in per_roi if not r["roi"].startswith("ibsi")])),
        "radlake-all": float(np.mean([r["radlake_full_s"] for r in per_roi if not r["roi"].startswith("ibsi")])),
        "pyradiomics": float(np.mean([r["pyradiomics_s"] for r in per_roi if not r["roi"].startswith("ibsi")])),
    }
    command = shlex.join(["python", "bench/radiomics_bench.py", *(argv if argv is not None else sys.argv[1:])])
    summary = {
        "date": date.today().isoformat(),
        "load_average": {"start": [round(x, 2) for x in load_start], "end": [round(x, 2) for x in os.getloadavg()]},
        "versions": _versions(radiomics.__version__),
        "command": command,
        "repeat": args.repeat, "rounds": args.rounds, "workers": args.workers,
        "one_core_s_per_roi": one_core,
        "all_cores_s_per_roi": pooled,
        "speedup_one_core": one_core["pyradiomics"] / one_core["radlake"],
        "speedup_all_cores": pooled["pyradiomics"] / pooled["radlake"],
        "per_roi": per_roi,
        "gpu": "not measured: this bench runs the CPU path only",
    }
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1))
    text = body(summary)
    print(text)
    if args.summary:
        with args.summary.open("a") as out:
            for row in summary_rows(summary):
                out.write(json.dumps(row) + "\n")
    if args.write_docs:
        adopt_legacy_section(SECTION, "## Radiomics: radlake vs pyradiomics")
        write_section(SECTION, TITLE, command, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
