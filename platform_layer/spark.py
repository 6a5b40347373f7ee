"""One place that builds a SparkSession configured for the lake (Delta + the Kafka source).

Local mode by default (``RADLAKE_SPARK_MASTER=local[2]``); any ``spark://`` or ``k8s://`` master works
the same. The Delta and Kafka connector jars are resolved by Ivy from Maven Central into
``<cache>/ivy`` once and reused.
"""

from __future__ import annotations

import importlib.metadata
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pyspark
from pyspark.sql import SparkSession

from platform_layer.java import find_java_home
from platform_layer.settings import Settings
from platform_layer.state import lock_down


@lru_cache(maxsize=1)
def connector_packages() -> tuple[str, ...]:
    """Maven coordinates matching the installed pyspark and delta-spark wheels."""
    spark_version = pyspark.__version__
    spark_minor = ".".join(spark_version.split(".")[:2])
    delta_version = importlib.metadata.version("delta_spark")
    return (
        f"io.delta:delta-spark_{spark_minor}_2.13:{delta_version}",
        f"org.apache.spark:spark-sql-kafka-0-10_2.13:{spark_version}",
    )


@contextmanager
def _jvm_output_into(log_file: Path) -> Iterator[None]:
    """Point this process's stdout and stderr at ``log_file`` while the JVM is launched: the JVM inherits
    them, so Ivy's resolution report and Spark's log4j output go to the log, not the terminal."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log_fd):
            os.close(fd)


def spark_session(settings: Settings, app_name: str = "radlake", extra_conf: dict[str, str] | None = None):
    """A SparkSession for the lake; reuses the active one when it exists (same JVM). The JVM's own output
    goes to ``<state dir>/logs/spark.log``."""
    # Spark 4 runs on Java 17 and 21; point it at one explicitly so a newer default JDK is not picked up.
    os.environ.setdefault("JAVA_HOME", str(find_java_home(17, settings.java_home)))
    # Python UDFs / applyInPandas run in worker processes: the driver's interpreter (the venv), not `python3`.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    ivy_dir = settings.cache_dir / "ivy"
    ivy_dir.mkdir(parents=True, exist_ok=True)
    builder = (
        SparkSession.builder.appName(app_name)
        .master(settings.spark_master)
        .config("spark.jars.packages", ",".join(connector_packages()))
        .config("spark.jars.ivy", str(ivy_dir))
        .config("spark.sql.extensions", "io.delta.sql.DeltaSparkSessionExtension")
        .config("spark.sql.catalog.spark_catalog", "org.apache.spark.sql.delta.catalog.DeltaCatalog")
        .config("spark.driver.memory", settings.spark_driver_memory)
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .config("spark.sql.session.timeZone", "UTC")
        # A Kafka source's options hold its SCRAM login: redacted wherever Spark shows options or plans
        .config("spark.sql.redaction.options.regex", "(?i)url|jaas|password|secret|token")
        # Hadoop sets file modes itself (its umask, 022 by default): the lake's files are the owner's only
        .config("spark.hadoop.fs.permissions.umask-mode", "077")
        .config("spark.sql.warehouse.dir", str(settings.state_dir / "spark-warehouse"))
        .config("spark.driver.extraJavaOptions", f"-Dderby.system.home={settings.state_dir / 'spark-derby'}")
    )
    if settings.spark_master.startswith("local"):
        # Delta rebuilds each table snapshot with 50 tasks by default (sized for clusters); on a few local
        # cores that dominates every small read and MERGE (silver's micro-batch: ~100 s -> ~13 s here).
        builder = builder.config("spark.databricks.delta.snapshotPartitions", "2")
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    lock_down(settings)
    if SparkSession.getActiveSession() is not None:  # the JVM runs already: nothing to redirect
        return builder.getOrCreate()
    with _jvm_output_into(settings.logs_dir / "spark.log"):
        return builder.getOrCreate()
