"""Fixtures for the de-identification unit tests: generated CT series with fake PHI, compiled profiles."""

from __future__ import annotations

import pytest

from radlake.deid.confidentiality_profile import Profile, Rules, compile_rules
from radlake.synthetic import phi_dicom


@pytest.fixture(scope="session")
def series():
    """Four 16x16 CT instances of one series (each referencing the previous one) and what was planted."""
    return phi_dicom.ct_series(4, size=16)


@pytest.fixture(scope="session")
def series_bytes(series) -> list[bytes]:
    return [phi_dicom.to_bytes(ds) for ds in series[0]]


@pytest.fixture(scope="session")
def default_rules() -> Rules:
    return compile_rules(Profile())


@pytest.fixture(scope="session")
def basic_rules() -> Rules:
    return compile_rules(Profile(options=frozenset()))
