"""The results bridge against the real stack: typed events produced to the result topics, real users of the realm
(device-flow login approved on Keycloak's pages) holding one project's reader role, Server-Sent Events read over
TLS, objects fetched with their claim-check verified, and the dashboard page in headless Chromium.

Each test makes its own projects (unique names): the bridge filters by project, so events other tests put on the
shared result topics never reach these users.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import json
import shutil
import socket
import ssl
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

import httpx
import nibabel as nib
import numpy as np
import pytest
from keycloak_browser import approve_device_code
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect as ws_connect

from apps import project as project_cli
from apps import user as user_cli
from lake_schemas.events import (
    FeaturesComputed,
    FeaturesComputedData,
    FeaturesComputedRoi,
    InstanceRef,
    PredictionCandidate,
    PredictionCreated,
    PredictionCreatedData,
    PredictionInput,
    PredictionModel,
    SeriesSummary,
    StoredDicom,
    StudyCompleted,
    StudyCompletedData,
)
from lake_schemas.tables import ERASURES
from lake_schemas.topics import FEATURES_COMPUTED, PREDICTION_CREATED, STUDY_COMPLETED
from platform_layer import governance, kafka
from platform_layer.deny_list import ErasedPatients
from platform_layer.device_authorization import poll_for_token
from platform_layer.endpoints import registry_url
from platform_layer.object_store import ObjectStore
from platform_layer.realm import cli_client
from platform_layer.registration import register, schema_admin
from platform_layer.serde import EventSerde, registry_client
from platform_layer.tls import ca_file

pytestmark = pytest.mark.integration

DEADLINE_S = 30.0  # generous: events reach a client in well under a second on an idle machine
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "img" / "results-dashboard.png"


def _quiet(main, argv: list[str]) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(argv) == 0
    return out.getvalue()


def _login(settings, name: str, password: str) -> str:
    with cli_client(settings) as client:
        authorization = client.start_device_authorization()
        approve_device_code(authorization.verification_uri_complete, name, password, ca_file=ca_file(settings),
                            new_password="a-long-Passphrase-2026")
        return poll_for_token(client.device_token, authorization).access_token


def _person(roles: list[str]) -> tuple[str, str]:
    name = f"dash-{uuid.uuid4().hex[:8]}"
    password = _quiet(user_cli.main, ["add", name, "--email", f"{name}@example.org"]).strip()
    for role in roles:
        _quiet(user_cli.main, ["grant", name, role])
    return name, password


@pytest.fixture(scope="module")
def people(settings, results_bridge) -> dict[str, str]:
    """Projects A and B, a person granted A's reader role ("token") and one with no role ("nobody")."""
    a, b = f"rb-a-{uuid.uuid4().hex[:6]}", f"rb-b-{uuid.uuid4().hex[:6]}"
    _quiet(project_cli.main, ["create", a])
    _quiet(project_cli.main, ["create", b])
    reader, nobody = _person([f"project:{a}:reader"]), _person([])
    return {"a": a, "b": b, "token": _login(settings, *reader), "nobody": _login(settings, *nobody)}


