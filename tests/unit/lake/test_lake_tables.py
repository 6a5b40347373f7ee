"""Lake table specs: additive, versioned schemas; the evolution plan; vacuum retention; table discovery."""

from __future__ import annotations

import pytest

from lake_schemas.tables import (
    BRONZE_STUDY_COMPLETED,
    LAKE_TABLES,
    SILVER_SERIES,
    LakeTableSpec,
    SchemaChange,
)
from spark_jobs.maintenance import (
    MIN_RETENTION_HOURS,
    RetentionError,
    find_tables,
    retention_hours,
)
from spark_jobs.tables import LakeTableError, evolution_plan, table_path

V1 = SchemaChange(1, (("id", "STRING"), ("n", "BIGINT")), "initial")
V2 = SchemaChange(2, (("score", "DOUBLE"),), "adds score")


def test_a_spec_is_the_sum_of_its_additive_changes():
    spec = LakeTableSpec("t", "silver", (V1, V2), merge_key=("id",))
    assert spec.version == 2 and [n for n, _ in spec.columns] == ["id", "n", "score"]
    assert spec.columns_at(1) == [("id", "STRING"), ("n", "BIGINT")] and spec.added_since(1) == [("score", "DOUBLE")]
    assert table_path("/lake/", spec) == "/lake/silver/t"


@pytest.mark.parametrize("changes, message", [
    ((V2,), "1..n"),
    ((V1, SchemaChange(2, (("n", "DOUBLE"),), "retype")), "only add new columns"),
])
def test_a_spec_that_is_not_additive_is_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        LakeTableSpec("t", "silver", changes)


def test_evolution_plan_adds_only_the_missing_columns():
    spec = LakeTableSpec("t", "silver", (V1, V2))
    assert evolution_plan(spec, 1, ["id", "n"]).add_columns == (("score", "DOUBLE"),)
    assert evolution_plan(spec, 2, ["id", "n", "score"]).add_columns == ()
    with pytest.raises(LakeTableError, match="newer"):
        evolution_plan(LakeTableSpec("t", "silver", (V1,)), 2, ["id", "n", "score"])
    with pytest.raises(LakeTableError, match="do not match"):
        evolution_plan(spec, 1, ["id", "other"])


def test_the_lake_tables_are_specified():
    assert {s.relative_path for s in LAKE_TABLES} == {"silver/series", "silver/studies", "governance/quarantine",
                                                      "governance/gate_reports", "silver/annotations"}
    columns = dict(SILVER_SERIES.columns)
    assert columns["instances"].startswith("ARRAY<STRUCT<sop_instance_uid") and columns["origin"] == "ARRAY<DOUBLE>"
    # The study completed contract flattens into bronze columns (enums become strings).
    assert dict(BRONZE_STUDY_COMPLETED.columns)["event_type"] == "STRING"


def test_vacuum_retention_is_seven_days_unless_forced():
    assert retention_hours(None, False) == MIN_RETENTION_HOURS == 168
    assert retention_hours(200, False) == 200 and retention_hours(0, True) == 0
    with pytest.raises(RetentionError, match="--force"):
        retention_hours(24, False)
    with pytest.raises(RetentionError):
        retention_hours(-1, True)


def test_find_tables_lists_delta_folders_and_skips_checkpoints(tmp_path):
    for folder in ("bronze/instances/_delta_log", "silver/series/_delta_log", "_checkpoints/x/_delta_log",
                   "silver/series/provider=a"):
        (tmp_path / folder).mkdir(parents=True)
    assert sorted(find_tables(str(tmp_path))) == ["bronze/instances", "silver/series"]
