"""Lake benchmark: bronze (Kafka -> Delta) against a same-writer floor on a table that already holds a
million rows, and the latency from an ``instance received`` event to its silver ``series`` row.

    python bench/lake_bench.py [--quick] [--events N] [--prefill N] [--batches 50000,500] [--repeat R]
                               [--rate 25] [--seconds 60] [--write-docs] [--summary FILE]

Needs the stack (Kafka + registry). Throughput: N generated ``instance received`` events on one fresh
3-partition topic, read by two streaming queries, each into its own copy of one bronze table pre-filled
(delta-rs, a few large appends, no Kafka) with ``--prefill`` synthetic rows with random event ids:

1. bronze: ``spark_jobs.bronze.start`` (availableNow): Kafka source, decode, ``toArrow``, the split of
   undecodable rows, the transaction-id checks, the scan of the table's ``event_id`` column for the
   batch's ids (which grows with the table: hence the pre-fill), first-arrival dedupe, delta-rs append;
2. floor: the same query (``bronze.source``: same Kafka options, ``maxOffsetsPerTrigger``, decode,
   trigger, checkpoint) whose batch function only appends the batch's Arrow rows with the same writer
   (``write_deltalake``, same cast to the table's schema): bronze minus dedupe and validation.

Each runs at each ``--batches`` size (``maxOffsetsPerTrigger``: bronze's default 50,000 is a catch-up
batch; a 5 s trigger at 25 events/s collects ~125), ``--repeat`` times in alternating order, the run
with the least time in micro-batches reported. A Spark batch read of bronze's offset ranges (no
streaming) was tried as the floor during development: it was no faster for one batch and slower for
several (each read starts its own Kafka consumer), so it is not a lower floor.

Latency: bronze (both topics) and silver run as streaming queries at their default 5 s trigger; once one
warm-up study has gone through, events are produced at a steady rate, each study followed by its
``study completed`` event. An instance's latency is the commit time of the first silver ``series``
version that lists it minus the moment it was handed to the producer; a study's, the commit time of the
first ``silver/studies`` version where it is ``complete`` with matching counts minus the moment its
completion event was handed to the producer.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyspark
from deltalake import DeltaTable, write_deltalake

# Run as ``python bench/lake_bench.py`` (what ``make bench`` does): the repository root is not on the path
# then, and ``bench`` is not an installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.lake_feed import create_topics, publish  # noqa: E402
from bench.report import write_section  # noqa: E402
from lake_schemas.tables import BRONZE_INSTANCES, SILVER_SERIES, SILVER_STUDIES  # noqa: E402
from lake_schemas.topics import INSTANCE_RECEIVED, STUDY_COMPLETED  # noqa: E402
from platform_layer import (
    endpoints,
    kafka,  # noqa: E402
)
from platform_layer.identities import use_stack_identity  # noqa: E402
from platform_layer.registration import register, schema_admin  # noqa: E402
from platform_layer.serde import EventSerde, registry_client  # noqa: E402
from platform_layer.settings import Settings  # noqa: E402
from platform_layer.spark import spark_session  # noqa: E402
from platform_layer.state import lock_down  # noqa: E402
from radlake.synthetic.lake_events import SeriesPlan, series_events, study_completed  # noqa: E402
from spark_jobs import bronze, tables  # noqa: E402
from spark_jobs.pipeline import start_pipeline  # noqa: E402

log = logging.getLogger("bench.lake")
LATENCY_GOAL_S = 30.0
THROUGHPUT_GOAL = 0.7  # bronze rows/s as a fraction of the floor's (the former goal, kept)


class BenchError(Exception):
    """A run whose result cannot be trusted (wrong row count, unequal batches): no figure is reported."""


def _events(count: int, tag: str):
    per_series = 100
    events = []
    for i in range((count + per_series - 1) // per_series):
        events += series_events(SeriesPlan(f"site-{i % 3}", f"{tag}-study-{i // 2}", f"{tag}-series-{i}", per_series))
    return events[:count]


def _topic(bootstrap: str, registry_url: str, kind, name: str):
    """A fresh topic, registered and created with its partitions."""
    topic = kind.with_name(name)
    register(schema_admin(Settings(), registry_url), (topic,))
    create_topics(bootstrap, (topic,))
    return topic


def _stop_when_idle(query, timeout_s: float = 120) -> None:
    """Stop between micro-batches rather than interrupting one."""
    deadline = time.time() + timeout_s
    while query.status["isTriggerActive"] and time.time() < deadline:
        time.sleep(0.2)
    query.stop()


def _rows(path: str) -> int:
    return DeltaTable(path).to_pyarrow_dataset().count_rows()


# -- throughput ---------------------------------------------------------------------------------------------

def _random_event_ids(n: int) -> pa.Array:
    """``n`` random UUID-formatted strings: like real event ids they defeat the Parquet min/max statistics,
    so the dedupe scan cannot skip a file. Built with numpy (0.25 s per million; uuid4() in a loop, or
    Python string slices into pa.array, take seconds to minutes)."""
    digits = np.frombuffer(b"0123456789abcdef", np.uint8)
    raw = np.frombuffer(os.urandom(16 * n), np.uint8).reshape(n, 16)
    hexed = np.empty((n, 32), np.uint8)
    hexed[:, 0::2], hexed[:, 1::2] = digits[raw >> 4], digits[raw & 15]
    text = np.full((n, 36), ord("-"), np.uint8)
    for src, dst in ((0, 0), (8, 9), (12, 14), (16, 19), (20, 24)):  # 8-4-4-4-12
        width = {0: 8, 20: 12}.get(src, 4)
        text[:, dst:dst + width] = hexed[:, src:src + width]
    offsets = np.arange(0, 36 * n + 1, 36, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(text.tobytes()))


def prefill(spark, path: str, template: pa.Table, rows: int, appends: int) -> float:
    """A bronze table holding ``rows`` synthetic rows, written with delta-rs in ``appends`` commits.

    The rows are the template's (real decoded events) repeated, with fresh random event ids and offsets:
    only ``event_id`` is read by bronze's dedupe, and it is as random as in a live table. A few large
    files is the best case for that scan (a live table after ``radlake lake optimize``).
    """
    started = time.perf_counter()
    bronze.ensure_table(spark, path, BRONZE_INSTANCES)  # the table as bronze creates it: properties, partitions
    schema = pa.schema(DeltaTable(path).schema().to_arrow())
    template = template.select(schema.names).cast(schema)
    written = 0
    for i in range(appends):
        n = rows // appends + (1 if i < rows % appends else 0)
        chunk = pa.concat_tables([template] * (n // template.num_rows + 1)).slice(0, n).combine_chunks()
        chunk = chunk.set_column(schema.get_field_index("event_id"), "event_id", _random_event_ids(n))
        offsets = pa.array(range(written, written + n), pa.int64())
        chunk = chunk.set_column(schema.get_field_index("kafka_offset"), "kafka_offset", offsets)
        write_deltalake(path, chunk, mode="append")
        written += n
    if _rows(path) != rows:
        raise BenchError(f"the pre-filled table has {_rows(path)} rows, not {rows}")
    return time.perf_counter() - started


def _plain_append(batch_df, path: str) -> None:
    """The floor's batch function: bronze's fetch and write of the rows, nothing in between."""
    data = batch_df.toArrow()
    table = DeltaTable(path)
    schema = pa.schema(table.schema().to_arrow())
    write_deltalake(table, data.select(schema.names).cast(schema), mode="append")


def _batches(query) -> list[dict]:
    """The query's micro-batches that read something: rows and duration of each (``triggerExecution``:
    offsets logged, the batch function, the commit logged)."""
    return [{"rows": p["numInputRows"], "s": p["durationMs"]["triggerExecution"] / 1000}
            for p in query.recentProgress if p["numInputRows"]]


@dataclass
class Run:
    wall_s: float  # query start to end: includes starting and stopping the query
    batches: list[dict]

    @property
    def batch_s(self) -> float:
        """Time in the micro-batches: what a long-running query spends per event (its start is paid once)."""
        return sum(b["s"] for b in self.batches)


def bronze_run(spark, job: bronze.BronzeJob) -> Run:
    started = time.perf_counter()
    query = bronze.start(spark, job, available_now=True)
    query.awaitTermination()
    return Run(time.perf_counter() - started, _batches(query))


def floor_run(spark, job: bronze.BronzeJob) -> Run:
    started = time.perf_counter()
    bronze.ensure_table(spark, job.table_path, job.spec)  # bronze.start does the same
    query = (bronze.source(spark, job).writeStream
             .foreachBatch(lambda df, _batch_id: _plain_append(df, job.table_path))
             .option("checkpointLocation", job.checkpoint_path)
             .trigger(availableNow=True).start())
    query.awaitTermination()
    return Run(time.perf_counter() - started, _batches(query))


def throughput(spark, bootstrap: str, registry_url: str, args, work: Path) -> dict:
    topic = _topic(bootstrap, registry_url, INSTANCE_RECEIVED, f"bench.lake.{uuid.uuid4().hex[:8]}")
    publish(bootstrap, registry_url, topic, _events(args.events, "tp"))
    # One untimed read of the measured topic, so that no path pays for being the first to fetch it.
    (spark.read.format("kafka").options(**kafka.spark_options(bootstrap)).option("subscribe", topic.name)
     .option("startingOffsets", "earliest").option("endingOffsets", "latest").load().count())
    # Warm-up on a small topic into empty tables (class loading, the first Spark jobs); its bronze rows
    # are also the template of the pre-fill.
    warm = _topic(bootstrap, registry_url, INSTANCE_RECEIVED, f"bench.lake.warm.{uuid.uuid4().hex[:8]}")
    publish(bootstrap, registry_url, warm, _events(500, "warm"))
    warm_job = bronze.BronzeJob(bootstrap, warm.name, str(work / "warm" / "bronze"), str(work / "warm" / "chk-b"))
    bronze_run(spark, warm_job)
    floor_run(spark, bronze.BronzeJob(bootstrap, warm.name, str(work / "warm" / "floor"), str(work / "warm" / "chk-f")))

    base = str(work / "base")
    prefill_s = prefill(spark, base, DeltaTable(warm_job.table_path).to_pyarrow_table(), args.prefill,
                        args.prefill_appends)
    log.warning("pre-filled %d rows in %.1fs", args.prefill, prefill_s)
    results = {}
    for size in args.batches:
        best: dict[str, Run] = {}
        every: dict[str, list[float]] = {"floor": [], "bronze": []}
        for i in range(args.repeat):
            run_dir = work / f"b{size}-{i}"
            paths = {name: str(run_dir / name) for name in ("floor", "bronze")}
            for path in paths.values():  # each path starts from the same million rows
                shutil.copytree(base, path)
            jobs = {name: bronze.BronzeJob(bootstrap, topic.name, paths[name], str(run_dir / f"chk-{name}"),
                                           max_offsets_per_trigger=size) for name in ("floor", "bronze")}
            runs = {}
            for name in ("floor", "bronze") if i % 2 == 0 else ("bronze", "floor"):  # alternate who goes first
                runs[name] = (floor_run if name == "floor" else bronze_run)(spark, jobs[name])
            sizes = {name: [b["rows"] for b in run.batches] for name, run in runs.items()}
            if sizes["floor"] != sizes["bronze"]:
                raise BenchError(f"unequal micro-batches: floor {sizes['floor']}, bronze {sizes['bronze']}")
            for name, path in paths.items():
                if _rows(path) != args.prefill + args.events:
                    raise BenchError(f"{name} table has {_rows(path)} rows, not {args.prefill} + {args.events}")
            if DeltaTable.is_deltatable(bronze.rejected_path(paths["bronze"])):
                raise BenchError("bronze rejected rows of generated events")
            log.warning("batches of %d, run %d: %s", size, i, ", ".join(
                f"{name} {run.batch_s:.1f}s in batches ({run.wall_s:.1f}s wall)" for name, run in runs.items()))
            for name, run in runs.items():
                every[name].append(run.batch_s)
                if name not in best or run.batch_s < best[name].batch_s:
                    best[name] = run
            shutil.rmtree(run_dir)
        results[size] = {name: {"s": run.batch_s, "wall_s": run.wall_s, "rows_per_s": args.events / run.batch_s,
                                "batches": len(run.batches), "runs": every[name]} for name, run in best.items()}
    return {"events": args.events, "prefill": args.prefill, "prefill_s": prefill_s, "by_size": results}


# -- latency ------------------------------------------------------------------------------------------------

def _commit_times(path: str) -> dict[int, float]:
    """Commit time (s) of every version of a Delta table, from its log's commit infos.

    ``DeltaTable(path, version=v).history(1)`` is not the commit of version v: delta-rs answers with the
    newest commit of the log whatever version was loaded, which stamped every version found in one poll
    with the time of the last one (and made the latencies before 2026-11-23 grow with the run length).
    """
    return {h["version"]: h["timestamp"] / 1000 for h in DeltaTable(path).history()}


def _first_versions(path: str, rows_of) -> dict[str, int]:
    """For each key ``rows_of(table at version v)`` yields, the first version that yields it."""
    first: dict[str, int] = {}
    for v in range(DeltaTable(path).version() + 1):
        for key in rows_of(DeltaTable(path, version=v)):
            first.setdefault(key, v)
    return first


def _listed_instances(table) -> list[str]:
    rows = table.to_pyarrow_table(columns=["instances"]).column("instances").to_pylist()
    return [ref["sop_instance_uid"] for row in rows for ref in row or ()]


def _complete_studies(table) -> list[str]:
    rows = table.to_pyarrow_table(columns=["study_uid", "status", "counts_match"]).to_pylist()
    return [r["study_uid"] for r in rows if r["status"] == "complete" and r["counts_match"]]


def _quantiles(values: list[float]) -> dict:
    values = sorted(values)
    q = statistics.quantiles(values, n=100, method="inclusive") if len(values) > 1 else [values[0]] * 99
    return {"p50_s": q[49], "p95_s": q[94], "max_s": values[-1]}


def latency(spark, bootstrap: str, registry_url: str, rate: float, seconds: float, work: Path) -> dict:
    """Event -> silver series row, and study completed event -> silver studies row ``complete``.

    A ``study completed`` event (what the streams worker emits) is produced right after a study's last
    instance; its latency ends at the first ``silver/studies`` version where the study is ``complete``
    with ``counts_match``.
    """
    suffix = uuid.uuid4().hex[:8]
    instances = _topic(bootstrap, registry_url, INSTANCE_RECEIVED, f"bench.lat.instances.{suffix}")
    completed = _topic(bootstrap, registry_url, STUDY_COMPLETED, f"bench.lat.completed.{suffix}")
    root = str(work / "latency-lake")
    queries = start_pipeline(spark, bootstrap=bootstrap, lake_uri=root, instances_topic=instances.name,
                             completed_topic=completed.name, checkpoints=f"{root}/_chk")
    events = _events(int(rate * seconds), "lat")
    registry = registry_client(registry_url)
    serde, completed_serde = EventSerde(instances, registry), EventSerde(completed, registry)
    producer = kafka.producer(bootstrap, client_id="bench-lake")
    series_path = tables.table_path(root, SILVER_SERIES)
    studies_path = tables.table_path(root, SILVER_STUDIES)
    # Warm-up: the queries' first micro-batches compile and load classes (tens of seconds on a loaded
    # machine); a running lake has done that long ago, so one study goes through before the clock starts.
    warm = _events(10, "warm")
    for event in warm:
        producer.produce(instances.name, key=event.key.encode(), value=serde.serialize(event))
    warm_done = study_completed(warm)
    producer.produce(completed.name, key=warm_done.key.encode(), value=completed_serde.serialize(warm_done))
    producer.flush(60)
    deadline = time.time() + 300
    while time.time() < deadline and not (
            DeltaTable.is_deltatable(studies_path)
            and warm_done.data.study_uid in _complete_studies(DeltaTable(studies_path))):
        time.sleep(1)
    sent: dict[str, float] = {}
    study_sent: dict[str, float] = {}
    study_events: list = []
    started = time.time()
    for i, event in enumerate(events):
        delay = started + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        sent[event.data.sop_instance_uid] = time.time()
        producer.produce(instances.name, key=event.key.encode(), value=serde.serialize(event))
        study_events.append(event)
        if i + 1 == len(events) or events[i + 1].data.study_uid != event.data.study_uid:
            done = study_completed(study_events)
            study_sent[done.data.study_uid] = time.time()
            producer.produce(completed.name, key=done.key.encode(), value=completed_serde.serialize(done))
            study_events = []
        producer.poll(0)
    producer.flush(60)
    deadline = time.time() + 300
    while time.time() < deadline:
        time.sleep(1)
        listed = set(_listed_instances(DeltaTable(series_path)))
        complete = set(_complete_studies(DeltaTable(studies_path)))
        if listed >= set(sent) and complete >= set(study_sent):
            break
    for query in queries:
        _stop_when_idle(query)
    series_at, studies_at = _commit_times(series_path), _commit_times(studies_path)
    seen = {uid: series_at[v] for uid, v in _first_versions(series_path, _listed_instances).items()}
    done_at = {uid: studies_at[v] for uid, v in _first_versions(studies_path, _complete_studies).items()}
    latencies = [seen[uid] - sent[uid] for uid in sent if uid in seen]
    if len(latencies) != len(sent):
        raise BenchError(f"only {len(latencies)} of {len(sent)} instances reached silver within 300 s")
    completions = [done_at[uid] - study_sent[uid] for uid in study_sent if uid in done_at]
    if len(completions) != len(study_sent):
        raise BenchError(f"only {len(completions)} of {len(study_sent)} studies were complete in silver within 300 s")
    return {"events": len(sent), "rate": rate, **_quantiles(latencies),
            "studies": len(study_sent), "completed": _quantiles(completions),
            "silver_versions": max(series_at) + 1, "studies_versions": max(studies_at) + 1}


# -- report -------------------------------------------------------------------------------------------------

def headline(tp: dict, lat: dict) -> list[dict]:
    """The ratios ``--summary`` records: bronze against each floor per batch size, and p95 latency / goal."""
    lines = []
    for size, by in tp["by_size"].items():
        where = f"batches of <= {size:,} events, table of {tp['prefill']:,} rows"
        lines.append({"benchmark": "lake", "measure": f"bronze rows/s / same-writer floor rows/s, {where}",
                      "ratio": round(by["bronze"]["rows_per_s"] / by["floor"]["rows_per_s"], 3),
                      "goal": f">= {THROUGHPUT_GOAL}"})
    lines.append({"benchmark": "lake", "measure": f"p95 event -> silver series / {LATENCY_GOAL_S:g} s",
                  "ratio": round(lat["p95_s"] / LATENCY_GOAL_S, 3), "goal": "< 1"})
    return lines


def report(settings, args, command: str, tp: dict, lat: dict, load: tuple[float, float]) -> str:
    rows = []
    for size, by in tp["by_size"].items():
        for name, label in (("floor", "floor: bronze's query, batch function = append only"),
                            ("bronze", "bronze: `spark_jobs.bronze` (checks, dedupe scan, append)")):
            r = by[name]
            each = ", ".join(f"{t:.1f}" for t in r["runs"])
            rows.append(f"| {size:,} | {label} | {r['batches']} | {r['wall_s']:.1f} s | {r['s']:.1f} s ({each}) | "
                        f"{r['rows_per_s']:,.0f} |")
    ratios = "; ".join(f"**{100 * by['bronze']['rows_per_s'] / by['floor']['rows_per_s']:.0f} %** of the floor "
                       f"in batches of ≤ {size:,}" for size, by in tp["by_size"].items())
    runs = (f"best of {args.repeat}, alternating which query goes first" if args.repeat > 1 else "one run each")
    quick = f" (`--quick`, {runs}; the full run: 20,000 events)" if args.quick else f" ({runs})"
    reduced = "" if tp["prefill"] >= 1_000_000 else f" **Reduced pre-fill**: {tp['prefill']:,} rows, not 1,000,000."
    c = lat["completed"]
    return f"""
