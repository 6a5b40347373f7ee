"""The edge's request handling without NiFi: radlake's engine with a local HMAC key, a temporary store."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tarfile
from io import BytesIO
from pathlib import Path

import pydicom
import pytest

from lake_schemas.errors import RegistryError
from lake_schemas.events import InstanceReceived, Quarantined
from nifi.edge import edge
from nifi.edge.errors import TokenError
from nifi.edge.handler import RADLAKE_REPORT, EdgeRuntime, dispose_dropped, handle, internal_error, unavailable
from nifi.edge.runtime import edge_profile
from nifi.edge.stow_rs import StowLimits, build_multipart_related
from platform_layer.object_store import ObjectStore
from radlake.deid.confidentiality_profile import Profile, compile_rules
from radlake.deid.errors import ProfileError
from radlake.deid.pseudonyms import LocalHmac, date_offset_from_digest, date_offset_message
from radlake.deid.quarantine import read_original, read_records
from radlake.synthetic import phi_dicom


class Collected:
    """Stands in for the Kafka publisher in unit tests (the integration tests use the real broker)."""

    def __init__(self) -> None:
        self.events: list = []

    def publish(self, events) -> None:
        self.events += events


@pytest.fixture(scope="module")
def series() -> list[bytes]:
    datasets, _ = phi_dicom.ct_series(3, size=32)
    return [phi_dicom.to_bytes(ds) for ds in datasets]


@pytest.fixture
def runtime(tmp_path) -> EdgeRuntime:
    config = edge.EdgeConfig("hospital-a", "unit-project", "test-profile", tmp_path / "edge")
    return EdgeRuntime(config, compile_rules(Profile()), LocalHmac(b"k" * 32), ObjectStore(str(tmp_path / "objects")),
                       Collected(), lambda: "secret-token", tmp_path / "edge" / "work")


def _post(runtime, path, body, content_type, token="secret-token", accept=RADLAKE_REPORT):
    headers = {"Content-Type": content_type, "Accept": accept}
    if token:
        headers["authorization"] = f"Bearer {token}"
    return handle(runtime, "POST", path, headers, body)


@pytest.mark.parametrize("keys, expected", [
    ([("a", "1"), ("b", "2")], ["process", "process"]),
    ([("a", "1"), ("a", "1"), ("a", "1")], ["process", "duplicate", "duplicate"]),
    ([("a", "1"), ("a", "2")], ["conflict", "conflict"]),
    ([(None, "1"), (None, "1")], ["process", "process"]),  # unreadable inputs are quarantined one by one
])
def test_settle(keys, expected):
    assert edge.settle(keys) == expected


def test_stow_request_stores_publishes_and_quarantines(runtime, series):
    body, content_type = build_multipart_related([*series, b"not dicom", series[0]], "bnd")
    response = _post(runtime, "/dicomweb/studies", body, content_type)
    assert response.status == 202
    report = json.loads(response.body)
    assert report["counts"] == {"accepted": 3, "duplicate": 1, "quarantined": 1}
    events = runtime.publisher.events
    instances = [e for e in events if isinstance(e, InstanceReceived)]
    quarantined = [e for e in events if isinstance(e, Quarantined)]
    assert len(instances) == 3 and len(quarantined) == 1
    assert all(runtime.store.exists(e.data.object_uri) for e in instances)
    assert quarantined[0].data.reason == "NOT_DICOM" and quarantined[0].data.stage == "edge"
    assert (runtime.config.edge_dir / "quarantine" / "quarantine.jsonl").exists()
    # no original identifiers in any event
    text = "".join(e.model_dump_json() for e in events)
    assert "1.2.826.0.1.3680043.10.999" not in text and "Quixleyhart" not in text


def test_resent_request_gives_the_same_event_ids(runtime, series):
    body, content_type = build_multipart_related(series, "bnd")
    first = json.loads(_post(runtime, "/dicomweb/studies", body, content_type).body)
    second = json.loads(_post(runtime, "/dicomweb/studies", body, content_type).body)
    assert [o["event_id"] for o in first["outcomes"]] == [o["event_id"] for o in second["outcomes"]]
    assert [o["status"] for o in first["outcomes"]] == [o["status"] for o in second["outcomes"]]


def _patient_with_offset(runtime, want: int) -> str:
    """A patient ID whose dates the edge's key moves back by ``want`` days."""
    provider, max_days = runtime.config.provider, runtime.rules.profile.max_date_shift_days
    return next(f"MRN{n}" for n in range(10**6) if date_offset_from_digest(
        runtime.pseudonymiser.hmac_many([date_offset_message(provider, f"MRN{n}")])[0], max_days) == want)


