"""``radlake radiomics run`` / ``follow`` on a small lake, through the real broker, registry and Spark.

Two studies, each a generated CT series stored in an object store under tmp_path and landed in bronze
from Kafka; study A has its lesion as a DICOM SEG and a NIfTI mask on another grid (a geometry mismatch
that must be reported, not resampled), study B a NIfTI mask. The job runs twice: the gold table holds each
feature once, equal to ``compute_features`` run directly, and one ``features computed`` event per study
validates against its schema. ``follow`` then reacts to a ``study completed`` event with other settings,
to ``prediction created`` events carrying a SEG, waits out an object-store outage (its root moved away)
with nothing committed past the failing event, and dead-letters the events that can never be processed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import threading
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from functools import partial

import jsonschema
import numpy as np
import pydicom
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from delta.tables import DeltaTable

from bench.lake_feed import publish
from lake_schemas.events import PredictionCreated, PredictionCreatedData, PredictionInput, PredictionModel, StoredDicom
from lake_schemas.radiomics_tables import RADIOMICS_EVENTS, RADIOMICS_FAILURES, RADIOMICS_FEATURES, ROIS
from lake_schemas.tables import BRONZE_INSTANCES, SILVER_SERIES
from lake_schemas.topics import (
    DEAD_LETTER,
    DLQ_MESSAGE,
    DLQ_REASON,
    DLQ_SOURCE_OFFSET,
    DLQ_SOURCE_PARTITION,
    DLQ_SOURCE_TOPIC,
    DLQ_STAGE,
    FEATURES_COMPUTED,
    INSTANCE_RECEIVED,
    PREDICTION_CREATED,
    STUDY_COMPLETED,
)
from platform_layer.kafka import TopicSpec, ensure_topics
from platform_layer.kafka import connection as kafka_connection
from platform_layer.object_store import ObjectStore
from platform_layer.registration import register, schema_admin
from platform_layer.serde import EventSerde, registry_client
from platform_layer.settings import Settings
from radlake.radiomics import compute_features
from radlake.radiomics.settings import settings_from_mapping
from radlake.synthetic import radiomics_lake as rl
from radlake.synthetic.lake_events import study_completed
from spark_jobs import bronze, radiomics_job, silver, tables
from spark_jobs import radiomics_follow as follow
from spark_jobs.radiomics_series import rois_from_dicom_mask

pytestmark = pytest.mark.integration

SETTINGS = settings_from_mapping({"aggregations": ["3D"]})
OTHER_SETTINGS = settings_from_mapping({"aggregations": ["3D"], "discretisation": {"bin_number": 16}})


def _consume(bootstrap: str, registry_url: str, topic, expected: int, timeout_s: float = 60) -> list[dict]:
    """Every message on ``topic``, decoded and checked against its schema file."""
    serde = EventSerde(topic, registry_client(registry_url))
    consumer = Consumer({**kafka_connection(bootstrap), "group.id": f"check-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([topic.name])
    found, deadline = [], time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and len(found) < expected:
            msg = consumer.poll(1.0)
            if msg is None or msg.error():
                continue
            event = serde.deserialize(msg.value())  # validates against the registered schema
            as_json = json.loads(event.model_dump_json())
            jsonschema.validate(as_json, topic.schema, format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER)
            found.append(as_json)
        # Anything beyond the expected events would be a duplicate announcement.
        extra = consumer.poll(3.0)
        assert extra is None or extra.error() is not None
    finally:
        consumer.close()
    return found


@pytest.fixture(scope="module")
def lake(spark, kafka_bootstrap, registry_url, tmp_path_factory):
    root = tmp_path_factory.mktemp("radiomics-lake")
    store = ObjectStore(str(root / "objects"))
    case_a = rl.make_case(store, f"a-{uuid.uuid4().hex[:6]}", kind="sphere", seed=1)
    case_b = rl.make_case(store, f"b-{uuid.uuid4().hex[:6]}", provider="haukeland", kind="irregular", seed=2)

    suffix = uuid.uuid4().hex[:8]
    instances = INSTANCE_RECEIVED.with_name(f"test.radiomics.instances.{suffix}")
    register(schema_admin(Settings()), (instances,))
    publish(kafka_bootstrap, registry_url, instances, [*case_a.events, *case_b.events])
    lake_uri = str(root / "lake")
    job = bronze.BronzeJob(kafka_bootstrap, instances.name, tables.table_path(lake_uri, BRONZE_INSTANCES),
                           str(root / "checkpoints" / "bronze"))
    bronze.start(spark, job, available_now=True).awaitTermination(300)

    seg = rl.seg_bytes(case_a)
    seg_row = rl.roi_row(case_a, "unused", "seg", seg, store)
    rows = [{**r, "source": "test"} for r in rois_from_dicom_mask(
        pydicom.dcmread(io.BytesIO(seg)), mask_uri=seg_row["mask_uri"], mask_sha256=seg_row["mask_sha256"],
        provider=case_a.provider, project=case_a.project)]
    rows += [rl.roi_row(case_a, "nodule-resampled", "nifti", rl.nifti_bytes(case_a, spacing=(2.0, 0.8, 0.8)), store),
             rl.roi_row(case_b, "nodule", "nifti", rl.nifti_bytes(case_b), store)]
    radiomics_job.register_rois(spark, lake_uri, rows)
    return {"root": root, "lake": lake_uri, "store": store, "a": case_a, "b": case_b, "rows": rows}


@pytest.fixture(scope="module")
def first_two_runs(spark, lake, kafka_bootstrap, registry_url):

    topic = FEATURES_COMPUTED.with_name(f"test.radiomics.features.{uuid.uuid4().hex[:8]}")
    register(schema_admin(Settings()), (topic,))
    job = radiomics_job.RadiomicsJob(lake["lake"], str(lake["root"] / "objects"), SETTINGS)
    def to_topic(events: list) -> None:
        publish(kafka_bootstrap, registry_url, topic, events)

    first = radiomics_job.run(spark, job)
    radiomics_job.publish_outbox(spark, job, to_topic)
    version = DeltaTable.forPath(spark, job.path(RADIOMICS_FEATURES)).history(1).first().version
    second = radiomics_job.run(spark, job)
    republished = radiomics_job.publish_outbox(spark, job, to_topic)
    after = DeltaTable.forPath(spark, job.path(RADIOMICS_FEATURES)).history(1).first().version
    return {"job": job, "first": first, "second": second, "topic": topic, "versions": (version, after),
            "republished": republished}


def _features(spark, job, case, roi: str, settings_hash: str) -> dict[str, float]:
    rows = (spark.read.format("delta").load(job.path(RADIOMICS_FEATURES))
            .where(f"study_uid = '{case.study_uid}' AND roi = '{roi}' AND settings_hash = '{settings_hash}'")
            .select("feature", "value").collect())
    names = [r.feature for r in rows]
    assert len(names) == len(set(names)), "a feature is in the gold table twice"
    return {r.feature: r.value for r in rows}


def test_second_run_writes_nothing_and_gold_holds_every_feature_once(spark, lake, first_two_runs):
    first, second = first_two_runs["first"], first_two_runs["second"]
    assert (first.pending_rois, first.computed_rois, first.failed_rois) == (3, 2, 1)
    assert (second.pending_rois, second.computed_rois, second.events) == (0, 0, ())
    assert first_two_runs["republished"] == ()
    assert first_two_runs["versions"][0] == first_two_runs["versions"][1]  # no commit on the re-run
    job = first_two_runs["job"]
    gold = spark.read.format("delta").load(job.path(RADIOMICS_FEATURES))
    key = ["study_uid", "series_uid", "roi", "settings_hash", "code_version", "feature"]
    assert gold.groupBy(*key).count().where("count > 1").count() == 0
    expected = len(compute_features(lake["b"].image.astype(float), lake["b"].mask, lake["b"].spacing, SETTINGS))
    assert gold.count() == 2 * expected == first.feature_rows
    lineage = gold.select("provider", "project", "pseudo_patient_id").distinct().collect()
    assert {(r.provider, r.pseudo_patient_id) for r in lineage} == {
        (lake["a"].provider, lake["a"].patient), (lake["b"].provider, lake["b"].patient)}


@pytest.mark.parametrize("case,roi", [("a", "nodule#1"), ("b", "nodule")])
def test_values_equal_compute_features_run_directly(spark, lake, first_two_runs, case, roi):
    c = lake[case]
    got = _features(spark, first_two_runs["job"], c, roi, SETTINGS.digest())
    direct = {v.name: v.value for v in compute_features(c.image.astype(float), c.mask, c.spacing, SETTINGS)}
    assert set(got) == set(direct)
    np.testing.assert_allclose([got[n] for n in direct], list(direct.values()), rtol=1e-12, equal_nan=True)


def test_geometry_mismatch_is_recorded_not_resampled(spark, lake, first_two_runs):
    job = first_two_runs["job"]
    rows = spark.read.format("delta").load(job.path(RADIOMICS_FAILURES)).collect()
    assert [(r.roi, r.reason, r.transient) for r in rows] == [("nodule-resampled", "geometry_mismatch", False)]
    assert "spacing" in rows[0].message
    assert _features(spark, job, lake["a"], "nodule-resampled", SETTINGS.digest()) == {}


def test_one_features_computed_event_per_study_validates_against_its_schema(lake, first_two_runs, kafka_bootstrap,
                                                                          registry_url):
    events = _consume(kafka_bootstrap, registry_url, first_two_runs["topic"], expected=2)
    by_study = {e["data"]["study_uid"]: e for e in events}
    assert set(by_study) == {lake["a"].study_uid, lake["b"].study_uid}
    a = by_study[lake["a"].study_uid]["data"]
    assert a["settings_hash"] == SETTINGS.digest() and a["table"] == "gold/radiomics_features"
    assert sorted((r["roi"], r["status"], r["reason"]) for r in a["rois"]) == [
        ("nodule#1", "computed", None), ("nodule-resampled", "failed", "geometry_mismatch")]
    assert by_study[lake["b"].study_uid]["provider"] == "haukeland"


def _dead_letters(bootstrap: str):
    """A dead-letter sink on the test broker's dead-letter topic."""
    ensure_topics(bootstrap, [TopicSpec(DEAD_LETTER, 3)])
    return follow.dead_letter_sink(Producer({**kafka_connection(bootstrap), "enable.idempotence": True}))


