"""The supervisor process (``radlake stack supervise``): ``stack up`` starts it last, ``stack down`` stops it first.

It listens on no port; it is up when it has written its status file (``<state>/supervisor/status.json``) under its
own pid. See :mod:`infra.supervision` for what it does.
"""

from __future__ import annotations

import json
from pathlib import Path

from infra import process
from infra.component import Component, radlake_process
from infra.supervision import status_file
from platform_layer.supervision import supervisor_dir


class Supervisor(Component):
    name = "supervisor"

    @property
    def home(self) -> Path:
        return supervisor_dir(self.settings)

    @property
    def address(self) -> str:
        return str(status_file(self.settings))

    @property
    def version(self) -> str:
        return "radlake"

    def command(self) -> tuple[list[str], dict[str, str]]:
        return radlake_process(self.settings, "stack", "supervise")

    def responding(self) -> bool:
        pid = self.pid()
        try:
            return pid is not None and json.loads(status_file(self.settings).read_text())["pid"] == pid
        except (FileNotFoundError, ValueError, KeyError):
            return False

    def stop(self) -> None:
        """Without the stack lock (the supervisor may hold it while it restarts something): SIGTERM makes it finish
        the pass it is in and exit."""
        pid = self.pid()
        if pid is not None:
            process.terminate(pid, timeout_s=self.settings.start_timeout_s + 30)
        self.pid_file.unlink(missing_ok=True)
