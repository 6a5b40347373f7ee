"""Lake benchmark: Kafka -> Delta bronze throughput against a plain Spark batch read (the floor), and the
latency from an ``instance received`` event to its silver ``series`` row at the default trigger.

Throughput: N generated events on a fresh topic (3 partitions); the floor is one Spark batch query that
reads the topic, decodes it exactly as bronze does and appends it to a Delta table; bronze is the
streaming job (availableNow, MERGE on event id) over the same topic into a fresh table. Both run in the
same SparkSession after a warm-up, each ``--repeat`` times; the best run of each is reported.

Latency: bronze (both topics) and silver run as streaming queries at their default 5 s trigger; once one
warm-up study has gone through, events are produced at a steady rate, each study followed by its
``study completed`` event. An instance's latency is the commit time of the first silver ``series``
version that lists it minus the moment it was handed to the producer; a study's, the commit time of the
first ``silver/studies`` version where it is ``complete`` with matching counts minus the moment its
completion event was handed to the producer.

    RADLAKE_... python -m bench.lake_bench [--events 20000] [--rate 25] [--seconds 60] [--write-docs]
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

log = logging.getLogger("bench.lake")


def _events(count: int, tag: str):
    from radlake.synthetic.lake_events import SeriesPlan, series_events

    per_series = 100
    events = []
    for i in range((count + per_series - 1) // per_series):
        events += series_events(SeriesPlan(f"site-{i % 3}", f"{tag}-study-{i // 2}", f"{tag}-series-{i}", per_series))
    return events[:count]


def _topic(bootstrap: str, registry_url: str, kind, name: str):
    """A fresh topic, registered and created with its partitions."""
    from lake_schemas.registration import register
    from lake_schemas.serde import registry_client
    from radlake.synthetic.lake_events import create_topics

    topic = kind.with_name(name)
    register(registry_client(registry_url), (topic,))
    create_topics(bootstrap, (topic,))
    return topic


def _stop_when_idle(query, timeout_s: float = 120) -> None:
    """Stop between micro-batches rather than interrupting one."""
    deadline = time.time() + timeout_s
    while query.status["isTriggerActive"] and time.time() < deadline:
        time.sleep(0.2)
    query.stop()


def floor_run(spark, bootstrap: str, topic: str, table: str) -> float:
    from lake_schemas.tables import BRONZE_INSTANCES
    from spark_jobs import bronze

    started = time.perf_counter()
    raw = (spark.read.format("kafka").option("kafka.bootstrap.servers", bootstrap).option("subscribe", topic)
           .option("startingOffsets", "earliest").option("endingOffsets", "latest").load())
    bronze.decode(raw, BRONZE_INSTANCES).where("event_id IS NOT NULL").drop("raw_value") \
        .write.format("delta").mode("append").partitionBy(*BRONZE_INSTANCES.partition_by).save(table)
    return time.perf_counter() - started


def bronze_run(spark, bootstrap: str, topic: str, root: str) -> float:
    from spark_jobs import bronze

    job = bronze.BronzeJob(bootstrap, topic, f"{root}/instances", f"{root}/chk")
    started = time.perf_counter()
    bronze.start(spark, job, available_now=True).awaitTermination()
    return time.perf_counter() - started


def throughput(spark, bootstrap: str, registry_url: str, count: int, repeat: int, work: Path) -> dict:
    from lake_schemas.topics import INSTANCE_RECEIVED
    from radlake.synthetic.lake_events import publish

    topic = _topic(bootstrap, registry_url, INSTANCE_RECEIVED, f"bench.lake.{uuid.uuid4().hex[:8]}")
    publish(bootstrap, registry_url, topic, _events(count, "tp"))
    warm = _topic(bootstrap, registry_url, INSTANCE_RECEIVED, f"bench.lake.warm.{uuid.uuid4().hex[:8]}")
    publish(bootstrap, registry_url, warm, _events(500, "warm"))
    floor_run(spark, bootstrap, warm.name, str(work / "warm-floor"))
    bronze_run(spark, bootstrap, warm.name, str(work / "warm-bronze"))
    floors, bronzes = [], []
    for i in range(repeat):
        floors.append(floor_run(spark, bootstrap, topic.name, str(work / f"floor-{i}")))
        bronzes.append(bronze_run(spark, bootstrap, topic.name, str(work / f"bronze-{i}")))
        log.warning("run %d: floor %.1fs, bronze %.1fs", i, floors[-1], bronzes[-1])
    rows = spark.read.format("delta").load(str(work / "bronze-0" / "instances")).count()
    if rows != count:
        raise SystemExit(f"bronze has {rows} rows for {count} events")
    return {"events": count, "floor_s": min(floors), "bronze_s": min(bronzes),
            "floor_eps": count / min(floors), "bronze_eps": count / min(bronzes)}


def _commit_times(path: str) -> dict[int, float]:
    """Commit time (s) of every version of a Delta table, from its log's commit infos.

    ``DeltaTable(path, version=v).history(1)`` is not the commit of version v: delta-rs answers with the
    newest commit of the log whatever version was loaded, which stamped every version found in one poll
    with the time of the last one (and made the latencies before 2026-11-23 grow with the run length).
    """
    from deltalake import DeltaTable

    return {h["version"]: h["timestamp"] / 1000 for h in DeltaTable(path).history()}


def _first_versions(path: str, rows_of) -> dict[str, int]:
    """For each key ``rows_of(table at version v)`` yields, the first version that yields it."""
    from deltalake import DeltaTable

    first: dict[str, int] = {}
    for version in range(DeltaTable(path).version() + 1):
        for key in rows_of(DeltaTable(path, version=version)):
            first.setdefault(key, version)
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
    from confluent_kafka import Producer
    from deltalake import DeltaTable

    from lake_schemas.serde import EventSerde, registry_client
    from lake_schemas.tables import SILVER_SERIES, SILVER_STUDIES
    from lake_schemas.topics import INSTANCE_RECEIVED, STUDY_COMPLETED
    from radlake.synthetic.lake_events import study_completed
    from spark_jobs import tables
    from spark_jobs.pipeline import start_pipeline

    suffix = uuid.uuid4().hex[:8]
    instances = _topic(bootstrap, registry_url, INSTANCE_RECEIVED, f"bench.lat.instances.{suffix}")
    completed = _topic(bootstrap, registry_url, STUDY_COMPLETED, f"bench.lat.completed.{suffix}")
    root = str(work / "latency-lake")
    queries = start_pipeline(spark, bootstrap=bootstrap, lake_uri=root, instances_topic=instances.name,
                             completed_topic=completed.name, checkpoints=f"{root}/_chk")
    events = _events(int(rate * seconds), "lat")
    registry = registry_client(registry_url)
    serde, completed_serde = EventSerde(instances, registry), EventSerde(completed, registry)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
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
        time.sleep(2)
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
        raise SystemExit(f"only {len(latencies)} of {len(sent)} instances reached silver within 300 s")
    completions = [done_at[uid] - study_sent[uid] for uid in study_sent if uid in done_at]
    if len(completions) != len(study_sent):
        raise SystemExit(f"only {len(completions)} of {len(study_sent)} studies were complete in silver within 300 s")
    return {"events": len(sent), "rate": rate, **_quantiles(latencies),
            "studies": len(study_sent), "completed": _quantiles(completions),
            "silver_versions": max(series_at) + 1, "studies_versions": max(studies_at) + 1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lake_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--rate", type=float, default=25.0, help="events/s produced in the latency run")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the latency run")
    parser.add_argument("--write-docs", action="store_true", help="write the section of docs/benchmarks.md")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    from infra.components.kafka import Kafka
    from infra.components.registry import SchemaRegistry
    from radlake.settings import Settings
    from spark_jobs.session import spark_session

    settings = Settings()
    bootstrap, registry_url = Kafka(settings).address, SchemaRegistry(settings).address
    spark = spark_session(settings, "radlake-lake-bench")
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="radlake-lake-bench-") as tmp:
        tp = throughput(spark, bootstrap, registry_url, args.events, args.repeat, Path(tmp))
        lat = latency(spark, bootstrap, registry_url, args.rate, args.seconds, Path(tmp))
    spark.stop()
    load_after = os.getloadavg()[0]
    import pyspark
    from importlib.metadata import version

    ratio = tp["bronze_eps"] / tp["floor_eps"]
    c = lat["completed"]
    body = f"""
