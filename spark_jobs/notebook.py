"""The lake from a notebook: a configured SparkSession, table paths, and Spark-free readers.

```python
from spark_jobs import notebook
spark = notebook.spark()
studies = notebook.table(spark, "silver/studies")                 # a DataFrame
old = notebook.table(spark, "silver/studies", version=3)          # time travel
con = notebook.duckdb("silver/studies", "silver/series")          # DuckDB, no JVM
```

Settings come from the environment as everywhere (``RADLAKE_LAKE_URI``, ``RADLAKE_SPARK_MASTER``, ...).
DuckDB reads the tables through delta-rs (``deltalake``) as Arrow datasets: DuckDB's own ``delta``
extension is downloaded at run time, which this platform does not allow, and the one PyPI wheel that
ships it (``duckdb-ext-delta`` 1.4.4) is built for DuckDB 1.4.4 and refuses to load into DuckDB 2.0.
"""

from __future__ import annotations

import duckdb as duckdb_module
from deltalake import DeltaTable

from platform_layer.settings import Settings, get_settings
from platform_layer.spark import spark_session


def lake_path(table: str, settings: Settings | None = None) -> str:
    """The location of a table given relative to the lake root, e.g. ``silver/studies``."""
    return f"{(settings or get_settings()).resolved_lake_uri.rstrip('/')}/{table}"


def spark(app_name: str = "radlake-notebook", settings: Settings | None = None):
    """A SparkSession for the lake (Delta, the Kafka source, local mode unless configured otherwise)."""

    return spark_session(settings or get_settings(), app_name)


def table(session, name: str, *, version: int | None = None, timestamp: str | None = None,
          settings: Settings | None = None):
    """A Delta table of the lake as a Spark DataFrame, optionally as of a version or a timestamp."""
    reader = session.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    if timestamp is not None:
        reader = reader.option("timestampAsOf", timestamp)
    return reader.load(lake_path(name, settings))


def exists(name: str, settings: Settings | None = None) -> bool:
    """Whether the lake has this table yet (gold tables appear once their job has run)."""

    return DeltaTable.is_deltatable(lake_path(name, settings))


def duckdb(*names: str, connection=None, settings: Settings | None = None, versions: dict[str, int] | None = None):
    """A DuckDB connection with each table registered as a view named after its last path part."""

    con = connection or duckdb_module.connect()
    for name in names:
        version = (versions or {}).get(name)
        dataset = DeltaTable(lake_path(name, settings), version=version).to_pyarrow_dataset()
        con.register(name.rsplit("/", 1)[-1], dataset)
    return con
