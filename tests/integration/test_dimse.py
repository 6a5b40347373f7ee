"""A PACS pushing over DIMSE: dcmtk's storescu/echoscu (Debian's packages, unpacked without root) against a
provider's Storage SCP (``radlake provider dimse``), which forwards to the provider's real NiFi edge. What the SCP
answered Success for must be on the topic as de-identified ``instance received`` events, over plain DIMSE and
over DICOM TLS; an unknown calling AE title and an address off the list are rejected; a quarantined instance gets
a failure status naming its reason."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pydicom
import pytest
from edge_topics import edge_topics
from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage  # type: ignore[attr-defined]

from apps import _dimse
from apps.provider import main as provider_cli
from infra.downloads import fetch_debian_packages
from nifi import dimse, providers
from nifi.edge.reconcile import read_provider_events
from nifi.edge.storage_scp import DATASET_DOES_NOT_MATCH_SOP_CLASS, OUT_OF_RESOURCES, SUCCESS, client_tls, echo
from platform_layer.object_store import ObjectStore
from platform_layer.tls import ca_file, ensure_certificate
from radlake.synthetic import annotations, phi_dicom

pytestmark = pytest.mark.integration

RUN = uuid.uuid4().hex[:6]
PROVIDER = f"d{RUN}"
PROJECT = f"dimse-{RUN}"
SCP_AE = "RADLAKE_TEST"
PACS_AE = "PACS_A"
PATIENT = phi_dicom.Patient(name="Quixleyhart^Marguerite", patient_id=f"MRN{RUN}")


@pytest.fixture(scope="module")
def topics(kafka_bootstrap, registry_url):
    return edge_topics(kafka_bootstrap, f"test.dimse.{RUN}")


@pytest.fixture(scope="module")
def edge(settings, vault, nifi_url, registry_url, topics):
    names, _ = topics
    deployed = providers.add(settings, PROVIDER, PROJECT, topics=names)
    try:
        yield deployed
    finally:
        _dimse.stop(settings, PROVIDER)
        dimse.forget(settings, PROVIDER)
        providers.remove(settings, PROVIDER)


@pytest.fixture(scope="module")
def dcmtk(settings):
    return fetch_debian_packages(settings.cache_dir, "dcmtk", ["dcmtk", "libdcmtk17", "libwrap0"],
                                 ["storescu", "echoscu"])


def _scp(settings, *extra: str) -> dimse.ScpConfig:
    """(Re)configure and (re)start the provider's SCP through the command, as an operator would."""
    assert provider_cli(["dimse", PROVIDER, "--ae-title", SCP_AE, "--allow-ae", PACS_AE, *extra]) == 0
    config = dimse.read_config(settings, PROVIDER)
    assert config is not None
    return config


def _study(root: Path, study: int, count: int) -> list[Path]:
    root.mkdir(parents=True)
    datasets, _ = phi_dicom.ct_series(count, patient=PATIENT, study=study, size=32)
    paths = []
    for n, ds in enumerate(datasets):
        paths.append(root / f"{n}.dcm")
        paths[-1].write_bytes(phi_dicom.to_bytes(ds))
    return paths


def _run(dcmtk, program: str, *args: str) -> subprocess.CompletedProcess:
    # the unpacked package's data dictionary, not the /usr/share path compiled into the programs
    dictionary = dcmtk.root / "usr" / "share" / "libdcmtk17" / "dicom.dic"
    return subprocess.run([str(dcmtk.program(program)), *args], env={**dcmtk.env(), "DCMDICTPATH": str(dictionary)},
                          capture_output=True, text=True, timeout=120)


def _successes(run: subprocess.CompletedProcess) -> int:
    """C-STORE responses storescu -v reports as Success."""
    return (run.stdout + run.stderr).count("Received Store Response (Success)")


def _event_ids(kafka_bootstrap, registry_url, contract) -> set[str]:
    return {e.event_id for e in read_provider_events(kafka_bootstrap, registry_url, contract, PROVIDER)}


