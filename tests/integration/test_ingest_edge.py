"""Provider ingestion end to end: three providers' NiFi edges (real NiFi, Vault, Kafka, registry), concurrent
uploads with bad inputs, a STOW-RS peer (dicomweb-client), credentials, the drop folder, kill -9 + resume.
Edges speak HTTPS only: every client here verifies them against the platform CA."""

from __future__ import annotations

import hashlib
import io
import json
import ssl
import tarfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import hvac
import hvac.exceptions
import nipyapi
import pydicom
import pytest
import requests
from cryptography import x509
from dicomweb_client.api import DICOMwebClient
from edge_topics import edge_topics

from apps.ingest import main as report_main
from apps.project import main as project_cli
from apps.provider import main as provider_cli
from apps.quarantine import main as quarantine_cli
from nifi import providers
from nifi.edge.client import Uploader, plan, upload_id_for, wait_until_listening
from nifi.edge.errors import UploadError
from nifi.edge.handler import RADLAKE_REPORT
from nifi.edge.reconcile import read_provider_events
from nifi.edge.stow_rs import build_multipart_related
from nifi.edge.tokens import edge_vault_token, revoke_edge_tokens
from platform_layer import audit, endpoints
from platform_layer.object_store import ObjectStore
from platform_layer.settings import Settings
from platform_layer.tls import ca_file, vault_ca
from platform_layer.transit import at_rest_key_name
from radlake.deid.quarantine import read_records
from radlake.synthetic import phi_dicom

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
PROVIDERS = [f"t{RUN}-a", f"t{RUN}-b", f"t{RUN}-c"]
PROJECT = f"ingest-{RUN}"


def _ca() -> str:
    """The platform CA, which verifies every edge's certificate."""
    return str(ca_file(Settings()))


def _tls() -> ssl.SSLContext:
    return ssl.create_default_context(cafile=_ca())


def _dicomweb(url: str, token: str) -> DICOMwebClient:
    session = requests.Session()
    session.verify = _ca()
    session.trust_env = False  # else requests lets REQUESTS_CA_BUNDLE / CURL_CA_BUNDLE override the session's CA
    return DICOMwebClient(url=f"{url}/dicomweb", session=session, headers={"Authorization": f"Bearer {token}"})


@pytest.fixture(scope="module")
def topics(kafka_bootstrap, registry_url):
    return edge_topics(kafka_bootstrap, f"test.ingest.{RUN}")


@pytest.fixture(scope="module")
def edges(settings, vault, nifi_url, registry_url, topics):
    names, _ = topics
    deployed = {}
    try:
        for provider in PROVIDERS:
            deployed[provider] = providers.add(settings, provider, PROJECT, topics=names)
        yield deployed
    finally:
        for provider in deployed:
            providers.remove(settings, provider)


def _provider_data(root: Path, seed: int) -> Path:
    """A folder with a clean study, an archive with bad members, and loose bad files."""
    root.mkdir(parents=True)
    patient = phi_dicom.Patient(patient_id=f"MRN{seed}0001")
    study1, _ = phi_dicom.ct_series(6, patient=patient, study=10 * seed + 1, size=32)
    study2, _ = phi_dicom.ct_series(4, patient=patient, study=10 * seed + 2, size=32)
    files = [phi_dicom.to_bytes(ds) for ds in study1]
    (root / "loose").mkdir()
    for n, data in enumerate(files):
        (root / "loose" / f"{n}.dcm").write_bytes(data)
    (root / "loose" / "copy-of-0.dcm").write_bytes(files[0])  # duplicate: released once
    (root / "loose" / "cut.dcm").write_bytes(phi_dicom.truncated(files[1]))  # TRUNCATED_FILE
    (root / "loose" / "notes.txt").write_text("Patient Ola Nordmann\n")  # NOT_DICOM
    archived = [phi_dicom.to_bytes(ds) for ds in study2]
    changed = bytearray(archived[3])
    changed[-1] ^= 0xFF  # same SOP Instance UID, other bytes: both CONFLICTING_DUPLICATE
    (root / "study2.zip").write_bytes(phi_dicom.zip_archive(
        [(f"s2/{n}.dcm", data) for n, data in enumerate(archived)]
        + [("s2/changed.dcm", bytes(changed)), ("../../etc/evil.dcm", archived[0])]))
    (root / "broken.tar.gz").write_bytes(phi_dicom.tar_archive([("x.dcm", archived[0])])[:100])  # ARCHIVE_UNREADABLE
    return root


