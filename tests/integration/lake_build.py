"""A small lake built once per test session through the real broker, registry and Spark.

Three studies from two providers, with what silver must detect: a gap, a duplicated position, a
redelivery, a same-UID/different-hash conflict, rows the gate rejects, a completed study, a study still
receiving, and a late arrival answered by a ``study.updated`` version. Used by the ``test_lake_*`` modules;
built once per process (the modules share it) because Spark is slow to start.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from deltalake import DeltaTable

from bench.lake_feed import publish
from lake_schemas.topics import INSTANCE_RECEIVED, STUDY_COMPLETED
from platform_layer.registration import register, schema_admin
from platform_layer.settings import Settings
from radlake.synthetic.lake_events import SeriesPlan, conflicting, series_events, study_completed
from spark_jobs import tables
from spark_jobs.pipeline import start_pipeline

A1 = SeriesPlan("st-olav", "study-a", "a1", slices=12)
A2 = SeriesPlan("st-olav", "study-a", "a2", slices=10, spacing_mm=5.0, skip=(4, 5))
B1 = SeriesPlan("st-olav", "study-b", "b1", slices=8, modality="MR", repeat_position=(3,))
C1 = SeriesPlan("haukeland", "study-c", "c1", slices=10, spacing_mm=1.25)


@dataclass(frozen=True)
class SmallLake:
    root: str
    instances_topic: str
    completed_topic: str
    events: dict  # name -> list of events
    versions_after_phase1: dict  # table relative path -> Delta version after the first run

    def path(self, spec) -> str:
        return tables.table_path(self.root, spec)


_BUILT: dict[str, SmallLake] = {}


def _bad(event, **data_updates):
    """A schema-valid event the gate must reject (a new event id and SOP UID in the same series)."""
    sop = event.data.sop_instance_uid + "9"
    data = event.data.model_copy(update={"sop_instance_uid": sop, **data_updates})
    return event.model_copy(update={"event_id": str(uuid.uuid4()), "data": data})


def run_pipeline(spark, bootstrap: str, root: str, instances_topic: str, completed_topic: str) -> None:
    """Bronze (both topics) then silver, each with availableNow, on fixed checkpoints under the lake."""
    start_pipeline(spark, bootstrap=bootstrap, lake_uri=root, instances_topic=instances_topic,
                   completed_topic=completed_topic, checkpoints=f"{root}/_checkpoints", available_now=True)


def small_lake(spark, bootstrap: str, registry_url: str, tmp_root: Path) -> SmallLake:
    if "lake" in _BUILT:
        return _BUILT["lake"]

    suffix = uuid.uuid4().hex[:8]
    instances = INSTANCE_RECEIVED.with_name(f"test.lake.instances.{suffix}")
    completed = STUDY_COMPLETED.with_name(f"test.lake.completed.{suffix}")
    register(schema_admin(Settings()), (instances, completed))
    root = str(tmp_root / "lake")

    a1, a2, b1, c1 = (series_events(p) for p in (A1, A2, B1, C1))
    late_a1 = series_events(SeriesPlan("st-olav", "study-a", "a1", slices=13))[-1]
    bad = [
        _bad(c1[0], modality="ZZ"),
        _bad(c1[1], size_bytes=12),
        _bad(c1[2], image_orientation_patient=(1.0, 0.0, 0.0, 1.0, 0.0, 0.0)),
    ]
    conflict = conflicting(c1[4])
    # c1[:2] again: the same event ids (merged away at bronze); c1[2:4] with new event ids (the same
    # objects announced twice: counted as redeliveries at silver).
    resent = [e.model_copy(update={"event_id": str(uuid.uuid4())}) for e in c1[2:4]]
    phase1 = a1 + a2 + b1 + c1 + c1[:2] + resent + bad + [conflict]
    publish(bootstrap, registry_url, instances, phase1)
    publish(bootstrap, registry_url, completed, [study_completed(a1 + a2), study_completed(c1)])
    run_pipeline(spark, bootstrap, root, instances.name, completed.name)
    versions = {rel: DeltaTable(f"{root}/{rel}").version()
                for rel in ("bronze/instances", "silver/series", "silver/studies")}

    publish(bootstrap, registry_url, instances, [late_a1])
    publish(bootstrap, registry_url, completed, [study_completed(a1 + [late_a1] + a2, version=2)])
    run_pipeline(spark, bootstrap, root, instances.name, completed.name)

    lake = SmallLake(root, instances.name, completed.name,
                     {"a1": a1, "a2": a2, "b1": b1, "c1": c1, "late_a1": [late_a1], "bad": bad,
                      "conflict": [conflict], "resent": resent},
                     versions)
    _BUILT["lake"] = lake
    return lake
