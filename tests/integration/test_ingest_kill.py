"""kill -9 NiFi in the middle of an upload, restart it, resume the upload: every instance is stored once and
has exactly one event id (a redelivered event carries the same id)."""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import defaultdict

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from infra import stack
from lake_schemas.topics import INSTANCE_RECEIVED, QUARANTINED, STUDY_MANIFEST
from nifi import providers
from nifi.edge import journal
from nifi.edge.client import Uploader, plan, wait_until_listening
from nifi.edge.errors import UploadError
from nifi.edge.reconcile import read_provider_events
from platform_layer.kafka import connection as kafka_connection
from platform_layer.object_store import ObjectStore
from platform_layer.registration import register, schema_admin
from platform_layer.settings import Settings
from platform_layer.tls import ca_file
from radlake.synthetic import phi_dicom

pytestmark = pytest.mark.integration

STUDIES, SLICES = 20, 50  # 1,000 instances, 20 per request


def test_kill_nifi_mid_upload_then_resume(settings, vault, nifi_url, kafka_bootstrap, registry_url, tmp_path):
    run = uuid.uuid4().hex[:6]
    provider = f"k{run}"
    names = {"instance_topic": f"test.kill.instances.{run}", "quarantine_topic": f"test.kill.quarantined.{run}",
             "manifest_topic": f"test.kill.manifests.{run}"}
    contracts = (INSTANCE_RECEIVED.with_name(names["instance_topic"]), QUARANTINED.with_name(names["quarantine_topic"]),
                 STUDY_MANIFEST.with_name(names["manifest_topic"]))
    admin = AdminClient(kafka_connection(kafka_bootstrap))
    for future in admin.create_topics([NewTopic(t.name, 3, 1) for t in contracts]).values():
        future.result(timeout=30)
    register(schema_admin(Settings()), contracts)

    data = tmp_path / "upload"
    data.mkdir()
    for study in range(STUDIES):
        datasets, _ = phi_dicom.ct_series(SLICES, patient=phi_dicom.Patient(patient_id=f"MRN{run}{study}"),
                                          study=500 + study, size=32)
        for n, ds in enumerate(datasets):
            (data / f"{study}-{n}.dcm").write_bytes(phi_dicom.to_bytes(ds))
    the_plan = plan([data], max_instances=20)
    journal_path = tmp_path / "journal.jsonl"

    edge = providers.add(settings, provider, f"kill-{run}", topics=names)
    try:
        wait_until_listening(edge.url, 120, verify=ca_file(settings))
        token = providers.endpoint_token(settings, provider)
        failure: list[BaseException] = []

        def first_attempt() -> None:
            uploader = Uploader(edge.url, token, journal_path, verify=ca_file(settings), attempts=2, backoff_s=0.2,
                                on_progress=lambda _: None)
            try:
                uploader.upload(the_plan, "c0ffee00c0ffee00")
            except UploadError as err:
                failure.append(err)
            finally:
                uploader.close()

        nifi = stack.component("nifi", settings)
        pid = nifi.pid()
        assert pid is not None
        group = os.getpgid(pid)
        thread = threading.Thread(target=first_attempt)
        thread.start()
        deadline = time.monotonic() + 300
        while len(journal.load(journal_path).acks) < 10 and thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.2)
        os.kill(pid, signal.SIGKILL)  # mid-upload: a request is in flight
        thread.join(timeout=120)
        assert failure, "the upload should have failed while NiFi was down"
        acked_before = len(journal.load(journal_path).acks)
        assert 10 <= acked_before < len(the_plan.units)
        try:  # the killed JVM's Python processors, started by this test's stack, go too
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass

        nifi.start()
        wait_until_listening(edge.url, 240, verify=ca_file(settings))
        resumed: list[str] = []
        uploader = Uploader(edge.url, token, journal_path, verify=ca_file(settings), on_progress=resumed.append)
        try:
            records = uploader.upload(the_plan, "c0ffee00c0ffee00")
        finally:
            uploader.close()
        assert len(resumed) == len(the_plan.units) - acked_before  # acknowledged units were not sent again

        outcomes = [o for r in records for o in r["outcomes"]]
        assert sum(1 for o in outcomes if o["status"] == "accepted") == STUDIES * SLICES
        events = read_provider_events(kafka_bootstrap, registry_url, contracts[0], provider)
        ids_per_sop: dict[str, set[str]] = defaultdict(set)
        for event in events:
            ids_per_sop[event.data.sop_instance_uid].add(event.event_id)
        assert len(ids_per_sop) == STUDIES * SLICES
        assert all(len(ids) == 1 for ids in ids_per_sop.values())  # redeliveries carry the same id
        assert {o["event_id"] for o in outcomes} == {i for ids in ids_per_sop.values() for i in ids}
        store = ObjectStore(settings.resolved_object_store_uri)
        assert all(store.exists(e.data.object_uri) for e in events)
    finally:
        providers.remove(settings, provider)
