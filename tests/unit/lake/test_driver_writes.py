"""Silver's small writes on the driver (delta-rs): replace by key, appends guarded by transaction ids."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import DeltaTable, write_deltalake

from lake_schemas.tables import LakeTableSpec, SchemaChange
from spark_jobs.tables import append_rows_once, key_predicate, replace_rows

SPEC = LakeTableSpec("t", "silver", (SchemaChange(1, (("study_uid", "STRING"), ("series_uid", "STRING"),
                                                      ("n", "BIGINT")), "initial"),),
                     merge_key=("study_uid", "series_uid"))


def _table(tmp_path, rows):
    path = str(tmp_path / "t")
    schema = pa.schema([("study_uid", pa.string()), ("series_uid", pa.string()), ("n", pa.int64())])
    write_deltalake(path, pa.Table.from_pylist(rows, schema=schema), mode="append")
    return path


def test_key_predicate_matches_exactly_the_keys_and_quotes_strings():
    assert key_predicate([{"id": "b"}, {"id": "a'x"}, {"id": "b"}], ("id",)) == "`id` IN ('a''x', 'b')"
    assert key_predicate([{"s": "1", "r": "2"}, {"s": "1", "r": "3"}], ("s", "r")) == \
        "(`s` = '1' AND `r` = '2') OR (`s` = '1' AND `r` = '3')"


def test_replace_rows_upserts_by_key_in_one_commit_and_keeps_plain_strings(tmp_path):
    path = _table(tmp_path, [{"study_uid": "1", "series_uid": "a", "n": 1}, {"study_uid": "1", "series_uid": "b", "n": 2},
                             {"study_uid": "2", "series_uid": "a", "n": 3}])
    replace_rows(path, [{"study_uid": "1", "series_uid": "a", "n": 10}, {"study_uid": "3", "series_uid": "c", "n": 4}],
                 SPEC)
    table = DeltaTable(path)
    assert table.version() == 1
    got = sorted((r["study_uid"], r["series_uid"], r["n"]) for r in table.to_pyarrow_table().to_pylist())
    assert got == [("1", "a", 10), ("1", "b", 2), ("2", "a", 3), ("3", "c", 4)]
    # A filtered pyarrow scan (what silver and notebook.duckdb do) works on the rewritten files.
    assert table.to_pyarrow_dataset().to_table(filter=pc.field("series_uid").isin(["c"])).num_rows == 1
    replace_rows(path, [], SPEC)
    assert DeltaTable(path).version() == 1


def test_append_rows_once_skips_a_replayed_transaction(tmp_path):
    path = _table(tmp_path, [])
    row = {"study_uid": "1", "series_uid": "a", "n": 1}
    assert append_rows_once(path, [row], SPEC, txn=("silver:report", 3))
    assert not append_rows_once(path, [row], SPEC, txn=("silver:report", 3))
    assert not append_rows_once(path, [row], SPEC, txn=("silver:report", 2))
    assert append_rows_once(path, [row], SPEC, txn=("silver:report", 4))
    assert DeltaTable(path).to_pyarrow_table().num_rows == 2
    assert DeltaTable(path).transaction_version("silver:report") == 4
