"""The state dir and what is created in it are the owner's only (platform_layer/state.py)."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

from platform_layer.settings import Settings
from platform_layer.state import lock_down, open_entries


def test_lock_down_closes_an_open_state_dir_and_what_an_earlier_run_left_in_it(tmp_path):
    root = tmp_path / "state"
    (root / "edge" / "p" / "quarantine").mkdir(parents=True)
    journal = root / "uploads.jsonl"
    journal.write_text("{}")
    os.chmod(root, 0o755)
    os.chmod(journal, 0o644)
    assert open_entries(root)
    script = ("import sys; from pathlib import Path; from platform_layer.settings import Settings; "
              "from platform_layer.state import lock_down; lock_down(Settings(state_dir=Path(sys.argv[1]))); "
              "(Path(sys.argv[1]) / 'new.json').write_text('x'); (Path(sys.argv[1]) / 'spool').mkdir()")
    subprocess.run([sys.executable, "-c", script, str(root)], check=True)  # its own umask, not the test's
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert open_entries(root) == []
    assert stat.S_IMODE((root / "new.json").stat().st_mode) == 0o600
    assert stat.S_IMODE((root / "spool").stat().st_mode) == 0o700


def test_a_fresh_state_dir_is_created_private(tmp_path):
    previous = os.umask(0o022)
    try:
        lock_down(Settings(state_dir=tmp_path / "fresh"))
        assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700
        assert os.umask(0o022) == 0o077  # lock_down left the process's umask private
    finally:
        os.umask(previous)
