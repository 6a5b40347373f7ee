"""Cohort throughput of ``radlake radiomics run`` (Spark, local[2]) vs a plain Python loop (the floor).

    python bench/radiomics_cohort_bench.py [--rois 96] [--slices 48] [--size 128] [--quick] [--write-docs]
        [--summary FILE]

Builds a cohort of generated CT series (one lesion each, spheres and irregular blobs, half with a DICOM
SEG mask, half NIfTI) in an object store under a temporary directory, writes their bronze ``instances``
rows and ``silver/rois`` rows directly (the bench measures the radiomics job, not ingestion), then, in the
same process and run:

* **floor**: one Python loop over the series calling the job's own unit of work
  (``spark_jobs.radiomics_series.process_series``: fetch every instance and mask by claim-check with SHA-256
  verification, rebuild the volume, ``compute_features`` per ROI) — nothing written;
* **Spark**: ``spark_jobs.radiomics_job.run`` end to end — pending anti-join, series from bronze,
  ``applyInPandas`` per series, MERGE into gold, failure table, statuses for the events — twice, with two
  settings of equal cost (the first run in a fresh session also pays for starting Python workers).

Needs Java (the Spark part of the stack); no Kafka. ``--write-docs`` replaces the ``radiomics-cohort``
section of docs/benchmarks.md; ``--summary`` appends the Spark runs' ROIs/minute over the floor's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import pyspark

# Run as ``python bench/radiomics_cohort_bench.py``: the repository root is not on the path then.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section  # noqa: E402
from lake_schemas.tables import BRONZE_INSTANCES  # noqa: E402
from platform_layer.identities import use_stack_identity  # noqa: E402
from platform_layer.object_store import ObjectStore  # noqa: E402
from platform_layer.settings import Settings  # noqa: E402
from platform_layer.spark import spark_session  # noqa: E402
from platform_layer.state import lock_down  # noqa: E402
from radlake.radiomics.settings import settings_from_mapping  # noqa: E402
from radlake.synthetic import radiomics_lake as rl  # noqa: E402
from spark_jobs import bronze, radiomics_job, tables  # noqa: E402
from spark_jobs import radiomics_series as lake  # noqa: E402

QUICK = {"rois": 12, "slices": 48, "size": 128}  # full-size series; the Spark runs' fixed costs dominate either way


def build_cohort(root: Path, n: int, slices: int, size: int):
    store = ObjectStore(str(root / "objects"))
    cases, rois = [], []
    for k in range(n):
        case = rl.make_case(store, f"bench-{k}", provider=("st-olav", "haukeland")[k % 2],
                            project="cohort-bench", kind=("sphere", "irregular")[k % 2], shape=(slices, size, size),
                            spacing=(2.0, 0.8, 0.8), radius_mm=8.0 + 4.0 * (k % 3), seed=k)
        if k % 2:
            rois.append(rl.roi_row(case, "lesion", "nifti", rl.nifti_bytes(case), store))
        else:
            rois.append(rl.roi_row(case, "lesion#1", "seg", rl.seg_bytes(case, "lesion"), store, label=1))
        cases.append(case)
    return store, cases, rois


def write_bronze(spark, lake_uri: str, cases) -> None:
    path = tables.table_path(lake_uri, BRONZE_INSTANCES)
    bronze.ensure_table(spark, path, BRONZE_INSTANCES)
    rows = []
    for case in cases:
        for event in case.events:
            flat = {**event.model_dump(exclude={"data"}), **event.data.model_dump()}
            rows.append(tuple(flat.get(name) for name, _ in BRONZE_INSTANCES.columns))
    spark.createDataFrame(rows, BRONZE_INSTANCES.ddl).write.format("delta").mode("append").save(path)


def floor_loop(store, cases, rois, settings) -> tuple[float, int]:
    by_series = {}
    for row in rois:
        by_series.setdefault((row["study_uid"], row["series_uid"]), []).append(
            lake.RoiRef(**{k: v for k, v in row.items() if k != "source"}))
    started = time.perf_counter()
    computed = 0
    for case in cases:
        series = lake.series_from_slices(case.study_uid, case.series_uid, [e.data.model_dump() for e in case.events])
        for outcome in lake.process_series(series, by_series[(case.study_uid, case.series_uid)], settings, store.get):
            computed += outcome.reason is None
    return time.perf_counter() - started, computed


def summary_rows(floor_per_min: float, spark_runs: list[tuple[str, float, float]], master: str) -> list[dict]:
    """Each Spark run's ROIs/minute over the floor's (``spark_runs``: label, seconds, ROIs/minute)."""
    return [{"benchmark": "radiomics_cohort", "measure": f"radlake radiomics run on {master}, {label} / plain-loop "
             "floor, ROIs/minute", "ratio": round(per_min / floor_per_min, 4), "goal": ""}
            for label, _seconds, per_min in spark_runs]


def body(args: argparse.Namespace, settings: Settings, n_cases: int, floor: tuple[float, int], spark_runs,
         rerun: tuple[float, int], load: tuple[tuple[float, ...], tuple[float, ...]]) -> str:
    floor_s, floor_ok = floor
    start, end = load
    per_min = lambda seconds, n: 60.0 * n / seconds  # noqa: E731
    versions = (f"Spark {pyspark.__version__} on `{settings.spark_master}`, delta-spark {version('delta_spark')}, "
                f"numpy {version('numpy')}, numba {version('numba')}, Python {platform.python_version()}")
    first = spark_runs[0][2]
    lines = [
        f"Load average {start[0]:.2f}/{start[1]:.2f}/{start[2]:.2f} at the start, {end[0]:.2f}/{end[1]:.2f}/"
        f"{end[2]:.2f} at the end (1/5/15 min, {os.cpu_count()} cores); the floor and the Spark runs ran in the "
        f"same process, one after the other. {versions}.",
        "",
        f"**Cohort**: {n_cases} generated CT series of {args.slices}×{args.size}×{args.size} voxels "
        f"(2×0.8×0.8 mm, {args.slices} DICOM instances each, {args.slices * args.size * args.size * 2 / 2**20:.1f} "
        f"MiB of pixels per series), one lesion each (spheres and irregular blobs of radius 8–16 mm; half the masks "
        f"DICOM SEG, half NIfTI), in a local object store; bronze `instances` and `silver/rois` rows written "
        f"directly (ingestion is not measured). Settings: the full IBSI 1 set (every family and aggregation, "
        f"{first.feature_rows // max(1, first.computed_rois)} features per ROI).",
        "",
        "| path | wall time (s) | ROIs | ROIs/minute | vs floor |",
        "|---|---|---|---|---|",
        f"| floor: plain Python loop, one process (fetch + verify + rebuild + compute, no writes) | {floor_s:.1f} | "
        f"{floor_ok} | **{per_min(floor_s, floor_ok):.0f}** | 100% |",
    ]
    for label, seconds, result in spark_runs:
        steps = ", ".join(f"{k} {v:.1f}" for k, v in result.timings)
        rate = per_min(seconds, result.computed_rois)
        lines.append(f"| `radlake radiomics run` on {settings.spark_master}, {label} (steps, s: {steps}) | {seconds:.1f} | "
                     f"{result.computed_rois} | **{rate:.0f}** | {rate / per_min(floor_s, floor_ok):.0%} |")
    lines += [
        f"| re-run with nothing pending (anti-join only) | {rerun[0]:.1f} | {rerun[1]} | – | |",
        "",
        "The Spark job pays fixed costs once per run — the pending anti-join over three Delta tables, the "
        "shuffle into per-series groups, Arrow transfer to the Python workers, the MERGEs and the statuses for "
        "the events — and the first run in a session also starts the Python workers, each importing the "
        f"radiomics stack. On {os.cpu_count()} cores {settings.spark_master} can at best halve the floor's compute time; the floor "
        "writes nothing, the job MERGEs every row into Delta.",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rois", type=int, default=96)
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['rois']} ROIs of {QUICK['slices']}x{QUICK['size']}x{QUICK['size']} voxels")
    # --markdown is the flag's earlier name
    parser.add_argument("--write-docs", "--markdown", dest="write_docs", action="store_true",
                        help="replace the 'radiomics-cohort' section of docs/benchmarks.md")
    parser.add_argument("--summary", type=Path, help="append the headline ratios to this file (JSON lines)")
    args = parser.parse_args(argv)
    if args.quick:
        args.rois, args.slices, args.size = QUICK["rois"], QUICK["slices"], QUICK["size"]

    lake_settings = Settings()
    lock_down(lake_settings)  # what the bench writes under the state dir is private, as the commands' is
    use_stack_identity(lake_settings)  # as the platform administrator, like the commands it stands for
    load_before = os.getloadavg()
    settings_a = settings_from_mapping({})  # the full IBSI 1 set, every aggregation
    settings_b = settings_from_mapping({"discretisation": {"bin_number": 31}})  # same work, another hash
    with tempfile.TemporaryDirectory(prefix="radlake-cohort-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        store, cases, rois = build_cohort(root, args.rois, args.slices, args.size)
        print(f"cohort: {len(cases)} series x {args.slices} slices of {args.size}x{args.size}, {len(rois)} ROIs "
              f"({time.perf_counter() - t:.0f}s)", file=sys.stderr)
        floor = floor_loop(store, cases, rois, settings_a)
        print(f"floor: {floor[0]:.1f}s for {floor[1]} ROIs", file=sys.stderr)

        spark = spark_session(lake_settings, "radlake-radiomics-cohort-bench")
        lake_uri = str(root / "lake")
        write_bronze(spark, lake_uri, cases)
        radiomics_job.register_rois(spark, lake_uri, rois)
        spark_runs = []
        for label, settings in (("first run in the session", settings_a), ("second run (other settings)", settings_b)):
            job = radiomics_job.RadiomicsJob(lake_uri, str(root / "objects"), settings)
            t = time.perf_counter()
            result = radiomics_job.run(spark, job)
            spark_runs.append((label, time.perf_counter() - t, result))
            print(f"spark {label}: {spark_runs[-1][1]:.1f}s, {result.computed_rois} ROIs, "
                  f"{result.feature_rows} rows; " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings),
                  file=sys.stderr)
        t = time.perf_counter()
        rerun = radiomics_job.run(spark, radiomics_job.RadiomicsJob(lake_uri, str(root / "objects"), settings_a))
        rerun_s = time.perf_counter() - t
        spark.stop()
    load_after = os.getloadavg()

    text = body(args, lake_settings, len(cases), floor, spark_runs, (rerun_s, rerun.computed_rois),
                (load_before, load_after))
    print(text)
    if args.summary:
        floor_per_min = 60.0 * floor[1] / floor[0]
        with args.summary.open("a") as out:
            for row in summary_rows(floor_per_min, [(label, s, 60.0 * r.computed_rois / s)
                                                    for label, s, r in spark_runs], lake_settings.spark_master):
                out.write(json.dumps(row) + "\n")
    if args.write_docs:
        command = shlex.join(["python", "bench/radiomics_cohort_bench.py", *(sys.argv[1:] if argv is None else argv)])
        write_section("radiomics-cohort", "Radiomics: cohort throughput of the Spark job (issue 7)", command, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
