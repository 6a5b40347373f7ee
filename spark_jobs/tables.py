"""Create, evolve and MERGE into the lake's Delta tables from their specs in ``lake_schemas.tables``.

Schema evolution is explicit and additive: a table written at schema version n and opened by code at
version m > n gets the columns of versions n+1..m added (``ALTER TABLE ... ADD COLUMNS``) and its
``radlake.schema_version`` property set to m. A table newer than the code, or one whose columns are not a
prefix-compatible subset of the spec, is an error, never silently rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
from delta.tables import DeltaTable as SparkDeltaTable
from deltalake import CommitProperties, DeltaTable, Transaction, write_deltalake

from lake_schemas.errors import RadlakeError
from lake_schemas.tables import SCHEMA_VERSION_PROPERTY, DeltaTableSpec, LakeTableSpec


class LakeTableError(RadlakeError):
    """A Delta table does not match its spec in a way additive evolution cannot fix."""


@dataclass(frozen=True)
class Evolution:
    from_version: int
    to_version: int
    add_columns: tuple[tuple[str, str], ...]


def evolution_plan(spec: LakeTableSpec, existing_version: int, existing_columns: list[str]) -> Evolution:
    """What an existing table at ``existing_version`` needs to reach the spec's version (pure)."""
    if existing_version > spec.version:
        raise LakeTableError(f"{spec.name} is at schema version {existing_version}, newer than this code "
                             f"({spec.version}): upgrade radlake before writing to it")
    expected = [n for n, _ in spec.columns_at(existing_version)]
    unknown = [c for c in existing_columns if c not in {n for n, _ in spec.columns}]
    if unknown or set(expected) - set(existing_columns):
        raise LakeTableError(f"{spec.name}: columns {existing_columns} do not match schema version "
                             f"{existing_version} ({expected})")
    add = tuple((n, t) for n, t in spec.added_since(existing_version) if n not in existing_columns)
    return Evolution(existing_version, spec.version, add)


def table_path(lake_uri: str, spec: LakeTableSpec | DeltaTableSpec) -> str:
    relative = spec.relative_path if isinstance(spec, LakeTableSpec) else f"bronze/{spec.name}"
    return f"{lake_uri.rstrip('/')}/{relative}"


def ensure(spark, path: str, spec: LakeTableSpec) -> Evolution | None:
    """Create the table at the spec's version, or evolve an older one; returns the evolution applied."""

    if not SparkDeltaTable.isDeltaTable(spark, path):
        builder = (
            SparkDeltaTable.createIfNotExists(spark).location(path)
            .addColumns(spark.createDataFrame([], spec.ddl).schema)
            .property(SCHEMA_VERSION_PROPERTY, str(spec.version))
            .property("radlake.table", spec.relative_path)
        )
        if spec.partition_by:
            builder = builder.partitionedBy(*spec.partition_by)
        builder.execute()
        return None
    detail = SparkDeltaTable.forPath(spark, path).detail().first()
    existing_version = int(detail.properties.get(SCHEMA_VERSION_PROPERTY, "1"))
    plan = evolution_plan(spec, existing_version, spark.read.format("delta").load(path).columns)
    if plan.add_columns:
        columns = ", ".join(f"`{n}` {t}" for n, t in plan.add_columns)
        spark.sql(f"ALTER TABLE delta.`{path}` ADD COLUMNS ({columns})")
    if plan.to_version != existing_version:
        spark.sql(f"ALTER TABLE delta.`{path}` SET TBLPROPERTIES ('{SCHEMA_VERSION_PROPERTY}' = '{plan.to_version}')")
        return plan
    return None


def merge(spark, rows, path: str, spec: LakeTableSpec, *, update: bool = True) -> None:
    """Upsert ``rows`` on the spec's merge key (insert-only with ``update=False``)."""

    condition = " AND ".join(f"t.`{k}` <=> s.`{k}`" for k in spec.merge_key)
    builder = SparkDeltaTable.forPath(spark, path).alias("t").merge(rows.alias("s"), condition)
    if update:
        builder = builder.whenMatchedUpdateAll()
    builder.whenNotMatchedInsertAll().execute()


def frame(spark, rows: list[dict], spec: LakeTableSpec):
    """A DataFrame with the spec's exact schema from plain dicts (missing keys are NULL)."""
    schema = spark.createDataFrame([], spec.ddl).schema
    return spark.createDataFrame([tuple(r.get(n) for n, _ in spec.columns) for r in rows], schema)


def append_once(rows, path: str, *, txn: tuple[str, int]) -> None:
    """Append, once: Delta skips a write whose (application id, version) it has already committed."""
    app_id, version = txn
    (rows.write.format("delta").mode("append")
     .option("txnAppId", app_id).option("txnVersion", version).save(path))


# -- small writes on the driver (delta-rs) -----------------------------------------------------------------
# A silver micro-batch writes a few rows to each table. Through Spark, each MERGE or append is several
# jobs plus a snapshot update (seconds on a loaded 2-core machine); delta-rs does the same commit in
# milliseconds from the driver. Same Delta protocol, same tables: Spark and the readers see no difference.

def arrow_rows(path: str, rows: list[dict], spec: LakeTableSpec):
    """An Arrow table with the Delta table's own schema from plain dicts (missing keys are NULL)."""

    schema = pa.schema(DeltaTable(path).schema().to_arrow())
    return pa.Table.from_pylist([{n: r.get(n) for n, _ in spec.columns} for r in rows], schema=schema)


def _sql_string(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"key values must be strings, not {value!r}")
    return "'" + value.replace("'", "''") + "'"


def key_predicate(rows: list[dict], key: tuple[str, ...]) -> str:
    """A SQL predicate matching exactly the rows' keys (``k IN (...)``, or one conjunction per key)."""
    if len(key) == 1:
        return f"`{key[0]}` IN ({', '.join(sorted({_sql_string(r[key[0]]) for r in rows}))})"
    pairs = sorted({tuple(r[k] for k in key) for r in rows})
    return " OR ".join("(" + " AND ".join(f"`{k}` = {_sql_string(v)}" for k, v in zip(key, values)) + ")"
                       for values in pairs)


def replace_rows(path: str, rows: list[dict], spec: LakeTableSpec) -> None:
    """Upsert whole rows on the spec's merge key with delta-rs: one commit that removes the rows with these
    keys and adds the given ones (``write_deltalake(mode="overwrite", predicate=...)``).

    The same result as a MERGE with update-all/insert-all when each row is complete, as silver's are.
    Not delta-rs's own MERGE: it writes Parquet strings as Arrow ``string_view``, which pyarrow datasets
    (and DuckDB through them) then fail to filter ("no kernel matching input types (string, string_view)").
    """

    if rows:
        write_deltalake(path, arrow_rows(path, rows, spec), mode="overwrite",
                        predicate=key_predicate(rows, spec.merge_key))


def append_rows_once(path: str, rows: list[dict], spec: LakeTableSpec, *, txn: tuple[str, int]) -> bool:
    """Append plain rows once per (application id, version), as Spark's ``txnAppId``/``txnVersion`` do.

    Returns False when that transaction (or a later one of the same application) is already committed.
    """

    app_id, version = txn
    table = DeltaTable(path)
    done = table.transaction_version(app_id)
    if done is not None and done >= version:
        return False
    write_deltalake(table, arrow_rows(path, rows, spec), mode="append",
                    commit_properties=CommitProperties(app_transactions=[Transaction(app_id, version)]))
    return True
