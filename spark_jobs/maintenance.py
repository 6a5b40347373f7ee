"""Maintenance of the lake's Delta tables through delta-rs (no JVM): find, describe, and the vacuum retention.

Vacuum keeps 7 days of history by default (time travel and readers of older snapshots keep working);
a shorter retention must be forced, which also tells delta-rs to skip its own retention check.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone

from deltalake import DeltaTable

from lake_schemas.tables import SCHEMA_VERSION_PROPERTY
from platform_layer.lake_tables import find_tables as find_tables  # where it lived; the lake commands import it here
from spark_jobs.tables import LakeTableError

MIN_RETENTION_HOURS = 7 * 24

class RetentionError(LakeTableError):
    """A vacuum retention below the safe minimum was asked for without --force."""


def retention_hours(requested: float | None, force: bool) -> float:
    """The retention a vacuum uses: 7 days unless asked, never below that unless forced."""
    hours = MIN_RETENTION_HOURS if requested is None else requested
    if hours < 0:
        raise RetentionError(f"retention must be >= 0 hours, not {hours}")
    if hours < MIN_RETENTION_HOURS and not force:
        raise RetentionError(f"retention {hours:g} h is below the safe minimum of {MIN_RETENTION_HOURS} h "
                             "(7 days): readers of older versions and time travel would break; add --force")
    return hours


@dataclass(frozen=True)
class TableInfo:
    table: str
    version: int
    rows: int
    files: int
    size_bytes: int
    schema_version: str | None
    partitions: list[str]
    last_commit: str | None


def describe(root: str, relative: str) -> TableInfo:
    table = DeltaTable(os.path.join(root, relative))
    dataset = table.to_pyarrow_dataset()
    files = table.file_uris()
    history = table.history(1)
    stamp = history[0].get("timestamp") if history else None
    return TableInfo(
        table=relative, version=table.version(), rows=dataset.count_rows(), files=len(files),
        size_bytes=sum(os.path.getsize(f.removeprefix("file://")) for f in files),
        schema_version=table.metadata().configuration.get(SCHEMA_VERSION_PROPERTY),
        partitions=list(table.metadata().partition_columns),
        last_commit=datetime.fromtimestamp(stamp / 1000, timezone.utc).isoformat(timespec="seconds") if stamp else None,
    )
