"""Start, stop and check the providers' Storage SCP processes (shared by ``radlake provider`` and ``radlake stack``).

Each SCP is ``radlake storage-scp --config <state dir>/dimse/NAME/scp.json`` in its own session, with its pid in
``<state dir>/run/dimse-NAME.pid`` and its log in ``<state dir>/logs/dimse-NAME.log``; healthy means it answers a
C-ECHO. Stopping sends SIGTERM to its process group (SIGKILL after 30 s), so nothing is left behind.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import pynetdicom

from infra import process
from infra.component import ComponentStatus
from infra.errors import StackError
from lake_schemas.errors import RadlakeError
from nifi import dimse
from nifi.edge.storage_scp import SUCCESS, ScpConfig, client_tls, echo
from platform_layer.settings import Settings

log = logging.getLogger(__name__)

REPOSITORY = Path(__file__).resolve().parent.parent


def pid_file(settings: Settings, provider: str) -> Path:
    return settings.state_dir / "run" / f"dimse-{provider}.pid"


def log_file(settings: Settings, provider: str) -> Path:
    return settings.logs_dir / f"dimse-{provider}.log"


def healthy(config: ScpConfig) -> bool:
    tls = client_tls(config.ca_file) if config.tls else None
    quiet = logging.getLogger("pynetdicom")
    level = quiet.level
    quiet.setLevel(logging.CRITICAL)  # a refused connection while the SCP starts is expected, not an error to show
    try:
        return echo(config.bind_address, config.port, config.ae_title, tls=tls) == SUCCESS
    except (OSError, RuntimeError, ValueError):
        return False
    finally:
        quiet.setLevel(level)


def stop(settings: Settings, provider: str) -> None:
    pid = process.read_pid(pid_file(settings, provider))
    if pid is not None:
        process.terminate(pid)
    pid_file(settings, provider).unlink(missing_ok=True)


def start(settings: Settings, config: ScpConfig, *, restart: bool = False) -> ComponentStatus:
    """Start the provider's SCP (idempotent; ``restart`` stops a running one first, to take a new
    configuration, as does an edge that moved since ``config`` was written) and wait until it answers a C-ECHO."""
    provider = config.provider
    current = dimse.follow_edge(settings, config)
    if restart or current != config:  # a running SCP keeps the configuration it started with
        stop(settings, provider)
    config = current
    pid = process.read_pid(pid_file(settings, provider))
    if pid is None or not process.pid_alive(pid):
        process.ensure_ports_free(f"the Storage SCP of {provider}", [config.port])
        # the same code as this command's, whatever is installed in the environment
        env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")]))}
        argv = [sys.executable, "-m", "apps.cli", "storage-scp", "--config", str(dimse.config_file(settings, provider))]
        pid = process.spawn(argv, pid_file=pid_file(settings, provider), log_file=log_file(settings, provider),
                            cwd=dimse.scp_dir(settings, provider), env=env)
    started = pid
    try:
        process.wait_until(lambda: healthy(config), timeout_s=60, what=f"the Storage SCP of {provider}",
                           alive=lambda: process.pid_alive(started), log_file=log_file(settings, provider))
    except StackError:
        stop(settings, provider)
        raise
    return status(settings, config)


def status(settings: Settings, config: ScpConfig) -> ComponentStatus:
    pid = process.read_pid(pid_file(settings, config.provider))
    alive = pid is not None and process.pid_alive(pid)
    return ComponentStatus(f"dimse-{config.provider}", f"{config.ae_title}@{config.bind_address}:{config.port}",
                           pid if alive else None, alive and healthy(config), f"pynetdicom {pynetdicom.__version__}",
                           "DICOM TLS" if config.tls else "plain DIMSE", process.rss_bytes(pid) if alive and pid else 0)


def start_all(settings: Settings) -> list[ComponentStatus]:
    """Start every configured SCP; one that cannot start (its edge removed, its port taken) is logged and the
    others still start."""
    started = []
    for config in dimse.configured(settings):
        try:
            started.append(start(settings, config))
        except RadlakeError as err:
            log.warning("the Storage SCP of %s did not start: %s", config.provider, err)
    return started


def stop_all(settings: Settings) -> None:
    for config in dimse.configured(settings):
        stop(settings, config.provider)
    for stale in (settings.state_dir / "run").glob("dimse-*.pid"):  # a provider forgotten while its SCP ran
        stop(settings, stale.name[len("dimse-"):-len(".pid")])
