"""The lake's streaming queries started together: bronze for each topic, then silver over bronze."""

from __future__ import annotations

from lake_schemas.tables import (
    BRONZE_ANNOTATIONS,
    BRONZE_INSTANCES,
    BRONZE_STUDY_COMPLETED,
    ERASURES,
    GATE_REPORTS,
    QUARANTINE,
    SILVER_ANNOTATIONS,
    SILVER_SERIES,
    SILVER_STUDIES,
)
from platform_layer import kafka
from spark_jobs import bronze, silver, silver_annotations, tables
from spark_jobs.telemetry import LakeListener, LakeMetrics

# the tables the queries write, whose Delta versions and rows written the lake's metrics report
WRITTEN = (BRONZE_INSTANCES, BRONZE_STUDY_COMPLETED, BRONZE_ANNOTATIONS, SILVER_SERIES, SILVER_STUDIES,
           SILVER_ANNOTATIONS, QUARANTINE, GATE_REPORTS)


def rights(instances_topic: str, completed_topic: str, annotations_topic: str | None = None) -> kafka.Rights:
    """What the lake principal may do on Kafka: read the topics bronze lands (in its own consumer groups;
    offsets live in the queries' checkpoints). It writes nothing to Kafka."""
    reads = (instances_topic, completed_topic, *((annotations_topic,) if annotations_topic else ()))
    return kafka.Rights(reads=reads, group_prefixes=(bronze.GROUP_ID_PREFIX,))


def written_tables(lake_uri: str) -> dict[str, str]:
    """{table name relative to the lake root: its URI} of the tables the queries write (pure)."""
    root = lake_uri.rstrip("/")
    return {tables.table_path(root, spec)[len(root) + 1:]: tables.table_path(root, spec) for spec in WRITTEN}


def watch(spark, lake_uri: str) -> LakeMetrics:
    """The lake's metrics, fed by a listener on ``spark``'s streaming queries (call before starting them)."""
    metrics = LakeMetrics(written_tables(lake_uri))
    spark.streams.addListener(LakeListener(metrics))
    return metrics


def start_pipeline(spark, *, bootstrap: str, lake_uri: str, instances_topic: str, completed_topic: str,
                   checkpoints: str, trigger: str = silver.DEFAULT_TRIGGER, available_now: bool = False,
                   annotations_topic: str | None = None) -> list:
    """Start the queries (three; five with ``annotations_topic``: its bronze and silver ``annotations``); with
    available_now, bronze finishes before silver starts, and so does silver."""
    queries = []
    landed = [(instances_topic, BRONZE_INSTANCES), (completed_topic, BRONZE_STUDY_COMPLETED)]
    if annotations_topic:
        landed.append((annotations_topic, BRONZE_ANNOTATIONS))
    for topic, spec in landed:
        job = bronze.BronzeJob(bootstrap, topic, tables.table_path(lake_uri, spec), f"{checkpoints}/bronze-{spec.name}",
                               spec=spec, deny_list_path=tables.table_path(lake_uri, ERASURES))
        queries.append(bronze.start(spark, job, available_now=available_now, processing_time=trigger))
    if available_now:  # silver reads what bronze has landed
        for query in queries:
            query.awaitTermination()
    job = silver.SilverJob(lake_uri, f"{checkpoints}/silver")
    queries.append(silver.start(spark, job, available_now=available_now, processing_time=trigger))
    if annotations_topic:
        annotations = silver_annotations.SilverAnnotationsJob(lake_uri, f"{checkpoints}/silver-annotations")
        queries.append(silver_annotations.start(spark, annotations, available_now=available_now,
                                                processing_time=trigger))
    if available_now:
        for query in queries[2 + bool(annotations_topic):]:
            query.awaitTermination()
    return queries
