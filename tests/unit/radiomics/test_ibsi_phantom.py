"""Every implemented feature must match the IBSI 1 digital-phantom reference value.

The reference table and its provenance live in tests/data/ibsi/. A feature missing from our
output fails the test unless it is listed in NOT_IMPLEMENTED; a known-failing case is listed in
KNOWN_FAILING with the reason next to it.
"""

from __future__ import annotations

import csv
import math

import pytest

from radlake.radiomics import IBSI_DIGITAL_PHANTOM, compute_features

from .conftest import IBSI_DIR, tolerance

# (tag, aggregation id) -> why it is expected to fail. Empty: all 482 reference values pass.
KNOWN_FAILING: dict[tuple[str, str], str] = {}

# Features with a phantom reference value that radlake does not compute: none. (Features without a
# phantom reference that radlake does not compute are listed in docs/radiomics.md.)
NOT_IMPLEMENTED: set[str] = set()


def _reference_rows() -> list[dict[str, str]]:
    with open(IBSI_DIR / "digital_phantom_reference.csv", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


ROWS = _reference_rows()


@pytest.fixture(scope="module")
def computed(phantom):
    image, mask, spacing = phantom
    values = compute_features(image, mask, spacing, IBSI_DIGITAL_PHANTOM)
    return {(f.tag, f.aggregation_id): f.value for f in values}


def test_reference_table_is_complete():
    assert len(ROWS) == 482
    assert len({(r["tag"], r["aggregation_id"]) for r in ROWS}) == 482


@pytest.mark.parametrize("row", ROWS, ids=[f"{r['tag']}[{r['aggregation_id']}]" for r in ROWS])
def test_feature_within_ibsi_tolerance(row, computed):
    key = (row["tag"], row["aggregation_id"])
    if row["tag"] in NOT_IMPLEMENTED:
        pytest.skip("not implemented, see docs/radiomics.md")
    if key in KNOWN_FAILING:
        pytest.xfail(KNOWN_FAILING[key])
    assert key in computed, f"{key} not computed"
    value, reference = computed[key], float(row["value"])
    assert math.isfinite(value)
    assert abs(value - reference) <= tolerance(row) * (1 + 1e-9), f"{key}: {value} vs IBSI {reference}"
