"""``/metrics`` of a long-running part: HTTPS with a certificate of the platform CA, answering only clients that show
a certificate of the same CA (mutual TLS), announced to Prometheus while it runs.

Every part serves its metrics the same way: the command issues the part's certificate as the platform
administrator (:func:`metrics_certificate`, before it takes the part's own identity), then serves with
:func:`serving`, which writes a file_sd announcement ``<state>/monitoring/targets/<job>-<instance>.json``
(Prometheus's job ``<job>`` reads ``<job>-*.json``) and removes it when the part stops. A part killed with -9 leaves
its announcement behind: it carries the pid, so ``stack up monitoring`` can drop announcements of processes that
are gone.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server

from platform_layer.endpoints import scrape_targets_dir
from platform_layer.errors import PlatformError
from platform_layer.settings import Settings
from platform_layer.tls import CertificateFiles, ca_file, ensure_certificate
from platform_layer.vault import admin_client

# Prometheus jobs whose targets announce themselves (file_sd): one per kind of long-running part.
ANNOUNCED_JOBS = ("streams", "inference", "radiomics", "lake")


@dataclass(frozen=True)
class MetricsTLS:
    """What a ``/metrics`` server shows (its certificate and key) and verifies its clients with (the CA)."""

    certificate: str
    key: str
    client_ca: str


def metrics_certificate(settings: Settings, job: str) -> MetricsTLS:
    """The part's certificate (``<state>/<job>/tls/metrics.*``, CN ``<job>.radlake.local``), issued by the
    platform administrator when missing or past two thirds of its life."""
    files: CertificateFiles = ensure_certificate(admin_client(settings), settings.state_dir / job / "tls", "metrics",
                                                 f"{job}.radlake.local")
    return MetricsTLS(str(files.certificate), str(files.key), str(ca_file(settings)))


def start_server(registry: CollectorRegistry, tls: MetricsTLS, host: str = "127.0.0.1", port: int = 0) -> Any:
    """Serve ``registry`` on ``https://host:port/metrics`` (port 0: any free port) with client certificates
    required; returns the server (``server_port``, ``shutdown()``)."""
    if not (tls.certificate and tls.key and tls.client_ca):
        raise PlatformError("a metrics endpoint is HTTPS only: it needs a certificate, its key and the CA of its "
                            "clients")
    server, _ = start_http_server(port, host, registry=registry, certfile=tls.certificate, keyfile=tls.key,
                                  client_cafile=tls.client_ca, client_auth_required=True)
    return server


def announcement(address: str, labels: Mapping[str, str], pid: int) -> list[dict[str, Any]]:
    """The file_sd document of one target (pure). ``__meta_`` labels are dropped after relabelling: the pid only
    tells the stack whether the announcement is stale."""
    return [{"targets": [address], "labels": {**labels, "__meta_radlake_pid": str(pid)}}]


def announcement_file(settings: Settings, job: str, instance: str) -> Path:
    if job not in ANNOUNCED_JOBS:
        raise PlatformError(f"no Prometheus job reads announcements of {job!r} (known: {', '.join(ANNOUNCED_JOBS)})")
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in instance)
    return scrape_targets_dir(settings) / f"{job}-{safe}.json"


@contextmanager
def announced(settings: Settings, job: str, instance: str, address: str,
              labels: Mapping[str, str]) -> Iterator[Path]:
    """Announce ``address`` to Prometheus's job ``job`` while the block runs."""
    target = announcement_file(settings, job, instance)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".json.tmp")  # file_sd reads *.json only: never a half-written file
    partial.write_text(json.dumps(announcement(address, labels, os.getpid())))
    partial.replace(target)
    try:
        yield target
    finally:
        target.unlink(missing_ok=True)


@contextmanager
def serving(settings: Settings, registry: CollectorRegistry, tls: MetricsTLS, job: str, instance: str,
            labels: Mapping[str, str], host: str = "127.0.0.1", port: int = 0) -> Iterator[str]:
    """Serve ``registry`` (see :func:`start_server`) and announce it while the block runs; yields the URL."""
    server = start_server(registry, tls, host, port)
    address = f"{host}:{server.server_port}"
    try:
        with announced(settings, job, instance, address, labels):
            yield f"https://{address}/metrics"
    finally:
        server.shutdown()
        server.server_close()