EXPECTED = {"accepted": 6 + 3, "duplicate": 1,
            "quarantined": {"TRUNCATED_FILE": 1, "NOT_DICOM": 1, "CONFLICTING_DUPLICATE": 2,
                            "ARCHIVE_PATH_TRAVERSAL": 1, "ARCHIVE_UNREADABLE": 1}}


def test_three_providers_upload_concurrently(settings, edges, topics, tmp_path, kafka_bootstrap, registry_url):
    names, contracts = topics
    results: dict[str, list[dict]] = {}
    errors: list[BaseException] = []

    def upload(provider: str, seed: int) -> None:
        try:
            data = _provider_data(tmp_path / provider, seed)
            edge = edges[provider]
            wait_until_listening(edge.url, verify=_ca())
            uploader = Uploader(edge.url, providers.endpoint_token(settings, provider),
                                tmp_path / f"{provider}.jsonl", verify=_ca(), on_progress=lambda line: None)
            try:
                results[provider] = uploader.upload(plan([data]), upload_id_for([data], provider))
            finally:
                uploader.close()
        except BaseException as err:  # noqa: BLE001 - re-raised in the test thread below
            errors.append(err)

    threads = [threading.Thread(target=upload, args=(p, n + 1)) for n, p in enumerate(PROVIDERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=400)
    assert not errors, errors

    store = ObjectStore(settings.resolved_object_store_uri)
    for provider in PROVIDERS:
        outcomes = [o for record in results[provider] for o in record["outcomes"]]
        statuses = {s: sum(1 for o in outcomes if o["status"] == s) for s in ("accepted", "duplicate")}
        reasons: dict[str, int] = {}
        for o in outcomes:
            if o["status"] == "quarantined":
                reasons[o["reason"]] = reasons.get(o["reason"], 0) + 1
        assert statuses == {"accepted": EXPECTED["accepted"], "duplicate": EXPECTED["duplicate"]}, provider
        assert reasons == EXPECTED["quarantined"], provider

        # events read back through the registry (deserialize validates against the registered schema)
        instances = read_provider_events(kafka_bootstrap, registry_url, contracts[0], provider)
        quarantined = read_provider_events(kafka_bootstrap, registry_url, contracts[1], provider)
        manifests = read_provider_events(kafka_bootstrap, registry_url, contracts[2], provider)
        accepted = [o for o in outcomes if o["status"] == "accepted"]
        assert {e.event_id for e in instances} == {o["event_id"] for o in accepted}
        assert len({e.data.sop_instance_uid for e in instances}) == len(accepted)
        for event in instances:  # one stored object each, matching its claim-check
            data = store.get(event.data.object_uri, event.data.sha256)
            assert hashlib.sha256(data).hexdigest() == event.data.sha256
            assert event.data.project == PROJECT and event.key == event.data.study_uid
        assert {e.event_id for e in quarantined} == {o["event_id"] for o in outcomes if o["status"] == "quarantined"}
        assert all(e.data.stage == "edge" and "Nordmann" not in e.model_dump_json() for e in quarantined)
        records = (settings.state_dir / "edge" / provider / "quarantine" / "quarantine.jsonl").read_text().splitlines()
        assert len(records) >= sum(EXPECTED["quarantined"].values())
        # at rest, originals are sealed and records keep no input name, original UID or message in the clear
        originals = [p.read_bytes() for p in (providers.edge_dir(settings, provider) / "quarantine" / "files").iterdir()
                     if p.suffix == ".bin"]
        assert originals and all(o.startswith(b"RLS1") and b"Nordmann" not in o for o in originals)
        assert all(set(json.loads(r)) == {"quarantined_at", "reason", "sha256", "stored_as", "provider", "sealed"}
                   for r in records)
        assert not any("evil.dcm" in r or "1.2.826.0.1.3680043" in r for r in records)
        # manifests name the same pseudonymous studies as the instances
        assert {m.data.study_uid for m in manifests} == {e.data.study_uid for e in instances}
        assert sorted(m.data.expected_instances for m in manifests) == [4, 6]

        status = report_main(["report", "--provider", provider, "--journal", str(tmp_path / f"{provider}.jsonl"),
                              "--instance-topic", names["instance_topic"], "--quarantine-topic",
                              names["quarantine_topic"], "--manifest-topic", names["manifest_topic"], "--json"])
        assert status == 0


def test_resumed_upload_sends_nothing_again(settings, edges, tmp_path):
    provider = PROVIDERS[0]
    data = _provider_data(tmp_path / "again", 7)
    edge = edges[provider]
    wait_until_listening(edge.url, verify=_ca())
    sent: list[str] = []
    uploader = Uploader(edge.url, providers.endpoint_token(settings, provider), tmp_path / "j.jsonl",
                        verify=_ca(), on_progress=sent.append)
    try:
        the_plan = plan([data])
        first = uploader.upload(the_plan, "5e5e5e5e5e5e5e5e")
        sent.clear()
        second = uploader.upload(the_plan, "5e5e5e5e5e5e5e5e")
    finally:
        uploader.close()
    assert sent == []  # every unit was in the journal
    assert [r["unit_id"] for r in first] == [r["unit_id"] for r in second]


def test_credentials_per_provider(settings, edges):
    a, b = edges[PROVIDERS[0]], edges[PROVIDERS[1]]
    wait_until_listening(a.url, verify=_ca())
    body = json.dumps({"upload_id": "0123456789abcdef", "study_uid": "1.2.3", "series": [{"series_uid": "1.2.3.4",
                                                                          "expected_instances": 1}]})
    b_token = providers.endpoint_token(settings, PROVIDERS[1])
    assert httpx.post(f"{a.url}/manifests", content=body, verify=_tls()).status_code == 401
    assert httpx.post(f"{a.url}/manifests", content=body, verify=_tls(),
                      headers={"Authorization": f"Bearer {b_token}"}).status_code == 403
    assert httpx.post(f"{b.url}/manifests", content=body, verify=_tls(),
                      headers={"Authorization": f"Bearer {b_token}"}).status_code == 200


def test_edges_speak_https_only_with_the_platforms_certificate(settings, edges, topics, kafka_bootstrap,
                                                               registry_url, tmp_path):
    """Plain HTTP gets no answer from the flow (nothing processed, no event); a client that does not trust the
    platform CA fails verification at once; one that does gets the edge's own answers."""
    _, contracts = topics
    provider = PROVIDERS[0]
    edge = edges[provider]
    wait_until_listening(edge.url, verify=_ca())
    auth = {"Authorization": f"Bearer {providers.endpoint_token(settings, provider)}"}

    def manifest(upload_id: str) -> bytes:
        return json.dumps({"upload_id": upload_id, "study_uid": "1.2.3",
                           "series": [{"series_uid": "1.2.3.4", "expected_instances": 1}]}).encode()

    # the edge's certificate: issued by the platform PKI for the edges' name and the loopback address
    served = _served(edge.port)
    assert served.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == providers.EDGE_NAME
    assert _ip_sans(served) == {"127.0.0.1"}

    plain_id, https_id = uuid.uuid4().hex, uuid.uuid4().hex
    try:
        plain = httpx.post(f"http://127.0.0.1:{edge.port}/manifests", content=manifest(plain_id), headers=auth,
                           timeout=10)
    except httpx.TransportError:
        pass  # no answer at all
    else:
        assert plain.status_code == 400, plain.status_code  # the TLS listener's own refusal, not the flow's answer
        assert "upload_id" not in plain.text and "radlake" not in plain.text.lower()

    with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):  # the system's trust store
        httpx.post(f"{edge.url}/manifests", content=manifest(uuid.uuid4().hex), headers=auth, timeout=10)
    started = time.monotonic()
    with pytest.raises(UploadError, match="does not verify"):
        wait_until_listening(edge.url, 60, verify=True)
    datasets, _ = phi_dicom.ct_series(1, study=95, size=32)
    (tmp_path / "one.dcm").write_bytes(phi_dicom.to_bytes(datasets[0]))
    uploader = Uploader(edge.url, auth["Authorization"].split()[1], tmp_path / "j.jsonl", verify=True, attempts=8,
                        backoff_s=5, on_progress=lambda line: None)
    try:
        with pytest.raises(UploadError, match="does not verify"):
            uploader.upload(plan([tmp_path]), uuid.uuid4().hex)
    finally:
        uploader.close()
    assert not (tmp_path / "j.jsonl").exists()
    assert time.monotonic() - started < 15  # not retried: a certificate that does not verify will not start to

    trusted = httpx.post(f"{edge.url}/manifests", content=manifest(https_id), headers=auth, timeout=30,
                         verify=_tls())
    assert trusted.status_code == 200, trusted.text
    ids = {e.data.upload_id for e in read_provider_events(kafka_bootstrap, registry_url, contracts[2], provider)}
    assert https_id in ids and plain_id not in ids


