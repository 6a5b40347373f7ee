"""Lake benchmark: Kafka -> Delta bronze throughput against a plain Spark batch read (the floor), and the
latency from an ``instance received`` event to its silver ``series`` row at the default trigger.

Throughput: N generated events on a fresh topic (3 partitions); the floor is one Spark batch query that
reads the topic, decodes it exactly as bronze does and appends it to a Delta table; bronze is the
streaming job (availableNow, MERGE on event id) over the same topic into a fresh table. Both run in the
same SparkSession after a warm-up, each ``--repeat`` times; the best run of each is reported.

Latency: bronze (both topics) and silver run as streaming queries at their default 5 s trigger while
events are produced at a steady rate; an instance's latency is the commit time of the first silver
``series`` version that lists it minus the moment it was handed to the producer.

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


def latency(spark, bootstrap: str, registry_url: str, rate: float, seconds: float, work: Path) -> dict:
    from confluent_kafka import Producer
    from deltalake import DeltaTable

    from lake_schemas.serde import EventSerde, registry_client
    from lake_schemas.tables import SILVER_SERIES
    from lake_schemas.topics import INSTANCE_RECEIVED, STUDY_COMPLETED
    from spark_jobs import tables
    from spark_jobs.pipeline import start_pipeline

    suffix = uuid.uuid4().hex[:8]
    instances = _topic(bootstrap, registry_url, INSTANCE_RECEIVED, f"bench.lat.instances.{suffix}")
    completed = _topic(bootstrap, registry_url, STUDY_COMPLETED, f"bench.lat.completed.{suffix}")
    root = str(work / "latency-lake")
    queries = start_pipeline(spark, bootstrap=bootstrap, lake_uri=root, instances_topic=instances.name,
                             completed_topic=completed.name, checkpoints=f"{root}/_chk")
    events = _events(int(rate * seconds), "lat")
    serde = EventSerde(instances, registry_client(registry_url))
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "linger.ms": 5})
    sent: dict[str, float] = {}
    started = time.time()
    for i, event in enumerate(events):
        delay = started + i / rate - time.time()
        if delay > 0:
            time.sleep(delay)
        sent[event.data.sop_instance_uid] = time.time()
        producer.produce(instances.name, key=event.key.encode(), value=serde.serialize(event))
        producer.poll(0)
    producer.flush(60)
    series_path = tables.table_path(root, SILVER_SERIES)
    deadline = time.time() + 300
    seen: dict[str, float] = {}
    checked = -1
    while len(seen) < len(sent) and time.time() < deadline:
        time.sleep(2)
        table = DeltaTable(series_path)
        for version in range(checked + 1, table.version() + 1):
            at = DeltaTable(series_path, version=version)
            stamp = next(h["timestamp"] for h in at.history(1)) / 1000
            for row in at.to_pyarrow_table(columns=["instances"]).column("instances").to_pylist():
                for ref in row or ():
                    seen.setdefault(ref["sop_instance_uid"], stamp)
            checked = version
    for query in queries:
        _stop_when_idle(query)
    latencies = sorted(seen[uid] - sent[uid] for uid in sent if uid in seen)
    if len(latencies) != len(sent):
        raise SystemExit(f"only {len(latencies)} of {len(sent)} instances reached silver within 300 s")
    q = statistics.quantiles(latencies, n=100)
    return {"events": len(sent), "rate": rate, "p50_s": q[49], "p95_s": q[94], "max_s": latencies[-1],
            "silver_versions": checked + 1}


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
    body = f"""
Spark {pyspark.__version__} + delta-spark {version('delta_spark')} on `{settings.spark_master}`, driver memory {settings.spark_driver_memory}; Kafka and the registry from `radlake stack up`.
Machine load (1-min load average, other sessions' stacks and benchmarks share the 2 cores): {load_before:.1f} at the start, {load_after:.1f} at the end.

Throughput: {tp['events']} generated `instance received` events on one 3-partition topic, best of {args.repeat} runs each.

| path | time | events/s |
| --- | ---: | ---: |
| floor: Spark batch read of the topic, same decode, Delta append | {tp['floor_s']:.1f} s | {tp['floor_eps']:.0f} |
| bronze: Structured Streaming (availableNow), MERGE on event id | {tp['bronze_s']:.1f} s | {tp['bronze_eps']:.0f} |

Bronze reaches **{100 * ratio:.0f} %** of the floor (goal ≥ 70 %).

Latency from an event handed to the producer to the first silver `series` version listing its instance,
with bronze (both topics) and silver streaming at the default 5 s trigger in one driver, {lat['events']}
events at {lat['rate']:g} events/s ({lat['silver_versions']} silver versions):
**p50 {lat['p50_s']:.1f} s, p95 {lat['p95_s']:.1f} s** (max {lat['max_s']:.1f} s; goal p95 < 30 s).
"""
    print(body)
    if args.write_docs:
        from bench.report import write_section

        write_section("lake", "Lake: Kafka -> bronze throughput, event -> silver latency",
                      "python -m bench.lake_bench --write-docs", body)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
