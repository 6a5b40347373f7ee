"""What every component of the local stack has in common: install, start idempotently, health, stop."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import signal
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from infra import process
from infra.errors import StackError
from platform_layer.errors import VaultUnavailable
from platform_layer.settings import Settings, child_environment
from platform_layer.state import lock_down
from platform_layer.tls import CertificateError, ensure_certificate
from platform_layer.vault import admin_client

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    pid: int | None
    healthy: bool
    version: str
    detail: str = ""
    rss_bytes: int = 0


def radlake_process(settings: Settings, *args: str) -> tuple[list[str], dict[str, str]]:
    """argv and environment of a ``radlake ARGS...`` process the stack starts: the code of the checkout that runs
    the stack (a checkout may differ from what the venv installed), and the same settings, secrets left out."""
    source = str(Path(__file__).resolve().parent.parent)
    path = os.pathsep.join([source, *filter(None, [os.environ.get("PYTHONPATH", "")])])
    return [sys.executable, "-m", "apps.cli", *args], {**child_environment(settings), "PYTHONPATH": path}


@contextlib.contextmanager
def _install_lock(settings: Settings, name: str) -> Iterator[None]:
    """One installer per component and cache at a time: stacks with different state dirs share the cache, and
    an install's staging folders and partial downloads have fixed names (the second installer then finds the
    work done)."""
    locks = settings.cache_dir / ".locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# per lock file: a lock for this process's threads, how deep this process holds it, and the open file
_STACK_LOCKS: dict[Path, tuple[threading.RLock, list[int], list[object]]] = {}


@contextlib.contextmanager
def stack_lock(settings: Settings, *, wait: bool = True) -> Iterator[bool]:
    """Hold ``<state>/run/stack.lock`` (re-entrant within a process): ``stack up``/``down`` and each component's
    start and stop hold it, and the supervisor acts only while it can take it, so a restart never races them.
    Yields False, without the lock, when ``wait`` is False and another holds it."""
    path = settings.state_dir / "run" / "stack.lock"
    guard, depth, handle = _STACK_LOCKS.setdefault(path, (threading.RLock(), [0], [None]))
    if not guard.acquire(blocking=wait):
        yield False
        return
    try:
        if depth[0] == 0:
            path.parent.mkdir(parents=True, exist_ok=True)
            lock = open(path, "a")  # noqa: SIM115 - held across the yield, closed when released
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                lock.close()
                yield False
                return
            handle[0] = lock
        depth[0] += 1
        try:
            yield True
        finally:
            depth[0] -= 1
            if depth[0] == 0 and handle[0] is not None:
                fcntl.flock(handle[0], fcntl.LOCK_UN)
                handle[0].close()  # type: ignore[attr-defined]
                handle[0] = None
    finally:
        guard.release()


class RestartedToRenew:
    """For a radlake server that reads its certificate (``<home>/tls/<name>.crt``, for ``server_name``) only at
    start: ``_certificate()`` issues it when due and says whether it did, and a renewed certificate takes a
    restart, a second's outage, under the stack lock so that nobody starts it in between."""

    server_name = ""

    def _certificate(self) -> bool:
        name = self.name  # type: ignore[attr-defined]
        try:
            return ensure_certificate(admin_client(self.settings), self.home / "tls",  # type: ignore[attr-defined]
                                      name, self.server_name).issued
        except (VaultUnavailable, CertificateError) as err:
            raise StackError(f"{name}: no certificate from Vault's PKI ({err}); `radlake stack up vault`") from err

    def renew_certificates(self) -> bool:
        with stack_lock(self.settings):  # type: ignore[attr-defined]
            if not self._certificate():  # type: ignore[attr-defined]
                return False
            self.stop()  # type: ignore[attr-defined]
            self.start()  # type: ignore[attr-defined]
        return True