def _served(port: int, host: str = "127.0.0.1") -> x509.Certificate:
    return x509.load_pem_x509_certificate(ssl.get_server_certificate((host, port)).encode())


def _ip_sans(certificate: x509.Certificate) -> set[str]:
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return {str(a) for a in names.get_values_for_type(x509.IPAddress)}


def test_a_renewed_edge_certificate_reaches_every_edge(settings, edges, vault):
    """At two thirds of its life (here: forced) the edges' certificate is issued again as a new keystore file;
    following the stack hands it to every edge, which serves it at once, and the old keystore is deleted."""
    before = _served(edges[PROVIDERS[0]].port)
    renewed = providers.edge_keystore(settings, vault, renew=True)
    assert set(PROVIDERS) <= set(providers.follow_stack(settings))
    assert [p.name for p in providers.edge_tls_dir(settings).glob("edges-*.p12")] == [renewed.path.name]
    for provider in PROVIDERS:
        wait_until_listening(edges[provider].url, verify=_ca())
        served = _served(edges[provider].port)
        assert served.serial_number != before.serial_number and renewed.path.name == f"edges-{served.serial_number:x}.p12"
    assert not set(PROVIDERS) & set(providers.follow_stack(settings))  # nothing left to change


def test_edges_listen_on_the_bind_address_only(settings, vault, topics, edges):
    """RADLAKE_BIND_ADDRESS=127.0.0.2 (all of 127/8 is loopback on Linux): the edge answers there, over a
    certificate for that address, and nothing listens on 127.0.0.1; following a stack on 127.0.0.1 moves it back."""
    names, _ = topics
    elsewhere = settings.model_copy(update={"bind_address": "127.0.0.2"})
    provider = f"t{RUN}-bind"
    edge = providers.add(elsewhere, provider, PROJECT, topics=names)
    try:
        assert edge.url.startswith("https://127.0.0.2:") and providers.find_edge(settings, provider).url == edge.url
        wait_until_listening(edge.url, verify=_ca())
        assert httpx.post(f"{edge.url}/manifests", content=b"{}", verify=_tls(), timeout=30).status_code == 401
        assert _ip_sans(_served(edge.port, "127.0.0.2")) == {"127.0.0.1", "127.0.0.2"}
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"https://127.0.0.1:{edge.port}/manifests", content=b"{}", verify=_tls(), timeout=10)

        assert provider in providers.follow_stack(settings)  # the stack's bind address is 127.0.0.1 again
        back = providers.find_edge(settings, provider)
        assert back.url == f"https://127.0.0.1:{edge.port}"
        wait_until_listening(back.url, verify=_ca())
        assert httpx.post(f"{back.url}/manifests", content=b"{}", verify=_tls(), timeout=30).status_code == 401
        assert _ip_sans(_served(edge.port)) == {"127.0.0.1"}  # the certificate names no address left unused
        with pytest.raises(httpx.ConnectError):
            httpx.post(f"https://127.0.0.2:{edge.port}/manifests", content=b"{}", verify=_tls(), timeout=10)
    finally:
        providers.remove(settings, provider)


