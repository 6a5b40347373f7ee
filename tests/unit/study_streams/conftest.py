"""Generated instance events (axial CT series with real geometry) for the streams unit tests."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from lake_schemas.events import ManifestSeries, StudyManifest, StudyManifestData
from radlake.synthetic.lake_events import SeriesPlan, series_events

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=timezone.utc)


def manifest_for(events, *, event_id: str = "manifest-1") -> StudyManifest:
    counts: dict[str, int] = {}
    for e in events:
        counts[e.data.series_uid] = counts.get(e.data.series_uid, 0) + 1
    head = events[0]
    return StudyManifest(
        event_id=event_id, provider=head.provider,
        data=StudyManifestData(
            project=head.data.project, study_uid=head.data.study_uid, upload_id="upload-1",
            expected_instances=len(events),
            series=tuple(ManifestSeries(series_uid=uid, expected_instances=n) for uid, n in counts.items()),
        ),
    )


@pytest.fixture
def two_series():
    """One study, two series (5 + 3 slices) from one provider."""
    return (series_events(SeriesPlan("st-olav", "s1", "ax", 5))
            + series_events(SeriesPlan("st-olav", "s1", "cor", 3, spacing_mm=5.0)))
