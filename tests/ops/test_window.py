"""The window operator: a record's TUMBLING and HOPPING windows, per record and per batch."""

from __future__ import annotations

import numpy as np
import pytest

from hispeed.ops.window import open_windows, window_starts


@pytest.mark.parametrize(("size", "advance"), [(10, 10), (10, 3), (10, 5), (7, 2)])
def test_a_batch_gets_the_windows_each_record_gets_alone(size: int, advance: int) -> None:
    stamps = np.array([0, 1, 9, 10, 11, 25, 26, 99], np.int64)
    stream_time = np.maximum.accumulate(stamps)
    grace = 5
    record, starts = open_windows(stamps, stream_time, size, advance, grace)
    got = [(r, s) for r, s in zip(record.tolist(), starts.tolist(), strict=True)]
    expected = [
        (i, s)
        for i, (ts, now) in enumerate(zip(stamps.tolist(), stream_time.tolist(), strict=True))
        for s in window_starts(ts, size, advance)
        if s + size + grace > now  # a closed window takes no record
    ]
    assert got == expected


def test_tumbling_and_hopping_windows_of_one_record() -> None:
    assert window_starts(25, 10, 10) == [20]
    assert window_starts(25, 10, 5) == [20, 25]
    assert window_starts(3, 10, 5) == [0]  # no window starts before 0
