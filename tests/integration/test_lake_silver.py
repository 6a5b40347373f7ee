"""Bronze -> silver through the real broker and Spark: series geometry, dedupe, quality gates, studies."""

from __future__ import annotations

import json

import pytest
from deltalake import DeltaTable
from lake_build import small_lake

from lake_schemas.tables import GATE_REPORTS, QUARANTINE, SILVER_SERIES, SILVER_STUDIES

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lake(spark, kafka_bootstrap, registry_url, tmp_path_factory):
    return small_lake(spark, kafka_bootstrap, registry_url, tmp_path_factory.mktemp("lake"))


def _series(spark, lake, events):
    rows = spark.read.format("delta").load(lake.path(SILVER_SERIES)) \
        .where(f"series_uid = '{events[0].data.series_uid}'").collect()
    assert len(rows) == 1
    return rows[0]


def test_regular_series_has_ordered_claim_checks_and_volume_geometry(spark, lake):
    a1 = lake.events["a1"] + lake.events["late_a1"]
    row = _series(spark, lake, a1)
    assert row.instance_count == 13 and row.reconstructable and row.geometry_issues == []
    assert [i.sop_instance_uid for i in row.instances] == [e.data.sop_instance_uid for e in a1]
    assert [i.slice_location for i in row.instances] == [2.5 * k for k in range(13)]
    assert list(row.origin) == [-24.0, -22.4, 0.0]
    assert list(row.slice_normal) == [0.0, 0.0, 1.0]
    assert list(row.spacing) == [0.7, 0.75, 2.5]  # column spacing, row spacing, slice step
    assert list(row.dims) == [64, 64, 13]
    assert row.spacing_consistent and row.gap_count == 0 and row.duplicate_positions == 0
    assert row.instances[0].object_uri == a1[0].data.object_uri and row.instances[0].sha256 == a1[0].data.sha256


def test_gaps_and_duplicated_positions_are_detected(spark, lake):
    gap = _series(spark, lake, lake.events["a2"])
    assert gap.gap_count == 1 and gap.missing_slices == 2 and gap.slice_spacing_max == 15.0
    assert gap.geometry_issues == ["gaps"] and not gap.reconstructable
    dup = _series(spark, lake, lake.events["b1"])
    assert dup.duplicate_positions == 1 and "duplicate_positions" in dup.geometry_issues
    assert dup.instance_count == 8 and not dup.reconstructable


def test_redelivery_is_counted_and_a_same_uid_different_hash_is_quarantined(spark, lake):
    c1 = _series(spark, lake, lake.events["c1"])
    assert c1.instance_count == 10 and c1.redelivered_count == 2 and c1.conflict_count == 1
    conflict = lake.events["conflict"][0]
    kept = {i.sop_instance_uid: i.sha256 for i in c1.instances}
    assert kept[conflict.data.sop_instance_uid] != conflict.data.sha256  # the first arrival stays
    rows = spark.read.format("delta").load(lake.path(QUARANTINE)).where(f"event_id = '{conflict.event_id}'").collect()
    assert [(r.reason, r.check, r.stage) for r in rows] == [("SOP_UID_HASH_CONFLICT", "sop_uid_hash_conflict", "silver")]
    assert json.loads(rows[0].expectation_kwargs)["kept_sha256"] == kept[conflict.data.sop_instance_uid]


def test_gate_rejects_go_to_quarantine_with_their_expectation_and_every_run_is_reported(spark, lake):
    quarantine = spark.read.format("delta").load(lake.path(QUARANTINE)).where("stage = 'bronze_to_silver'")
    got = {(r.event_id, r.reason, r.check) for r in quarantine.collect()}
    modality, size, orientation = lake.events["bad"]
    assert got == {
        (modality.event_id, "UNSUPPORTED_MODALITY", "expect_column_values_to_be_in_set(modality)"),
        (size.event_id, "IMPLAUSIBLE_SIZE", "expect_column_values_to_be_between(size_bytes)"),
        (orientation.event_id, "BAD_ORIENTATION", "expect_column_values_to_be_between(orientation_norm_error)"),
    }
    record = json.loads(quarantine.where(f"event_id = '{size.event_id}'").first().record)
    assert record["size_bytes"] == 12 and record["sop_instance_uid"] == size.data.sop_instance_uid
    # Rejected rows never reach silver.
    instances = {i.sop_instance_uid for i in _series(spark, lake, lake.events["c1"]).instances}
    assert not instances & {e.data.sop_instance_uid for e in lake.events["bad"]}

    reports = spark.read.format("delta").load(lake.path(GATE_REPORTS)).orderBy("started_at").collect()
    assert len(reports) == 2  # one per micro-batch with instances: the first load and the late arrival
    first, second = reports
    assert (first.rows_evaluated, first.rows_quarantined, first.success) == (len_phase1(lake), 3, False)
    assert (second.rows_evaluated, second.rows_quarantined, second.success) == (1, 0, True)
    assert first.engine.startswith("great_expectations 1.") and first.suite == "silver_instances"
    failed = {r.expectation: r.unexpected_count for r in first.results if not r.success}
    assert failed == {"expect_column_values_to_be_in_set(modality)": 1,
                      "expect_column_values_to_be_between(size_bytes)": 1,
                      "expect_column_values_to_be_between(orientation_norm_error)": 1}


def len_phase1(lake) -> int:
    """Rows in bronze after the first run: redeliveries of the same event id are merged away at bronze."""
    e = lake.events
    return sum(len(e[k]) for k in ("a1", "a2", "b1", "c1", "resent", "bad", "conflict"))


def test_studies_follow_completion_events_and_versions(spark, lake):
    studies = {r.study_uid: r for r in spark.read.format("delta").load(lake.path(SILVER_STUDIES)).collect()}
    a, b, c = (studies[lake.events[k][0].data.study_uid] for k in ("a1", "b1", "c1"))
    assert (a.status, a.study_version, a.series_count, a.instance_count) == ("updated", 2, 2, 21)
    assert a.counts_match and a.completed_instance_count == 21 and a.providers == ["st-olav"]
    assert (b.status, b.study_version, b.modalities, b.counts_match) == ("receiving", None, ["MR"], None)
    assert (c.status, c.provider, c.instance_count, c.counts_match) == ("complete", "haukeland", 10, True)
    assert c.reconstructable_series == 1 and a.reconstructable_series == 1


def test_silver_tables_carry_their_schema_version(spark, lake):

    for spec in (SILVER_SERIES, SILVER_STUDIES, QUARANTINE, GATE_REPORTS):
        table = DeltaTable(lake.path(spec))
        assert table.metadata().configuration["radlake.schema_version"] == str(spec.version)
        assert [f.name for f in table.schema().fields] == [n for n, _ in spec.columns]
