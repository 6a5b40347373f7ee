"""The deny list every consumer honours: erased pseudonyms from ``governance/erasures``, read again (only the new
log entries) once its refresh interval has passed."""

from __future__ import annotations

from datetime import UTC, datetime

from lake_schemas.tables import ERASURES
from platform_layer import governance
from platform_layer.deny_list import ErasedPatients
from platform_layer.settings import Settings


def _erase(settings: Settings, pseudonym: str) -> None:
    now = datetime.now(UTC)
    governance.write_rows(settings, ERASURES, [{
        "erasure_id": pseudonym[-8:], "project": "p", "provider": "h", "pseudonym": pseudonym, "studies": [],
        "objects": [], "runs": 1, "state": "complete", "requested_by": "t", "first_run_at": now,
        "last_run_at": now, "report": None}])


def test_an_erasure_counts_once_the_refresh_interval_has_passed(tmp_path):
    settings = Settings(state_dir=tmp_path)
    now = [0.0]
    erased = ErasedPatients(settings, refresh_s=5.0, clock=lambda: now[0])
    assert "RL-1" not in erased and None not in erased and "" not in erased  # no table yet: nobody erased
    _erase(settings, "RL-1")
    now[0] = 4.9
    assert "RL-1" not in erased  # read less than the interval ago
    now[0] = 5.0
    assert "RL-1" in erased and "RL-2" not in erased
    _erase(settings, "RL-2")
    now[0] = 10.0
    assert {"RL-1", "RL-2"} <= {p for p in ("RL-1", "RL-2", "RL-3") if p in erased}
