"""The arithmetic and the plain rendering of ``radlake status`` (no stack needed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from apps.status import render_plain
from monitoring.overview import GroupRow, Overview, ProviderRow, TableRow, age, rates, trend
from monitoring.status_data import _payload_provider

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)


def test_rates_count_the_last_5_and_60_minutes_per_provider():
    stamps = [NOW - timedelta(minutes=m) for m in (0.5, 1, 4, 10, 59, 61)]
    assert rates({"a": stamps, "b": []}, NOW) == {"a": (3 / 5, 5 / 60, NOW - timedelta(minutes=0.5))}


def test_trend_and_age():
    assert trend(14, 10) == 4 and trend(3, None) is None
    assert [age(NOW - timedelta(seconds=s), NOW) for s in (5, 187, 7500, 4 * 86400 + 3 * 3600)] == [
        "5s", "3m07s", "2h05m", "4d03h"]
    assert age(None, NOW) == "-"


def test_the_provider_is_read_from_a_framed_or_bare_envelope():
    assert _payload_provider(b"\x00\x00\x00\x00\x07" + b'{"provider": "p1"}') == "p1"
    assert _payload_provider(b'{"provider": "p2"}') == "p2"
    assert _payload_provider(b"\x00\x00\x00\x00\x07not json") is None and _payload_provider(None) is None


def test_plain_rendering_names_each_source_and_lists_problems():
    overview = Overview(NOW, {"providers": "Kafka topic t", "groups": "Kafka k", "tables": "Delta logs"},
                        [ProviderRow("p1", 1.2, 0.1, NOW - timedelta(seconds=30), {"NOT_DICOM": 2})],
                        [GroupRow("g", 5, None)], [TableRow("bronze/instances", 3, NOW)], [], [],
                        ["alerts: unreadable"])
    text = render_plain(overview)
    assert "Providers  (from Kafka topic t)" in text and "NOT_DICOM=2" in text and "30s ago" in text
    assert "g      5    ?" in text and "bronze/instances  3" in text and "! alerts: unreadable" in text