Spark {pyspark.__version__} + delta-spark {version('delta_spark')} on `{settings.spark_master}`, driver memory {settings.spark_driver_memory}; Kafka and the registry from `radlake stack up`.
Machine load (1-min load average, other sessions' stacks and benchmarks share the 2 cores): {load_before:.1f} at the start, {load_after:.1f} at the end.

Throughput: {tp['events']} generated `instance received` events on one 3-partition topic, best of {args.repeat} runs each.

| path | time | events/s |
| --- | ---: | ---: |
| floor: Spark batch read of the topic, same decode, Delta append | {tp['floor_s']:.1f} s | {tp['floor_eps']:.0f} |
| bronze: Structured Streaming (availableNow), new event ids inserted (Arrow to the driver, delta-rs) | {tp['bronze_s']:.1f} s | {tp['bronze_eps']:.0f} |

Bronze reaches **{100 * ratio:.0f} %** of the floor (goal ≥ 70 %).

Latency, with bronze (both topics) and silver streaming at their default triggers in one driver (warmed
up by one study first), {lat['events']} events at {lat['rate']:g} events/s in {lat['studies']} studies, each followed by its `study completed` event
({lat['silver_versions']} `silver/series` versions, {lat['studies_versions']} `silver/studies` versions):

| from | to | p50 | p95 | max |
| --- | --- | ---: | ---: | ---: |
| `instance received` handed to the producer | first `silver/series` version listing the instance | {lat['p50_s']:.1f} s | **{lat['p95_s']:.1f} s** | {lat['max_s']:.1f} s |
| `study completed` handed to the producer | first `silver/studies` version with the study `complete`, counts matching | {c['p50_s']:.1f} s | {c['p95_s']:.1f} s | {c['max_s']:.1f} s |

Goal: p95 event -> silver < 30 s. Times are commit timestamps of the Delta versions (`history()` of the table).
Figures before the 2026-11-23 bronze/silver rewrite, and runs with the pipeline held to half and a quarter
of a core (a stand-in for a loaded machine): docs/lake.md, Limits.
"""
    print(body)
    if args.write_docs:
        from bench.report import write_section

        write_section("lake", "Lake: Kafka -> bronze throughput, event -> silver latency",
                      "python -m bench.lake_bench --write-docs", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
