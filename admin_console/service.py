"""The console as a process: its session key, its Keycloak client, the libraries it reads and acts through, and
the server (uvicorn, TLS with a certificate of the platform CA).

The session key (32 random bytes) is made once and kept mode 0600 at ``<state>/console/session.key``; the
sessions themselves live in memory only. The console acts as the platform administrator (Vault, Kafka) on
behalf of the logged-in person, whom every audited action names.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from admin_console import dead_letters
from admin_console.app import ConsoleConfig, build_app
from admin_console.pages import Series
from admin_console.session import Sessions
from infra import stack
from lake_schemas.errors import RadlakeError
from monitoring import status_data
from nifi import triage
from platform_layer import audit
from platform_layer.edge_metrics import edges_root
from platform_layer.endpoints import console_url
from platform_layer.identity_provider import AccessTokenVerifier
from platform_layer.realm import CONSOLE_CLIENT, console_callback_url, issuer, keycloak_ca_file, service_client
from platform_layer.settings import Settings
from platform_layer.state import write_private

log = logging.getLogger(__name__)

PLOT_WINDOW_S = 3600.0
PLOT_STEP_S = 60.0
RATE = "5m"


def _percentiles(buckets: str) -> str:
    """p50, p95 and p99 of a histogram over the rate window, one series each (label ``q``)."""
    return " or ".join(f'label_replace(histogram_quantile({q}, sum by (le) (rate({buckets}[{RATE}]))), "q", "{name}", '
                       '"", "")' for q, name in ((0.5, "p50"), (0.95, "p95"), (0.99, "p99")))


# (title, unit, PromQL, label naming a series). A query whose metric no component exports draws "no data".
PLOTS = (
    ("Scrape targets up", "1 = up", "up", "job"),
    ("Instances per second by provider (edges)", "1/s",
     f"sum by (provider) (rate(radlake_edge_instances_total[{RATE}]))", "provider"),
    ("Consumer lag by group", "messages", "sum by (group) (radlake_consumer_group_lag)", "group"),
    ("Edge de-identification time per request", "s", _percentiles("radlake_edge_deid_seconds_bucket"), "q"),
    ("Event latency (handling - occurred), streams", "s", _percentiles("radlake_streams_event_lag_seconds_bucket"),
     "q"),
    ("Quarantined by reason (edges)", f"per {RATE}",
     f'sum by (reason) (increase(radlake_edge_instances_total{{reason!=""}}[{RATE}]))', "reason"),
    ("Dead letters by reason", f"per {RATE}",
     f"sum by (reason) (increase(radlake_streams_dead_letters_total[{RATE}]))", "reason"),
)


def session_key(settings: Settings) -> bytes:
    path = settings.state_dir / "console" / "session.key"
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        key = b""
    if len(key) < 32:
        key = secrets.token_bytes(32)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, key)
    return key


def plots(settings: Settings) -> list[tuple[str, str, list[Series]]] | None:
    """Each plot's series over the last hour; a query Prometheus refuses draws "no data" under a title saying so."""
    client = status_data.prometheus(settings)
    if client is None:
        return None
    end = time.time()
    drawn = []
    try:
        for title, unit, expr, label in PLOTS:
            try:
                found = status_data.query_range(client, expr, end - PLOT_WINDOW_S, end, PLOT_STEP_S)
            except (httpx.HTTPError, ValueError, KeyError) as err:
                log.warning("Prometheus refused the plot %r: %s", title, err)
                drawn.append((f"{title} (query failed)", unit, []))
                continue
            drawn.append((title, unit, [Series(r["metric"].get(label, "") or "-",
                                               [(float(t), float(v)) for t, v in r["values"] if v != "NaN"])
                                        for r in found]))
    finally:
        client.close()
    return drawn


def providers(settings: Settings) -> dict[str, dict[str, int]]:
    root = edges_root(settings.state_dir)
    found = {}
    for folder in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            found[folder.name] = dict(Counter(r.reason for r in triage.refused(settings, folder.name)))
        except RadlakeError:
            continue  # a folder that names no provider
    return found


def refused_audited(settings: Settings, provider: str, actor: str) -> list[Any]:
    triage.check_provider(provider)
    with audit.recorded(settings, "quarantine.list", f"provider {provider} quarantine", actor=actor):
        return triage.refused(settings, provider)


def config(settings: Settings) -> ConsoleConfig:
    return ConsoleConfig(
        url=console_url(settings), callback_url=console_callback_url(settings),
        oidc=service_client(settings, CONSOLE_CLIENT),
        verifier=AccessTokenVerifier(issuer(settings), keycloak_ca_file(settings)),
        sessions=Sessions(session_key(settings)),
        overview=lambda: status_data.gather(settings),
        components=lambda: stack.status(settings),
        plots=lambda: plots(settings),
        providers=lambda: providers(settings),
        refused=lambda provider, actor: refused_audited(settings, provider, actor),
        release=lambda provider, sha256, actor: triage.release(settings, provider, sha256, actor=actor),
        discard=lambda provider, sha256, actor: triage.discard(settings, provider, sha256, actor=actor),
        letters=lambda topic: dead_letters.recent(settings, topic),
        replay=lambda topic, partition, offset, actor: dead_letters.replay(settings, topic, partition, offset,
                                                                           actor=actor),
        plot_window_s=PLOT_WINDOW_S)


def serve(settings: Settings, *, host: str, port: int, certificate: Path, key: Path) -> None:
    """Serve until SIGTERM / SIGINT (uvicorn's handlers)."""
    server = uvicorn.Server(uvicorn.Config(build_app(config(settings)), host=host, port=port,
                                           ssl_certfile=str(certificate), ssl_keyfile=str(key), log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=5))
    server.run()