Spark {pyspark.__version__} + delta-spark {version('delta_spark')} on `{settings.spark_master}` (driver memory
{settings.spark_driver_memory}), deltalake (delta-rs) {version('deltalake')}; Kafka and the registry from
`radlake stack up`. Load average (1 min; other sessions share the cores): {load[0]:.1f} at the start,
{load[1]:.1f} at the end.

**Throughput.** {tp['events']:,} generated `instance received` events on one 3-partition topic{quick}, read
by bronze and by a floor: the same streaming query (same Kafka source and options, decode, micro-batches,
checkpoint) whose batch function only appends the batch's Arrow rows with bronze's writer (delta-rs
`write_deltalake`, same cast to the table's schema). Each writes into its own copy of one bronze table
**pre-filled with {tp['prefill']:,} rows** (random event ids, {args.prefill_appends} delta-rs appends,
{tp['prefill_s']:.0f} s, no Kafka), so bronze's scan of the existing event ids is paid as in a full
table.{reduced} The two queries' micro-batch sizes are checked equal. "In batches" is the sum of the
micro-batches' durations (Spark's `triggerExecution`: offsets logged, batch function, commit logged);
rows/s and the ratios are on the best run's, as a long-running query pays its start once (each run's
in brackets, in run order; the floor goes first in odd runs, bronze in even ones). "Wall" (best run) adds
starting and stopping the query.

