"""bench/lake_bench.py's pieces that need no stack: the pre-fill's event ids and the --summary lines."""

from __future__ import annotations

import re

from bench.lake_bench import _random_event_ids, headline


def test_prefill_event_ids_are_distinct_random_uuids():
    ids = _random_event_ids(10_000)
    ids.validate(full=True)
    values = ids.to_pylist()
    assert len(set(values)) == 10_000
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", v) for v in values)
    assert len(_random_event_ids(0)) == 0


def test_summary_lines_are_bronze_over_the_floor_per_batch_size_and_p95_over_the_goal():
    tp = {"prefill": 1_000_000, "by_size": {
        50_000: {"floor": {"rows_per_s": 2000.0}, "bronze": {"rows_per_s": 1500.0}},
        500: {"floor": {"rows_per_s": 1000.0}, "bronze": {"rows_per_s": 640.0}},
    }}
    lines = headline(tp, {"p95_s": 12.0})
    assert [line["ratio"] for line in lines] == [0.75, 0.64, 0.4]
    assert [line["goal"] for line in lines] == [">= 0.7", ">= 0.7", "< 1"]
    assert all(line["benchmark"] == "lake" for line in lines)
    assert "batches of <= 500 events, table of 1,000,000 rows" in lines[1]["measure"]
