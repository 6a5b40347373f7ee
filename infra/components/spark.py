"""Spark 4 in local mode with Delta Lake and the Kafka source.

Spark runs inside the jobs that need it (there is no long-running server in local mode), so this
component resolves the connector jars into the cache once and proves a Delta round trip works; its
"health" is that proof, recorded in the state dir.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pyspark

from infra.component import Component, ComponentStatus
from infra.errors import StackError
from platform_layer.spark import connector_packages
from platform_layer.state import lock_down

_PROBE = """
import json, sys, tempfile
from platform_layer.settings import Settings
from platform_layer.spark import spark_session
spark = spark_session(Settings(), "radlake-stack-probe")
path = tempfile.mkdtemp(prefix="radlake-delta-probe-")
spark.range(3).write.format("delta").save(path)
rows = spark.read.format("delta").load(path).count()
print(json.dumps({"rows": rows, "spark": spark.version}))
spark.stop()
"""


class Spark(Component):
    name = "spark"

    @property
    def address(self) -> str:
        return self.settings.spark_master

    @property
    def version(self) -> str:

        return f"spark {pyspark.__version__} + {connector_packages()[0].split(':', 1)[1]}"

    @property
    def probe_file(self):
        return self.home / "probe.json"

    @property
    def supervisable(self) -> bool:
        return False  # local mode: no process between jobs

    def command(self) -> tuple[list[str], dict[str, str]]:
        raise NotImplementedError("spark has no server process in local mode")

    def responding(self) -> bool:
        return self.probe_file.exists()

    def start(self) -> ComponentStatus:
        lock_down(self.settings)
        if self.probe_file.exists():
            return self.status()
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with open(self.log_file, "ab") as log:
            proc = subprocess.run([sys.executable, "-c", _PROBE], stdout=subprocess.PIPE, stderr=log,  # noqa: S603
                                  env=None, timeout=900)
        if proc.returncode != 0:
            raise StackError(f"spark: the Delta round trip failed (jars from Maven Central?); see {self.log_file}")
        result = json.loads(proc.stdout.decode().strip().splitlines()[-1])
        result["seconds"] = round(time.monotonic() - started, 1)
        self.probe_file.write_text(json.dumps(result))
        return self.status()

    def stop(self) -> None:
        """Nothing runs between jobs; the resolved jars stay in the cache."""

    def status(self) -> ComponentStatus:
        ok = self.probe_file.exists()
        return ComponentStatus(
            name=self.name, address=self.address, pid=None, healthy=ok, version=self.version,
            detail="jars cached, Delta round trip ok" if ok else "not probed yet",
        )