def _committed(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The committed offset of ``group`` per partition of ``topic`` that has one."""
    reader = Consumer({**kafka_connection(bootstrap), "group.id": group, "enable.auto.commit": False})
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        committed = reader.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
    finally:
        reader.close()
    return {tp.partition: tp.offset for tp in committed if tp.offset >= 0}


def _prediction(case, seg=None, *, model: str = "nodule-cnn", version: int = 7, sha256: str | None = None,
                event_id: str | None = None) -> PredictionCreated:
    """A ``prediction created`` event on ``case``'s series, carrying the stored ``seg`` (or none)."""
    stored = None if seg is None else StoredDicom(uri=seg.uri, sha256=sha256 or seg.sha256,
                                                  sop_instance_uid=rl.uid(case.name, "seg"))
    return PredictionCreated(event_id=event_id or str(uuid.uuid4()), provider=case.provider, data=PredictionCreatedData(
        project=case.project, pseudo_patient_id=case.patient, study_uid=case.study_uid, study_version=1,
        series_uid=case.series_uid, source_event_id=str(uuid.uuid4()),
        model=PredictionModel(name=model, version=version, stage="Production", weights_sha256="c" * 64),
        inputs=tuple(PredictionInput(sop_instance_uid=e.data.sop_instance_uid, sha256=e.data.sha256)
                     for e in case.events),
        candidates=(), malignancy_score=0.8, threshold=0.5, positive=seg is not None, seg=stored, sr=None,
        latency_ms=12.0, batch_studies=1, worker_id="test-worker", device="cpu"))


def test_follow_computes_a_completed_study_once(spark, lake, first_two_runs, kafka_bootstrap, registry_url):
    suffix = uuid.uuid4().hex[:8]
    completed = STUDY_COMPLETED.with_name(f"test.radiomics.completed.{suffix}")
    register(schema_admin(Settings()), (completed,))
    event = study_completed(list(lake["b"].events))
    publish(kafka_bootstrap, registry_url, completed, [event, event])  # a redelivery too
    job = replace(first_two_runs["job"], settings=OTHER_SETTINGS)
    announced: list = []
    serde = EventSerde(completed, registry_client(registry_url))
    for attempt in range(2):  # the second consumer group replays the topic: nothing is pending any more
        consumer = Consumer({**kafka_connection(kafka_bootstrap), "group.id": f"follow-{suffix}-{attempt}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([completed.name])
        try:
            stats = follow.follow(spark, job, consumer, serde, announced.extend,
                                  dead_letter=_dead_letters(kafka_bootstrap), idle_exit_s=8, max_messages=2)
        finally:
            consumer.close()
        assert (stats.messages, stats.dead_lettered, stats.retries) == (2, 0, 0)
    assert len(announced) == 1
    data = announced[0].data
    assert data.study_uid == lake["b"].study_uid and data.source_event_id == event.event_id
    assert data.settings_hash == OTHER_SETTINGS.digest() and [r.status for r in data.rois] == ["computed"]
    got = _features(spark, job, lake["b"], "nodule", OTHER_SETTINGS.digest())
    direct = {v.name: v.value for v in compute_features(lake["b"].image.astype(float), lake["b"].mask,
                                                        lake["b"].spacing, OTHER_SETTINGS)}
    np.testing.assert_allclose([got[n] for n in direct], list(direct.values()), rtol=1e-12, equal_nan=True)
    # Study A has no completed event here: the follower did not touch it.
    assert _features(spark, job, lake["a"], "nodule#1", OTHER_SETTINGS.digest()) == {}


def test_follow_segmentations_computes_the_segments_of_a_predicted_seg(spark, lake, first_two_runs, kafka_bootstrap,
                                                                       registry_url):
    """A ``prediction created`` event with a DICOM SEG registers its segment as an ROI named after the model
    and gets it computed once; a prediction whose SEG fails its claim-check is dead-lettered, not dropped
    silently, and one without a SEG registers nothing."""
    case = lake["b"]
    seg = lake["store"].put(rl.seg_bytes(case, "nodule candidate 1"), prefix="predictions")
    event = _prediction(case, seg)
    tampered = event.model_copy(update={"event_id": str(uuid.uuid4()), "data": event.data.model_copy(
        update={"seg": event.data.seg.model_copy(update={"sha256": "0" * 64})})})
    without_seg = event.model_copy(update={"event_id": str(uuid.uuid4()), "data": event.data.model_copy(
        update={"seg": None, "positive": False})})

    suffix = uuid.uuid4().hex[:8]
    topic = PREDICTION_CREATED.with_name(f"test.radiomics.predictions.{suffix}")
    register(schema_admin(Settings()), (topic,))
    publish(kafka_bootstrap, registry_url, topic, [event, tampered, without_seg, event])  # and a redelivery
    settings = settings_from_mapping({"aggregations": ["3D"], "discretisation": {"bin_number": 24}})
    job = replace(first_two_runs["job"], settings=settings)
    handle = partial(follow.handle_segmentations, read=lake["store"].get)
    serde = EventSerde(topic, registry_client(registry_url))
    announced: list = []
    for attempt in range(2):  # the second consumer group replays the topic: nothing is pending any more
        consumer = Consumer({**kafka_connection(kafka_bootstrap), "group.id": f"segs-{suffix}-{attempt}",
                             "auto.offset.reset": "earliest", "enable.auto.commit": False})
        consumer.subscribe([topic.name])
        try:
            stats = follow.follow(spark, job, consumer, serde, announced.extend, handle=handle,
                                  dead_letter=_dead_letters(kafka_bootstrap), idle_exit_s=8, max_messages=4)
        finally:
            consumer.close()
        assert (stats.messages, stats.dead_lettered, stats.retries) == (4, 1, 0)
    roi = "nodule-cnn:7/nodule candidate 1#1"
    assert len(announced) == 1
    data = announced[0].data
    assert data.study_uid == case.study_uid and data.source_event_id == event.event_id
    # the run covers the study: its NIfTI ROI, pending for these settings too, is computed beside the SEG's
    assert sorted((r.roi, r.status) for r in data.rois) == [("nodule", "computed"), (roi, "computed")]
    got = _features(spark, job, case, roi, settings.digest())
    direct = {v.name: v.value for v in compute_features(case.image.astype(float), case.mask, case.spacing, settings)}
    np.testing.assert_allclose([got[n] for n in direct], list(direct.values()), rtol=1e-12, equal_nan=True)
    registered = (spark.read.format("delta").load(tables.table_path(lake["lake"], ROIS))
                  .where(f"roi = '{roi}'").collect())
    assert [(r.series_uid, r.mask_kind, r.mask_sha256) for r in registered] == [(case.series_uid, "seg", seg.sha256)]


class _Retrying(logging.Handler):
    """Sets ``seen`` when the follower logs that an attempt failed transiently."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "failed, transient" in record.getMessage():
            self.seen.set()


def test_follow_waits_out_an_object_store_outage_with_nothing_committed_past_it(spark, lake, first_two_runs,
                                                                               kafka_bootstrap, registry_url):
    """The object store's root directory is moved away (reads fail for root too, unlike chmod 000) while the
    follower reads a prediction's SEG: it retries with back-off, the group's committed offset stays at that
    event (the event before it, alone in its batch, is committed), and once the directory is back the
    segment is registered, computed and announced, and the event committed."""
    case = lake["b"]
    seg = lake["store"].put(rl.seg_bytes(case, "outage candidate"), prefix="predictions")
    event, without_seg = _prediction(case, seg, model="outage-cnn", version=1), _prediction(case)
    suffix = uuid.uuid4().hex[:8]
    topic = PREDICTION_CREATED.with_name(f"test.radiomics.outage.{suffix}")
    register(schema_admin(Settings()), (topic,))
    publish(kafka_bootstrap, registry_url, topic, [without_seg, event])  # one key: one partition, this order
    settings = settings_from_mapping({"aggregations": ["3D"], "families": ["morphology"]})
    job = replace(first_two_runs["job"], settings=settings)
    group = f"outage-{suffix}"
    objects, away = lake["root"] / "objects", lake["root"] / f"objects-away-{suffix}"
    retrying, during_outage = _Retrying(), []

    def restore_once_retrying() -> None:
        try:
            if retrying.seen.wait(120):
                time.sleep(2)  # a few more failed attempts
                during_outage.append(_committed(kafka_bootstrap, group, topic.name))
        finally:
            away.rename(objects)

    logging.getLogger(follow.__name__).addHandler(retrying)
    consumer = Consumer({**kafka_connection(kafka_bootstrap), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic.name])
    announced: list = []
    objects.rename(away)
    restorer = threading.Thread(target=restore_once_retrying)
    restorer.start()
    try:
        stats = follow.follow(spark, job, consumer, EventSerde(topic, registry_client(registry_url)),
                              announced.extend, handle=partial(follow.handle_segmentations, read=lake["store"].get),
                              dead_letter=_dead_letters(kafka_bootstrap),
                              backoff=follow.Backoff(initial_s=0.2, max_s=1.0), batch_size=1, idle_exit_s=8,
                              max_messages=2)
    finally:
        retrying.seen.set()  # should the follower have failed otherwise, the directory still comes back
        restorer.join()
        consumer.close()
        logging.getLogger(follow.__name__).removeHandler(retrying)
    assert objects.is_dir()
    assert (stats.messages, stats.dead_lettered, stats.retried) == (2, 0, 1) and stats.retries >= 2
    [partition] = _committed(kafka_bootstrap, group, topic.name)
    assert during_outage == [{partition: 1}]  # past the event without a SEG, not past the failing one
    assert _committed(kafka_bootstrap, group, topic.name) == {partition: 2}
    roi = "outage-cnn:1/outage candidate#1"
    [announcement] = [e for e in announced if roi in {r.roi for r in e.data.rois}]
    assert announcement.data.source_event_id == event.event_id
    assert {r.roi: r.status for r in announcement.data.rois}[roi] == "computed"
    got = _features(spark, job, case, roi, settings.digest())
    direct = {v.name: v.value for v in compute_features(case.image.astype(float), case.mask, case.spacing, settings)}
    np.testing.assert_allclose([got[n] for n in direct], list(direct.values()), rtol=1e-12, equal_nan=True)


def test_follow_dead_letters_what_can_never_be_processed(spark, lake, first_two_runs, kafka_bootstrap,
                                                         registry_url):
    """A message not in the wire format, a SEG failing its claim-check and one that is not DICOM land on
    the dead-letter topic, bytes unchanged, with their reason and source in the headers; then committed."""
    case = lake["b"]
    suffix = uuid.uuid4().hex[:8]
    topic = PREDICTION_CREATED.with_name(f"test.radiomics.dead.{suffix}")
    register(schema_admin(Settings()), (topic,))
    seg = lake["store"].put(rl.seg_bytes(case, "dead candidate"), prefix="predictions")
    junk = lake["store"].put(b"not a DICOM file", prefix="predictions")
    assert junk.sha256 == hashlib.sha256(b"not a DICOM file").hexdigest()
    key = case.study_uid.encode()
    ensure_topics(kafka_bootstrap, [TopicSpec(topic.name, topic.partitions)])
    producer = Producer(kafka_connection(kafka_bootstrap))
    producer.produce(topic.name, key=key, value=b"not the wire format")  # same key: one partition, in order
    assert producer.flush(30) == 0
    publish(kafka_bootstrap, registry_url, topic, [_prediction(case, seg, sha256="0" * 64), _prediction(case, junk)])
    group = f"dead-{suffix}"
    consumer = Consumer({**kafka_connection(kafka_bootstrap), "group.id": group, "auto.offset.reset": "earliest",
                         "enable.auto.commit": False})
    consumer.subscribe([topic.name])
    try:
        stats = follow.follow(spark, first_two_runs["job"], consumer, EventSerde(topic, registry_client(registry_url)),
                              lambda events: None, handle=partial(follow.handle_segmentations, read=lake["store"].get),
                              dead_letter=_dead_letters(kafka_bootstrap), idle_exit_s=8, max_messages=3)
    finally:
        consumer.close()
    assert (stats.messages, stats.dead_lettered, stats.retries) == (3, 3, 0)
    [partition] = _committed(kafka_bootstrap, group, topic.name)
    assert _committed(kafka_bootstrap, group, topic.name) == {partition: 3}

    reader = Consumer({**kafka_connection(kafka_bootstrap), "group.id": f"dlq-{suffix}",
                       "auto.offset.reset": "earliest", "enable.auto.commit": False})
    reader.subscribe([DEAD_LETTER])
    mine, deadline = [], time.monotonic() + 60
    try:
        while len(mine) < 3 and time.monotonic() < deadline:
            msg = reader.poll(1.0)
            if msg is not None and not msg.error() and dict(msg.headers() or ())[DLQ_SOURCE_TOPIC] == topic.name.encode():
                mine.append(msg)
    finally:
        reader.close()
    letters = {int(dict(m.headers())[DLQ_SOURCE_OFFSET]): m for m in mine}
    assert sorted(letters) == [0, 1, 2]
    assert {o: dict(m.headers())[DLQ_REASON] for o, m in letters.items()} == {
        0: b"SCHEMA_VIOLATION", 1: b"CLAIM_CHECK_MISMATCH", 2: b"UNREADABLE_INPUT"}
    assert letters[0].value() == b"not the wire format"
    for offset, msg in letters.items():
        headers = dict(msg.headers())
        assert msg.key() == key
        assert (headers[DLQ_STAGE], headers[DLQ_SOURCE_PARTITION]) == (b"radiomics", str(partition).encode())
        assert 0 < len(headers[DLQ_MESSAGE]) <= 1000
    # the events' bytes are unchanged: they still decode to the events that were published
    serde = EventSerde(topic, registry_client(registry_url))
    assert serde.deserialize(letters[1].value()).data.seg.sha256 == "0" * 64
    assert serde.deserialize(letters[2].value()).data.seg.uri == junk.uri


def test_no_event_is_lost_between_the_gold_write_and_the_publish(spark, lake, first_two_runs):
    """The outbox: a publish that fails leaves the events staged, and a run that died between the gold
    write and the outbox write (simulated by deleting an outbox row) is made good by the next run, with
    the same event id. Each event is then published once; a further run publishes nothing."""


    job = replace(first_two_runs["job"], settings=settings_from_mapping(
        {"aggregations": ["3D"], "discretisation": {"bin_number": 8}}))
    staged = radiomics_job.run(spark, job).events
    assert {e.data.study_uid for e in staged} == {lake["a"].study_uid, lake["b"].study_uid}

    def broker_down(events: list) -> None:
        raise RuntimeError("Kafka did not acknowledge every event")

    with pytest.raises(RuntimeError):
        radiomics_job.publish_outbox(spark, job, broker_down)
    outbox = DeltaTable.forPath(spark, job.path(RADIOMICS_EVENTS))
    mine = f"settings_hash = '{job.settings_hash}'"
    assert outbox.toDF().where(f"{mine} AND published_at IS NULL").count() == 2
    outbox.delete(f"{mine} AND study_uid = '{lake['b'].study_uid}'")  # as if the run died before staging B

    again = radiomics_job.run(spark, job)
    assert (again.pending_rois, [e.data.study_uid for e in again.events]) == (0, [lake["b"].study_uid])
    published: list = []
    radiomics_job.publish_outbox(spark, job, published.extend)
    assert sorted(e.event_id for e in published) == sorted(e.event_id for e in staged)
    assert outbox.toDF().where(f"{mine} AND published_at IS NULL").count() == 0

    radiomics_job.run(spark, job)
    assert radiomics_job.publish_outbox(spark, job, published.extend) == ()
    assert len(published) == 2


def test_series_geometry_from_silver_gives_the_same_features(spark, lake, first_two_runs):
    """With ``silver/series`` present (built here by the silver job's own row rule), the job reads it."""


    case = lake["b"]
    bronze_rows = [r.asDict() for r in spark.read.format("delta").load(tables.table_path(lake["lake"], BRONZE_INSTANCES))
                   .where(f"series_uid = '{case.series_uid}'").collect()]
    row, conflicts = silver.series_row(bronze_rows, datetime.now(timezone.utc))
    assert conflicts == [] and row["reconstructable"]
    path = tables.table_path(lake["lake"], SILVER_SERIES)
    tables.ensure(spark, path, SILVER_SERIES)
    tables.merge(spark, tables.frame(spark, [row], SILVER_SERIES), path, SILVER_SERIES)
    settings = settings_from_mapping({"aggregations": ["3D"], "families": ["morphology", "intensity_statistics"]})
    job = replace(first_two_runs["job"], settings=settings, geometry="silver",
                  where=f"study_uid = '{case.study_uid}' AND roi = 'nodule'")  # other tests add ROIs to the study
    result = radiomics_job.run(spark, job)
    assert (result.computed_rois, result.failed_rois) == (1, 0)
    got = _features(spark, job, case, "nodule", settings.digest())
    direct = {v.name: v.value for v in compute_features(case.image.astype(float), case.mask, case.spacing, settings)}
    np.testing.assert_allclose([got[n] for n in direct], list(direct.values()), rtol=1e-12, equal_nan=True)
