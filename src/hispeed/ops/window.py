"""The window operator: which TUMBLING and HOPPING windows a record falls in.

A window of `size` starting every `advance` (TUMBLING: advance = size) holds a record at time
`ts` if start <= ts < start + size and start >= 0; a window is closed once stream time has
reached its end plus the grace period, and a record for a closed window is dropped (late).
The reference aggregation asks per record (`window_starts`); the vectorized one for a batch at
once (`open_windows`). SESSION windows are made by merging, in the aggregations themselves.

EMIT FINAL outputs a window once it closes, as Kafka Streams' ON_WINDOW_CLOSE strategy does,
and like it never outputs a window its window store no longer holds by then
(`final_retained_from`).
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


def final_retained_from(
    stream_time: int, size: int, advance: int, grace: int, retention: int | None
) -> int:
    """EMIT FINAL: the earliest window start still kept when closed windows are output.

    Kafka Streams' time-ordered window store (the one ON_WINDOW_CLOSE uses) keeps a window for
    its retention (the window's size plus its grace, unless RETENTION says otherwise), counted
    back from the newest window start stored (that of the newest record, stored before closed
    windows are fetched); a fetch leaves out the windows that started before
    (`observedStreamTime - retentionPeriod`). So a window that closes only once stream time is
    well past it (an out-of-order record kept it open, then a much later one closed it) is
    never output, in ksqlDB as here."""
    newest_start = stream_time - stream_time % advance
    return newest_start - (retention if retention else size + grace)


def row_windows(
    stamps: IntArray, kind: str, size: int, step: int, offset: int
) -> tuple[IntArray, IntArray]:
    """Each row's windows of a HOP or CUMULATE window table function (Flink's: starts at
    `offset + k * step`, also before epoch 0), in ascending end order: (row index, window
    end), for rows at `stamps`. HOP: the windows of `size` starting every `step` that hold
    the row; CUMULATE: of the window of `size` starting at `offset + k * size` that holds the
    row, the ones ending every `step` from its start, from the first ending after the row."""
    if kind == "HOP":
        shift = offset % step
        # `open_windows` keeps ksqlDB's starts at 0 and later: lift the times by whole slides
        # so that no window of a row holds a negative start, and lower the starts back
        lift = (-(-size // step) + 1) * step
        record, starts = open_windows(
            stamps - shift + lift, np.zeros(len(stamps), np.int64), size, step, 0
        )
        return record, starts - lift + shift + size
    start = stamps - (stamps - offset) % size  # numpy's % floors: also for negative times
    first = start + ((stamps - start) // step + 1) * step
    ends = first[:, None] + np.arange(-(-size // step), dtype=np.int64)[None, :] * step
    record, j = np.nonzero(ends <= (start + size)[:, None])
    return record.astype(np.int64), ends[record, j]
