"""The checks that hold the code's structure (docs/architecture.md): import contracts, lint, types.

Each runs the tool the way a developer would from the repository root and fails with its report.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


@pytest.mark.parametrize("check", [
    pytest.param([str(BIN / "lint-imports")], id="import-linter: layers and forbidden clients"),
    pytest.param([str(BIN / "ruff"), "check", "."], id="ruff: names, imports at the top and in order"),
    pytest.param([str(BIN / "mypy")], id="mypy: lake_schemas and platform_layer"),
])
def test_structure_check_passes(check):
    result = subprocess.run(check, cwd=ROOT, capture_output=True, text=True, timeout=900)  # noqa: S603
    assert result.returncode == 0, f"{' '.join(check)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-2000:]}"
