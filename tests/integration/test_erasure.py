"""Erasure against the real stack: the patient reference is pseudonymised with the project's Vault Transit key
exactly as ``radlake deid`` (and the edges) did it, every lake row and object of that patient goes, the other
patient's stay, the audit trail and the erasure record say so, and a second run reports both runs. Closing a
project takes its rows, objects, grants, roles and Transit key, and leaves the other project alone."""

from __future__ import annotations

import hashlib
import io
import json
import uuid
import zipfile

import hvac
import hvac.exceptions
import pyarrow as pa
import pydicom
import pytest
from deltalake import DeltaTable, write_deltalake

from apps import dataset as dataset_cli
from apps import deid as deid_cli
from apps import erase as erase_cli
from apps import grant as grant_cli
from apps import project as project_cli
from apps import user as user_cli
from lake_schemas.tables import ERASURES, SILVER_STUDIES
from nifi.edge.tokens import delete_token, edge_vault_token
from nifi.providers import edge_dir, quarantine_keys
from platform_layer import audit, governance
from platform_layer.object_store import ObjectStore
from platform_layer.realm import REALM, realm_admin
from platform_layer.tls import vault_ca
from platform_layer.transit import VaultTransitDataKeys, at_rest_key_name
from radlake.deid.errors import QuarantineReason
from radlake.deid.pseudonyms import transit_key_name
from radlake.deid.quarantine import QuarantineRecord, append_records, keep_original, quarantine_dir
from radlake.deid.sealing import Sealer, is_sealed
from radlake.synthetic import phi_dicom

pytestmark = pytest.mark.integration


def _pseudonym_from_deid(tmp_path, project: str, provider: str, patient_id: str) -> str:
    datasets, _ = phi_dicom.ct_series(1, study=7, size=16)
    datasets[0].PatientID = patient_id
    source = tmp_path / f"src-{patient_id}"
    source.mkdir()
    datasets[0].save_as(source / "1.dcm", enforce_file_format=True)
    out = tmp_path / f"out-{patient_id}"
    assert deid_cli.main([str(source), "--out", str(out), "--project", project, "--provider", provider,
                          "--workers", "1", "--no-progress"]) == 0
    [written] = [p for p in out.rglob("*.dcm")]
    return str(pydicom.dcmread(written).PatientID)


def test_one_patient_is_erased_with_proof_and_a_rerun_reports_both_runs(settings, vault, tmp_path, capsys,
                                                                        monkeypatch):
    project, provider = f"erase-{uuid.uuid4().hex[:6]}", "hospital-e"
    gone = _pseudonym_from_deid(tmp_path, project, provider, "MRN-GONE-1")
    kept = _pseudonym_from_deid(tmp_path, project, provider, "MRN-KEPT-2")
    store = ObjectStore(settings.resolved_object_store_uri)
    rows = []
    for patient, study in ((gone, f"2.25.{uuid.uuid4().int}"), (kept, f"2.25.{uuid.uuid4().int}")):
        stored = store.put(f"instance of {study}".encode(), prefix=f"test-erasure/{study}")
        rows.append({"project": project, "provider": provider, "pseudo_patient_id": patient, "study_uid": study,
                     "object_uri": stored.uri})
    table = governance.lake_table_path(settings, f"test_erasure/{project}")
    for row in rows:  # two versions: time travel would find the rows without the purge
        write_deltalake(table, pa.Table.from_pylist([row]), mode="append")

    monkeypatch.setattr("sys.stdin", io.StringIO("MRN-GONE-1\n"))
    assert erase_cli.main(["--project", project, "--provider", provider, "--patient-ref", "-"]) == 0
    out = capsys.readouterr().out
    assert "no reference left" in out and f"test_erasure/{project}: 1 row(s) deleted" in out
    assert "MRN-GONE-1" not in out and gone in out
    left = DeltaTable(table).to_pyarrow_table().to_pylist()
    assert [r["pseudo_patient_id"] for r in left] == [kept]
    assert not store.exists(rows[0]["object_uri"]) and store.exists(rows[1]["object_uri"])

    [record] = [r for r in governance.table_rows(settings, ERASURES) if r["pseudonym"] == gone]
    assert record["state"] == "complete" and record["runs"] == 1 and record["studies"] == [rows[0]["study_uid"]]
    [row] = [r for r in audit.read(settings) if r.target == f"erasure {record['erasure_id']}"]
    assert "MRN" not in row.details and gone not in row.details and audit.verify(settings).intact
    proof = json.loads((settings.state_dir / "erasures" / f"{record['erasure_id']}.json").read_text())
    assert proof["runs"][0]["complete"] and proof["runs"][0]["objects_deleted"] == 1

    assert erase_cli.main(["--project", project, "--provider", provider, "--patient-ref", "MRN-GONE-1"]) == 0
    again = capsys.readouterr().out
    assert "run 2" in again and "earlier runs:" in again and "no reference left" in again

    # a patient nobody holds: a report saying nothing was found, not an error
    assert erase_cli.main(["--project", project, "--provider", provider, "--patient-ref", "MRN-NEVER"]) == 0
    assert "nothing was found" in capsys.readouterr().out