def _check_arrived(settings, kafka_bootstrap, registry_url, contract, paths: list[Path], before: set[str]) -> None:
    """Every sent instance is one new ``instance received`` event, de-identified, its object stored."""
    originals = [pydicom.dcmread(p) for p in paths]
    original_uids = {str(ds.SOPInstanceUID) for ds in originals} | {str(originals[0].StudyInstanceUID),
                                                                    str(originals[0].SeriesInstanceUID)}
    new = [e for e in read_provider_events(kafka_bootstrap, registry_url, contract, PROVIDER)
           if e.event_id not in before]
    assert len(new) == len(paths)
    assert len({e.data.sop_instance_uid for e in new}) == len(paths)
    assert len({e.data.study_uid for e in new}) == 1  # one study, as sent
    store = ObjectStore(settings.resolved_object_store_uri)
    for event in new:
        assert event.data.project == PROJECT and event.key == event.data.study_uid
        assert not original_uids & {event.data.sop_instance_uid, event.data.study_uid, event.data.series_uid}
        stored = pydicom.dcmread(io.BytesIO(store.get(event.data.object_uri, event.data.sha256)))
        text = stored.to_json()
        assert "Quixleyhart" not in text and PATIENT.patient_id not in text
        assert not any(uid in text for uid in original_uids)
        assert str(stored.SOPInstanceUID) == event.data.sop_instance_uid


def test_echoscu_gets_an_answer_and_an_unknown_ae_title_is_rejected(settings, edge, dcmtk):
    config = _scp(settings)
    port = str(config.port)
    answered = _run(dcmtk, "echoscu", "-aet", PACS_AE, "-aec", SCP_AE, config.bind_address, port)
    assert answered.returncode == 0, answered.stderr
    stranger = _run(dcmtk, "echoscu", "-v", "-aet", "STRANGER", "-aec", SCP_AE, config.bind_address, port)
    assert stranger.returncode != 0
    assert "Association Rejected" in stranger.stdout + stranger.stderr
    assert "Calling AE Title Not Recognized" in stranger.stdout + stranger.stderr
    wrong_called = _run(dcmtk, "echoscu", "-aet", PACS_AE, "-aec", "NOT_RADLAKE", config.bind_address, port)
    assert wrong_called.returncode != 0


def test_an_address_off_the_list_is_rejected(settings, edge):
    config = _scp(settings, "--allow-address", "127.0.0.1/32")
    pacs = AE(ae_title=PACS_AE)
    pacs.add_requested_context("1.2.840.10008.1.1")
    for source, established in (("127.0.0.1", True), ("127.0.0.2", False)):
        assoc = pacs.associate("127.0.0.1", config.port, ae_title=SCP_AE, bind_address=(source, 0))
        assert assoc.is_established is established, source
        if established:
            assoc.release()
        else:
            assert assoc.is_rejected


def test_storescu_sends_a_study_over_plain_dimse(settings, edge, dcmtk, topics, tmp_path, kafka_bootstrap,
                                                 registry_url):
    _, contracts = topics
    config = _scp(settings)
    paths = _study(tmp_path / "study", 101, 5)
    before = _event_ids(kafka_bootstrap, registry_url, contracts[0])
    sent = _run(dcmtk, "storescu", "-v", "-aet", PACS_AE, "-aec", SCP_AE, config.bind_address, str(config.port),
                *map(str, paths))
    assert sent.returncode == 0, sent.stderr
    assert _successes(sent) == len(paths)
    _check_arrived(settings, kafka_bootstrap, registry_url, contracts[0], paths, before)
    # sent again: identical bytes are duplicates the edge already holds, so Success again and no new event
    after = _event_ids(kafka_bootstrap, registry_url, contracts[0])
    again = _run(dcmtk, "storescu", "-v", "-aet", PACS_AE, "-aec", SCP_AE, config.bind_address, str(config.port),
                 *map(str, paths))
    assert again.returncode == 0 and _successes(again) == len(paths), again.stderr
    assert _event_ids(kafka_bootstrap, registry_url, contracts[0]) == after


def test_storescu_sends_a_study_over_dicom_tls(settings, edge, dcmtk, topics, tmp_path, kafka_bootstrap,
                                               registry_url):
    _, contracts = topics
    config = _scp(settings, "--tls")
    assert config.tls
    assert echo(config.bind_address, config.port, SCP_AE, tls=client_tls(config.ca_file)) == SUCCESS
    paths = _study(tmp_path / "study", 102, 4)
    plain = _run(dcmtk, "echoscu", "-aet", PACS_AE, "-aec", SCP_AE, config.bind_address, str(config.port))
    assert plain.returncode != 0  # a TLS port speaks nothing else
    before = _event_ids(kafka_bootstrap, registry_url, contracts[0])
    sent = _run(dcmtk, "storescu", "-v", "+tla", "+cf", str(ca_file(settings)), "-aet", PACS_AE, "-aec", SCP_AE,
                config.bind_address, str(config.port), *map(str, paths))
    assert sent.returncode == 0, sent.stderr
    assert _successes(sent) == len(paths)
    _check_arrived(settings, kafka_bootstrap, registry_url, contracts[0], paths, before)


