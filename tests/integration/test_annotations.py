"""Annotations end to end on the real stack: a provider uploads a CT study through its NiFi edge, then a DICOM SEG,
an RTSTRUCT and a Comprehensive SR that reference it (as an expert annotation workflow sends them, with the
study's PHI in their headers). They are de-identified by the same engine with the same key, so every reference
is the pseudonymous UID of an uploaded image; announced as ``annotation received``; landed in silver
``annotations``; and the SEG and the RTSTRUCT become radiomics ROIs with computed features."""

from __future__ import annotations

import io
import uuid
from functools import partial

import numpy as np
import pydicom
import pytest
from confluent_kafka import Consumer
from deltalake import DeltaTable
from edge_topics import edge_topics

from lake_schemas.radiomics_tables import RADIOMICS_FEATURES, ROIS
from lake_schemas.tables import SILVER_ANNOTATIONS, SILVER_SERIES
from lake_schemas.topics import STUDY_COMPLETED
from nifi import providers
from nifi.edge.client import Uploader, plan, upload_id_for, wait_until_listening
from nifi.edge.reconcile import read_provider_events
from platform_layer import kafka
from platform_layer.kafka import connection as kafka_connection
from platform_layer.object_store import ObjectStore
from platform_layer.registration import register, schema_admin
from platform_layer.serde import EventSerde, registry_client
from platform_layer.settings import Settings
from platform_layer.tls import ca_file
from radlake.annotations import referenced_series_uids, referenced_sop_instance_uids
from radlake.radiomics.settings import settings_from_mapping
from radlake.synthetic import annotations
from radlake.synthetic.dicom_series import ct_series
from spark_jobs import radiomics_follow as follow
from spark_jobs import radiomics_job, tables
from spark_jobs.pipeline import start_pipeline

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
PROVIDER = f"t{RUN}-ann"
PROJECT = f"annotations-{RUN}"
PHI = {"PatientName": "Hansen^Kari", "PatientID": f"MRN{RUN}", "AccessionNumber": f"ACC{RUN}",
       "ReferringPhysicianName": "Berg^Ola"}
CENTRE, RADIUS = (4, 16, 15), 3.2


@pytest.fixture(scope="module")
def topics(kafka_bootstrap, registry_url):
    return edge_topics(kafka_bootstrap, f"test.annotations.{RUN}")


@pytest.fixture(scope="module")
def edge(settings, vault, nifi_url, registry_url, topics):
    names, _ = topics
    deployed = providers.add(settings, PROVIDER, PROJECT, topics=names)
    try:
        yield deployed
    finally:
        providers.remove(settings, PROVIDER)


@pytest.fixture(scope="module")
def uploaded(settings, edge, topics, tmp_path_factory, kafka_bootstrap, registry_url):
    """The study uploaded first, its annotations in a second upload; the events and stored objects of both."""
    _, contracts = topics
    root = tmp_path_factory.mktemp("annotated-study")
    image = np.full((9, 32, 32), -650, dtype=np.int16)
    z, y, x = np.ogrid[: image.shape[0], : image.shape[1], : image.shape[2]]
    lesion = (z - CENTRE[0]) ** 2 + (y - CENTRE[1]) ** 2 + (x - CENTRE[2]) ** 2 <= RADIUS**2
    image[lesion] = 40 + np.broadcast_to(y + x, image.shape)[lesion] % 7  # a textured lesion where it is annotated
    images = ct_series(image, (2.0, 0.8, 0.8), attributes=PHI)
    source = [pydicom.dcmread(io.BytesIO(b)) for b in images]
    (root / "study").mkdir()
    for n, data in enumerate(images):
        (root / "study" / f"{n}.dcm").write_bytes(data)
    (root / "annotations").mkdir()
    objects = {"seg": annotations.seg(source, annotations.sphere_mask(source, CENTRE, RADIUS)),
               "rtstruct": annotations.rtstruct(source, CENTRE, RADIUS),
               "sr": annotations.comprehensive_sr(source)}
    for name, data in objects.items():
        (root / "annotations" / f"{name}.dcm").write_bytes(data)
    ca = str(ca_file(Settings()))
    wait_until_listening(edge.url, verify=ca)
    uploader = Uploader(edge.url, providers.endpoint_token(settings, PROVIDER), root / "journal.jsonl", verify=ca,
                        on_progress=lambda line: None)
    for folder in ("study", "annotations"):
        uploader.upload(plan([root / folder]), upload_id_for([root / folder], PROVIDER))
    instances = read_provider_events(kafka_bootstrap, registry_url, contracts[0], PROVIDER)
    found = read_provider_events(kafka_bootstrap, registry_url, contracts[3], PROVIDER)
    quarantined = read_provider_events(kafka_bootstrap, registry_url, contracts[1], PROVIDER)
    return {"source": source, "instances": instances, "annotations": found, "quarantined": quarantined,
            "store": ObjectStore(settings.resolved_object_store_uri)}


def test_annotations_are_announced_on_their_own_topic(uploaded):
    assert uploaded["quarantined"] == []
    assert len(uploaded["instances"]) == 9
    assert sorted(e.data.annotation_kind for e in uploaded["annotations"]) == ["rtstruct", "seg", "sr"]
    assert {e.data.modality for e in uploaded["instances"]} == {"CT"}  # no annotation on the image topic


