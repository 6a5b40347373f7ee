"""Kafka -> Delta bronze: one row per event, exactly once.

Structured Streaming reads the topic; each micro-batch is decoded from the Confluent wire format
(``0x00 | schema id | JSON``) and flattened into the table's typed columns by Spark, then inserted into
Delta on the driver with delta-rs, skipping event ids the table already has (what a MERGE inserting
unmatched rows does, in one Spark job instead of several). The checkpoint makes a restart resume from the
last committed offsets; skipping known event ids (and the commit's transaction id) makes a replayed
micro-batch or a redelivered event (same event id) a no-op. Together: no loss, no duplicate.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from delta.tables import DeltaTable as SparkDeltaTable
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake
from pyspark.sql import functions as F

from lake_schemas.tables import BRONZE_INSTANCES, DeltaTableSpec, event_ddl
from platform_layer import kafka

log = logging.getLogger(__name__)


GROUP_ID_PREFIX = "radlake-lake"


@dataclass(frozen=True)
class BronzeJob:
    bootstrap: str
    topic: str
    table_path: str
    checkpoint_path: str
    spec: DeltaTableSpec = BRONZE_INSTANCES
    starting_offsets: str = "earliest"
    max_offsets_per_trigger: int = 50_000
    # The erasure records (``governance/erasures``): events of an erased patient replayed from the topic are
    # not landed again. Empty: no deny list (a lake of a test or a benchmark of its own).
    deny_list_path: str = ""

    @property
    def app_id(self) -> str:
        """The Delta transaction application id of this query's writes (stable per checkpoint)."""
        return f"bronze:{hashlib.sha256(self.checkpoint_path.encode()).hexdigest()[:12]}"


def decode(df, spec: DeltaTableSpec):
    """Kafka rows -> the table's columns. Rows that are not in the wire format decode to NULL event ids."""

    payload = F.expr("CAST(substring(value, 6, length(value) - 5) AS STRING)")
    schema_id = F.conv(F.hex(F.substring("value", 2, 4)), 16, 10).cast("int")
    event = F.from_json(payload, event_ddl(spec.topic))
    decoded = df.select(
        event.alias("e"),
        schema_id.alias("schema_id"),
        F.col("topic").alias("kafka_topic"),
        F.col("partition").alias("kafka_partition"),
        F.col("offset").alias("kafka_offset"),
        F.col("timestamp").alias("kafka_timestamp"),
        F.col("value").alias("raw_value"),
    )
    envelope = [n for n, _ in spec.columns if n in spec.topic.schema["properties"]]
    payload_cols = list(spec.topic.schema["properties"]["data"]["properties"])
    kafka_cols = [n for n, _ in spec.kafka_columns]
    return decoded.select(
        *[F.col(f"e.{n}").alias(n) for n in envelope],
        *[F.col(f"e.data.{n}").alias(n) for n in payload_cols],
        *kafka_cols,
        "raw_value",
    )


def ensure_table(spark, path: str, spec: DeltaTableSpec) -> None:

    (
        SparkDeltaTable.createIfNotExists(spark)
        .location(path)
        .addColumns(spark.createDataFrame([], spec.ddl).schema)
        .partitionedBy(*spec.partition_by)
        .property("radlake.contract", spec.topic.schema_file)
        .property("delta.appendOnly", "false")
        .execute()
    )


def rejected_path(path: str) -> str:
    return path.rstrip("/") + "_rejected"


_REJECTED_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset", "kafka_timestamp", "schema_id", "raw_value")
REJECTED_REASON = "undecodable: not the Confluent JSON wire format or not this topic's schema"


def new_rows(rows, existing_ids, key: str):
    """The rows to insert (pure, on Arrow tables): one per key, the first in Kafka order, none already there."""

    indexed = rows.append_column("__row", pa.array(range(rows.num_rows), pa.int64()))
    ordered = indexed.sort_by([("kafka_partition", "ascending"), ("kafka_offset", "ascending"), ("__row", "ascending")])
    first = ordered.group_by(key, use_threads=False).aggregate([("__row", "first")]).column("__row_first")
    kept = rows.take(pc.take(first, pc.sort_indices(first)))  # batch order
    return kept.filter(pc.invert(pc.is_in(kept[key], value_set=existing_ids)))


def _txn_done(table, txn: tuple[str, int] | None) -> bool:
    """Whether the (loaded) table holds the commit of transaction ``txn``, or a later one of the same app."""
    if txn is None or table is None:
        return False
    app_id, version = txn
    done = table.transaction_version(app_id)
    return done is not None and done >= version


def erased_pseudonyms(deny_list_path: str) -> frozenset[str]:
    """The pseudonyms erased from the lake (``radlake erase``): their events are never landed again."""
    if not deny_list_path or not DeltaTable.is_deltatable(deny_list_path):
        return frozenset()
    column = DeltaTable(deny_list_path).to_pyarrow_dataset().to_table(columns=["pseudonym"]).column("pseudonym")
    return frozenset(v for v in column.to_pylist() if v)