@pytest.mark.parametrize("offset", [1, 2, 3])
def test_date_shifted_onto_another_input_date_is_not_a_leak(runtime, offset):
    # the generated dates lie one day apart: shifted by 1 or 2 days, one date becomes another input date
    pid = _patient_with_offset(runtime, offset)
    datasets, _ = phi_dicom.ct_series(3, patient=phi_dicom.Patient(patient_id=pid), size=32)
    body, content_type = build_multipart_related([phi_dicom.to_bytes(d) for d in datasets], "bnd")
    response = _post(runtime, "/dicomweb/studies", body, content_type)
    assert response.status == 200 and json.loads(response.body)["counts"] == {"accepted": 3}


def test_conflict_and_truncated_twin(runtime, series):
    changed = bytearray(series[1])
    changed[-1] ^= 0xFF  # same SOP Instance UID, other pixel bytes
    truncated = phi_dicom.truncated(series[0])
    body, content_type = build_multipart_related([series[0], truncated, series[1], bytes(changed)], "bnd")
    report = json.loads(_post(runtime, "/dicomweb/studies", body, content_type).body)
    statuses = [(o["status"], o.get("reason")) for o in report["outcomes"]]
    assert statuses[0] == ("accepted", None)  # its truncated copy does not make it a conflict
    assert statuses[1] == ("quarantined", "TRUNCATED_FILE")
    assert statuses[2:] == [("quarantined", "CONFLICTING_DUPLICATE")] * 2


def test_dicom_json_answer_by_default(runtime, series):
    body, content_type = build_multipart_related(series[:1], "bnd")
    response = _post(runtime, "/dicomweb/studies/1.2.3", body, content_type, accept="application/dicom+json")
    assert response.status == 200 and response.media_type == "application/dicom+json"
    assert "00081199" in json.loads(response.body)


@pytest.mark.parametrize("token, status", [(None, 401), ("another-providers-token", 403)])
def test_credentials_are_required(runtime, series, token, status):
    body, content_type = build_multipart_related(series[:1], "bnd")
    response = _post(runtime, "/dicomweb/studies", body, content_type, token=token)
    assert response.status == status
    assert runtime.publisher.events == []


def test_archive_with_traversal_member(runtime, series):
    archive = phi_dicom.zip_archive([("a/1.dcm", series[0]), ("../../etc/evil.dcm", series[1]), ("b.txt", b"x")])
    report = json.loads(_post(runtime, "/archives", archive, "application/zip").body)
    reasons = sorted(o.get("reason") or o["status"] for o in report["outcomes"])
    assert reasons == ["ARCHIVE_PATH_TRAVERSAL", "NOT_DICOM", "accepted"]
    refusal = [e for e in runtime.publisher.events if isinstance(e, Quarantined)
               and e.data.reason == "ARCHIVE_PATH_TRAVERSAL"][0]
    assert "evil" not in refusal.model_dump_json()


def test_manifest_uses_the_instances_pseudonyms(runtime, series):
    body, content_type = build_multipart_related(series, "bnd")
    report = json.loads(_post(runtime, "/dicomweb/studies", body, content_type).body)
    pseudo_study = report["outcomes"][0]["study_uid"]
    original = report["outcomes"][0]["original_study_uid"]
    series_uid = str(pydicom.dcmread(BytesIO(series[0])).SeriesInstanceUID)
    manifest = {"upload_id": "00112233445566778899aabbccddeeff", "study_uid": original,
                "series": [{"series_uid": series_uid, "expected_instances": 3}]}
    answer = json.loads(_post(runtime, "/manifests", json.dumps(manifest).encode(), "application/json").body)
    assert answer["study_uid"] == pseudo_study
    assert answer["expected_instances"] == 3


