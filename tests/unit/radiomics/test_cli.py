from __future__ import annotations

import csv
import json

from apps.radiomics import main

from .conftest import IBSI_DIR


def test_compute_writes_csv_with_ibsi_ids(tmp_path, capsys):
    out = tmp_path / "features.csv"
    settings = tmp_path / "s.yaml"
    settings.write_text("discretisation: {method: none}\n")
    rc = main(["compute", "--image", str(IBSI_DIR / "phantom.nii.gz"), "--mask", str(IBSI_DIR / "mask.nii.gz"),
               "--settings", str(settings), "--label", "1", "--out", str(out)])
    assert rc == 0
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0])[:3] == ["feature", "ibsi_id", "value"]
    by_name = {r["feature"]: r for r in rows}
    assert by_name["stat.mean"]["ibsi_id"] == "Q4LE"
    assert abs(float(by_name["stat.mean"]["value"]) - 2.15) < 0.005
    assert by_name["cm.joint.max[3D:avg]"]["ibsi_id"] == "GYBY"
    assert str(out) in capsys.readouterr().out


def test_compute_writes_json(tmp_path):
    out = tmp_path / "features.json"
    rc = main(["compute", "--image", str(IBSI_DIR / "phantom.nii.gz"), "--mask", str(IBSI_DIR / "mask.nii.gz"),
               "--out", str(out), "--format", "json"])
    assert rc == 0
    document = json.loads(out.read_text())
    assert document["settings_hash"] and document["features"][0]["feature"] == "morph.vol"


def test_invalid_input_gives_exit_code_and_message(tmp_path, capsys):
    rc = main(["compute", "--image", str(IBSI_DIR / "phantom.nii.gz"), "--mask", str(IBSI_DIR / "mask.nii.gz"),
               "--label", "9", "--out", str(tmp_path / "f.csv")])
    assert rc == 1
    assert "label_not_found" in capsys.readouterr().err
    rc = main(["compute", "--image", str(tmp_path / "missing.nii.gz"), "--mask", str(IBSI_DIR / "mask.nii.gz"),
               "--out", str(tmp_path / "f.csv")])
    assert rc == 1


def test_cuda_without_device_is_a_clear_error(tmp_path, capsys):
    import torch  # noqa: PLC0415 - the optional gpu extra

    if torch.cuda.is_available():
        return
    rc = main(["compute", "--image", str(IBSI_DIR / "phantom.nii.gz"), "--mask", str(IBSI_DIR / "mask.nii.gz"),
               "--device", "cuda", "--out", str(tmp_path / "f.csv")])
    assert rc == 1
    assert "device_unavailable" in capsys.readouterr().err
