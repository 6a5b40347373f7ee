"""The gate suite in lake_schemas/expectations runs on a pandas batch and names each rejected row."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from spark_jobs import gates


def _frame(**overrides):
    good = {"event_id": "e1", "study_uid": "2.25.1", "series_uid": "2.25.2", "sop_instance_uid": "2.25.3",
            "object_uri": "file:///x", "sha256": "a" * 64, "size_bytes": 4096, "modality": "CT", "rows": 512,
            "columns": 512, "pixel_spacing_min": 0.7, "orientation_norm_error": 0.0}
    bad = {**good, "event_id": "e2", **overrides}
    return pd.DataFrame([good, bad])


@pytest.fixture(scope="module")
def suite():
    return gates.load_suite("silver_instances")


@pytest.mark.parametrize("overrides, check, reason", [
    ({"modality": "ZZ"}, "expect_column_values_to_be_in_set(modality)", "UNSUPPORTED_MODALITY"),
    ({"sha256": "A" * 64}, "expect_column_values_to_match_regex(sha256)", "BAD_SHA256"),
    ({"sop_instance_uid": "1.2.840.1"}, "expect_column_values_to_match_regex(sop_instance_uid)", "NOT_PSEUDONYMOUS_UID"),
    ({"series_uid": None}, "expect_column_values_to_not_be_null(series_uid)", "MISSING_SERIES_UID"),
    ({"size_bytes": 10}, "expect_column_values_to_be_between(size_bytes)", "IMPLAUSIBLE_SIZE"),
    ({"pixel_spacing_min": 0.0}, "expect_column_values_to_be_between(pixel_spacing_min)", "BAD_PIXEL_SPACING"),
    ({"orientation_norm_error": 1.0}, "expect_column_values_to_be_between(orientation_norm_error)", "BAD_ORIENTATION"),
])
def test_each_expectation_rejects_exactly_the_bad_row(suite, overrides, check, reason):
    result = gates.validate(_frame(**overrides), suite)
    failed = [o for o in result.outcomes if not o.success]
    assert [(o.check, o.reason, o.unexpected) for o in failed] == [(check, reason, ("e2",))]
    assert result.rejected == {"e2"} and not result.success and result.rows_evaluated == 2


def test_a_clean_batch_passes_every_expectation(suite):
    result = gates.validate(_frame(), suite)
    assert result.success and result.rejected == frozenset()
    assert len(result.outcomes) == len(suite.document["expectations"])


def test_an_expectation_that_cannot_run_rejects_the_whole_batch(suite):
    result = gates.validate(_frame().drop(columns=["modality"]), suite)
    broken = [o for o in result.outcomes if o.error is not None]
    assert [o.check for o in broken] == ["expect_column_values_to_be_in_set(modality)"]
    assert broken[0].reason == "GATE_ERROR" and result.rejected == {"e1", "e2"}


def test_suite_file_is_checked(tmp_path):
    (tmp_path / "plain.json").write_text(json.dumps({"name": "plain", "expectations": []}))
    with pytest.raises(gates.GateError, match="not a radlake gate suite"):
        gates.load_suite("plain", tmp_path)
    suite = gates.load_suite("silver_instances")
    assert suite.index_column == "event_id" and len(suite.sha256) == 64