@pytest.mark.parametrize("body", [
    b"{", b'{"upload_id": "0123456789abcdef", "study_uid": "1.2", "series": []}', b"[]",
    b'{"upload_id": "ola nordmann 1950", "study_uid": "1.2", "series": [{"series_uid": "1.3", "expected_instances": 1}]}',
])
def test_bad_manifest_is_400(runtime, body):
    assert _post(runtime, "/manifests", body, "application/json").status == 400


def test_a_rotated_token_refuses_the_old_one_at_once_and_vault_trouble_is_a_503(runtime, series):
    body, content_type = build_multipart_related([series[0]], "bnd")
    current = {"token": "secret-token"}
    runtime.endpoint_token = lambda: current["token"]
    assert _post(runtime, "/dicomweb/studies", body, content_type).status == 200
    current["token"] = "rotated-token"
    assert _post(runtime, "/dicomweb/studies", body, content_type).status == 403
    assert _post(runtime, "/dicomweb/studies", body, content_type, token="rotated-token").status == 200

    def vault_down() -> str:
        raise TokenError("cannot read the endpoint token of provider 'hospital-a' from Vault: connection refused")

    runtime.endpoint_token = vault_down
    assert _post(runtime, "/dicomweb/studies", body, content_type, token="rotated-token").status == 503


def test_a_contract_the_registry_does_not_hold_is_a_503_not_an_unanswered_request(runtime, series):
    class Unregistered:
        def publish(self, events) -> None:
            raise RegistryError("radlake.instance.received.v1-value: instance_received.schema.json is not "
                                "registered; run `radlake schemas register`")

    runtime.publisher = Unregistered()
    body, content_type = build_multipart_related([series[0]], "bnd")
    answer = _post(runtime, "/dicomweb/studies", body, content_type)
    assert answer.status == 503 and json.loads(answer.body)["error"] == "EDGE_UNAVAILABLE"


def test_an_error_nobody_expected_is_answered_with_its_type_only():
    answer = internal_error(KeyError("1.2.826.0.1.3680043.8.498.1 Nordmann"))
    assert answer.status == 500
    assert json.loads(answer.body) == {"error": "EDGE_INTERNAL_ERROR", "message": "KeyError"}


DATA = Path(__file__).resolve().parents[2] / "data"


def _corrupt_tar_xz(series) -> bytes:
    buffer = BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:xz") as tf:
        for i, data in enumerate(series):
            info = tarfile.TarInfo(f"IM{i}")
            info.size = len(data)
            tf.addfile(info, BytesIO(data))
    raw = buffer.getvalue()
    middle = len(raw) // 2
    return raw[:middle] + bytes(b ^ 0x5A for b in raw[middle : middle + 64]) + raw[middle + 64 :]


@pytest.mark.parametrize(("make", "reason"), [
    (_corrupt_tar_xz, "ARCHIVE_UNREADABLE"),
    (lambda series: (DATA / "bomb-1GiB.zip").read_bytes(), "ARCHIVE_BOMB"),
    (lambda series: phi_dicom.zip_archive([(f"part{i}.tar.bz2", (DATA / "bomb-1GiB.tar.bz2").read_bytes())
                                           for i in range(16)]), "ARCHIVE_BOMB"),
])
def test_a_refused_archive_is_answered_and_its_bytes_are_kept(runtime, series, make, reason):
    archive = make(series)
    response = _post(runtime, "/archives", archive, "application/octet-stream")
    report = json.loads(response.body)
    assert response.status == 409, report
    assert [(o["status"], o["reason"]) for o in report["outcomes"]] == [("quarantined", reason)]
    [record] = read_records(runtime.config.edge_dir)
    assert record.reason == reason and read_original(runtime.config.edge_dir, record) == archive
    [event] = runtime.publisher.events
    assert isinstance(event, Quarantined) and event.data.input_sha256 == hashlib.sha256(archive).hexdigest()


