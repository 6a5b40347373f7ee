"""Kafka -> Delta bronze through the real broker and Spark: typed columns, idempotent on redelivery and on
the replay of a micro-batch (accepted and rejected rows alike)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from confluent_kafka import Producer
from deltalake import DeltaTable

from lake_schemas.events import InstanceReceived, InstanceReceivedData
from lake_schemas.topics import INSTANCE_RECEIVED
from platform_layer.kafka import connection as kafka_connection
from platform_layer.registration import register, schema_admin
from platform_layer.serde import EventSerde
from platform_layer.settings import Settings
from spark_jobs import bronze

pytestmark = pytest.mark.integration


def _event(i: int, provider: str = "site-a") -> InstanceReceived:
    blob = f"instance {i}".encode()
    return InstanceReceived(
        provider=provider,
        data=InstanceReceivedData(
            project="demo", pseudo_patient_id="RL1", study_uid=f"2.25.{100 + i // 3}", series_uid="2.25.9",
            sop_instance_uid=f"2.25.{1000 + i}", sop_class_uid="1.2.840.10008.5.1.4.1.1.2", modality="CT",
            transfer_syntax_uid="1.2.840.10008.1.2.1", instance_number=i, rows=64, columns=64,
            pixel_spacing=(0.8, 0.8), image_position_patient=(0.0, 0.0, float(i)),
            object_uri=f"file:///objects/{i}.dcm", sha256=hashlib.sha256(blob).hexdigest(), size_bytes=len(blob),
            deid_profile_version="test",
        ),
    )


def test_bronze_has_one_typed_row_per_event_even_with_redeliveries(spark, kafka_bootstrap, registry_url,
                                                                   created_topic, tmp_path):
    topic = INSTANCE_RECEIVED.with_name(created_topic)
    registry = schema_admin(Settings())
    register(registry, (topic,))
    serde = EventSerde(topic, registry)
    events = [_event(i, provider="site-a" if i % 2 else "site-b") for i in range(12)]
    producer = Producer({**kafka_connection(kafka_bootstrap), "enable.idempotence": True})
    for event in events + events[:2]:  # redelivered in the same micro-batch
        producer.produce(topic.name, key=event.key.encode(), value=serde.serialize(event))
    assert producer.flush(30) == 0

    job = bronze.BronzeJob(kafka_bootstrap, topic.name, str(tmp_path / "instances"), str(tmp_path / "chk"))
    bronze.start(spark, job, available_now=True).awaitTermination(240)
    # After a restart of the query: redeliveries in a later micro-batch, and a message that is no event.
    for event in events[2:6]:
        producer.produce(topic.name, key=event.key.encode(), value=serde.serialize(event))
    producer.produce(topic.name, value=b"not an event")
    assert producer.flush(30) == 0
    bronze.start(spark, job, available_now=True).awaitTermination(240)
    # A replay of that micro-batch (redeliveries and the undecodable message only, so no commit to the
    # main table): Spark re-runs a batch whose offsets are logged but whose commit is not, as after a
    # driver killed between the Delta commits and the checkpoint's commit file.
    commits = Path(job.checkpoint_path) / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    (commits / str(last)).unlink()
    (commits / f".{last}.crc").unlink(missing_ok=True)
    replay = bronze.start(spark, job, available_now=True)
    replay.awaitTermination(240)
    assert (commits / str(last)).exists()  # the batch was run again, with the same batch id
    assert [p["batchId"] for p in replay.recentProgress if p["numInputRows"]] == [last]

    table = spark.read.format("delta").load(job.table_path)
    assert table.count() == 12
    assert table.select("event_id").distinct().count() == 12
    row = table.where(f"event_id = '{events[5].event_id}'").first()
    assert row.sop_instance_uid == "2.25.1005" and row.provider == "site-a"
    assert list(row.image_position_patient) == [0.0, 0.0, 5.0] and row.schema_version == 1
    assert dict(table.dtypes)["occurred_at"] == "timestamp"
    rejected = spark.read.format("delta").load(bronze.rejected_path(job.table_path))
    assert [r.raw_value for r in rejected.collect()] == [bytearray(b"not an event")]


    assert DeltaTable(job.table_path).metadata().partition_columns == ["provider"]
