"""The lake from a notebook: a configured SparkSession, table paths, and Spark-free readers.

```python
from spark_jobs import notebook
spark = notebook.spark()
cohort = notebook.dataset(spark, "lung-complete")                 # a granted dataset, through the gateway
studies = notebook.table(spark, "silver/studies")                 # a DataFrame
old = notebook.table(spark, "silver/studies", version=3)          # time travel
con = notebook.duckdb("silver/studies", "silver/series")          # DuckDB, no JVM
```

Settings come from the environment as everywhere (``RADLAKE_LAKE_URI``, ``RADLAKE_SPARK_MASTER``, ...).
:func:`dataset` is a data scientist's way in: Spark reads a granted dataset from the lake gateway (a Python data
source over Arrow Flight, with the user's own token), never the lake's files; the other readers are the
platform's (they read the files directly).
DuckDB reads the tables through delta-rs (``deltalake``) as Arrow datasets: DuckDB's own ``delta``
extension is downloaded at run time, which this platform does not allow, and the one PyPI wheel that
ships it (``duckdb-ext-delta`` 1.4.4) is built for DuckDB 1.4.4 and refuses to load into DuckDB 2.0.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import duckdb as duckdb_module
import pyarrow as pa
import pyarrow.flight as flight
from deltalake import DeltaTable
from pyspark.sql.datasource import DataSource, DataSourceReader
from pyspark.sql.pandas.types import from_arrow_schema

from platform_layer.endpoints import gateway_location
from platform_layer.lake_access import user_token
from platform_layer.settings import Settings, get_settings
from platform_layer.spark import spark_session
from platform_layer.tls import ca_file


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


class GatewayDataSource(DataSource):
    """``spark.read.format("radlake").option("dataset", NAME)...``: a granted dataset from the lake gateway.

    Options: ``dataset``, ``location`` (the gateway's ``grpc+tls://``), ``ca`` (the platform CA, PEM text),
    ``token`` (the caller's access token), optional ``columns`` (comma-separated). One partition: the gateway
    decides and audits the read as one; Spark's executors get the token, never the lake's files."""

    @classmethod
    def name(cls) -> str:
        return "radlake"

    def schema(self):
        client = flight.FlightClient(self.options["location"], tls_root_certs=self.options["ca"].encode())
        try:
            info = client.get_flight_info(flight.FlightDescriptor.for_path(self.options["dataset"]),
                                          _call_options(self.options["token"]))
        finally:
            client.close()
        schema = info.schema
        columns = [c for c in self.options.get("columns", "").split(",") if c]
        return from_arrow_schema(pa.schema([schema.field(c) for c in columns]) if columns else schema)

    def reader(self, schema):
        return _GatewayReader(dict(self.options))


class _GatewayReader(DataSourceReader):
    def __init__(self, options: dict[str, str]) -> None:
        self.options = options

    def read(self, partition):
        client = flight.FlightClient(self.options["location"], tls_root_certs=self.options["ca"].encode())
        columns = [c for c in self.options.get("columns", "").split(",") if c]
        ticket = flight.Ticket(json.dumps({"dataset": self.options["dataset"], "columns": columns}).encode())
        try:
            for chunk in client.do_get(ticket, _call_options(self.options["token"])):
                yield chunk.data
        finally:
            client.close()


def _call_options(token: str) -> flight.FlightCallOptions:
    return flight.FlightCallOptions(timeout=300.0, headers=[(b"authorization", f"Bearer {token}".encode())])


def dataset(session, name: str, columns: Sequence[str] = (), *, token: str | None = None,
            settings: Settings | None = None):
    """A dataset the user is granted, as a Spark DataFrame read through the lake gateway with their token
    (default: a hub kernel's token file, else the stored ``radlake login`` session's). A refusal surfaces when
    Spark first asks for the schema (:class:`~platform_layer.governance.AccessRefused` in the message)."""
    settings = settings or get_settings()
    session.dataSource.register(GatewayDataSource)
    return (session.read.format("radlake").option("dataset", name)
            .option("location", gateway_location(settings)).option("ca", ca_file(settings).read_text())
            .option("token", token or user_token(settings)())
            .option("columns", ",".join(columns)).load())