class Publisher:
    """Produces typed events to the stack's result topics (registry serde, as the administrator)."""

    def __init__(self, settings, bootstrap: str) -> None:
        register(schema_admin(settings), (STUDY_COMPLETED, PREDICTION_CREATED, FEATURES_COMPUTED))
        registry = registry_client(registry_url(settings))
        self.serdes = {t.event_class: EventSerde(t, registry) for t in (STUDY_COMPLETED, PREDICTION_CREATED,
                                                                        FEATURES_COMPUTED)}
        self.producer = kafka.producer(bootstrap, client_id="test-results-bridge")
        self.bootstrap = bootstrap
        self.store = ObjectStore(settings.resolved_object_store_uri)

    def publish(self, *events) -> None:
        kafka.produce_all(self.producer, [kafka.Outgoing(self.serdes[type(e)].topic.name,
                                                         self.serdes[type(e)].serialize(e), e.key.encode())
                                          for e in events], timeout_s=30)

    def publish_aborted(self, *events) -> None:
        """The events written in a transaction that is then aborted."""
        producer = kafka.transactional_producer(self.bootstrap, transactional_id=f"test-bridge-{uuid.uuid4().hex[:8]}")
        producer.init_transactions(30)
        producer.begin_transaction()
        for e in events:
            producer.produce(self.serdes[type(e)].topic.name, self.serdes[type(e)].serialize(e), e.key.encode())
        producer.flush(30)
        producer.abort_transaction(30)

    def study(self, project: str, cam_peak: tuple[int, int, int] = (6, 8, 5), score: float = 0.63,
              model: tuple[str, int] = ("nodule-cnn", 3), features: int = 107, patient: str = "RL-test"):
        """A completed study, its prediction (SEG, SR and a Grad-CAM map stored) and its features."""
        uid = f"2.25.{uuid.uuid4().int}"
        ref = InstanceRef(sop_instance_uid=f"2.25.{uuid.uuid4().int}", object_uri="file:///unused.dcm",
                          sha256="a" * 64)
        completed = StudyCompleted(provider="h1", data=StudyCompletedData(
            project=project, pseudo_patient_id=patient, study_uid=uid, study_version=1,
            completion_reason="manifest", providers=("h1",), instance_count=1, event_ids=("e1",),
            series=(SeriesSummary(series_uid=f"2.25.{uuid.uuid4().int}", modality="CT", instance_count=1,
                                  instances=(ref,)),)))
        seg = self.store.put(f"SEG of {uid}".encode() + uuid.uuid4().bytes, f"results-test/{project}/seg")
        sr = self.store.put(f"SR of {uid}".encode() + uuid.uuid4().bytes, f"results-test/{project}/sr")
        cam = self.store.put(_gradcam(cam_peak), f"results-test/{project}/gradcam", ".nii.gz")
        prediction = PredictionCreated(provider="h1", data=PredictionCreatedData(
            project=project, pseudo_patient_id=patient, study_uid=uid, study_version=1,
            series_uid=completed.data.series[0].series_uid, source_event_id=completed.event_id,
            model=PredictionModel(name=model[0], version=model[1], stage="Production", weights_sha256="c" * 64),
            inputs=(PredictionInput(sop_instance_uid=ref.sop_instance_uid, sha256=ref.sha256),),
            candidates=(PredictionCandidate(finding_id=1, centre_mm=(1.0, 2.0, 3.0), centre_voxel=(4.0, 5.0, 6.0),
                                            diameter_mm=8.5, probability=0.9, malignancy_probability=0.7,
                                            segment_number=1, gradcam_uri=cam.uri, gradcam_sha256=cam.sha256),),
            malignancy_score=score, threshold=0.4, positive=score >= 0.4,
            seg=StoredDicom(uri=seg.uri, sha256=seg.sha256, sop_instance_uid=f"2.25.{uuid.uuid4().int}"),
            sr=StoredDicom(uri=sr.uri, sha256=sr.sha256, sop_instance_uid=f"2.25.{uuid.uuid4().int}"),
            latency_ms=812.5, batch_studies=1, worker_id="w1", device="cpu"))
        features = FeaturesComputed(provider="h1", data=FeaturesComputedData(
            project=project, pseudo_patient_id=patient, study_uid=uid, settings_hash="1" * 64,
            code_version="test", table="gold/radiomics_features", table_version=1, run_id="r1",
            source_event_id=completed.event_id,
            rois=(FeaturesComputedRoi(series_uid=completed.data.series[0].series_uid, roi="nodule-1",
                                      mask_sha256="2" * 64, status="computed", feature_count=features, reason=None),)))
        return completed, prediction, features


def _gradcam(peak: tuple[int, int, int]) -> bytes:
    z, y, x = np.mgrid[0:12, 0:16, 0:10]
    volume = np.exp(-((z - peak[0]) ** 2 + (y - peak[1]) ** 2 + (x - peak[2]) ** 2) / 8.0).astype(np.float32)
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as gz:
        gz.write(nib.Nifti1Image(volume, np.eye(4)).to_bytes())
    return buffer.getvalue()