def test_a_quarantined_instance_gets_a_failure_status_naming_its_reason(settings, edge, topics, kafka_bootstrap,
                                                                       registry_url):
    _, contracts = topics
    config = _scp(settings)
    datasets, _ = phi_dicom.ct_series(1, patient=PATIENT, study=103, size=32)
    no_pixels = phi_dicom.without_pixel_data(datasets[0])
    before = _event_ids(kafka_bootstrap, registry_url, contracts[1])
    pacs = AE(ae_title=PACS_AE)
    pacs.add_requested_context(CTImageStorage, str(no_pixels.file_meta.TransferSyntaxUID))
    assoc = pacs.associate(config.bind_address, config.port, ae_title=SCP_AE)
    assert assoc.is_established
    try:
        answer = assoc.send_c_store(no_pixels)
    finally:
        assoc.release()
    assert answer.Status == DATASET_DOES_NOT_MATCH_SOP_CLASS
    assert answer.ErrorComment == "radlake quarantined: NO_PIXEL_DATA"
    new = [e for e in read_provider_events(kafka_bootstrap, registry_url, contracts[1], PROVIDER)
           if e.event_id not in before]
    assert [e.data.reason for e in new] == ["NO_PIXEL_DATA"]


def test_a_pacs_stores_a_study_and_its_rtstruct_and_seg(settings, edge, topics, kafka_bootstrap, registry_url):
    """Annotations over DIMSE: C-STORE succeeds and they are announced on the annotation topic, their references
    naming the study's pseudonymous images."""
    _, contracts = topics
    config = _scp(settings)
    datasets, _ = phi_dicom.ct_series(4, patient=PATIENT, study=190, size=32)  # a study no other test sends
    source = [pydicom.dcmread(io.BytesIO(phi_dicom.to_bytes(ds))) for ds in datasets]
    objects = [pydicom.dcmread(io.BytesIO(data)) for data in (
        annotations.rtstruct(source, (1, 16, 16), 1.5),
        annotations.seg(source, annotations.sphere_mask(source, (1, 16, 16), 1.5)))]
    before = _event_ids(kafka_bootstrap, registry_url, contracts[0])
    pacs = AE(ae_title=PACS_AE)
    for ds in [*source, *objects]:
        pacs.add_requested_context(str(ds.SOPClassUID), str(ds.file_meta.TransferSyntaxUID))
    assoc = pacs.associate(config.bind_address, config.port, ae_title=SCP_AE)
    assert assoc.is_established
    try:
        statuses = [assoc.send_c_store(ds).Status for ds in [*source, *objects]]
    finally:
        assoc.release()
    assert statuses == [SUCCESS] * 6
    images = [e for e in read_provider_events(kafka_bootstrap, registry_url, contracts[0], PROVIDER)
              if e.event_id not in before]
    sops = {str(ds.SOPInstanceUID) for ds in objects}
    found = [e for e in read_provider_events(kafka_bootstrap, registry_url, contracts[3], PROVIDER)
             if e.data.study_uid == images[0].data.study_uid]
    assert len(images) == 4 and sorted(e.data.annotation_kind for e in found) == ["rtstruct", "seg"]
    assert all(e.data.referenced_series_uids == (images[0].data.series_uid,) for e in found)
    assert sops.isdisjoint({e.data.sop_instance_uid for e in found})


def test_stack_down_and_up_stop_and_start_the_scp(settings, edge):
    config = _scp(settings)
    _dimse.stop_all(settings)
    assert _dimse.status(settings, config).pid is None
    assert not _dimse.healthy(config)
    started = _dimse.start_all(settings)
    assert [s.name for s in started if s.name == f"dimse-{PROVIDER}" and s.healthy]