def test_references_resolve_to_the_pseudonymised_images(uploaded):
    images = uploaded["instances"]
    series = {e.data.series_uid for e in images}
    sops = {e.data.sop_instance_uid for e in images}
    (study,) = {e.data.study_uid for e in images}
    (patient,) = {e.data.pseudo_patient_id for e in images}
    originals = {str(ds.SOPInstanceUID) for ds in uploaded["source"]} | {str(uploaded["source"][0].SeriesInstanceUID)}
    for event in uploaded["annotations"]:
        assert event.data.study_uid == study and event.data.pseudo_patient_id == patient
        assert set(event.data.referenced_series_uids) == series
        assert event.data.frame_of_reference_uid in (None, images[0].data.frame_of_reference_uid)
        ds = pydicom.dcmread(io.BytesIO(uploaded["store"].get(event.data.object_uri, event.data.sha256)))
        references = set(referenced_sop_instance_uids(ds))
        assert references & sops and references <= sops | {study}, event.data.annotation_kind
        assert set(referenced_series_uids(ds)) == series
        assert references.isdisjoint(originals)  # nothing of the provider's UIDs is left
        text = str(ds)
        for value in PHI.values():
            for token in value.split("^"):
                assert token not in text, (event.data.annotation_kind, token)


@pytest.fixture(scope="module")
def lake(spark, uploaded, topics, kafka_bootstrap, tmp_path_factory):
    """The edge's topics landed in a lake of the test's own (bronze, silver, silver annotations)."""
    _, contracts = topics
    completed = STUDY_COMPLETED.with_name(f"test.annotations.{RUN}.completed")
    kafka.ensure_topics(kafka_bootstrap, [kafka.TopicSpec(completed.name, completed.partitions)])
    register(schema_admin(Settings()), (completed,))
    root = str(tmp_path_factory.mktemp("annotations-lake"))
    start_pipeline(spark, bootstrap=kafka_bootstrap, lake_uri=root, instances_topic=contracts[0].name,
                   completed_topic=completed.name, annotations_topic=contracts[3].name,
                   checkpoints=f"{root}/_checkpoints", available_now=True)
    return root


def test_silver_holds_one_row_per_annotation(lake, uploaded):
    rows = DeltaTable(tables.table_path(lake, SILVER_ANNOTATIONS)).to_pyarrow_table().to_pylist()
    by_event = {e.event_id: e for e in uploaded["annotations"]}
    assert sorted(r["event_id"] for r in rows) == sorted(by_event)
    series = {e.data.series_uid for e in uploaded["instances"]}
    for row in rows:
        event = by_event[row["event_id"]]
        assert (row["annotation_kind"], row["sha256"], row["object_uri"]) == (
            event.data.annotation_kind, event.data.sha256, event.data.object_uri)
        assert set(row["referenced_series_uids"]) == series and row["redelivered_count"] == 0
    [image_series] = DeltaTable(tables.table_path(lake, SILVER_SERIES)).to_pyarrow_table().to_pylist()
    assert image_series["instance_count"] == 9 and image_series["series_uid"] in series


def test_seg_and_rtstruct_become_rois_with_features(spark, lake, uploaded, topics, kafka_bootstrap, registry_url,
                                                    settings):
    _, contracts = topics
    job = radiomics_job.RadiomicsJob(lake, settings.resolved_object_store_uri,
                                     settings_from_mapping({"aggregations": ["3D"]}))
    serde = EventSerde(contracts[3], registry_client(registry_url))
    consumer = Consumer({**kafka_connection(kafka_bootstrap), "group.id": f"annotations-{RUN}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([contracts[3].name])
    announced, dead = [], []
    try:
        stats = follow.follow(spark, job, consumer, serde, announced.extend,
                              handle=partial(follow.handle_annotations, read=uploaded["store"].get),
                              dead_letter=dead.extend, idle_exit_s=8, max_messages=3)
    finally:
        consumer.close()
    assert (stats.messages, stats.dead_lettered) == (3, 0) and dead == []
    (series,) = {e.data.series_uid for e in uploaded["instances"]}
    rois = DeltaTable(tables.table_path(lake, ROIS)).to_pyarrow_table().to_pylist()
    by_kind = {e.data.annotation_kind: e for e in uploaded["annotations"]}
    expected = {f"{kind}:{by_kind[kind].data.sop_instance_uid}/lesion#1": (kind, by_kind[kind].data.sha256)
                for kind in ("seg", "rtstruct")}
    assert {r["roi"]: (r["mask_kind"], r["mask_sha256"]) for r in rois} == expected
    assert {r["series_uid"] for r in rois} == {series}
    assert len(announced) == 1  # one study
    assert {(r.roi, r.status) for r in announced[0].data.rois} == {(roi, "computed") for roi in expected}, \
        announced[0].data.rois
    features = DeltaTable(tables.table_path(lake, RADIOMICS_FEATURES)).to_pyarrow_table().to_pylist()
    assert {r["roi"] for r in features} == set(expected)
