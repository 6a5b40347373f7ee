"""Start, find and stop the stack's background processes (pid files, process groups, port checks)."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx

from infra.errors import ComponentUnhealthy, PortTaken
from platform_layer.state import PRIVATE_UMASK


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """True when something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def answers_200(url: str, ca_file: Path | None = None, timeout_s: float = 2.0) -> bool:
    """A health probe: GET ``url`` answers 200, its certificate verified against ``ca_file`` (None: the system's
    CAs). A missing CA file, a refused handshake or no answer all mean "not (yet)"."""
    try:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=str(ca_file)) if ca_file else True
        return httpx.get(url, verify=verify, timeout=timeout_s).status_code == 200
    except (httpx.HTTPError, OSError, ssl.SSLError):
        return False


def ensure_ports_free(component: str, ports: Sequence[int], grace_s: float = 10.0,
                      settings: Mapping[int, str] | None = None) -> None:
    """Raise PortTaken unless every port is free; waits grace_s for a process that is still exiting. The
    error names the setting of each taken port (``settings``: port -> setting; the component's main port
    setting by default)."""
    deadline = time.monotonic() + grace_s
    while (taken := [p for p in ports if port_open(p)]) and time.monotonic() < deadline:
        time.sleep(0.25)
    if taken:
        default = f"RADLAKE_{component.upper().replace('-', '_')}_PORT"
        names = sorted({(settings or {}).get(p, default) for p in taken})
        raise PortTaken(
            f"{component}: port(s) {', '.join(map(str, taken))} on 127.0.0.1 are used by another process; "
            f"stop it or set {' / '.join(names)}"
        )


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); treat it as gone.
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        try:
            return stat.read_text().split(") ", 1)[1][0] != "Z"
        except (OSError, IndexError):
            return True
    return True


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def spawn(
    argv: Sequence[str],
    *,
    pid_file: Path,
    log_file: Path,
    cwd: Path,
    env: Mapping[str, str] | None = None,
) -> int:
    """Start argv in its own session (so it outlives the CLI), logging to log_file; returns its pid."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = dict(os.environ)
    full_env.update(env or {})
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(  # noqa: S603 - argv is built by the stack, never from user input
            list(argv),
            cwd=cwd,
            env=full_env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            umask=PRIVATE_UMASK,  # the component's files are its owner's only
        )
    pid_file.write_text(f"{proc.pid}\n")
    return proc.pid


def terminate(pid: int, timeout_s: float = 30.0) -> None:
    """SIGTERM the process group, wait, then SIGKILL what is left."""
    for sig, wait in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(pid, sig)
        except ProcessLookupError:
            return
        except PermissionError:
            os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                _reap(pid)
                return
            time.sleep(0.2)


def _reap(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_until(
    check: Callable[[], bool],
    *,
    timeout_s: float,
    what: str,
    alive: Callable[[], bool] | None = None,
    log_file: Path | None = None,
) -> None:
    """Poll check() until true; raise ComponentUnhealthy naming `what` (and the log) otherwise."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if alive is not None and not alive():
            raise ComponentUnhealthy(f"{what}: process exited during start-up; see {log_file}{_log_tail(log_file)}")
        time.sleep(0.5)
    raise ComponentUnhealthy(f"{what}: not healthy after {timeout_s:.0f}s; see {log_file}{_log_tail(log_file)}")


def _log_tail(log_file: Path | None, lines: int = 8) -> str:
    if log_file is None or not log_file.exists():
        return ""
    tail = log_file.read_text(errors="replace").splitlines()[-lines:]
    return "\n  " + "\n  ".join(tail) if tail else ""


def rss_bytes(pid: int) -> int:
    """Resident memory of a process and its descendants (0 when gone)."""
    total = 0
    for p in [pid, *_descendants(pid)]:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            continue
    return total


def _descendants(pid: int) -> list[int]:
    children: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids = (task / "children").read_text().split()
            for kid in map(int, kids):
                children += [kid, *_descendants(kid)]
    except OSError:
        pass
    return children