class Component(ABC):
    """A local process the stack installs into the cache, starts under the state dir and health-checks.

    Subclasses describe the component (``command``, ``ports``, ``healthy``); this class runs the
    lifecycle so that ``start`` is idempotent and ``stop`` leaves no process behind.
    """

    name: str = ""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # --- description -------------------------------------------------------------------------
    @property
    def home(self) -> Path:
        """This component's state directory (data, config, generated secrets)."""
        return self.settings.state_dir / self.name

    @property
    def log_file(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.state_dir / "run" / f"{self.name}.pid"

    @property
    def external(self) -> bool:
        """True when settings point at an existing service, which the stack then neither starts nor stops."""
        return False

    @property
    def supervisable(self) -> bool:
        """Whether the supervisor restarts this component when it dies (a process of the stack's own)."""
        return not self.external

    @property
    @abstractmethod
    def address(self) -> str: ...

    @property
    @abstractmethod
    def version(self) -> str: ...

    @property
    def ports(self) -> Sequence[int]:
        return ()

    def install(self) -> None:
        """Fetch what the component needs into the cache (idempotent)."""

    def prepare(self) -> None:
        """Write configuration and initialise storage under the state dir (idempotent)."""

    @property
    def port_settings(self) -> dict[int, str]:
        """The setting that moves each port, for errors (default: ``RADLAKE_<NAME>_PORT`` for all)."""
        return {}

    @abstractmethod
    def command(self) -> tuple[list[str], dict[str, str]]:
        """argv and extra environment of the server process."""

    @abstractmethod
    def responding(self) -> bool:
        """The server answers on its port (it may still need after_start, e.g. Vault's unseal)."""

    def healthy(self) -> bool:
        return self.responding()

    def after_start(self) -> None:
        """Runs each time the process is up and responding (unseal, create engines...)."""

    def renew_certificates(self) -> bool:
        """Issue anew each certificate of the running component that is missing or past two thirds of its life,
        and have the process serve it; whether anything was issued. The supervisor calls it every
        ``supervisor_renew_interval_s``, so a stack that runs for months never serves an expired certificate."""
        return False

    # --- lifecycle ---------------------------------------------------------------------------
    def pid(self) -> int | None:
        return process.read_pid(self.pid_file)

    def start(self) -> ComponentStatus:
        lock_down(self.settings)
        with stack_lock(self.settings):
            return self._start()

    def _start(self) -> ComponentStatus:
        if self.external:
            process.wait_until(self.responding, timeout_s=30, what=f"{self.name} at {self.address}")
            return self.status()
        pid = self.pid()
        if pid is not None and self.responding():
            self.after_start()
            process.wait_until(self.healthy, timeout_s=self.settings.start_timeout_s, what=self.name,
                               log_file=self.log_file)
            log.info("%s already running (pid %s)", self.name, pid)
            return self.status()
        if pid is not None:
            # Our own process, started but not answering: wait for it rather than starting a second one.
            process.wait_until(self.responding, timeout_s=self.settings.start_timeout_s, what=self.name,
                               alive=lambda: process.pid_alive(pid), log_file=self.log_file)
        else:
            self.pid_file.unlink(missing_ok=True)
            process.ensure_ports_free(self.name, self.ports, settings=self.port_settings)
            with _install_lock(self.settings, self.name):
                self.install()
            self.home.mkdir(parents=True, exist_ok=True)
            self.prepare()
            argv, env = self.command()
            new_pid = process.spawn(argv, pid_file=self.pid_file, log_file=self.log_file, cwd=self.home, env=env)
            log.info("%s started (pid %s), waiting for health", self.name, new_pid)
            process.wait_until(self.responding, timeout_s=self.settings.start_timeout_s, what=self.name,
                               alive=lambda: process.pid_alive(new_pid), log_file=self.log_file)
        self.after_start()
        process.wait_until(self.healthy, timeout_s=self.settings.start_timeout_s, what=self.name,
                           log_file=self.log_file)
        return self.status()

    def stop(self) -> None:
        if self.external:
            return
        with stack_lock(self.settings):
            pid = self.pid()
            if pid is not None:
                process.terminate(pid)
            self.pid_file.unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL the process (for fault-injection tests); the next start recovers from its state."""
        pid = self.pid()
        if pid is not None:
            os.killpg(pid, signal.SIGKILL)
            process.wait_until(lambda: not process.pid_alive(pid), timeout_s=10, what=f"kill {self.name}")

    def status(self) -> ComponentStatus:
        pid = None if self.external else self.pid()
        healthy = (pid is not None or self.external) and self.healthy()
        detail = "external" if self.external else ("" if pid else "stopped")
        return ComponentStatus(
            name=self.name,
            address=self.address,
            pid=pid,
            healthy=healthy,
            version=self.version,
            detail=detail,
            rss_bytes=process.rss_bytes(pid) if pid else 0,
        )