def write_batch(data, path: str, spec: DeltaTableSpec, *, txn: tuple[str, int] | None = None,
                table=None, erased: frozenset[str] = frozenset()) -> tuple[int, int]:
    """Write one decoded batch (Arrow) to the bronze table at ``path`` and to ``<path>_rejected``, on the
    driver; returns (rows inserted, rows rejected). ``table``: ``DeltaTable(path)`` if already loaded.

    Each of the two tables is checked for the batch's transaction id before its own commit, so a replay
    writes to neither table again, whichever commit a crash interrupted. The rejected rows are committed
    first: the main table holding the batch's transaction then proves both commits are done, which lets
    ``merge_batch`` skip a replayed batch before fetching it. The main table's check alone is not enough for
    the rejected rows: a batch with no new event id (only redeliveries and undecodable messages) makes no
    main commit at all, so before 2026-12-07 every replay of such a batch appended its rejected rows again.
    """

    (key,) = spec.merge_key
    commit = CommitProperties(app_transactions=[Transaction(*txn)]) if txn is not None else None
    decoded = pc.is_valid(data[key])
    rejected = data.filter(pc.invert(decoded)).select(list(_REJECTED_COLUMNS))
    if rejected.num_rows:
        rejected_at = rejected_path(path)
        if not _txn_done(DeltaTable(rejected_at) if DeltaTable.is_deltatable(rejected_at) else None, txn):
            rejected = rejected.append_column("reason", pa.array([REJECTED_REASON] * rejected.num_rows, pa.string()))
            write_deltalake(rejected_at, rejected, mode="append", commit_properties=commit)
    table = table if table is not None else DeltaTable(path)
    if _txn_done(table, txn):
        return 0, rejected.num_rows
    schema = pa.schema(table.schema().to_arrow())
    rows = data.filter(decoded).select(schema.names).cast(schema)
    if erased and "pseudo_patient_id" in rows.column_names:
        rows = rows.filter(pc.invert(pc.is_in(rows["pseudo_patient_id"], value_set=pa.array(sorted(erased)))))
    existing = table.to_pyarrow_dataset().to_table(
        columns=[key], filter=pc.field(key).isin(pc.unique(rows[key]))).column(key)
    inserted = new_rows(rows, existing, key)
    if inserted.num_rows:
        write_deltalake(table, inserted, mode="append", commit_properties=commit)
    return inserted.num_rows, rejected.num_rows


def merge_batch(spark, batch_df, path: str, spec: DeltaTableSpec, *, batch_id: int | None = None,
                app_id: str | None = None, deny_list_path: str = "") -> None:
    """Insert the decodable rows whose event id is new; append the others, raw, to ``<table>_rejected``.

    The batch comes to the driver as Arrow (one Spark job: Kafka read and decode) and is written with
    delta-rs: the same result as a Delta MERGE inserting unmatched event ids, without the MERGE's several
    Spark jobs per micro-batch, which made bronze the slowest step of event -> silver (docs/lake.md). A
    replayed batch finds its event ids already there; with ``app_id``/``batch_id`` both tables' commits
    also carry a Delta transaction id, and a table that already has the batch's commit is not written again.
    """

    started = time.perf_counter()
    txn = (app_id, batch_id) if app_id is not None and batch_id is not None else None
    table = DeltaTable(path)
    if _txn_done(table, txn):  # the rejected rows, if any, were committed before (write_batch)
        log.info("bronze %s: batch %d already committed", spec.name, batch_id)
        return
    data = batch_df.toArrow()
    inserted, rejected = write_batch(data, path, spec, txn=txn, table=table,
                                     erased=erased_pseudonyms(deny_list_path))
    log.info("bronze %s: %d rows, %d new, %d rejected, %.1fs", spec.name, data.num_rows, inserted, rejected,
             time.perf_counter() - started)


def source(spark, job: BronzeJob):
    """The job's decoded stream (Kafka source and ``decode``); also what bench/lake_bench.py's floor reads."""
    raw = (
        spark.readStream.format("kafka")
        .options(**kafka.spark_options(job.bootstrap))
        .option("subscribe", job.topic)
        .option("groupIdPrefix", GROUP_ID_PREFIX)  # the lake principal's consumer groups (its ACL is by prefix)
        .option("startingOffsets", job.starting_offsets)
        .option("maxOffsetsPerTrigger", job.max_offsets_per_trigger)
        .option("failOnDataLoss", "true")
        .load()
    )
    return decode(raw, job.spec)


def start(spark, job: BronzeJob, *, available_now: bool = False, processing_time: str = "5 seconds"):
    """Start the streaming query; with available_now it processes what is on the topic and stops."""
    ensure_table(spark, job.table_path, job.spec)
    writer = (
        source(spark, job).writeStream
        .foreachBatch(lambda df, batch_id: merge_batch(spark, df, job.table_path, job.spec, batch_id=batch_id,
                                                       app_id=job.app_id, deny_list_path=job.deny_list_path))
        .option("checkpointLocation", job.checkpoint_path)
        .queryName(f"bronze-{job.spec.name}")
    )
    writer = writer.trigger(availableNow=True) if available_now else writer.trigger(processingTime=processing_time)
    return writer.start()
