"""Bronze's driver-side write (delta-rs, no Spark): a replayed micro-batch adds no row to the bronze table
nor to ``<table>_rejected``, whichever of the batch's two commits a crash interrupted."""

from __future__ import annotations

import deltalake
import pyarrow as pa
import pytest
from deltalake import DeltaTable, write_deltalake

from lake_schemas.tables import BRONZE_INSTANCES
from spark_jobs import bronze
from spark_jobs.bronze import rejected_path, write_batch

APP = "bronze:test"
SCHEMA = pa.schema([("event_id", pa.string()), ("provider", pa.string()), ("kafka_topic", pa.string()),
                    ("kafka_partition", pa.int32()), ("kafka_offset", pa.int64()),
                    ("kafka_timestamp", pa.timestamp("us", tz="UTC")), ("schema_id", pa.int32())])


def _table(tmp_path) -> str:
    """A bronze-like table: the key, a partition column and the Kafka coordinates (enough for write_batch)."""
    path = str(tmp_path / "instances")
    write_deltalake(path, SCHEMA.empty_table(), mode="append", partition_by=["provider"])
    return path


def _batch(messages: list[str | None], first_offset: int = 0) -> pa.Table:
    """A decoded batch as Spark hands it over: one row per message, NULL event id for an undecodable one."""
    n = len(messages)
    return pa.table({
        "event_id": pa.array(messages, pa.string()),
        "provider": pa.array([None if m is None else "site-a" for m in messages], pa.string()),
        "kafka_topic": pa.array(["t"] * n), "kafka_partition": pa.array([0] * n, pa.int32()),
        "kafka_offset": pa.array(range(first_offset, first_offset + n), pa.int64()),
        "kafka_timestamp": pa.array([0] * n, pa.timestamp("us", tz="UTC")),
        "schema_id": pa.array([None if m is None else 1 for m in messages], pa.int32()),
        "raw_value": pa.array([f"raw {m}".encode() for m in messages], pa.binary()),
    })


def _counts(path: str) -> tuple[int, int]:
    rejected = rejected_path(path)
    return (DeltaTable(path).to_pyarrow_table().num_rows,
            DeltaTable(rejected).to_pyarrow_table().num_rows if DeltaTable.is_deltatable(rejected) else 0)


def test_a_replayed_batch_of_redeliveries_and_undecodable_messages_adds_nothing(tmp_path):
    path = _table(tmp_path)
    assert write_batch(_batch(["a", "b", None]), path, BRONZE_INSTANCES, txn=(APP, 0)) == (2, 1)
    # No new event id: the batch makes no commit to the main table, only to the rejected table. Before
    # 2026-12-07 only the main table's transaction was checked, so each replay appended the reject again.
    redelivered = _batch(["a", None, "b"], first_offset=3)
    assert write_batch(redelivered, path, BRONZE_INSTANCES, txn=(APP, 1)) == (0, 1)
    for _ in range(2):
        write_batch(redelivered, path, BRONZE_INSTANCES, txn=(APP, 1))
    write_batch(_batch(["a", "b", None]), path, BRONZE_INSTANCES, txn=(APP, 0))
    assert _counts(path) == (2, 2)
    assert DeltaTable(rejected_path(path)).transaction_version(APP) == 1
    # The next batch id is written.
    assert write_batch(_batch([None, "c"], first_offset=6), path, BRONZE_INSTANCES, txn=(APP, 2)) == (1, 1)
    assert _counts(path) == (3, 3)


def test_a_crash_between_the_rejected_and_the_main_commit_is_replayed_without_a_duplicate(tmp_path, monkeypatch):
    path = _table(tmp_path)
    batch = _batch(["a", None, "b", None])
    real_write = deltalake.write_deltalake

    def crash_on_main_table(target, *args, **kwargs):
        if not str(target).rstrip("/").endswith("_rejected"):
            raise RuntimeError("driver killed")
        return real_write(target, *args, **kwargs)

    monkeypatch.setattr(bronze, "write_deltalake", crash_on_main_table)
    with pytest.raises(RuntimeError, match="driver killed"):
        write_batch(batch, path, BRONZE_INSTANCES, txn=(APP, 0))
    monkeypatch.undo()
    assert _counts(path) == (0, 2)  # the rejected rows were committed, the accepted ones not

    write_batch(batch, path, BRONZE_INSTANCES, txn=(APP, 0))  # the restarted query replays batch 0
    assert _counts(path) == (2, 2)
    assert DeltaTable(path).transaction_version(APP) == 0
    write_batch(batch, path, BRONZE_INSTANCES, txn=(APP, 0))
    assert _counts(path) == (2, 2)


def test_without_a_transaction_id_every_write_appends_its_rejects(tmp_path):
    """Outside a streaming query (no batch id) there is nothing to replay against: each call appends."""
    path = _table(tmp_path)
    write_batch(_batch(["a", None]), path, BRONZE_INSTANCES)
    write_batch(_batch(["a", None]), path, BRONZE_INSTANCES)
    assert _counts(path) == (1, 2)


def test_events_of_an_erased_patient_replayed_from_the_topic_are_not_landed_again(tmp_path):
    path = str(tmp_path / "instances")
    schema = SCHEMA.append(pa.field("pseudo_patient_id", pa.string()))
    write_deltalake(path, schema.empty_table(), mode="append", partition_by=["provider"])
    batch = _batch(["a", "b", "c"]).append_column("pseudo_patient_id", pa.array(["RL1", "RL2", "RL1"]))
    deny_list = str(tmp_path / "governance" / "erasures")
    assert bronze.erased_pseudonyms(deny_list) == frozenset()
    write_deltalake(deny_list, pa.table({"pseudonym": ["RL1"]}))
    erased = bronze.erased_pseudonyms(deny_list)
    assert write_batch(batch, path, BRONZE_INSTANCES, erased=erased) == (1, 0)
    assert DeltaTable(path).to_pyarrow_table().column("event_id").to_pylist() == ["b"]