class EventStream:
    """An SSE client on a thread of its own: parses frames into ``events`` ({id, event, data}) as they come."""

    def __init__(self, base_url: str, context: ssl.SSLContext, token: str, *, params: dict | None = None,
                 last_event_id: str | None = None) -> None:
        self.events: list[dict] = []
        self.opened = threading.Event()
        self.status: int | None = None
        self._response: httpx.Response | None = None
        self._client = httpx.Client(base_url=base_url, verify=context, timeout=httpx.Timeout(10.0, read=None))
        headers = {"Authorization": f"Bearer {token}", "Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        self._request = self._client.build_request("GET", "/events", params=params or {}, headers=headers)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        with contextlib.suppress(httpx.HTTPError, OSError):
            response = self._response = self._client.send(self._request, stream=True)
            self.status = response.status_code
            self.opened.set()
            frame: dict[str, str] = {}
            for line in response.iter_lines():
                if not line:
                    if "data" in frame:
                        self.events.append({**frame, "data": json.loads(frame["data"])})
                    frame = {}
                elif not line.startswith(":"):
                    field, _, value = line.partition(": ")
                    frame[field] = value
        self.opened.set()

    def wait_for(self, predicate, what: str, deadline_s: float = DEADLINE_S) -> list[dict]:
        deadline = time.monotonic() + deadline_s
        while time.monotonic() < deadline:
            found = [e for e in list(self.events) if predicate(e)]
            if found:
                return found
            time.sleep(0.1)
        raise AssertionError(f"no {what} within {deadline_s:.0f}s; got {[e['event'] for e in self.events]}")

    def close(self) -> None:
        """Shut the socket down first, so the reading thread wakes and ends before its descriptor is released: a
        descriptor closed under a blocked reader is reused by the next connection, whose bytes that reader would
        then take."""
        stream = getattr(self, "_response", None)
        sock = stream.extensions["network_stream"].get_extra_info("socket") if stream is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(10)
        self._client.close()


def _study_of(event: dict) -> str:
    return event["data"]["data"]["study_uid"]


@pytest.fixture(scope="module")
def tls(settings) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file(settings)))


@pytest.fixture(scope="module")
def publisher(settings, kafka_bootstrap) -> Publisher:
    return Publisher(settings, kafka_bootstrap)


def test_a_reader_of_project_a_receives_its_results_live_and_never_project_bs(results_bridge, people, tls,
                                                                              publisher):
    stream = EventStream(results_bridge, tls, people["token"])
    try:
        assert stream.opened.wait(DEADLINE_S) and stream.status == 200
        time.sleep(0.5)  # the subscription is registered before the response starts; this only spares a race in httpx
        b_events = publisher.study(people["b"])
        a_events = publisher.study(people["a"])
        aborted = publisher.study(people["a"])
        publisher.publish_aborted(*aborted)  # read_committed: never delivered
        publisher.publish(*b_events)  # B's first: had they been delivered, they would be there before A's
        publisher.publish(*a_events)
        a_study = a_events[0].data.study_uid
        for kind in ("study.completed", "prediction.created", "features.computed"):
            stream.wait_for(lambda e, kind=kind: e["event"] == kind and _study_of(e) == a_study, f"{kind} of A")
        received = list(stream.events)
        assert {e["data"]["data"]["project"] for e in received} == {people["a"]}
        assert b_events[0].data.study_uid not in {_study_of(e) for e in received}
        assert aborted[0].data.study_uid not in {_study_of(e) for e in received}
        # ids are the events' coordinates: <topic>/<partition>/<offset>
        topic, partition, offset = received[0]["id"].split("/")
        assert topic in {STUDY_COMPLETED.name, PREDICTION_CREATED.name, FEATURES_COMPUTED.name}
        assert int(partition) >= 0 and int(offset) >= 0
    finally:
        stream.close()


