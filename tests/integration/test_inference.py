"""Inference workers against the real broker and registry: study completed -> prediction created.

A tiny model is trained in seconds and registered (Delta registry in a temp lake); its spec takes every
window as a candidate so each study yields findings, SEG and SR — these tests check plumbing and
exactly-once, not accuracy (``radlake model evaluate`` does that). Topics, groups and tables are unique
per test.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import time
import uuid
from dataclasses import replace

import highdicom as hd
import jsonschema
import nibabel as nib
import pytest
import torch
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic
from deltalake import DeltaTable

from inference_workers import predictions_table
from inference_workers.model_registry import ModelRegistry, network_to_bytes
from inference_workers.prediction import Predictor
from inference_workers.synthetic_study import publishable_study
from inference_workers.training import TrainConfig, train
from inference_workers.worker import Worker, WorkerConfig
from lake_schemas.topics import PREDICTION_CREATED, PREDICTION_DEAD_LETTER, STUDY_COMPLETED
from platform_layer.kafka import connection as kafka_connection
from platform_layer.object_store import ObjectStore
from platform_layer.registration import register, schema_admin
from platform_layer.serde import EventSerde
from platform_layer.settings import Settings
from radlake.synthetic.chest_ct import chest_ct

pytestmark = pytest.mark.integration

SHAPE = (24, 72, 72)
MODEL = "nodule-test"


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    """(lake dir, object store): a registered tiny model in Production."""

    root = tmp_path_factory.mktemp("infer-lake")
    store = ObjectStore(str(root / "objects"))
    torch.manual_seed(0)
    net, spec, metrics = train(TrainConfig(train_studies=8, validation_studies=4, epochs=1, width=4, shape=SHAPE))
    eager = replace(spec, presence_threshold=0.0, max_candidates=2)
    registry = ModelRegistry(str(root / "lake" / "registry" / "models"), store)
    registry.register(MODEL, network_to_bytes(net), eager, {"tiny": True}, metrics, stage="Production")
    return root, store, registry


@pytest.fixture
def topics(kafka_bootstrap, registry_url, unique_topic):
    names = {"in": f"{unique_topic}.in", "out": f"{unique_topic}.out", "dlq": f"{unique_topic}.dlq"}
    admin = AdminClient(kafka_connection(kafka_bootstrap))
    for future in admin.create_topics([NewTopic(n, 3, 1) for n in names.values()]).values():
        future.result(30)
    contracts = (STUDY_COMPLETED.with_name(names["in"]), PREDICTION_CREATED.with_name(names["out"]),
                 PREDICTION_DEAD_LETTER.with_name(names["dlq"]))
    registry = schema_admin(Settings())
    register(registry, contracts)
    names["serdes"] = tuple(EventSerde(t, registry) for t in contracts)
    names["group"] = f"g-{unique_topic}"
    return names


def _publish(bootstrap, topic, values: list[bytes], key=b"k", partition=0):
    producer = Producer({**kafka_connection(bootstrap), "enable.idempotence": True})
    for value in values:
        producer.produce(topic, key=key, value=value, partition=partition)
    assert producer.flush(30) == 0


def _read_all(bootstrap, topic, isolation="read_committed", timeout_s=60.0):
    """Every message on the topic up to its end (all partitions)."""
    consumer = Consumer({**kafka_connection(bootstrap), "group.id": f"reader-{uuid.uuid4().hex}",
                         "isolation.level": isolation, "enable.auto.commit": False})
    parts = [TopicPartition(topic, p, 0) for p in range(3)]
    ends = {p.partition: consumer.get_watermark_offsets(p, timeout=10)[1] for p in parts}
    consumer.assign(parts)
    out, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            for m in consumer.consume(100, 0.5):
                if m.error() is None:
                    out.append(m)
            positions = {p.partition: p.offset for p in consumer.position(parts)}
            if all(ends[p] == 0 or positions[p] >= ends[p] for p in ends):
                return out
    finally:
        consumer.close()
    raise AssertionError(f"{topic} not read to its end within {timeout_s}s")


def _worker(lake, topics, bootstrap, worker_id="w1", erased=frozenset()):
    root, store, registry = lake
    model = registry.get(MODEL, stage="Production")
    predictor = Predictor(model, registry.load(model), store, torch.device("cpu"), worker_id, batch_size=32)
    table = str(root / f"predictions-{topics['group']}")
    in_serde, out_serde, dlq_serde = topics["serdes"]
    lander = predictions_table.PredictionLander(bootstrap, topics["out"], out_serde, table, group_id=f"{topics['group']}-l")
    cfg = WorkerConfig(bootstrap=bootstrap, worker_id=worker_id, group_id=topics["group"], input_topic=topics["in"],
                       output_topic=topics["out"], dead_letter_topic=topics["dlq"], max_batch=4, batch_wait_s=0.5)
    worker = Worker(cfg, predictor, in_serde, out_serde, dlq_serde, known=lambda ids: predictions_table.known(table, ids),
                    after_commit=lambda: lander.drain(quiet_s=0.3), erased=erased)
    return worker, lander, table


def _delta_rows(table):

    return DeltaTable(table).to_pyarrow_table().to_pylist()


def test_study_flows_to_one_prediction_with_seg_and_sr_and_a_replay_adds_none(lake, topics, kafka_bootstrap):

    _, store, _ = lake
    in_serde, out_serde, _ = topics["serdes"]
    events = [publishable_study(store, chest_ct(40 + k, shape=SHAPE, min_nodules=1), name=f"flow-{topics['group']}-{k}",
                                flip_rows=k == 1) for k in range(2)]
    _publish(kafka_bootstrap, topics["in"], [in_serde.serialize(e) for e in events])

    worker, lander, table = _worker(lake, topics, kafka_bootstrap)
    stats = worker.run(max_predictions=2, max_idle_s=30)
    lander.close()
    assert stats.predictions == 2 and stats.dead_letters == 0

    messages = _read_all(kafka_bootstrap, topics["out"])
    assert len(messages) == 2
    by_study = {e.data.study_uid: e for e in events}
    for msg in messages:
        jsonschema.validate(json.loads(msg.value()[5:]), PREDICTION_CREATED.schema,
                            format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
        prediction = out_serde.deserialize(msg.value())
        source = by_study[prediction.data.study_uid]
        series = source.data.series[0]
        assert msg.key() == source.data.study_uid.encode()
        assert prediction.data.source_event_id == source.event_id
        assert prediction.data.model.name == MODEL and prediction.data.device == "cpu"
        assert [i.sha256 for i in prediction.data.inputs] == [r.sha256 for r in series.instances]
        assert prediction.data.candidates, "the eager test spec reports candidates"
        seg = hd.seg.segread(io.BytesIO(store.get(prediction.data.seg.uri, prediction.data.seg.sha256)))
        assert (seg.StudyInstanceUID, seg.PatientID) == (source.data.study_uid, source.data.pseudo_patient_id)
        assert seg.FrameOfReferenceUID == series.frame_of_reference_uid
        assert {u for _, _, u in seg.get_source_image_uids()} <= {r.sop_instance_uid for r in series.instances}
        assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == series.series_uid
        sr = hd.sr.srread(io.BytesIO(store.get(prediction.data.sr.uri, prediction.data.sr.sha256)))
        assert sr.StudyInstanceUID == source.data.study_uid and sr.PatientID == source.data.pseudo_patient_id
        evidence = {item.ReferencedSOPInstanceUID for study in sr.CurrentRequestedProcedureEvidenceSequence
                    for s in study.ReferencedSeriesSequence for item in s.ReferencedSOPSequence}
        assert seg.SOPInstanceUID in evidence and {r.sop_instance_uid for r in series.instances} <= evidence
        groups = sr.content.get_volumetric_roi_measurement_groups()
        assert [g.referenced_segment.referenced_sop_instance_uid for g in groups] == \
            [seg.SOPInstanceUID] * len(prediction.data.candidates)
        for c in prediction.data.candidates:
            cam = nib.Nifti1Image.from_bytes(gzip.decompress(store.get(c.gradcam_uri, c.gradcam_sha256)))
            assert cam.shape == (24, 24, 24)
    rows = _delta_rows(table)
    assert sorted(r["event_id"] for r in rows) == sorted(json.loads(m.value()[5:])["event_id"] for m in messages)

    # the same study completed event again: dropped by the worker, nothing new on the topic or in the table
    _publish(kafka_bootstrap, topics["in"], [in_serde.serialize(events[0])])
    worker, lander, table = _worker(lake, topics, kafka_bootstrap)
    stats = worker.run(max_idle_s=3)
    lander.close()
    assert (stats.predictions, stats.duplicates_dropped) == (0, 1)
    assert len(_read_all(kafka_bootstrap, topics["out"])) == 2
    assert len(_delta_rows(table)) == 2

    # a study of a patient on the deny list (erased, its event replayed from the topic): never predicted
    later = publishable_study(store, chest_ct(42, shape=SHAPE, min_nodules=1), name=f"flow-{topics['group']}-erased")
    _publish(kafka_bootstrap, topics["in"], [in_serde.serialize(later)])
    worker, lander, table = _worker(lake, topics, kafka_bootstrap, erased={later.data.pseudo_patient_id})
    stats = worker.run(max_idle_s=3)
    lander.close()
    assert (stats.predictions, stats.erased_skipped) == (0, 1)
    assert len(_read_all(kafka_bootstrap, topics["out"])) == 2


def test_poison_studies_go_to_the_dead_letter_topic_without_blocking_the_partition(lake, topics, kafka_bootstrap):
    _, store, _ = lake
    in_serde, _, dlq_serde = topics["serdes"]
    name = f"poison-{topics['group']}"
    good = publishable_study(store, chest_ct(50, shape=SHAPE, min_nodules=1), name=f"{name}-good")
    bad = publishable_study(store, chest_ct(51, shape=SHAPE), name=f"{name}-hash")
    series = bad.data.series[0]
    tampered = series.model_copy(update={"instances": (series.instances[0].model_copy(update={"sha256": "0" * 64}),
                                                       *series.instances[1:])})
    bad_hash = bad.model_copy(update={"data": bad.data.model_copy(update={"series": (tampered,)})})
    lost = publishable_study(store, chest_ct(52, shape=SHAPE), name=f"{name}-lost")
    series = lost.data.series[0]
    gone = series.model_copy(update={"instances": (series.instances[0].model_copy(
        update={"object_uri": series.instances[0].object_uri + ".missing"}), *series.instances[1:])})
    missing = lost.model_copy(update={"data": lost.data.model_copy(update={"series": (gone,)})})
    # all on partition 0, the good study last: it must still be predicted
    _publish(kafka_bootstrap, topics["in"], [in_serde.serialize(bad_hash), b"\x00garbage", in_serde.serialize(missing),
                                             in_serde.serialize(good)])

    worker, lander, _ = _worker(lake, topics, kafka_bootstrap)
    stats = worker.run(max_predictions=1, max_idle_s=30)
    lander.close()
    assert stats.predictions == 1
    letters = [dlq_serde.deserialize(m.value()) for m in _read_all(kafka_bootstrap, topics["dlq"])]
    reasons = {(q.data.study_uid, q.data.reason) for q in letters}
    assert reasons == {(bad.data.study_uid, "HASH_MISMATCH"), (None, "UNDECODABLE_EVENT"),
                       (lost.data.study_uid, "UNREADABLE_VOLUME")}
    assert all(q.data.stage == "inference" and q.data.message for q in letters)
    [prediction] = _read_all(kafka_bootstrap, topics["out"])
    assert prediction.key() == good.data.study_uid.encode()
    consumer = Consumer({**kafka_connection(kafka_bootstrap), "group.id": topics["group"]})
    [committed] = consumer.committed([TopicPartition(topics["in"], 0)], timeout=10)
    consumer.close()
    assert committed.offset == 4


def _cli(lake, topics, *extra):
    root, _, _ = lake
    env = {**os.environ, "RADLAKE_LAKE_URI": str(root / "lake"), "RADLAKE_OBJECT_STORE_URI": str(root / "objects")}
    argv = [sys.executable, "-m", "apps.cli", "infer", "run", "--input-topic", topics["in"],
            "--output-topic", topics["out"], "--dead-letter-topic", topics["dlq"], "--group", topics["group"],
            "--model", MODEL, "--max-batch", "4", "--table", str(root / f"predictions-{topics['group']}"), *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=300)


def test_a_worker_killed_mid_batch_loses_nothing_and_duplicates_nothing(lake, topics, kafka_bootstrap):
    root, store, _ = lake
    in_serde, out_serde, _ = topics["serdes"]
    events = [publishable_study(store, chest_ct(60 + k, shape=SHAPE, min_nodules=1), name=f"kill-{topics['group']}-{k}")
              for k in range(3)]
    _publish(kafka_bootstrap, topics["in"], [in_serde.serialize(e) for e in events])

    killed = _cli(lake, topics, "--worker-id", "kw1", "--crash-at", "before_commit", "--max-idle-s", "30")
    assert killed.returncode == -9, killed.stderr[-2000:]
    # it had produced its predictions inside the transaction it never committed
    assert len(_read_all(kafka_bootstrap, topics["out"], isolation="read_uncommitted")) >= 1

    restarted = _cli(lake, topics, "--worker-id", "kw1", "--max-predictions", "3", "--max-idle-s", "30")
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    committed = [out_serde.deserialize(m.value()) for m in _read_all(kafka_bootstrap, topics["out"])]
    assert sorted(p.data.study_uid for p in committed) == sorted(e.data.study_uid for e in events)
    assert len({p.event_id for p in committed}) == 3
    rows = _delta_rows(str(root / f"predictions-{topics['group']}"))
    assert sorted(r["event_id"] for r in rows) == sorted(p.event_id for p in committed)
