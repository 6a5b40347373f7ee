"""The lake without Spark: delta-rs and DuckDB read what Spark wrote; `radlake lake` lists and maintains it;
an older table is evolved additively."""

from __future__ import annotations

import json
import re

import pytest
from deltalake import DeltaTable
from lake_build import small_lake

from apps import lake as cli
from lake_schemas.tables import SCHEMA_VERSION_PROPERTY, SILVER_STUDIES, LakeTableSpec, SchemaChange
from platform_layer.settings import Settings
from spark_jobs import notebook, tables

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lake(spark, kafka_bootstrap, registry_url, tmp_path_factory):
    return small_lake(spark, kafka_bootstrap, registry_url, tmp_path_factory.mktemp("lake"))


def test_spark_delta_rs_and_duckdb_read_the_same_silver_rows(spark, lake):

    columns = ["study_uid", "provider", "status", "instance_count", "study_version"]
    by_spark = sorted(tuple(r) for r in spark.read.format("delta").load(lake.path(SILVER_STUDIES))
                      .select(*columns).collect())
    by_delta_rs = sorted(tuple(r[c] for c in columns)
                         for r in DeltaTable(lake.path(SILVER_STUDIES)).to_pyarrow_table().to_pylist())
    settings = Settings(lake_uri=lake.root)
    con = notebook.duckdb("silver/studies", "silver/series", settings=settings)
    by_duckdb = sorted(con.sql(f"SELECT {', '.join(columns)} FROM studies").fetchall())
    assert by_spark == by_delta_rs == by_duckdb and len(by_spark) == 3

    # Nested claim-checks come through DuckDB too: unnest the ordered instances of the regular series.
    uids = [r[0] for r in con.sql(
        "SELECT i.sop_instance_uid FROM (SELECT unnest(instances) AS i FROM series WHERE series_uid = ?) ",
        params=[lake.events["a1"][0].data.series_uid]).fetchall()]
    assert uids == [e.data.sop_instance_uid for e in lake.events["a1"] + lake.events["late_a1"]]

    # Time travel without Spark: the studies table as of the first run had study A at version 1.
    past = lake.versions_after_phase1["silver/studies"]
    old = notebook.duckdb("silver/studies", settings=settings, versions={"silver/studies": past})
    a_uid = lake.events["a1"][0].data.study_uid
    assert old.sql("SELECT status, study_version FROM studies WHERE study_uid = ?", params=[a_uid]).fetchall() \
        == [("complete", 1)]


def test_lake_tables_lists_versions_and_row_counts(lake, capsys):
    assert cli.main(["--lake", lake.root, "tables", "--json"]) == 0
    listed = {t["table"]: t for t in json.loads(capsys.readouterr().out)}
    assert set(listed) >= {"bronze/instances", "bronze/study_completed", "silver/series", "silver/studies",
                           "governance/quarantine", "governance/gate_reports"}
    assert listed["silver/series"]["rows"] == 4 and listed["silver/series"]["schema_version"] == "1"
    assert listed["silver/studies"]["version"] >= 2 and listed["governance/quarantine"]["rows"] == 4


def test_vacuum_keeps_seven_days_unless_forced_and_optimize_compacts(lake, capsys):
    assert cli.main(["--lake", lake.root, "vacuum", "--retain-hours", "1", "silver/studies"]) == 2
    assert "below the safe minimum" in capsys.readouterr().err
    assert cli.main(["--lake", lake.root, "vacuum", "silver/studies"]) == 0
    assert "removed 0 files older than 168 h" in capsys.readouterr().out
    assert cli.main(["--lake", lake.root, "vacuum", "--retain-hours", "0", "--force", "--dry-run",
                     "bronze/instances"]) == 0
    assert "would remove 0 files" in capsys.readouterr().out  # bronze is append-only: nothing is stale
    assert cli.main(["--lake", lake.root, "optimize", "bronze/instances"]) == 0
    compacted = re.search(r"bronze/instances: (\d+) files compacted into (\d+)", capsys.readouterr().out)
    assert int(compacted[1]) >= 2 and compacted[2] == "1"  # one file per micro-batch before


def test_an_older_table_is_evolved_additively(spark, tmp_path):
    v1 = LakeTableSpec("things", "silver", (SchemaChange(1, (("id", "STRING"), ("n", "BIGINT")), "initial"),),
                       merge_key=("id",))
    v2 = LakeTableSpec("things", "silver", (*v1.changes, SchemaChange(2, (("score", "DOUBLE"),), "adds score")),
                       merge_key=("id",))
    path = str(tmp_path / "things")
    assert tables.ensure(spark, path, v1) is None
    tables.merge(spark, tables.frame(spark, [{"id": "a", "n": 1}], v1), path, v1)
    plan = tables.ensure(spark, path, v2)
    assert plan.add_columns == (("score", "DOUBLE"),) and (plan.from_version, plan.to_version) == (1, 2)
    tables.merge(spark, tables.frame(spark, [{"id": "b", "n": 2, "score": 0.5}], v2), path, v2)
    rows = sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())
    assert rows == [("a", 1, None), ("b", 2, 0.5)]

    assert DeltaTable(path).metadata().configuration[SCHEMA_VERSION_PROPERTY] == "2"
    assert tables.ensure(spark, path, v2) is None  # already there: nothing to do
    with pytest.raises(tables.LakeTableError, match="newer than this code"):
        tables.ensure(spark, path, v1)
