"""kill -9 of the Spark driver running the lake's streaming queries while instances stream in; after a
restart, bronze has exactly one row per instance and silver lists every instance exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from deltalake import DeltaTable

from bench.lake_feed import create_topics, publish
from lake_schemas.topics import INSTANCE_RECEIVED, STUDY_COMPLETED
from platform_layer.registration import register, schema_admin
from platform_layer.settings import Settings
from radlake.synthetic.lake_events import SeriesPlan, series_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _rows(path: str) -> int:

    return DeltaTable(path).to_pyarrow_dataset().count_rows() if DeltaTable.is_deltatable(path) else 0


def test_kill_9_of_the_driver_loses_and_duplicates_nothing(kafka_bootstrap, registry_url, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    instances = INSTANCE_RECEIVED.with_name(f"test.lake.fault.instances.{suffix}")
    completed = STUDY_COMPLETED.with_name(f"test.lake.fault.completed.{suffix}")
    register(schema_admin(Settings()), (instances, completed))
    create_topics(kafka_bootstrap, (instances, completed))

    events = [e for i in range(20) for e in series_events(SeriesPlan(f"site-{i % 2}", f"s{i}", f"x{i}", 100))]
    lake, checkpoints = tmp_path / "lake", tmp_path / "checkpoints"
    argv = [sys.executable, "-m", "apps.cli", "lake", "--lake", str(lake), "run", "--instances-topic",
            instances.name, "--completed-topic", completed.name, "--checkpoints", str(checkpoints)]

    def produce() -> None:  # ~2,000 events in chunks, so the kill lands while they stream in
        for start in range(0, len(events), 100):
            publish(kafka_bootstrap, registry_url, instances, events[start:start + 100])
            time.sleep(0.5)

    producer = threading.Thread(target=produce)
    driver = subprocess.Popen([*argv, "--trigger", "1 second"], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        bronze = str(lake / "bronze" / "instances")
        while not DeltaTable.is_deltatable(bronze) and driver.poll() is None:  # the driver is up
            time.sleep(0.5)
        producer.start()
        while _rows(bronze) == 0 and driver.poll() is None:  # wait for the first committed micro-batch
            time.sleep(0.2)
        assert driver.poll() is None, "the lake driver exited before it was killed"
        jvms = _children(driver.pid)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait(30)
        killed_at_rows = _rows(bronze)
        for pid in jvms:  # the JVM exits when its Python parent's pipe closes
            for _ in range(120):
                if not _alive(pid):
                    break
                time.sleep(0.5)
            else:
                os.kill(pid, signal.SIGKILL)
                pytest.fail(f"the Spark JVM {pid} outlived its killed driver")
    finally:
        if driver.poll() is None:
            driver.kill()
        if producer.is_alive() or producer.ident is not None:
            producer.join(120)
    assert killed_at_rows < len(events)  # the kill landed mid-stream

    restarted = subprocess.run([*argv, "--available-now"], capture_output=True, text=True, timeout=400)
    assert restarted.returncode == 0, restarted.stderr[-3000:]


    bronze_rows = DeltaTable(bronze).to_pyarrow_table(columns=["event_id", "sop_instance_uid"]).to_pylist()
    assert len(bronze_rows) == len(events)
    assert {r["event_id"] for r in bronze_rows} == {e.event_id for e in events}
    series = DeltaTable(str(lake / "silver" / "series")).to_pyarrow_table(columns=["instances"]).to_pylist()
    listed = [i["sop_instance_uid"] for row in series for i in row["instances"]]
    assert sorted(listed) == sorted(e.data.sop_instance_uid for e in events)
