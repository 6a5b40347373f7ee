"""Cohort throughput of ``radlake radiomics run`` (Spark, local[2]) vs a plain Python loop (the floor).

    python bench/radiomics_cohort_bench.py [--rois 24] [--slices 48] [--size 128] [--markdown]

Builds a cohort of generated CT series (one lesion each, spheres and irregular blobs, half with a DICOM
SEG mask, half NIfTI) in an object store under a temporary directory, writes their bronze ``instances``
rows and ``silver/rois`` rows directly (the bench measures the radiomics job, not ingestion), then, in the
same process and run:

* **floor**: one Python loop over the series calling the job's own unit of work
  (``radlake.radiomics.lake.process_series``: fetch every instance and mask by claim-check with SHA-256
  verification, rebuild the volume, ``compute_features`` per ROI) — nothing written;
* **Spark**: ``spark_jobs.radiomics_job.run`` end to end — pending anti-join, series from bronze,
  ``applyInPandas`` per series, MERGE into gold, failure table, statuses for the events — twice, with two
  settings of equal cost (the first run in a fresh session also pays for starting Python workers).

Needs Java (the Spark part of the stack); no Kafka. ``--markdown`` writes the section into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import write_section  # noqa: E402


def build_cohort(root: Path, n: int, slices: int, size: int):
    from radlake.object_store import ObjectStore
    from radlake.synthetic import radiomics_lake as rl

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
    from lake_schemas.tables import BRONZE_INSTANCES
    from spark_jobs import bronze, tables

    path = tables.table_path(lake_uri, BRONZE_INSTANCES)
    bronze.ensure_table(spark, path, BRONZE_INSTANCES)
    rows = []
    for case in cases:
        for event in case.events:
            flat = {**event.model_dump(exclude={"data"}), **event.data.model_dump()}
            rows.append(tuple(flat.get(name) for name, _ in BRONZE_INSTANCES.columns))
    spark.createDataFrame(rows, BRONZE_INSTANCES.ddl).write.format("delta").mode("append").save(path)


def floor_loop(store, cases, rois, settings) -> tuple[float, int]:
    from radlake.radiomics import lake

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rois", type=int, default=24)
    parser.add_argument("--slices", type=int, default=48)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--markdown", action="store_true", help="write the section into docs/benchmarks.md")
    args = parser.parse_args(argv)

    from radlake.radiomics.settings import settings_from_mapping
    from radlake.settings import Settings
    from spark_jobs import radiomics_job
    from spark_jobs.session import spark_session

    load_before = os.getloadavg()
    settings_a = settings_from_mapping({})  # the full IBSI 1 set, every aggregation
    settings_b = settings_from_mapping({"discretisation": {"bin_number": 31}})  # same work, another hash
    with tempfile.TemporaryDirectory(prefix="radlake-cohort-bench-") as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        store, cases, rois = build_cohort(root, args.rois, args.slices, args.size)
        print(f"cohort: {len(cases)} series x {args.slices} slices of {args.size}x{args.size}, {len(rois)} ROIs "
              f"({time.perf_counter() - t:.0f}s)", file=sys.stderr)
        floor_s, floor_ok = floor_loop(store, cases, rois, settings_a)
        print(f"floor: {floor_s:.1f}s for {floor_ok} ROIs", file=sys.stderr)

        spark = spark_session(Settings(), "radlake-radiomics-cohort-bench")
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

    per_min = lambda seconds, n: 60.0 * n / seconds  # noqa: E731
    lines = [
        f"**Cohort**: {len(cases)} generated CT series of {args.slices}×{args.size}×{args.size} voxels "
        f"(2×0.8×0.8 mm, {args.slices} DICOM instances each, {args.slices * args.size * args.size * 2 / 2**20:.1f} "
        f"MiB of pixels per series), one lesion each (spheres and irregular blobs of radius 8–16 mm; half the masks "
        f"DICOM SEG, half NIfTI), in a local object store. Settings: the full IBSI 1 set (every family and "
        f"aggregation, {spark_runs[0][2].feature_rows // max(1, spark_runs[0][2].computed_rois)} features per ROI).",
        "",
        f"**Machine load**: load average {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f} before, "
        f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} after (1/5/15 min) on 2 cores shared with "
        "other engineers' stacks and tests: absolute figures are inflated and noisy; the floor and the Spark runs "
        "were measured in the same process, one after the other.",
        "",
        "| path | wall time (s) | ROIs | ROIs/minute |",
        "|---|---|---|---|",
        f"| floor: plain Python loop, one process (fetch + verify + rebuild + compute, no writes) | {floor_s:.1f} | "
        f"{floor_ok} | **{per_min(floor_s, floor_ok):.0f}** |",
    ]
    for label, seconds, result in spark_runs:
        steps = ", ".join(f"{k} {v:.1f}" for k, v in result.timings)
        lines.append(f"| `radlake radiomics run` on local[2], {label} (steps, s: {steps}) | "
                     f"{seconds:.1f} | {result.computed_rois} | **{per_min(seconds, result.computed_rois):.0f}** |")
    lines += [
        f"| re-run with nothing pending (anti-join only) | {rerun_s:.1f} | {rerun.computed_rois} | – |",
        "",
        "The Spark job pays fixed costs once per run — the pending anti-join over three Delta tables, the "
        "shuffle into per-series groups, Arrow transfer to the Python workers, the MERGEs and the status query "
        "for the events — and the first run in a session also starts the Python workers, each importing the "
        "radiomics stack. On 2 shared cores local[2] can at best halve the floor's compute time; the floor "
        "writes nothing, the job MERGEs every row into Delta.",
    ]
    body = "\n".join(lines)
    print(body)
    if args.markdown:
        write_section("radiomics-cohort", "Radiomics: cohort throughput of the Spark job (issue 7)",
                      f"python bench/radiomics_cohort_bench.py --rois {args.rois} --slices {args.slices} "
                      f"--size {args.size} --markdown", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