def test_closing_a_project_destroys_its_rows_objects_grants_roles_and_key(settings, vault, keycloak, tmp_path,
                                                                           capsys):
    project, other = f"close-{uuid.uuid4().hex[:6]}", f"keep-{uuid.uuid4().hex[:6]}"
    for name in (project, other):
        assert project_cli.main(["create", name]) == 0
    pseudonym = _pseudonym_from_deid(tmp_path, project, "hospital-c", "MRN-C-1")  # makes the project's key
    store = ObjectStore(settings.resolved_object_store_uri)
    studies = {name: f"2.25.{uuid.uuid4().int}" for name in (project, other)}
    uris = {name: store.put(f"instance of {study}".encode(), prefix=f"test-close/{study}").uri
            for name, study in studies.items()}
    for name in (project, other):
        write_deltalake(governance.lake_table_path(settings, "silver/studies"), pa.Table.from_pylist(
            [{"project": name, "provider": "hospital-c", "pseudo_patient_id": pseudonym, "study_uid": studies[name]}],
            schema=governance.arrow_schema(SILVER_STUDIES)), mode="append")
        write_deltalake(governance.lake_table_path(settings, f"test_close/{project}"), pa.Table.from_pylist(
            [{"study_uid": studies[name], "object_uri": uris[name]}]), mode="append")
    assert dataset_cli.main(["create", f"{project}-all", "--project", project, "--table", "silver/studies"]) == 0
    name = f"closer-{uuid.uuid4().hex[:6]}"
    email = f"{name}@example.org"
    assert user_cli.main(["add", name, "--email", email]) == 0
    assert grant_cli.main([name, f"{project}-all", "--until", "2999-01-01"]) == 0
    capsys.readouterr()

    assert project_cli.main(["close", project]) == 2  # irreversible: --yes needed
    assert project_cli.main(["close", project, "--yes"]) == 0
    out = capsys.readouterr().out
    assert "Transit key destroyed" in out and "1 grant(s) revoked" in out and "no reference left" in out
    left = DeltaTable(governance.lake_table_path(settings, "silver/studies")).to_pyarrow_table().to_pylist()
    assert not [r for r in left if r["project"] == project] and [r for r in left if r["project"] == other]
    assert [r["study_uid"] for r in DeltaTable(governance.lake_table_path(settings, f"test_close/{project}"))
            .to_pyarrow_table().to_pylist()] == [studies[other]]  # a table without `project`: cut by study
    assert not store.exists(uris[project]) and store.exists(uris[other])
    with pytest.raises(hvac.exceptions.InvalidPath):
        vault.secrets.transit.read_key(name=transit_key_name(project), mount_point=settings.vault_transit_mount)
    with realm_admin(settings) as admin:
        assert admin.realm_role(REALM, f"project:{project}:reader") is None
        assert admin.realm_role(REALM, f"project:{other}:reader") is not None
    with pytest.raises(governance.AccessRefused):
        governance.authorise(settings, name, f"{project}-all")
    assert [r.action for r in audit.read(settings) if r.target == f"project {project}"] == [
        "project.create", "project.close"]


def test_erasure_reaches_the_quarantined_originals_of_the_patient_and_only_those(settings, vault, tmp_path, capsys):
    project, provider = f"erase-{uuid.uuid4().hex[:6]}", f"hospital-q{uuid.uuid4().hex[:4]}"
    _pseudonym_from_deid(tmp_path, project, provider, "MRN-ANY-0")  # the project's Transit key exists now
    folder = edge_dir(settings, provider)
    quarantine_keys(settings, provider).ensure_key()
    # Sealed at rest with the edge's own Vault token, as the provider's edge keeps them (it may make data keys,
    # never open one: the erasure opens them as the administrator).
    edge = hvac.Client(url=vault.url, token=edge_vault_token(vault, provider, project), verify=vault_ca(settings))
    sealer = Sealer(VaultTransitDataKeys(edge, at_rest_key_name(provider), mount=settings.vault_transit_mount))

    def instance(patient_id: str, study: int) -> bytes:
        [ds], _ = phi_dicom.ct_series(1, study=study, size=16)
        ds.PatientID = patient_id
        return phi_dicom.to_bytes(phi_dicom.without_pixel_data(ds))

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as packed:
        packed.writestr("a/1.dcm", instance("MRN-Q-GONE", 3))
        packed.writestr("a/2.dcm", instance("MRN-Q-OTHER", 4))
    originals = {"alone": instance("MRN-Q-GONE", 1), "archive": archive.getvalue(),
                 "other": instance("MRN-Q-KEPT", 2), "junk": b"not dicom at all " * 10}
    digests = {name: hashlib.sha256(data).hexdigest() for name, data in originals.items()}
    append_records(folder, [QuarantineRecord(name, QuarantineReason.NO_PIXEL_DATA, "test", None, digests[name],
                                             keep_original(folder, data, digests[name], sealer), provider)
                            for name, data in originals.items()], sealer)

    files = quarantine_dir(folder) / "files"
    assert all(is_sealed((files / f"{digest}.bin").read_bytes()) for digest in digests.values())
    assert erase_cli.main(["--project", project, "--provider", provider, "--patient-ref", "MRN-Q-GONE"]) == 0
    out = capsys.readouterr().out
    assert "edge quarantine: 4 kept original(s) opened, 2 of the patient deleted with 2 record(s)" in out
    assert "1 not readable as DICOM" in out
    left = {name for name, digest in digests.items() if (files / f"{digest}.bin").exists()}
    assert left == {"other", "junk"}  # the archive went whole: it held the patient
    records = (quarantine_dir(folder) / "quarantine.jsonl").read_text()
    assert digests["other"] in records and digests["alone"] not in records and digests["archive"] not in records
    assert "MRN-Q" not in out and not list(folder.glob(".erasure-*"))  # nothing of it printed, no scratch left
    delete_token(vault, provider)
