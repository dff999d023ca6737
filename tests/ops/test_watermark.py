"""The watermark a window table function closes windows on (ops/watermark.py): the least of
the input partitions' newest times, never going back, each record seeing it as it was before
the next; and which partitions hold it back (idleness by an injected clock)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hispeed.errors import HispeedError
from hispeed.ops.watermark import (
    DEFAULT_IDLE_TIMEOUT_MS,
    IDLE_TIMEOUT_PROPERTY,
    LEVEL,
    BatchClock,
    Idleness,
    idle_timeout,
)

batches = st.lists(
    st.tuples(st.integers(0, 2), st.lists(st.integers(0, 10_000), min_size=1, max_size=5)),
    max_size=30,
)


@given(batches)
def test_the_watermark_is_the_least_partition_time_and_never_goes_back(
    feed: list[tuple[int, list[int]]],
) -> None:
    idle = Idleness(0)
    idle.watch([0, 1, 2], lambda p: False)
    times: dict[int, int] = {}
    newest: dict[int, int] = {}
    level = None
    for partition, stamps in feed:
        clock = BatchClock(times, partition, idle, watermark=True)
        seen = clock.rows(np.array(stamps))
        for i, t in enumerate(stamps):
            newest[partition] = max(newest.get(partition, t), t)
            least = min(newest.values()) if len(newest) == 3 else None
            if least is not None:  # every partition has read: the least of them
                assert seen[i] == max(least, level if level is not None else least)
        now = clock.done(int(seen[-1]))
        assert level is None or now >= level  # never back
        level = now
        assert times[partition] == newest[partition]
    if len(newest) < 3:  # a partition that read nothing holds it back
        assert times.get(LEVEL, -1) < 0 or not feed


def test_ksqldb_stream_time_is_the_partition_s_own() -> None:
    times = {0: 500, 1: 100}
    clock = BatchClock(times, 1, None, watermark=False, floor=0)
    assert clock.rows(np.array([50, 300, 200])).tolist() == [100, 300, 300]
    assert clock.done(300) == 300
    assert times == {0: 500, 1: 300}


def test_a_partition_with_records_waiting_is_never_idle() -> None:
    now = [0.0]
    idle = Idleness(1000, clock=lambda: now[0])
    idle.watch([0, 1, 2], lambda p: p == 1)
    now[0] = 999.0
    assert sorted(idle.holding()) == [0, 1, 2]
    now[0] = 5000.0
    idle.watch([0, 1, 2], lambda p: p == 1)  # 1 still has records to read
    idle.read(2)  # 2 read some
    assert sorted(idle.holding()) == [1, 2]
    idle.watch([1, 2], lambda p: False)  # 0 is no longer read here
    assert sorted(idle.active_at) == [1, 2]


def test_the_idle_timeout_setting() -> None:
    assert idle_timeout({}) == DEFAULT_IDLE_TIMEOUT_MS
    assert idle_timeout({IDLE_TIMEOUT_PROPERTY: "0"}) == 0
    assert idle_timeout({IDLE_TIMEOUT_PROPERTY: 2500}) == 2500
    for bad in ("-1", "1.5", "soon"):
        with pytest.raises(HispeedError, match=IDLE_TIMEOUT_PROPERTY):
            idle_timeout({IDLE_TIMEOUT_PROPERTY: bad})
