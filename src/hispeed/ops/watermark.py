"""Flink's watermark over a query's input partitions, for the window table functions and
the OVER functions over a stream.

A window of TUMBLE, HOP, CUMULATE or SESSION (aggregated, ranked or joined) closes when the
watermark reaches its end; a row of LAG, LEAD or an aggregate over a frame is computed when
it reaches the row's time (ops/over_order.py). As Flink's source watermark, it is the
minimum over the input's partitions of each partition's newest event time (for a join, over
both inputs' partitions), so a partition that is ahead never closes a window another
partition still has rows for; it never goes back. A partition that has read nothing holds
it back, as in Flink, until it has been idle for the idle timeout
(`table.exec.source.idle-timeout`, `IDLE_TIMEOUT_PROPERTY`): no record to read and none
read for that long. A partition with records waiting is never idle, however long it waits,
so a query that is behind never drops its own rows as late.
An idle partition that reads again holds the watermark back from then on; the rows it
brings for windows that closed meanwhile are late.

Each operator keeps the partitions' times and the watermark (`LEVEL`) in a mapping it
writes to its changelog, so a restart goes on from the watermark it had reached; the
idleness is the task's (`Idleness`), counted from the task's start.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Hashable, Iterable, Mapping, MutableMapping
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.errors import HispeedError
from hispeed.plan.model import QueryPlan

#: the engine or query property of the idle timeout, in milliseconds (Flink's name; 0: a
#: partition is never idle, as Flink's default)
IDLE_TIMEOUT_PROPERTY = "table.exec.source.idle-timeout"
#: hispeed's default: a partition with nothing to read for 30 seconds stops holding the
#: watermark back (Flink's default never lets it go, which leaves a topic with an empty
#: partition without any output)
DEFAULT_IDLE_TIMEOUT_MS = 30_000
#: the key of the watermark itself among the partitions' times
LEVEL = -1
#: the time before any record (kept far from int64's end: numpy arithmetic must not wrap)
NEVER = -(1 << 62)
#: no partition holds the watermark back
CEILING = 1 << 62


def idle_timeout(properties: Mapping[str, Any]) -> int:
    """The idle timeout (ms) the properties give, a Flink Duration ('10 s', '1000ms',
    '1 min', a plain number of ms) of 0 or more, else the default; a bad value is refused
    with what to give instead."""
    given = properties.get(IDLE_TIMEOUT_PROPERTY)
    if given is None or given == "":
        return DEFAULT_IDLE_TIMEOUT_MS
    found = re.fullmatch(r"\s*([0-9]+)\s*([a-zA-Z]*)\s*", str(given), re.ASCII)
    unit = _IDLE_UNITS.get(found.group(2).lower()) if found else None
    if found is None or unit is None:
        raise HispeedError(
            f"{IDLE_TIMEOUT_PROPERTY} must be a duration of 0 or more, like '10 s', "
            f"'500 ms', '1 min' or a number of milliseconds "
            f"(0: a partition never stops holding the watermark back); got {given!r}"
        )
    return int(found.group(1)) * unit // 1000


#: Flink's duration units (TimeUtils), as microseconds per unit; no unit is milliseconds
_IDLE_UNITS = {
    **dict.fromkeys(["", "ms", "milli", "millis", "millisecond", "milliseconds"], 1000),
    **dict.fromkeys(["us", "micro", "micros", "microsecond", "microseconds"], 1),
    **dict.fromkeys(["s", "sec", "secs", "second", "seconds"], 1_000_000),
    **dict.fromkeys(["m", "min", "mins", "minute", "minutes"], 60_000_000),
    **dict.fromkeys(["h", "hour", "hours"], 3_600_000_000),
    **dict.fromkeys(["d", "day", "days"], 86_400_000_000),
}


def uses_watermark(plan: QueryPlan) -> bool:
    """Whether a plan goes by the watermark: a window table function's aggregation,
    SESSION's rows, window Top-N or deduplication, or window join (they close windows on
    it), or LAG, LEAD or an aggregate over a frame over a stream (ops/over_order.py: rows
    wait for it)."""
    if plan.lags:
        return True
    agg = plan.aggregation
    if agg is not None and agg.window is not None and agg.window.watermark:
        return True
    if plan.ranking is not None and plan.ranking.window_end is not None:
        return True
    if plan.session_rows is not None:
        return True
    return plan.join is not None and any(s.window is not None for s in plan.join.steps)


def window_clock(window: Any, times: dict[Any, int], partition: int, idle: Any) -> BatchClock:
    """The clock of an aggregation's batch: the watermark for a window table function's
    window (`window.watermark`), else ksqlDB's stream time of the batch's partition."""
    watermark = window is not None and window.watermark
    return BatchClock(times, partition, idle, watermark=watermark, floor=0)


def _monotonic_ms() -> float:
    return time.monotonic() * 1000


class Idleness:
    """Which of a query's input partitions hold the watermark back: all but those with
    nothing read and nothing to read for `timeout_ms` (0: all). `clock` gives milliseconds
    (injectable: tests decide idleness without waiting)."""

    def __init__(self, timeout_ms: int, clock: Callable[[], float] = _monotonic_ms) -> None:
        self.timeout_ms = timeout_ms
        self.clock = clock
        #: each input partition, and when it last read or had something to read
        self.active_at: dict[Hashable, float] = {}

    def watch(self, partitions: Iterable[Hashable], behind: Callable[[Any], bool]) -> None:
        """Take the partitions read now (a new one counts as active from now) and note
        those with records waiting."""
        now = self.clock()
        current = set()
        for p in partitions:
            current.add(p)
            if p not in self.active_at or behind(p):
                self.active_at[p] = now
        for p in [p for p in self.active_at if p not in current]:
            del self.active_at[p]  # no longer this task's

    def read(self, partition: Hashable) -> None:
        """`partition` has just read records."""
        if partition in self.active_at:
            self.active_at[partition] = self.clock()

    def holding(self) -> list[Hashable]:
        """The partitions that hold the watermark back."""
        if self.timeout_ms <= 0:
            return list(self.active_at)
        now = self.clock()
        return [p for p, t in self.active_at.items() if now - t < self.timeout_ms]


class BatchClock:
    """The watermark as a batch of one input partition moves it: `rows` gives it as each
    record sees it, `done` writes the partition's newest time and the watermark to `times`.

    With `watermark` false, ksqlDB's stream time of the partition instead (its newest
    record time, no other partition's counts), as the windowed aggregation keeps it."""

    def __init__(
        self,
        times: MutableMapping[Any, int],
        partition: Hashable,
        idle: Idleness | None,
        *,
        watermark: bool,
        floor: int = NEVER,
    ) -> None:
        self.times = times
        self.partition = partition
        self.watermark = watermark
        own = times.get(partition, floor)
        if not watermark:
            self.seed, self.cap = own, CEILING
            return
        holding = idle.holding() if idle is not None else list(times)
        others = [times.get(p, NEVER) for p in holding if p != partition and p != LEVEL]
        #: the most this partition's records can raise the watermark to
        self.cap = min(others, default=CEILING)
        #: the watermark before the batch
        self.seed = max(times.get(LEVEL, floor), min(own, self.cap))
        self.newest = own

    def see(self, stamps: pa.Array) -> None:
        """Count a batch's record times in the partition's newest time, whether or not its
        records count otherwise (a watermark comes from the source)."""
        if self.watermark:
            newest = pc.max(stamps).as_py()
            if newest is not None:
                self.newest = max(self.newest, int(newest))

    def rows(self, stamps: np.ndarray) -> np.ndarray:
        """The watermark (stream time) each record sees, its own time counted."""
        stamps = np.asarray(stamps, np.int64)
        if self.watermark:
            if len(stamps):
                self.newest = max(self.newest, int(stamps.max()))
            stamps = np.minimum(stamps, self.cap)
        return np.maximum.accumulate(np.maximum(stamps, self.seed))

    def row(self, stamp: int, now: int) -> int:
        """One record's step: the time it sees, `now` the time before it."""
        if self.watermark:
            self.newest = max(self.newest, stamp)
            stamp = min(stamp, self.cap)
        return max(now, stamp)

    def done(self, level: int) -> int:
        """Keep the batch's outcome (`level`: the last record's time, or the seed); the
        watermark (ksqlDB: the partition's stream time) after the batch."""
        level = max(level, self.seed)
        if not self.watermark:
            self.times[self.partition] = max(self.times.get(self.partition, level), level)
            return self.times[self.partition]
        if self.newest > NEVER:
            self.times[self.partition] = self.newest
        self.times[LEVEL] = max(self.times.get(LEVEL, level), level)
        return self.times[LEVEL]