def test_members_refused_inside_an_archive_point_at_its_kept_copy(runtime, series):
    archive = phi_dicom.zip_archive([("a/1.dcm", series[0]), ("../x.dcm", series[1]), ("/etc/y.dcm", series[2])])
    report = json.loads(_post(runtime, "/archives", archive, "application/zip").body)
    assert report["counts"] == {"accepted": 1, "quarantined": 2}
    records = read_records(runtime.config.edge_dir)
    assert {r.stored_as for r in records} == {records[0].stored_as} and records[0].stored_as
    assert read_original(runtime.config.edge_dir, records[0]) == archive
    ids = [e.event_id for e in runtime.publisher.events if isinstance(e, Quarantined)]
    assert len(set(ids)) == 2


@pytest.mark.parametrize("depth", [100, 5000])
def test_a_deep_sequence_is_quarantined_with_its_reason(runtime, series, depth):
    body, content_type = build_multipart_related([phi_dicom.nested_sequence(series[0], depth), series[1]], "bnd")
    report = json.loads(_post(runtime, "/dicomweb/studies", body, content_type).body)
    assert [(o["status"], o.get("reason")) for o in report["outcomes"]] == [
        ("quarantined", "SEQUENCE_TOO_DEEP"), ("accepted", None)]


def _drop(runtime, tmp_path, name: str, data: bytes):
    dropped = tmp_path / "drop" / name
    dropped.parent.mkdir(exist_ok=True)
    dropped.write_bytes(data)
    response = handle(runtime, "POST", "/drop", {}, dropped, authenticated=True)
    return dropped, response, dispose_dropped(dropped, response, tmp_path / "refused")


def test_the_drop_folder_never_deletes_what_the_edge_did_not_keep(runtime, series, tmp_path, monkeypatch):
    dropped, response, fate = _drop(runtime, tmp_path, "good.dcm", series[0])
    assert (response.status, fate, dropped.exists()) == (200, "deleted", False)
    # refused, its bytes kept (sealed when the edge seals) in the edge's quarantine: the drop copy may go
    dropped, response, fate = _drop(runtime, tmp_path, "bad.tar.xz", _corrupt_tar_xz(series))
    assert (response.status, fate, dropped.exists()) == (409, "deleted", False)
    assert read_original(runtime.config.edge_dir, read_records(runtime.config.edge_dir)[-1]) == _corrupt_tar_xz(series)
    # refused and too large for the edge to keep: moved aside, whole
    monkeypatch.setattr(edge, "KEEP_REFUSED_MAX_BYTES", 16)
    archive = _corrupt_tar_xz(series)
    dropped, response, fate = _drop(runtime, tmp_path, "big.tar.xz", archive)
    assert (response.status, fate, dropped.exists()) == (409, "moved", False)
    assert [p.read_bytes() for p in (tmp_path / "refused").iterdir()] == [archive]
    assert read_records(runtime.config.edge_dir)[-1].stored_as is None


def test_a_drop_folder_file_answered_5xx_stays_for_a_retry(tmp_path):
    dropped = tmp_path / "x.dcm"
    dropped.write_bytes(b"x")
    assert dispose_dropped(dropped, unavailable("vault down"), tmp_path / "refused") == "kept"
    assert dropped.exists()


