"""The gap rule of streams.offset_continuity: which input offsets never reached the stream."""

from __future__ import annotations

import pytest

from streams.offset_continuity import missing_offsets


@pytest.mark.parametrize("expected, offset, missing", [
    (None, 7, range(0)),       # nothing known yet for the partition: nothing to say
    (7, 7, range(0)),          # the next offset, as it should be
    (7, 3, range(0)),          # a redelivery of something already handled is not a gap
    (7, 8, range(7, 8)),       # one message skipped
    (0, 133, range(0, 133)),   # everything from the committed offset up to the first delivered message
])
def test_missing_offsets(expected, offset, missing):
    assert missing_offsets(expected, offset) == missing
