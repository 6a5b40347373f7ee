"""Bronze's insert rule on Arrow tables: one row per event id, the first in Kafka order, none already there."""

from __future__ import annotations

import pyarrow as pa

from spark_jobs.bronze import new_rows


def test_new_rows_keeps_the_first_arrival_of_each_new_event_id_in_batch_order():
    rows = pa.table({
        "event_id": ["b", "a", "b", "c", "a"],
        "kafka_partition": [0, 1, 0, 0, 0],
        "kafka_offset": [7, 3, 2, 9, 1],
        "payload": ["b@7", "a@1:3", "b@2", "c@9", "a@0:1"],
    })
    kept = new_rows(rows, pa.array(["c"]), "event_id")
    assert kept.column("payload").to_pylist() == ["b@2", "a@0:1"]  # batch order, first offset per event id
    assert new_rows(rows.slice(0, 0), pa.array([], pa.string()), "event_id").num_rows == 0