def test_stow_rs_from_dicomweb_client(settings, edges):

    provider = PROVIDERS[1]
    edge = edges[provider]
    wait_until_listening(edge.url, verify=_ca())
    datasets, _ = phi_dicom.ct_series(3, study=99, size=32)
    client = _dicomweb(edge.url, providers.endpoint_token(settings, provider))
    response = client.store_instances(datasets)
    referenced = response.ReferencedSOPSequence
    assert sorted(item.ReferencedSOPInstanceUID for item in referenced) == sorted(ds.SOPInstanceUID for ds in datasets)
    assert all(item.RetrieveURL.startswith("file://") for item in referenced)
    assert "FailedSOPSequence" not in response


def test_drop_folder(settings, edges, topics, kafka_bootstrap, registry_url):
    _, contracts = topics
    provider = PROVIDERS[2]
    datasets, _ = phi_dicom.ct_series(1, study=77, size=32)
    drop = settings.state_dir / "edge" / provider / "drop"
    (drop / ".incoming.dcm").write_bytes(phi_dicom.to_bytes(datasets[0]))
    (drop / ".incoming.dcm").rename(drop / "one.dcm")
    before = {e.event_id for e in read_provider_events(kafka_bootstrap, registry_url, contracts[0], provider)}
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not (drop / "one.dcm").exists():
            new = [e for e in read_provider_events(kafka_bootstrap, registry_url, contracts[0], provider)
                   if e.event_id not in before]
            if new:
                break
        time.sleep(2)
    else:
        pytest.fail("the dropped file never became an instance received event")
    assert len(new) == 1 and new[0].data.project == PROJECT


