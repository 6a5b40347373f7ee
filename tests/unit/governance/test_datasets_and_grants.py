"""Datasets and grants on real Delta tables (delta-rs): the project cut, the pin, filters that try to escape,
and grants that expire or are revoked."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable, write_deltalake

from lake_schemas.tables import SILVER_STUDIES
from platform_layer import governance
from platform_layer.settings import Settings


@pytest.fixture()
def settings(tmp_path):
    settings = Settings(state_dir=tmp_path / "state")
    _add(settings, "a", 4)
    _add(settings, "b", 3)
    return settings


def _add(settings, project, count, start=0):
    rows = [{"project": project, "study_uid": f"{project}-{i}", "status": "complete" if i % 2 == 0 else "receiving",
             "instance_count": i} for i in range(start, start + count)]
    write_deltalake(governance.lake_table_path(settings, "silver/studies"),
                    pa.Table.from_pylist(rows, schema=governance.arrow_schema(SILVER_STUDIES)), mode="append")


def _create(settings, name, where="true", project="a", columns=("study_uid",)):
    return governance.create(settings, name, project, "silver/studies", where, columns=columns, created_by="t")


def test_a_dataset_is_its_project_its_filter_and_its_pinned_version(settings):
    item = _create(settings, "cohort", "status = 'complete' OR project = 'b' OR true")
    _add(settings, "a", 2, start=10)
    assert sorted(governance.read(settings, item).column("study_uid").to_pylist()) == ["a-0", "a-1", "a-2", "a-3"]
    assert governance.read_schema(settings, item).names == ["study_uid"]
    later = _create(settings, "cohort-later", "status = 'complete'")
    assert sorted(governance.read(settings, later).column("study_uid").to_pylist()) == ["a-0", "a-10", "a-2"]


@pytest.mark.parametrize("where", [
    "study_uid IN (SELECT study_uid FROM read_parquet('/etc/hostname'))",
    "study_uid IN (SELECT dataset FROM datasets)",
    "true) UNION ALL (SELECT * FROM source",
    "true; SELECT 1",
    "no_such_column = 1",
    "study_uid IN (SELECT * FROM read_csv_auto('https://example.org/x.csv'))",
])
def test_filters_that_leave_the_project_or_the_table_are_refused(settings, where):
    with pytest.raises(governance.GovernanceError):
        _create(settings, "escape", where)
    assert governance.datasets(settings) == []


def test_names_tables_and_duplicates_are_checked(settings):
    with pytest.raises(governance.GovernanceError, match="not a dataset name"):
        _create(settings, "Bad Name")
    with pytest.raises(governance.GovernanceError, match="is cut from one of"):
        governance.create(settings, "raw", "a", "bronze/instances", "true", created_by="t")
    _create(settings, "once")
    with pytest.raises(governance.GovernanceError, match="exists already"):
        _create(settings, "once")


def test_grants_expire_and_are_revoked_and_refusals_say_nothing_about_existence(settings):
    _create(settings, "cohort")
    now = datetime.now(UTC)
    governance.grant(settings, "ann", "cohort", now + timedelta(hours=1), granted_by="t")
    assert governance.authorise(settings, "ann", "cohort").dataset == "cohort"
    assert [d.dataset for d in governance.readable(settings, "ann")] == ["cohort"]
    with pytest.raises(governance.AccessRefused) as expired:
        governance.authorise(settings, "ann", "cohort", now=now + timedelta(hours=2))
    with pytest.raises(governance.AccessRefused) as missing:
        governance.authorise(settings, "ann", "no-such-dataset")
    assert str(expired.value).replace("cohort", "X") == str(missing.value).replace("no-such-dataset", "X")
    with pytest.raises(governance.GovernanceError, match="not in the future"):
        governance.grant(settings, "ann", "cohort", now - timedelta(days=1), granted_by="t")
    [ended] = governance.revoke(settings, "ann", "cohort", revoked_by="admin")
    assert ended.revoked_by == "admin"
    with pytest.raises(governance.AccessRefused):
        governance.authorise(settings, "ann", "cohort")
    assert governance.revoke(settings, "ann", "cohort", revoked_by="admin") == []
    assert len(governance.grants(settings, user="ann")) == 1  # the revoked grant keeps its row


def test_a_published_snapshot_materialises_to_the_same_bytes_after_new_data_and_not_after_a_purge(settings):
    _create(settings, "cited", "status = 'complete'", columns=("study_uid", "instance_count"))
    snapshot = governance.publish(settings, "cited", published_by="t", creators=["A. Researcher"])
    assert snapshot.pid == "radlake:cited/1" and snapshot.rows == 2
    metadata = json.loads(snapshot.metadata)
    assert metadata["identifier"]["identifier"] == snapshot.pid and metadata["creators"] == [{"name": "A. Researcher"}]
    assert governance.resolve(settings, snapshot.pid).content_sha256 == snapshot.content_sha256
    _add(settings, "a", 3, start=20)  # newer data arrives
    again, data = governance.materialise(settings, snapshot.pid)
    assert hashlib.sha256(data).hexdigest() == snapshot.content_sha256
    assert pq.read_table(io.BytesIO(data)).column("study_uid").to_pylist() == ["a-0", "a-2"]
    assert governance.publish(settings, "cited", published_by="t").pid == "radlake:cited/2"
    with pytest.raises(governance.GovernanceError, match="no snapshot"):
        governance.resolve(settings, "radlake:cited/9")
    table = DeltaTable(governance.lake_table_path(settings, "silver/studies"))
    table.delete("study_uid = 'a-0'")
    table.vacuum(retention_hours=0, enforce_retention_duration=False, dry_run=False)
    with pytest.raises(governance.GovernanceError, match="cannot be reproduced"):
        governance.materialise(settings, snapshot.pid)


def test_a_read_keeps_the_lake_types_and_the_order_and_filters_see_the_whole_cut(settings):
    item = _create(settings, "above-mean", "instance_count > (SELECT avg(instance_count) FROM source)",
                   columns=())
    rows = governance.read(settings, item)
    assert rows.column("study_uid").to_pylist() == ["a-2", "a-3"]
    assert rows.schema == governance.read_schema(settings, item)
    assert rows.schema.field("completed_at").type == pa.timestamp("us", tz="UTC")


def test_a_governance_table_replaced_under_its_path_is_read_afresh(settings):
    _create(settings, "first")
    assert [d.dataset for d in governance.datasets(settings)] == ["first"]
    path = governance.lake_table_path(settings, "governance/datasets")
    shutil.rmtree(path.removeprefix("file://"))
    assert governance.datasets(settings) == []
    _create(settings, "second")
    assert [d.dataset for d in governance.datasets(settings)] == ["second"]


def test_a_snapshot_names_the_radiomics_settings_and_models_of_its_studies(settings):
    _create(settings, "derived", "status = 'complete'")
    features = governance.lake_table_path(settings, "gold/radiomics_features")
    predictions = governance.lake_table_path(settings, "gold/predictions")
    write_deltalake(features, pa.Table.from_pylist([
        {"project": "a", "study_uid": "a-0", "settings_hash": "s1", "code_version": "0.1.0", "feature": "f"},
        {"project": "a", "study_uid": "a-0", "settings_hash": "s1", "code_version": "0.1.0", "feature": "g"},
        {"project": "a", "study_uid": "a-1", "settings_hash": "s-receiving", "code_version": "0.1.0", "feature": "f"},
        {"project": "b", "study_uid": "a-0", "settings_hash": "s-other-project", "code_version": "0.1.0",
         "feature": "f"}]))
    write_deltalake(predictions, pa.Table.from_pylist([
        {"project": "a", "study_uid": "a-2", "model_name": "nodule-cnn", "model_version": 3}]))
    snapshot = governance.publish(settings, "derived", published_by="t")
    derived = json.loads(snapshot.metadata)["radlake"]["derived"]
    assert derived["radiomics"] == {"table": "gold/radiomics_features", "table_version": 0,
                                    "values": [{"settings_hash": "s1", "code_version": "0.1.0"}]}
    assert derived["models"]["values"] == [{"model_name": "nodule-cnn", "model_version": "3"}]