def test_the_websocket_carries_the_same_filtered_events(results_bridge, people, tls, publisher):
    url = results_bridge.replace("https://", "wss://") + "/ws"
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    b_events, a_events = publisher.study(people["b"]), publisher.study(people["a"])
    publisher.publish(*b_events, *a_events)
    query = urlencode({"access_token": people["token"], "since": since, "topics": "prediction"})
    received = []
    with ws_connect(f"{url}?{query}", ssl=tls, open_timeout=DEADLINE_S) as ws:
        deadline = time.monotonic() + DEADLINE_S
        while not any(m["data"]["data"]["study_uid"] == a_events[0].data.study_uid for m in received):
            assert time.monotonic() < deadline, f"no prediction of A over the WebSocket; got {received}"
            with contextlib.suppress(TimeoutError):
                received.append(json.loads(ws.recv(timeout=1)))
    assert {m["type"] for m in received} == {"prediction.created"}
    assert {m["data"]["data"]["project"] for m in received} == {people["a"]}
    with pytest.raises(InvalidStatus), ws_connect(url, ssl=tls, open_timeout=DEADLINE_S):
        pass  # no token: refused before the upgrade


def test_a_late_dashboard_replays_from_a_time_and_resumes_after_its_last_event_id(results_bridge, people, tls,
                                                                                  publisher):
    before = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    first, second = publisher.study(people["a"]), publisher.study(people["a"])
    b_events = publisher.study(people["b"])
    publisher.publish(*first, *b_events, *second)
    studies = {first[0].data.study_uid, second[0].data.study_uid}

    replay = EventStream(results_bridge, tls, people["token"], params={"since": before, "topics": "prediction"})
    try:
        got = replay.wait_for(lambda e: _study_of(e) in studies, "replayed predictions")
        replay.wait_for(lambda e: _study_of(e) == second[0].data.study_uid, "the second prediction")
        got = [e for e in replay.events if _study_of(e) in studies]
        assert {e["event"] for e in got} == {"prediction.created"}  # ?topics= narrows the stream
        assert len(got) == 2  # each once
        assert all(e["data"]["data"]["project"] == people["a"] for e in replay.events)
        first_id = next(e["id"] for e in got if _study_of(e) == first[0].data.study_uid)
    finally:
        replay.close()

    # a reconnecting EventSource sends the last id it saw: the stream goes on after it
    resumed = EventStream(results_bridge, tls, people["token"], params={"topics": "prediction"},
                          last_event_id=first_id)
    try:
        resumed.wait_for(lambda e: _study_of(e) == second[0].data.study_uid, "the prediction after the last id")
        assert first_id not in {e["id"] for e in resumed.events}
        assert all(e["data"]["data"]["project"] == people["a"] for e in resumed.events)
    finally:
        resumed.close()


def test_an_erased_patients_results_are_never_delivered_again(results_bridge, people, tls, publisher, settings):
    before = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    patient = f"RL-ERASED-{uuid.uuid4().hex[:12]}"
    erased, kept = publisher.study(people["a"], patient=patient), publisher.study(people["a"])
    now = datetime.now(UTC)
    # the deny-list record `radlake erase` writes (the topics keep the patient's events until retention)
    governance.write_rows(settings, ERASURES, [{
        "erasure_id": uuid.uuid4().hex[:24], "project": people["a"], "provider": "h1", "pseudonym": patient,
        "studies": [erased[0].data.study_uid], "objects": [], "runs": 1, "state": "complete",
        "requested_by": "test", "first_run_at": now, "last_run_at": now, "report": None}])
    time.sleep(ErasedPatients(settings).refresh_s + 0.5)  # the bridge reads the deny list again after this
    publisher.publish(*erased, *kept)
    replay = EventStream(results_bridge, tls, people["token"], params={"since": before})
    try:
        replay.wait_for(lambda e: _study_of(e) == kept[0].data.study_uid and e["event"] == "features.computed",
                        "the other patient's last event")
        assert erased[0].data.study_uid not in {_study_of(e) for e in replay.events}
    finally:
        replay.close()


