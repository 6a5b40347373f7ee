"""A Delta table written by Spark, read back by delta-rs and by Spark with time travel."""

from __future__ import annotations

import pytest
from deltalake import DeltaTable

pytestmark = pytest.mark.integration


def test_delta_written_by_spark_is_read_by_deltalake_and_time_travel(spark, tmp_path):

    path = str(tmp_path / "studies")
    spark.createDataFrame([("2.25.1", "CT", 120), ("2.25.2", "CT", 98)], "study_uid string, modality string, instances int") \
        .write.format("delta").save(path)
    spark.createDataFrame([("2.25.3", "MR", 40)], "study_uid string, modality string, instances int") \
        .write.format("delta").mode("append").save(path)

    table = DeltaTable(path)
    assert table.version() == 1
    rows = table.to_pyarrow_table().to_pylist()
    assert sorted(r["study_uid"] for r in rows) == ["2.25.1", "2.25.2", "2.25.3"]

    v0 = spark.read.format("delta").option("versionAsOf", 0).load(path)
    assert sorted(r.study_uid for r in v0.collect()) == ["2.25.1", "2.25.2"]
    assert DeltaTable(path, version=0).to_pyarrow_table().num_rows == 2
