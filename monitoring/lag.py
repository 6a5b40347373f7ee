"""Consumer lag from committed offsets and end offsets (pure: the exporter passes in what Kafka answered).

Lag of a partition is its end offset minus the group's committed offset. A partition the group never committed
on has no lag (the group has not started on it: what it will read depends on its ``auto.offset.reset``). A
transactional producer leaves a commit marker after its last message, so a read_committed group that is caught
up may show a lag of 1 per partition; the alert rules look at lag that grows, not at its value alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class PartitionLag:
    group: str
    topic: str
    partition: int
    committed: int
    end: int

    @property
    def lag(self) -> int:
        # a committed offset past the end seen a moment earlier (the two are read one after the other) is no lag
        return max(0, self.end - self.committed)


def partition_lags(group: str, committed: Mapping[TopicPartitionKey, int],
                   ends: Mapping[TopicPartitionKey, int]) -> list[PartitionLag]:
    """The lag of ``group`` on every partition it committed an offset for and whose end offset is known.
    A negative committed offset is Kafka's "none" (-1001) and is left out."""
    return [PartitionLag(group, topic, partition, offset, ends[(topic, partition)])
            for (topic, partition), offset in sorted(committed.items())
            if offset >= 0 and (topic, partition) in ends]


def group_totals(lags: Iterable[PartitionLag]) -> dict[str, int]:
    """Total lag per group (over all its topics and partitions)."""
    totals: dict[str, int] = {}
    for lag in lags:
        totals[lag.group] = totals.get(lag.group, 0) + lag.lag
    return totals


def topic_totals(lags: Iterable[PartitionLag]) -> dict[tuple[str, str], int]:
    """Total lag per (group, topic)."""
    totals: dict[tuple[str, str], int] = {}
    for lag in lags:
        key = (lag.group, lag.topic)
        totals[key] = totals.get(key, 0) + lag.lag
    return totals