def test_objects_are_served_verified_to_their_projects_readers_only(results_bridge, people, tls, publisher,
                                                                    settings):
    a_events, b_events = publisher.study(people["a"]), publisher.study(people["b"])
    publisher.publish(*a_events, *b_events)
    a_pred, b_pred = a_events[1].data, b_events[1].data
    bearer = {"Authorization": f"Bearer {people['token']}"}
    with httpx.Client(base_url=results_bridge, verify=tls, timeout=10) as client:
        deadline = time.monotonic() + DEADLINE_S  # the hub indexes the prediction when it reads it
        while (answer := client.get("/objects", params={"uri": a_pred.seg.uri}, headers=bearer)).status_code == 404:
            assert time.monotonic() < deadline, "the bridge never indexed A's prediction"
            time.sleep(0.2)
        assert answer.status_code == 200, answer.text
        assert hashlib.sha256(answer.content).hexdigest() == a_pred.seg.sha256
        assert answer.headers["x-content-sha256"] == a_pred.seg.sha256
        by_hash = client.get("/objects", params={"sha256": a_pred.sr.sha256}, headers=bearer)
        assert by_hash.status_code == 200 and hashlib.sha256(by_hash.content).hexdigest() == a_pred.sr.sha256
        thumbnail = client.get("/objects/thumbnail", params={"uri": a_pred.candidates[0].gradcam_uri}, headers=bearer)
        assert thumbnail.status_code == 200 and thumbnail.content.startswith(b"\x89PNG")

        while (refused := client.get("/objects", params={"uri": b_pred.seg.uri}, headers=bearer)).status_code == 404:
            assert time.monotonic() < deadline, "the bridge never indexed B's prediction"
            time.sleep(0.2)
        assert refused.status_code == 403
        assert client.get("/objects", params={"uri": a_pred.seg.uri}).status_code == 401
        no_role = {"Authorization": f"Bearer {people['nobody']}"}  # a real user of the realm, granted nothing
        assert client.get("/objects", params={"uri": a_pred.seg.uri}, headers=no_role).status_code == 403
        assert client.get("/events", headers=no_role).status_code == 403
        assert client.get("/objects", params={"uri": a_pred.seg.uri},
                          headers={"Authorization": "Bearer not.a.token"}).status_code == 401

        # bytes that no longer match their claim-check are refused, not served
        tampered = publisher.study(people["a"])
        publisher.publish(*tampered)
        path = Path(tampered[1].data.sr.uri.removeprefix("file://"))
        path.chmod(0o600)
        path.write_bytes(b"changed after the event was written")
        while (broken := client.get("/objects", params={"uri": tampered[1].data.sr.uri},
                                    headers=bearer)).status_code == 404:
            assert time.monotonic() < deadline + DEADLINE_S, "the bridge never indexed the third prediction"
            time.sleep(0.2)
        assert broken.status_code == 502 and "claim-check" in broken.json()["error"]


def _chromium() -> str:
    found = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(found).exists():
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    return found


def test_the_dashboard_shows_a_published_prediction(results_bridge, people, publisher):
    sync_api = pytest.importorskip("playwright.sync_api")
    completed, prediction, features = publisher.study(people["a"])
    earlier = [publisher.study(people["a"], cam_peak=(3 + i, 5 + 2 * i, 3 + i), score=score, features=count)
               for i, (score, count) in enumerate([(0.12, 96), (0.81, 112), (0.34, 101)])]
    publisher.publish(*(e for study in earlier for e in study))
    since = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    with sync_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=_chromium(), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            # the platform CA is not in Chromium's store; the test trusts it by ignoring certificate errors
            page = browser.new_page(ignore_https_errors=True, viewport={"width": 1280, "height": 720})
            # ?since= replays the last minute (the three earlier studies), then the page stays live
            page.goto(f"{results_bridge}/?{urlencode({'since': since})}#access_token={people['token']}")
            page.wait_for_selector("#status.live", timeout=DEADLINE_S * 1000)
            publisher.publish(completed, prediction, features)
            row = page.locator(f'tr[data-study="{completed.data.study_uid}"]')
            row.locator(".pred").wait_for(timeout=DEADLINE_S * 1000)
            assert "nodule-cnn v3" in row.inner_text()
            assert "0.630" in row.inner_text()
            page.wait_for_function(
                f"""() => {{ const img = document.querySelector('tr[data-study="{completed.data.study_uid}"] img');
                             return img && img.complete && img.naturalWidth > 0; }}""", timeout=DEADLINE_S * 1000)
            page.wait_for_timeout(2100)  # the new row's highlight fades: the screenshot shows the steady page
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            browser.close()