| `maxOffsetsPerTrigger` | path | micro-batches | wall | in batches | rows/s |
| ---: | --- | ---: | ---: | ---: | ---: |
{chr(10).join(rows)}

Bronze: {ratios} (goal ≥ {100 * THROUGHPUT_GOAL:.0f} %). The floor differs from bronze only by what
bronze adds per batch: the split of undecodable rows, the transaction-id checks, the scan of the whole
table's `event_id` column, first-arrival dedupe. The pre-fill is a few large files, the best case for
that scan; a bronze of many small files (one per micro-batch and provider, before `radlake lake
optimize`) scans slower. Before 2026-12-07 this section compared bronze (delta-rs) with a floor written
by Spark's Delta writer into an empty table ("105 %"): two writers, and no existing rows to check.

**Latency**, with bronze (both topics) and silver streaming at their default triggers in one driver
(warmed up by one study first), {lat['events']} events at {lat['rate']:g} events/s in {lat['studies']} studies,
each followed by its `study completed` event ({lat['silver_versions']} `silver/series` versions,
{lat['studies_versions']} `silver/studies` versions); the tables start empty:

| from | to | p50 | p95 | max |
| --- | --- | ---: | ---: | ---: |
| `instance received` handed to the producer | first `silver/series` version listing the instance | {lat['p50_s']:.1f} s | **{lat['p95_s']:.1f} s** | {lat['max_s']:.1f} s |
| `study completed` handed to the producer | first `silver/studies` version with the study `complete`, counts matching | {c['p50_s']:.1f} s | {c['p95_s']:.1f} s | {c['max_s']:.1f} s |

