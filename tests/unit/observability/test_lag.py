"""Consumer lag from committed and end offsets (pure)."""

from __future__ import annotations

from monitoring.lag import PartitionLag, group_totals, partition_lags, topic_totals


def test_lag_is_end_minus_committed_per_partition():
    lags = partition_lags("g", {("t", 0): 5, ("t", 1): 10}, {("t", 0): 12, ("t", 1): 10, ("t", 2): 7})
    assert [(lag.topic, lag.partition, lag.lag) for lag in lags] == [("t", 0, 7), ("t", 1, 0)]


def test_partitions_without_a_committed_offset_or_an_end_are_left_out():
    # -1001 is Kafka's "no committed offset"; a partition whose end was not read has no known lag
    lags = partition_lags("g", {("t", 0): -1001, ("t", 1): 3, ("gone", 0): 4}, {("t", 0): 9, ("t", 1): 4})
    assert [(lag.topic, lag.partition) for lag in lags] == [("t", 1)]


def test_a_commit_read_after_the_end_is_no_negative_lag():
    assert PartitionLag("g", "t", 0, committed=11, end=10).lag == 0


def test_totals_per_group_and_per_topic():
    lags = [*partition_lags("a", {("x", 0): 1, ("x", 1): 1, ("y", 0): 0}, {("x", 0): 4, ("x", 1): 2, ("y", 0): 5}),
            *partition_lags("b", {("x", 0): 4}, {("x", 0): 4})]
    assert group_totals(lags) == {"a": 9, "b": 0}
    assert topic_totals(lags) == {("a", "x"): 4, ("a", "y"): 5, ("b", "x"): 0}
