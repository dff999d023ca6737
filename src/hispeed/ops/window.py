"""The window operator: which TUMBLING and HOPPING windows a record falls in.

A window of `size` starting every `advance` (TUMBLING: advance = size) holds a record at time
`ts` if start <= ts < start + size and start >= 0; a window is closed once stream time has
reached its end plus the grace period, and a record for a closed window is dropped (late).
The reference aggregation asks per record (`window_starts`); the vectorized one for a batch at
once (`open_windows`). SESSION windows are made by merging, in the aggregations themselves.
"""

from __future__ import annotations

from typing import Any

import numpy as np

IntArray = np.ndarray[Any, Any]  # int64, by convention


def window_starts(ts: int, size: int, advance: int) -> list[int]:
    """The starts of the windows that hold a record at `ts`, ascending."""
    starts = []
    s = ts - ts % advance
    while s > ts - size and s >= 0:
        starts.append(s)
        s -= advance
    return sorted(starts)


def open_windows(
    stamps: IntArray, stream_time: IntArray, size: int, advance: int, grace: int
) -> tuple[IntArray, IntArray]:
    """Each record's open windows in ascending start order: (record index, start), for records
    at `stamps` that each see `stream_time`."""
    most = -(-size // advance)
    first = stamps - stamps % advance
    # column j holds the window (most - 1 - j) advances before the first: ascending starts
    back = np.arange(most - 1, -1, -1, dtype=np.int64) * advance
    starts = first[:, None] - back[None, :]
    valid = (starts > (stamps - size)[:, None]) & (starts >= 0)
    valid &= (starts + size + grace) > stream_time[:, None]  # later: the window has closed
    record, j = np.nonzero(valid)
    return record.astype(np.int64), starts[record, j]