def _corrupt_tar_xz(instances: list[bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tf:
        for i, data in enumerate(instances):
            info = tarfile.TarInfo(f"IM{i}")
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    raw = buffer.getvalue()
    middle = len(raw) // 2
    return raw[:middle] + bytes(b ^ 0x5A for b in raw[middle : middle + 64]) + raw[middle + 64 :]


def test_a_corrupt_tar_xz_and_a_100_deep_sequence_are_quarantined_with_their_reasons(
        settings, edges, topics, kafka_bootstrap, registry_url):
    """Each once escaped the edge (lzma.LZMAError, RecursionError): now each is an answer, a kept original and a
    ``quarantined`` event with its reason."""
    _, contracts = topics
    provider = PROVIDERS[0]
    url = edges[provider].url
    wait_until_listening(url, verify=_ca())
    auth = {"Authorization": f"Bearer {providers.endpoint_token(settings, provider)}"}
    datasets, _ = phi_dicom.ct_series(2, study=88, size=32)
    instances = [phi_dicom.to_bytes(ds) for ds in datasets]
    archive = _corrupt_tar_xz(instances)
    answer = httpx.post(f"{url}/archives", content=archive, timeout=120, verify=_tls(), headers=auth)
    assert answer.status_code == 409, answer.text
    assert [(o["status"], o["reason"]) for o in answer.json()["outcomes"]] == [("quarantined", "ARCHIVE_UNREADABLE")]
    body, content_type = build_multipart_related([phi_dicom.nested_sequence(instances[0], 100), instances[1]], "bnd")
    answer = httpx.post(f"{url}/dicomweb/studies", content=body, timeout=120, verify=_tls(),
                        headers={**auth, "Content-Type": content_type, "Accept": RADLAKE_REPORT})
    assert answer.status_code == 202, answer.text
    assert [(o["status"], o.get("reason")) for o in answer.json()["outcomes"]] == [
        ("quarantined", "SEQUENCE_TOO_DEEP"), ("accepted", None)]
    events = read_provider_events(kafka_bootstrap, registry_url, contracts[1], provider)
    by_reason = {e.data.reason: e for e in events}
    assert by_reason["ARCHIVE_UNREADABLE"].data.input_sha256 == hashlib.sha256(archive).hexdigest()
    assert by_reason["ARCHIVE_UNREADABLE"].data.quarantine_uri  # the archive's bytes are kept, sealed
    assert "SEQUENCE_TOO_DEEP" in by_reason


def test_a_refused_drop_folder_file_is_kept_and_a_file_being_written_is_left_alone(
        settings, edges, topics, kafka_bootstrap, registry_url):
    """A corrupt .tar.xz dropped (written, then renamed) is quarantined with its bytes kept before it leaves the
    folder; a file still under a temporary name is never picked up."""
    _, contracts = topics
    provider = PROVIDERS[2]
    drop = settings.state_dir / "edge" / provider / "drop"
    datasets, _ = phi_dicom.ct_series(2, study=89, size=32)
    archive = _corrupt_tar_xz([phi_dicom.to_bytes(ds) for ds in datasets])
    digest = hashlib.sha256(archive).hexdigest()
    (drop / "still-copying.tar.xz.part").write_bytes(archive)
    (drop / ".bad.tar.xz").write_bytes(archive)
    (drop / ".bad.tar.xz").rename(drop / "bad.tar.xz")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if not (drop / "bad.tar.xz").exists():
            events = [e for e in read_provider_events(kafka_bootstrap, registry_url, contracts[1], provider)
                      if e.data.input_sha256 == digest]
            if events:
                break
        time.sleep(2)
    else:
        pytest.fail("the dropped archive never became a quarantined event")
    assert [e.data.reason for e in events] == ["ARCHIVE_UNREADABLE"]
    kept = Path(events[0].data.quarantine_uri.removeprefix("file://"))
    assert kept.is_file() and kept.read_bytes() != archive  # kept sealed
    assert (drop / "still-copying.tar.xz.part").read_bytes() == archive
    (drop / "still-copying.tar.xz.part").unlink()


def test_an_edge_with_a_stale_registry_url_follows_the_stack(settings, edges):
    """An edge deployed before the registry moved to HTTPS answers 503 to everything until its parameters follow
    the stack (``radlake stack up`` and the main job do it)."""
    provider = PROVIDERS[2]
    edge = providers.find_edge(settings, provider)  # also connects nipyapi to the stack's NiFi
    context = nipyapi.parameters.get_parameter_context(edge.parameter_context_id, "id")
    stale = endpoints.registry_url(settings).replace("https://", "http://", 1)
    nipyapi.parameters.upsert_parameter_to_context(
        context, nipyapi.parameters.prepare_parameter("schema_registry_url", stale))
    assert provider in providers.follow_stack(settings)
    assert provider not in providers.follow_stack(settings)  # nothing left to change
    wait_until_listening(edges[provider].url, verify=_ca())
    datasets, _ = phi_dicom.ct_series(2, study=98, size=32)
    client = _dicomweb(edges[provider].url, providers.endpoint_token(settings, provider))
    response = client.store_instances(datasets)
    assert "FailedSOPSequence" not in response
    assert len(response.ReferencedSOPSequence) == 2


def test_an_edge_from_an_older_flow_is_deployed_again_and_keeps_its_token(settings, edges):
    """An edge deployed before the flow gained a property (e.g. the CA that verifies Vault) cannot be mended by
    parameters: following the stack deploys it again, on its port, with its endpoint token."""
    provider = PROVIDERS[1]
    before = providers.find_edge(settings, provider)
    token = providers.endpoint_token(settings, provider)
    context = nipyapi.parameters.get_parameter_context(before.parameter_context_id, "id")
    nipyapi.parameters.upsert_parameter_to_context(context, nipyapi.parameters.prepare_parameter("flow_revision", "1"))
    assert provider in providers.follow_stack(settings)
    after = providers.find_edge(settings, provider)
    assert after.process_group_id != before.process_group_id
    assert (after.project, after.port) == (before.project, before.port)
    assert providers.endpoint_token(settings, provider) == token
    wait_until_listening(edges[provider].url, verify=_ca())
    datasets, _ = phi_dicom.ct_series(2, study=97, size=32)
    client = _dicomweb(edges[provider].url, token)
    response = client.store_instances(datasets)
    assert "FailedSOPSequence" not in response
    assert len(response.ReferencedSOPSequence) == 2


def test_only_the_administrator_opens_a_sealed_quarantine(settings, edges, vault, tmp_path, capsys):
    provider = PROVIDERS[2]
    planted = f"Patient Kari Nordmann, MRN {uuid.uuid4().hex}\n".encode()
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "kari-nordmann.txt").write_bytes(planted)
    wait_until_listening(edges[provider].url, verify=_ca())
    uploader = Uploader(edges[provider].url, providers.endpoint_token(settings, provider), tmp_path / "j.jsonl",
                        verify=_ca(), on_progress=lambda line: None)
    try:
        [result] = uploader.upload(plan([folder]), upload_id_for([folder], provider))
    finally:
        uploader.close()
    assert [o["reason"] for o in result["outcomes"]] == ["NOT_DICOM"]
    digest = hashlib.sha256(planted).hexdigest()
    sealed = (providers.edge_dir(settings, provider) / "quarantine" / "files" / f"{digest}.bin").read_bytes()
    assert sealed.startswith(b"RLS1") and b"Nordmann" not in sealed

    out = tmp_path / "opened.bin"
    assert provider_cli(["quarantine", provider, "--open", digest, "--out", str(out)]) == 0
    assert out.read_bytes() == planted and out.stat().st_mode & 0o077 == 0
    capsys.readouterr()
    assert provider_cli(["quarantine", provider]) == 0  # without --reveal: nothing identifying
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [mine] = [r for r in listed if r.get("sha256") == digest]
    assert (mine["input"], mine["message"]) == ("(sealed)", "(sealed)")
    assert provider_cli(["quarantine", provider, "--reveal"]) == 0
    [mine] = [r for r in map(json.loads, capsys.readouterr().out.splitlines()) if r.get("sha256") == digest]
    assert mine["input"] == "part 1" and "DICM" in mine["message"]

    # the edge seals but cannot open: its token may make data keys, not unwrap them
    wrapped = sealed[6 : 6 + int.from_bytes(sealed[4:6], "big")].decode()
    edge_token = edge_vault_token(vault, provider, PROJECT, kv_mount=settings.vault_kv_mount,
                                  transit_mount=settings.vault_transit_mount)
    edge = hvac.Client(url=str(vault.url), token=edge_token, verify=vault_ca(settings))
    try:
        with pytest.raises(hvac.exceptions.Forbidden):
            edge.secrets.transit.decrypt_data(name=at_rest_key_name(provider), ciphertext=wrapped,
                                              mount_point=settings.vault_transit_mount)
    finally:
        edge.auth.token.revoke_self()
    # and every data key made and opened is in Vault's audit log
    vault_log = (settings.state_dir / "vault" / "audit.log").read_text()
    assert f"transit/datakey/plaintext/{at_rest_key_name(provider)}" in vault_log
    assert f"transit/decrypt/{at_rest_key_name(provider)}" in vault_log

    # each opening left one row in radlake's audit trail, and Vault's decrypts carry that row's id in clear
    trail = [r for r in audit.read(settings) if r.target.startswith(f"provider {provider} ")]
    actions = [(r.action, r.outcome) for r in trail][-3:]
    assert actions == [("quarantine.open", "allowed"), ("quarantine.list", "allowed"),
                       ("quarantine.reveal", "allowed")]
    decrypts = [json.loads(line) for line in vault_log.splitlines()
                if f"transit/decrypt/{at_rest_key_name(provider)}" in line]
    for row in (trail[-3], trail[-1]):
        linked = [d for d in decrypts
                  if d["request"].get("headers", {}).get(audit.VAULT_AUDIT_HEADER.lower()) == [row.entry_id]]
        assert linked, f"no decrypt in Vault's audit log carries {row.action}'s entry id"
    assert not any(d["request"].get("headers", {}).get(audit.VAULT_AUDIT_HEADER.lower()) == [trail[-2].entry_id]
                   for d in decrypts)  # listing without --reveal opened nothing
    assert audit.verify(settings).intact


def _provenance_events(nifi, timeout_s: float = 60.0) -> list[dict]:
    """Every provenance event NiFi answers a query for (the platform's certificate may query provenance)."""
    with nifi.client() as client:
        submitted = client.post("/provenance", json={"provenance": {"request": {"maxResults": 10000}}})
        assert submitted.status_code == 201, submitted.text
        query = submitted.json()["provenance"]
        try:
            deadline = time.monotonic() + timeout_s
            while not query["finished"] and time.monotonic() < deadline:
                time.sleep(0.5)
                query = client.get(f"/provenance/{query['id']}").json()["provenance"]
            assert query["finished"], "the provenance query did not finish"
            return query["results"].get("provenanceEvents", [])
        finally:
            client.delete(f"/provenance/{query['id']}")


def test_provenance_keeps_no_bearer_token_and_no_original_study_uid(settings, edges, nifi):
    provider = PROVIDERS[0]
    edge = edges[provider]
    wait_until_listening(edge.url, verify=_ca())
    token = providers.endpoint_token(settings, provider)
    datasets, _ = phi_dicom.ct_series(2, study=55, size=32)
    original_study_uid = datasets[0].StudyInstanceUID
    client = _dicomweb(edge.url, token)
    response = client.store_instances(datasets, study_instance_uid=original_study_uid)  # the UID in the request URI
    assert "FailedSOPSequence" not in response

    events = _provenance_events(nifi)
    kept = json.dumps(events)
    holds_token = token in kept or "http.headers.Authorization" in kept  # computed apart: no token in a report
    assert not holds_token, "provenance keeps the provider's bearer token"
    assert original_study_uid not in kept, "provenance keeps the original Study Instance UID"
    assert len(events) == 0, "the provenance repository keeps events (docs/security.md says why it must not)"


def test_a_503_is_the_edges_own_answer_never_an_echo_of_the_request(settings, edges, vault):
    """An edge whose Vault token is gone answers 503 with its JSON error; NiFi routes a processor's "failure"
    with the original FlowFile, which once sent the whole request body back to the sender."""
    provider = PROVIDERS[1]
    revoke_edge_tokens(vault, provider, settings.vault_kv_mount)
    planted = b"PK\x03\x04 Patient Ola Nordmann " + uuid.uuid4().bytes
    answer = httpx.post(f"{edges[provider].url}/archives", content=planted, timeout=60, verify=_tls(),
                        headers={"Authorization": f"Bearer {providers.endpoint_token(settings, provider)}"})
    assert answer.status_code == 503
    assert b"Nordmann" not in answer.content and answer.json()["error"] == "EDGE_UNAVAILABLE"
    # the edge comes back with a new Vault token when deployed again
    context = nipyapi.parameters.get_parameter_context(providers.find_edge(settings, provider).parameter_context_id, "id")
    nipyapi.parameters.upsert_parameter_to_context(context, nipyapi.parameters.prepare_parameter("flow_revision", "0"))
    assert provider in providers.follow_stack(settings)
    wait_until_listening(edges[provider].url, verify=_ca())
    datasets, _ = phi_dicom.ct_series(1, study=96, size=32)
    client = _dicomweb(edges[provider].url, providers.endpoint_token(settings, provider))
    assert "FailedSOPSequence" not in client.store_instances(datasets)


def test_quarantine_triage_releases_through_the_current_engine_and_discards(settings, edges, tmp_path, capsys):
    provider = PROVIDERS[1]
    planted = f"not an image {uuid.uuid4().hex}\n".encode()
    folder = tmp_path / "triage"
    folder.mkdir()
    (folder / "note.txt").write_bytes(planted)
    wait_until_listening(edges[provider].url, verify=_ca())
    uploader = Uploader(edges[provider].url, providers.endpoint_token(settings, provider), tmp_path / "j.jsonl",
                        verify=_ca(), on_progress=lambda line: None)
    try:
        uploader.upload(plan([folder]), upload_id_for([folder], provider))
    finally:
        uploader.close()
    digest = hashlib.sha256(planted).hexdigest()
    capsys.readouterr()
    assert quarantine_cli(["list", "--provider", provider, "--reason", "NOT_DICOM"]) == 0
    listed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    [mine] = [r for r in listed if r["sha256"] == digest]
    assert mine["reason"] == "NOT_DICOM" and "input" not in mine  # nothing identifying without --reveal
    before = mine["quarantined_at"]
    time.sleep(1.1)  # records are stamped to the second: the release's own record must be newer

    assert quarantine_cli(["release", digest, "--provider", provider]) == 0
    released = json.loads(capsys.readouterr().out)
    assert released["status"] == 409 and released["counts"] == {"quarantined": 1}  # refused again, anew
    [again] = [r for r in read_records(providers.edge_dir(settings, provider)) if r.sha256 == digest]
    assert again.quarantined_at > before and again.stored_as  # the new refusal keeps its original

    assert quarantine_cli(["discard", digest, "--provider", provider]) == 0
    assert not [r for r in read_records(providers.edge_dir(settings, provider)) if r.sha256 == digest]
    assert not (providers.edge_dir(settings, provider) / "quarantine" / "files" / f"{digest}.bin").exists()
    assert quarantine_cli(["discard", digest, "--provider", provider]) == 1
    actions = [r.action for r in audit.read(settings) if r.target == f"provider {provider} original {digest}"]
    assert actions == ["quarantine.release", "quarantine.discard", "quarantine.discard"]  # the no-op too


def test_a_project_profile_reaches_its_edges_and_every_event_records_it(settings, edges, topics, kafka_bootstrap,
                                                                       registry_url, tmp_path):
    """Last in this module: it changes the profile of the edges' project, and sets the default back."""
    _, contracts = topics
    provider = PROVIDERS[0]
    profile = tmp_path / "strict.yaml"
    profile.write_text("name: strict-no-device\noptions: [clean_descriptors]\n")
    try:
        assert project_cli(["profile", PROJECT, "--set", str(profile)]) == 0
        datasets, _ = phi_dicom.ct_series(1, study=91, size=32)
        before = {e.event_id for e in read_provider_events(kafka_bootstrap, registry_url, contracts[0], provider)}
        deadline = time.monotonic() + 120
        while True:  # NiFi restarts the edge's processors with the new profile: the first answers may be 503
            wait_until_listening(edges[provider].url, verify=_ca())
            answer = _dicomweb(edges[provider].url, providers.endpoint_token(settings, provider))
            try:
                answer.store_instances(datasets)
                break
            except requests.HTTPError:
                assert time.monotonic() < deadline, "the edge did not come back with the project's profile"
                time.sleep(2)
        [event] = [e for e in read_provider_events(kafka_bootstrap, registry_url, contracts[0], provider)
                   if e.event_id not in before]
        assert "/pseudonyms-2/strict-no-device-" in event.data.deid_profile_version
        stored = pydicom.dcmread(io.BytesIO(ObjectStore(settings.resolved_object_store_uri).get(event.data.object_uri)))
        assert "radlake strict-no-device" in stored.DeidentificationMethod
    finally:
        assert project_cli(["profile", PROJECT, "--default"]) == 0
    assert providers.project_profile(settings, PROJECT) == "{}"