ORTHANC_PACKAGES = ["orthanc", "dcmtk", "libdcmtk17", "libwrap0", "libcivetweb1", "libboost-filesystem1.74.0",
                    "libboost-iostreams1.74.0", "libboost-locale1.74.0", "libboost-regex1.74.0",
                    "libboost-thread1.74.0", "libjsoncpp25", "liblua5.3-0", "libpugixml1v5", "libicu72"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def orthanc(settings, vault, tmp_path):
    """A running Orthanc (Debian's package, unpacked without root) whose DICOM peer 'radlake' is the provider's
    SCP; yields a function that (re)starts it for a plain or TLS peer and returns its REST URL."""
    tree = fetch_debian_packages(settings.cache_dir, "orthanc", ORTHANC_PACKAGES, ["Orthanc"])
    running: list[subprocess.Popen] = []

    def start(config: dimse.ScpConfig) -> str:
        for proc in running:
            proc.terminate()
            proc.wait(30)
        http_port = _free_port()
        home = tmp_path / f"orthanc-{len(running)}"
        home.mkdir()
        files = ensure_certificate(vault, home / "tls", "orthanc", "orthanc.radlake.local")
        conf = {"Name": "test-pacs", "HttpPort": http_port, "DicomPort": _free_port(), "DicomAet": "ORTHANC",
                "RemoteAccessAllowed": False, "AuthenticationEnabled": False, "StorageDirectory": str(home / "db"),
                "IndexDirectory": str(home / "db"), "Plugins": [],
                "DicomModalities": {"radlake": {"AET": SCP_AE, "Host": config.bind_address, "Port": config.port,
                                                "UseDicomTls": config.tls}}}
        if config.tls:
            conf |= {"DicomTlsEnabled": True, "DicomTlsCertificate": str(files.certificate),
                     "DicomTlsPrivateKey": str(files.key), "DicomTlsTrustedCertificates": str(ca_file(settings)),
                     "DicomTlsRemoteCertificateRequired": False}
        (home / "orthanc.json").write_text(json.dumps(conf))
        log = (home / "orthanc.log").open("w")
        dictionaries = tree.root / "usr" / "share" / "libdcmtk17"
        env = {**tree.env(), "DCMDICTPATH": f"{dictionaries / 'dicom.dic'}:{dictionaries / 'private.dic'}"}
        running.append(subprocess.Popen([str(tree.program("Orthanc")), str(home / "orthanc.json")], env=env,
                                        stdout=log, stderr=subprocess.STDOUT, cwd=home))
        url = f"http://127.0.0.1:{http_port}"
        for _ in range(120):
            try:
                if httpx.get(f"{url}/system", timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                pass
            assert running[-1].poll() is None, (home / "orthanc.log").read_text()[-2000:]
            time.sleep(0.5)
        raise AssertionError("Orthanc did not answer")

    yield start
    for proc in running:
        proc.terminate()
        proc.wait(30)


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_orthanc_sends_a_study_over_dimse(settings, edge, orthanc, topics, tmp_path, kafka_bootstrap, registry_url,
                                          tls):
    _, contracts = topics
    config = _scp(settings, "--allow-ae", "ORTHANC", *(["--tls"] if tls else []))
    url = orthanc(config)
    paths = _study(tmp_path / "study", 104 + tls, 3)
    ids = [httpx.post(f"{url}/instances", content=p.read_bytes(), timeout=30).json()["ID"] for p in paths]
    assert httpx.post(f"{url}/modalities/radlake/echo", content=b"{}", timeout=30).status_code == 200
    before = _event_ids(kafka_bootstrap, registry_url, contracts[0])
    sent = httpx.post(f"{url}/modalities/radlake/store", json={"Resources": ids, "Synchronous": True}, timeout=120)
    assert sent.status_code == 200, sent.text
    assert sent.json()["InstancesCount"] == len(paths) and sent.json()["FailedInstancesCount"] == 0
    _check_arrived(settings, kafka_bootstrap, registry_url, contracts[0], paths, before)


def test_a_rotated_token_is_out_of_resources_until_the_scp_has_the_new_one(settings, edge, topics):
    """The SCP reads the provider's token for each association: a rotation behind its back makes the edge refuse
    it (0xA700, retry later, nothing stored), and the token file `provider token --rotate` rewrites heals it."""
    config = _scp(settings)
    datasets, _ = phi_dicom.ct_series(1, patient=PATIENT, study=106, size=32)

    def store() -> Dataset:
        pacs = AE(ae_title=PACS_AE)
        pacs.add_requested_context(CTImageStorage, str(datasets[0].file_meta.TransferSyntaxUID))
        assoc = pacs.associate(config.bind_address, config.port, ae_title=SCP_AE)
        assert assoc.is_established
        try:
            return assoc.send_c_store(datasets[0])
        finally:
            assoc.release()

    providers.rotate_endpoint_token(settings, PROVIDER)  # the library: the SCP's file still holds the old token
    refused = store()
    assert refused.Status == OUT_OF_RESOURCES and "credentials" in refused.ErrorComment
    dimse.refresh_token(settings, PROVIDER)
    assert store().Status == SUCCESS
