"""notebooks/cohort.ipynb runs headlessly (nbclient, a real kernel and its own Spark) against a small lake."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pyarrow as pa
import pytest
from deltalake import write_deltalake
from lake_build import small_lake
from nbclient import NotebookClient

pytestmark = pytest.mark.integration

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "cohort.ipynb"


@pytest.fixture(scope="module")
def lake(spark, kafka_bootstrap, registry_url, tmp_path_factory):
    return small_lake(spark, kafka_bootstrap, registry_url, tmp_path_factory.mktemp("lake"))


def _gold_features(lake) -> None:
    """The long-format gold table `radlake demo` writes, for two series of the small lake."""

    rows = []
    for key, volume in (("a1", 1200.0), ("c1", 800.0)):
        head = lake.events[key][0]
        for feature, value in (("morph_volume", volume), ("stat_mean", 40.0), ("cm_contrast", 3.5), ("stat_max", 90.0)):
            rows.append({"provider": head.provider, "study_uid": head.data.study_uid,
                         "series_uid": head.data.series_uid, "roi": "nodule", "feature": feature, "ibsi_id": "x",
                         "value": value, "settings_hash": "h", "code_version": "test"})
    write_deltalake(f"{lake.root}/gold/radiomics_features", pa.Table.from_pylist(rows), mode="overwrite",
                    partition_by=["provider"])


def test_cohort_notebook_runs_and_answers_from_the_lake(lake, monkeypatch):

    _gold_features(lake)
    monkeypatch.setenv("RADLAKE_LAKE_URI", lake.root)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOK.parent)}}).execute()

    text = "".join(out.get("text", "") for cell in notebook.cells if cell.cell_type == "code"
                   for out in cell.get("outputs", []))
    summary = json.loads(text.split("COHORT_SUMMARY ", 1)[1].splitlines()[0])
    assert summary["by_provider"] == [
        {"provider": "haukeland", "modality": "CT", "studies": 1, "series": 1, "instances": 10},
        {"provider": "st-olav", "modality": "CT", "studies": 1, "series": 1, "instances": 13},
    ]
    assert summary["features"] == 2 and summary["predictions"] is None
    assert summary["time_travel_version"] == lake.versions_after_phase1["silver/studies"]
    assert (summary["studies_then"], summary["studies_now"]) == (3, 3)
    assert summary["changed"] == [lake.events["a1"][0].data.study_uid]  # completed, then updated by a late slice
