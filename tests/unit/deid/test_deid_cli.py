"""``radlake deid`` end to end on a folder of good, bad, duplicate and archived inputs (local HMAC key)."""

from __future__ import annotations

import json
import os

import pydicom
import pytest

from apps import deid as cli
from platform_layer.settings import get_settings
from radlake.deid.engine import Outcome, settle_duplicates
from radlake.deid.instance_result import Status
from radlake.synthetic import phi_dicom


@pytest.fixture(scope="module")
def upload(tmp_path_factory, series_bytes):
    root = tmp_path_factory.mktemp("upload")
    (root / "series").mkdir()
    for i, data in enumerate(series_bytes):
        (root / "series" / f"IM{i}").write_bytes(data)
    (root / "series" / "IM0.copy").write_bytes(series_bytes[0])  # identical duplicate
    conflict = phi_dicom.ct_instance(1, size=16)
    conflict.KVP = "80"  # same SOP Instance UID as series/IM1, different content
    (root / "conflict.dcm").write_bytes(phi_dicom.to_bytes(conflict))
    (root / "notes.pdf").write_bytes(phi_dicom.NON_DICOM)
    other = phi_dicom.ct_series(2, study=2, size=16)[0]
    archive = phi_dicom.zip_archive([("DICOMDIR", phi_dicom.dicomdir_bytes())]
                                    + [(f"S2/IM{i}", phi_dicom.to_bytes(ds)) for i, ds in enumerate(other)]
                                    + [("../escape.dcm", series_bytes[0])])
    (root / "upload.zip").write_bytes(archive)
    key = root.parent / "key"
    key.write_bytes(b"cli-test-key")
    return root, key


def _run(upload, out, *extra):
    root, key = upload
    return cli.main([str(root), "--out", str(out), "--project", "t", "--local-key-file", str(key),
                     "--no-progress", *extra])


@pytest.mark.parametrize("workers", ["1", "2"])
def test_folder_with_everything(upload, tmp_path, capsys, workers):
    out = tmp_path / "out"
    assert _run(upload, out, "--workers", workers) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["inputs"] == 11
    assert report["by_status"] == {"deidentified": 5, "duplicate": 1, "quarantined": 4, "skipped": 1}
    assert report["by_reason"] == {"ARCHIVE_PATH_TRAVERSAL": 1, "CONFLICTING_DUPLICATE": 2, "DICOMDIR": 1,
                                   "NOT_DICOM": 1}
    assert report["verification"] == {"scanned": 6, "passed": 6, "pass_rate": 1.0}
    assert set(report["providers"]) == {"SAINT-ELSEWHERE-GH", "unknown"}
    released = sorted(out.glob("2.25.*/2.25.*/2.25.*.dcm"))
    assert len(released) == 5
    assert len({p.parent.parent for p in released}) == 2  # two pseudonymous studies
    for path in released:
        assert b"Quixleyhart" not in path.read_bytes()
        assert pydicom.dcmread(path).PatientIdentityRemoved == "YES"
    journal = [json.loads(line) for line in (out / "quarantine" / "quarantine.jsonl").read_text().splitlines()]
    assert len(journal) == 4
    for record in journal:
        assert record["reason"] and record["input"]
        if record["reason"] in ("CONFLICTING_DUPLICATE", "NOT_DICOM"):
            assert (out / record["stored_as"]).is_file()
    assert {r["original_sop_instance_uid"] for r in journal if r["reason"] == "CONFLICTING_DUPLICATE"} == {
        "1.2.826.0.1.3680043.10.999.1.1.1"}
    assert json.loads(capsys.readouterr().out)["inputs"] == 11


def test_rerun_is_idempotent(upload, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    assert _run(upload, first, "--workers", "1") == 0
    assert _run(upload, second, "--workers", "1") == 0
    files = sorted(p.relative_to(first) for p in first.rglob("*.dcm"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.dcm"))
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def test_usage_errors(tmp_path, capsys):
    assert cli.main([]) == 2
    assert cli.main([str(tmp_path / "missing"), "--out", str(tmp_path), "--project", "p"]) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("options: [nonsense]\n")
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "o"), "--project", "p", "--profile", str(bad)]) == 2


def test_a_project_name_that_could_share_a_key_is_a_usage_error(tmp_path, capsys):
    assert cli.main([str(tmp_path), "--out", str(tmp_path / "o"), "--project", "lung.2024"]) == 2
    assert "not valid" in capsys.readouterr().err


def test_unreachable_vault_is_an_infrastructure_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("RADLAKE_VAULT_ADDR", "http://127.0.0.1:9")
    monkeypatch.setenv("RADLAKE_VAULT_TOKEN", "nothing")
    get_settings.cache_clear()
    try:
        src = tmp_path / "src"
        src.mkdir()
        assert cli.main([str(src), "--out", str(tmp_path / "o"), "--project", "lung-2026", "--no-progress"]) == 3
        assert "Vault" in capsys.readouterr().err
    finally:
        get_settings.cache_clear()


def test_output_inside_the_source_folder_is_not_read_back(upload, tmp_path):
    root, key = upload
    src = tmp_path / "src"
    src.mkdir()
    (src / "IM0").write_bytes((root / "series" / "IM0").read_bytes())
    for _ in range(2):
        assert cli.main([str(src), "--out", str(src / "out"), "--project", "t", "--local-key-file", str(key),
                         "--no-progress", "--workers", "1"]) == 0
        assert json.loads((src / "out" / "report.json").read_text())["inputs"] == 1


def test_duplicates_are_hashed_when_settled(tmp_path):

    for name, data in (("a", b"same"), ("b", b"same"), ("c", b"other"), ("d", b"only")):
        (tmp_path / name).write_bytes(data)

    def released(name: str, uid: str) -> Outcome:
        return Outcome(name, Status.DEIDENTIFIED, "p", original_sop_uid=uid, path=str(tmp_path / name))

    settled = settle_duplicates([released("a", "1"), released("b", "1"), released("c", "2"), released("gone", "2"),
                                 released("d", "3")])
    assert [o.status for o in settled] == [Status.DEIDENTIFIED, Status.DUPLICATE, Status.QUARANTINED,
                                           Status.QUARANTINED, Status.DEIDENTIFIED]
    assert settled[0].sha256 == settled[1].sha256 and settled[0].sha256 is not None
    assert settled[3].sha256 is None and settled[4].sha256 is None  # unreadable counts as different; single: not hashed


_FORK_MARKERS: list[str] = []


def _mark_fork_in_child() -> None:
    for marker in _FORK_MARKERS:
        with open(marker, "w"):
            pass


os.register_at_fork(after_in_child=_mark_fork_in_child)


def test_workers_are_not_forked_from_the_caller(upload, tmp_path):
    """A forked worker inherits the caller's threads' locks and objects (a Kafka client, a Spark gateway):
    collecting one of them there killed the worker (BrokenProcessPool). Workers come from a clean server."""
    marker = tmp_path / "forked-from-the-caller"
    _FORK_MARKERS.append(str(marker))
    try:
        assert _run(upload, tmp_path / "out", "--workers", "2") == 0
    finally:
        _FORK_MARKERS.remove(str(marker))
    assert not marker.exists()
