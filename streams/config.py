"""The streams worker's configuration: one frozen object, built by the CLI from :class:`Settings` and flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from lake_schemas.topics import (
    DEAD_LETTER,
    INSTANCE_RECEIVED,
    QUARANTINED,
    STUDY_COMPLETED,
    STUDY_MANIFEST,
)


@dataclass(frozen=True)
class StreamsConfig:
    bootstrap: str
    registry_url: str
    app_id: str = "radlake-streams"
    instance_topic: str = INSTANCE_RECEIVED.name
    manifest_topic: str = STUDY_MANIFEST.name
    completed_topic: str = STUDY_COMPLETED.name
    quarantined_topic: str = QUARANTINED.name
    dead_letter_topic: str = DEAD_LETTER
    # partitions of every topic the app creates (existing topics must all have the same count)
    partitions: int = 3
    quiet_period: timedelta = timedelta(minutes=5)
    # how often open studies are checked for the quiet period
    tick_interval_s: float = 0.25
    # outputs, state and input offsets of all batches since the last commit go in one transaction: outputs
    # become visible to read_committed readers at most this long after they are decided
    commit_interval_s: float = 0.5
    # ... or sooner, once the input is drained: a transaction open for drained_after_s commits when no message is
    # waiting (a caught-up worker's outputs are not held back for the interval; commits stay at most
    # 1 / drained_after_s per second under a trickle)
    commit_when_drained: bool = True
    drained_after_s: float = 0.05
    # messages handled per consume call
    batch_size: int = 2000
    # a killed worker's partitions move to another worker after this long (a restart with the same
    # instance id takes them back at once)
    session_timeout_s: float = 10.0
    # several workers of one app id need distinct instance ids (transactional id and static group member)
    instance_id: str = "0"
    web_port: int = 6066
    web_host: str = "127.0.0.1"
    # /metrics is HTTPS only, and answers clients that show a certificate of the platform CA (mutual TLS)
    metrics_certificate: str = ""
    metrics_key: str = ""
    metrics_client_ca: str = ""

    @property
    def state_topic(self) -> str:
        """Compacted topic of the worker's state (streams.state)."""
        return f"{self.app_id}-state"