@pytest.mark.parametrize(("sizes", "expected"), [
    ([1] * 70, [(0, 32), (32, 64), (64, 70)]),
    ([edge.BATCH_BYTES // 2] * 3, [(0, 2), (2, 3)]),
    ([edge.BATCH_BYTES * 2, 1, 1], [(0, 1), (1, 3)]),  # one member over the byte bound is a batch alone
    ([], []),
])
def test_archive_batches_are_bounded_in_members_and_bytes(sizes, expected):
    assert [(r.start, r.stop) for r in edge._batches(sizes)] == expected


def test_a_provider_sending_another_providers_uids_reaches_none_of_its_studies(tmp_path, series):
    """The same original instances from two providers of one project: other pseudonymous UIDs (the study, its
    series and instances), so neither provider's instances, conflicts or manifests can touch the other's study."""
    events = {}
    for provider in ("hospital-a", "hospital-b"):
        config = edge.EdgeConfig(provider, "unit-project", "test-profile", tmp_path / provider)
        result = edge.ingest_instances(series, rules=compile_rules(Profile()), pseudonymiser=LocalHmac(b"k" * 32),
                                       store=ObjectStore(str(tmp_path / "objects")), config=config)
        events[provider] = [e.data for e in result.events]
    a, b = events["hospital-a"], events["hospital-b"]
    assert {e.study_uid for e in a}.isdisjoint({e.study_uid for e in b})
    assert {e.sop_instance_uid for e in a}.isdisjoint({e.sop_instance_uid for e in b})
    head = pydicom.dcmread(BytesIO(series[0]), stop_before_pixels=True)
    manifest = edge.ManifestRequest("0" * 16, str(head.StudyInstanceUID), ((str(head.SeriesInstanceUID), 3),))
    studies = {p: edge.manifest_event(manifest, LocalHmac(b"k" * 32),
                                      edge.EdgeConfig(p, "unit-project", "v", tmp_path / p)).data.study_uid
               for p in ("hospital-a", "hospital-b")}
    assert studies["hospital-a"] == a[0].study_uid and studies["hospital-b"] == b[0].study_uid


def test_the_edge_compiles_its_projects_profile_and_records_its_name_and_digest():
    default_rules, default_version = edge_profile("{}")
    rules, version = edge_profile('{"name": "strict", "options": []}')
    assert "/pseudonyms-2/radlake-default-" in default_version and "/pseudonyms-2/strict-" in version
    assert rules.profile.options == frozenset() and default_rules.profile.options
    assert edge_profile('{"name": "strict", "options": ["clean_descriptors"]}')[1] != version  # same name
    with pytest.raises(ProfileError):
        edge_profile('{"options": ["no_such_option"]}')


def test_a_stow_part_over_the_cap_is_quarantined_with_its_reason_and_the_spool_is_emptied(runtime, series):
    runtime = dataclasses.replace(runtime, stow_limits=StowLimits(max_part_bytes=64 << 10))
    big = series[0] + bytes(100 << 10)
    body, content_type = build_multipart_related([series[1], big, series[2]], "bnd")
    response = _post(runtime, "/dicomweb/studies", body, content_type)
    report = json.loads(response.body)
    assert response.status == 202 and report["counts"] == {"accepted": 2, "quarantined": 1}
    refused = [o for o in report["outcomes"] if o["status"] == "quarantined"]
    assert refused[0]["index"] == 1 and refused[0]["reason"] == "PART_TOO_LARGE"
    event = [e for e in runtime.publisher.events if isinstance(e, Quarantined)][0]
    assert event.data.reason == "PART_TOO_LARGE" and event.data.quarantine_uri is None
    assert event.data.input_sha256 == hashlib.sha256(big).hexdigest()
    answer = json.loads(_post(runtime, "/dicomweb/studies", body, content_type, accept="").body)
    assert answer["00081198"]["Value"][0]["00081197"]["Value"] == [0xA700]  # PS3.18: refused, out of resources
    assert list(runtime.work_dir.iterdir()) == []


def test_a_stow_request_over_the_cap_is_413(runtime, series):
    runtime = dataclasses.replace(runtime, stow_limits=StowLimits(max_request_bytes=1000))
    body, content_type = build_multipart_related(series, "bnd")
    response = _post(runtime, "/dicomweb/studies", body, content_type)
    assert response.status == 413 and json.loads(response.body)["error"] == "REQUEST_TOO_LARGE"
    assert runtime.publisher.events == []
