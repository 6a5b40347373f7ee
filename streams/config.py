"""The streams app's configuration: one frozen object, built by the CLI from :class:`Settings` and flags."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from lake_schemas.topics import DEAD_LETTER, INSTANCE_RECEIVED, QUARANTINED, STUDY_COMPLETED, STUDY_MANIFEST


@dataclass(frozen=True)
class StreamsConfig:
    bootstrap: str
    registry_url: str
    data_dir: Path
    app_id: str = "radlake-streams"
    instance_topic: str = INSTANCE_RECEIVED.name
    manifest_topic: str = STUDY_MANIFEST.name
    completed_topic: str = STUDY_COMPLETED.name
    quarantined_topic: str = QUARANTINED.name
    dead_letter_topic: str = DEAD_LETTER
    # partitions of every topic the app creates (existing topics must all have the same count)
    partitions: int = 3
    quiet_period: timedelta = timedelta(minutes=5)
    tick_interval_s: float = 1.0
    # input fetched by faust but not delivered to the stream for this long is read back (offset_continuity)
    stall_s: float = 15.0
    # exactly_once: table changelogs, outputs and input offsets commit in one Kafka transaction
    processing_guarantee: str = "exactly_once"
    commit_interval_s: float = 1.0
    # a killed worker's partitions move after this long
    session_timeout_s: float = 10.0
    web_port: int = 6066
    web_host: str = "127.0.0.1"

    @property
    def ticks_topic(self) -> str:
        return f"{self.app_id}-ticks"