Goal: p95 event -> silver < {LATENCY_GOAL_S:g} s. Times are commit timestamps of the Delta versions
(`history()` of the table). Runs with the pipeline held to half and a quarter of a core: docs/lake.md, Limits.
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lake_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smaller run (<= 3 min on 2 cores): fewer events, a shorter latency run")
    parser.add_argument("--events", type=int, help="events on the throughput topic (20,000; --quick 4,000)")
    parser.add_argument("--prefill", type=int, default=1_000_000, help="rows already in bronze's table")
    parser.add_argument("--prefill-appends", type=int, default=4, help="delta-rs commits of the pre-fill")
    parser.add_argument("--batches",
                        help="maxOffsetsPerTrigger values, comma-separated (default 50000,500)")
    parser.add_argument("--repeat", type=int, help="runs of each path, best reported (2)")
    parser.add_argument("--rate", type=float, default=25.0, help="events/s produced in the latency run")
    parser.add_argument("--seconds", type=float, help="length of the latency run (60; --quick 15)")
    parser.add_argument("--write-docs", action="store_true", help="write the section of docs/benchmarks.md")
    parser.add_argument("--summary", type=Path, help="append the headline ratios to this file as JSON lines")
    args = parser.parse_args(argv)
    quick = args.quick
    args.events = args.events or (4_000 if quick else 20_000)
    args.batches = [int(b) for b in (args.batches or "50000,500").split(",")]
    args.repeat = args.repeat or 2  # alternating order: a single run favours whichever query goes second
    args.seconds = args.seconds or (15.0 if quick else 60.0)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    command = "python bench/lake_bench.py " + " ".join(argv if argv is not None else sys.argv[1:])

    load_start = os.getloadavg()[0]
    settings = Settings()
    lock_down(settings)  # what the bench writes under the state dir is private, as the commands' is
    use_stack_identity(settings)  # as the platform administrator, like the commands it stands for
    bootstrap, registry_url = endpoints.kafka_bootstrap(settings), endpoints.registry_url(settings)
    spark = spark_session(settings, "radlake-lake-bench")
    try:
        with tempfile.TemporaryDirectory(prefix="radlake-lake-bench-") as tmp:
            tp = throughput(spark, bootstrap, registry_url, args, Path(tmp))
            lat = latency(spark, bootstrap, registry_url, args.rate, args.seconds, Path(tmp))
    except BenchError as e:
        print(f"lake_bench: {e}", file=sys.stderr)
        return 1
    finally:
        spark.stop()
    load_end = os.getloadavg()[0]

    body = report(settings, args, command, tp, lat, (load_start, load_end))
    print(body)
    lines = headline(tp, lat)
    for line in lines:
        print(json.dumps(line))
    if args.summary:
        with args.summary.open("a") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)
    if args.write_docs:
        write_section("lake", f"Lake: bronze against a same-writer floor on a {args.prefill:,}-row table, event -> silver latency",
                      command, body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
