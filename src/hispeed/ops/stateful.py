"""The stateful-processing operator: the stream API's `.process` (plan/python.py, kind PROCESS).

For what SQL cannot say (Kafka Streams' Processor API, Spark's applyInPandasWithState): a
batch's rows are grouped by the query's key, and the function is called once per key with
that key's records of the batch, a `KeyState` (the key's entries in a changelogged key-value
store, state/stores.py) and a `Timers` handle; it returns the value columns of the records to
write (each a dict; None or nothing: no output), and they go out with the key.

Timers fire on event time (the query's stream time, the largest ROWTIME seen) and on
processing time (the wall clock). An event-time timer fires when a record moves the stream
time to or past it, before that record is processed, so where a batch starts or ends never
changes what fires when: a restart that reads the records again in other
batches computes the same outputs. A processing-time timer fires at the end of a poll (or an
idle one) once the clock has passed it.

The state, the timers and the stream time are the operator's `PickledStores`, written to the
query's changelog with each batch, in the transaction that commits the batch's outputs and
input offsets (runtime/task.py), and restored from it at a restart: a crash loses nothing and
repeats nothing. A call that raises (or returns a record without the value columns) changes
no state and sets no timer; it goes to the processing log and the query goes on.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import itemgetter
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.gc_pause import gc_paused
from hispeed.ops.base import OperatorContext
from hispeed.ops.python_map import Mapped
from hispeed.plan.model import QueryPlan
from hispeed.state.stores import ChangelogChanges, PickledStores

#: the store kinds (the first item of each changelog key): the keys' state, their timers, and
#: the operator's stream time
STATE, TIMERS, TIME = "PS", "PT", "PW"
EVENT, PROCESSING = "event", "processing"
_DELETED = object()


@dataclass(frozen=True)
class Fired:
    """A timer that fired: its kind ("event" or "processing") and its time (ms)."""

    kind: str
    time: int


class KeyState:
    """One key's state: named values, any that pickle. Reads see this call's own writes;
    the writes are kept only if the call returns (a raising call changes nothing). A value
    changed in place must be put again to be kept."""

    def __init__(self, store: Any, key: Any) -> None:
        self._store = store
        self._key = key
        self._writes: dict[str, Any] = {}

    def get(self, name: str, default: Any = None) -> Any:
        """The value under `name`, or `default`."""
        value = self._writes.get(name, self)
        if value is self:
            return self._store.get((self._key, name), default)
        return default if value is _DELETED else value

    def put(self, name: str, value: Any) -> None:
        """Set `name` (None deletes it)."""
        self._writes[name] = _DELETED if value is None else value

    def delete(self, name: str) -> None:
        """Remove `name`."""
        self._writes[name] = _DELETED

    def _apply(self) -> None:
        for name, value in self._writes.items():
            if value is _DELETED:
                self._store.delete((self._key, name))
            else:
                self._store.put((self._key, name), value)


class Timers:
    """The timer service of one call: set or cancel the key's timers; `fired` lists the
    timers this call is made for (empty for a call with records). A timer set at a time the
    stream (or the clock) has already passed fires at the next chance."""

    def __init__(self, key: Any, fired: list[Fired], now: int) -> None:
        self.fired = fired
        #: the wall clock as this call began (ms)
        self.now = now
        self._key = key
        self._changes: dict[tuple[str, int], bool] = {}

    def event_time(self, at: int) -> None:
        """Fire when the stream time reaches `at` (ms)."""
        self._changes[(EVENT, int(at))] = True

    def processing_time(self, at: int) -> None:
        """Fire when the wall clock reaches `at` (ms since the epoch)."""
        self._changes[(PROCESSING, int(at))] = True

    def cancel_event_time(self, at: int) -> None:
        """Cancel the event-time timer at `at`."""
        self._changes[(EVENT, int(at))] = False

    def cancel_processing_time(self, at: int) -> None:
        """Cancel the processing-time timer at `at`."""
        self._changes[(PROCESSING, int(at))] = False


class StatefulProcessor:
    """Runs a plan's PROCESS function over a query task's batches (see the module)."""

    def __init__(self, plan: QueryPlan) -> None:
        stage = plan.python
        assert stage is not None and stage.kind == "PROCESS"
        self.plan = plan
        #: called as function(key, records, state, timers)
        self.function: Callable[..., Any] = stage.function
        self.reference = stage.reference
        self.names = [c.name for c in stage.inputs]
        self.stores = PickledStores([STATE, TIMERS, TIME])
        # the pending timers of each kind as heaps of (time, key); rebuilt from the timer
        # store after a restore, entries no longer in it skipped as they come up
        self._heaps: dict[str, list[tuple[int, Any]]] = {EVENT: [], PROCESSING: []}
        self._built = False

    # -- state ------------------------------------------------------------------------------

    def restore(self, name: Any, value: Any) -> None:
        """Take back a changelog entry of this operator's stores."""
        self.stores.restore(name, value)
        self._built = False

    def checkpoint(self, changelog: ChangelogChanges) -> None:
        """Write what changed since the last checkpoint to the batch's changelog changes."""
        self.stores.checkpoint(changelog)

    @property
    def stream_time(self) -> int | None:
        """The largest ROWTIME processed (None: none yet)."""
        value: int | None = self.stores[TIME].get("time")
        return value

    def _heap(self, kind: str) -> list[tuple[int, Any]]:
        if not self._built:
            for heap in self._heaps.values():
                heap.clear()
            for kind_, at, key in self.stores[TIMERS]:
                self._heaps[kind_].append((at, key))
            for heap in self._heaps.values():
                heapq.heapify(heap)
            self._built = True
        return self._heaps[kind]

    def _due(self, kind: str, now: int) -> list[tuple[int, Any]]:
        """Take the timers of `kind` due at `now` out of the store, in (time, key) order."""
        heap = self._heap(kind)
        timers = self.stores[TIMERS]
        due = []
        while heap and heap[0][0] <= now:
            at, key = heapq.heappop(heap)
            if (kind, at, key) in timers:
                timers.delete((kind, at, key))
                due.append((at, key))
        return due

    # -- running ----------------------------------------------------------------------------

    @gc_paused
    def process(
        self,
        keys: list[pa.Array],
        values: list[pa.Array],
        timestamps: pa.Array,
        offsets: pa.Array,
        context: OperatorContext,
    ) -> Mapped:
        """Run the function over a batch's rows (key columns, value columns, ROWTIMEs and
        the records' offsets); the records it returns, then the processing-time timers due."""
        out = _Collected()
        key_lists = [k.to_pylist() for k in keys]
        group_keys: list[Any] = (
            key_lists[0] if len(key_lists) == 1 else list(zip(*key_lists, strict=True))
        )
        value_lists = [v.to_pylist() for v in values]
        stamps = timestamps.to_pylist()
        offs = offsets.to_pylist()
        names = [*self.names, "ROWTIME"]
        records = [
            dict(zip(names, row, strict=True)) for row in zip(*value_lists, stamps, strict=True)
        ]
        before = self.stream_time
        known = np.asarray(
            timestamps.fill_null(before if before is not None else -(2**62)), np.int64
        )
        if before is not None:
            known = np.maximum(known, before)
        # the stream time as each record has moved it
        times = np.maximum.accumulate(known) if len(known) else known
        batch = _Batch(group_keys, records, offs, times)
        heap = self._heap(EVENT)
        pos, n = 0, len(records)
        while pos < n:
            if heap and heap[0][0] <= times[pos]:
                # the record moves the stream time past a timer: the timer first
                self._set_time(int(times[pos]))
                self._fire(EVENT, int(times[pos]), out, context)
                if heap and heap[0][0] <= times[pos]:
                    continue  # only timers it set for times already passed remain: go on
            end = n
            if heap:
                end = pos + int(np.searchsorted(times[pos:], heap[0][0], side="left"))
            end = self._segment(batch, pos, max(end, pos + 1), out, context)
            self._set_time(int(times[end - 1]))
            # timers set for a time the stream has already reached fire now
            self._fire(EVENT, int(times[end - 1]), out, context)
            pos = end
        self.fire_processing(out, context)
        return out.mapped(self.plan, context, self.reference)

    def idle(self, context: OperatorContext) -> Mapped | None:
        """The processing-time timers due now, between batches (None: none was due)."""
        out = _Collected()
        self.fire_processing(out, context)
        return out.mapped(self.plan, context, self.reference) if out.stamps else None

    def has_processing_timers(self) -> bool:
        """Whether a processing-time timer is pending."""
        return bool(self._heap(PROCESSING))

    def fire_processing(self, out: _Collected, context: OperatorContext) -> None:
        """Fire the processing-time timers the clock has passed."""
        self._fire(PROCESSING, time.time_ns() // 1_000_000, out, context)

    def _set_time(self, stream_time: int) -> None:
        times = self.stores[TIME]
        if times.get("time") != stream_time:
            times.put("time", stream_time)

    def _segment(
        self, batch: _Batch, start: int, end: int, out: _Collected, context: OperatorContext
    ) -> int:
        """Call the function once per key over the records [start, end) (keys in the order
        they first appear) and keep what the calls did; returns where the segment ended.

        A call may set an event-time timer that the segment's own later records pass: the
        records after that point must come after the timer, so the calls are made again
        over the shorter segment (what they did is kept only once the segment stands)."""
        times = batch.times
        floor = times[start - 1] if start else -(2**62)
        while True:
            groups: dict[Any, list[int]] = {}
            for i in range(start, end):
                groups.setdefault(batch.keys[i], []).append(i)
            calls = []
            for key, rows in groups.items():
                given = [batch.records[i] for i in rows]
                latest = max((r["ROWTIME"] for r in given if r["ROWTIME"] is not None), default=0)
                calls.append(self._call(key, given, [], latest, batch.offsets[rows[0]]))
            earliest = min(
                (
                    at
                    for call in calls
                    for (kind, at), on in call.timers._changes.items()
                    if on and kind == EVENT and at > floor
                ),
                default=None,
            )
            if earliest is not None and end - start > 1 and earliest <= times[end - 1]:
                cut = start + int(np.searchsorted(times[start:end], earliest, side="left"))
                end = max(cut, start + 1)
                continue
            for call in calls:
                self._keep(call, out, context)
            return end

    def _fire(self, kind: str, now: int, out: _Collected, context: OperatorContext) -> None:
        for at, key in self._due(kind, now):
            self._keep(self._call(key, [], [Fired(kind, at)], at, None), out, context)

    def _call(
        self,
        key: Any,
        records: list[dict[str, Any]],
        fired: list[Fired],
        rowtime: int,
        offset: int | None,
    ) -> _Call:
        state = KeyState(self.stores[STATE], key)
        timers = Timers(key, fired, time.time_ns() // 1_000_000)
        try:
            results = _records(self.function(key, records, state, timers))
        except Exception as e:
            error = f"{self.reference} raised {type(e).__name__}: {e}"
            return _Call(key, state, timers, [], rowtime, offset, error)
        return _Call(key, state, timers, results, rowtime, offset, None)

    def _keep(self, call: _Call, out: _Collected, context: OperatorContext) -> None:
        """Apply what a call did: its state, its timers, its records (or its error)."""
        if call.error is not None:
            out.error(context, call.key, call.offset, call.error)
            return
        call.state._apply()
        store = self.stores[TIMERS]
        for (kind, at), on in call.timers._changes.items():
            if on:
                store.put((kind, at, call.key), True)
                heapq.heappush(self._heap(kind), (at, call.key))
            else:
                store.delete((kind, at, call.key))
        for record in call.results:
            out.add(call.key, record, call.rowtime, call.offset)


@dataclass
class _Batch:
    keys: list[Any]
    records: list[dict[str, Any]]
    offsets: list[int]
    #: the stream time after each record
    times: np.ndarray


@dataclass
class _Call:
    """What one call of the function did, kept or dropped as its segment stands."""

    key: Any
    state: KeyState
    timers: Timers
    results: list[dict[str, Any]]
    rowtime: int
    offset: int | None
    error: str | None


def _records(got: Any) -> list[dict[str, Any]]:
    if got is None:
        return []
    if isinstance(got, dict):
        return [got]
    if not isinstance(got, Iterable):
        raise TypeError(f"returned {type(got).__name__}, not dicts of the value columns")
    results = list(got)
    for r in results:
        if not isinstance(r, dict):
            raise TypeError(f"returned a {type(r).__name__}, not a dict of the value columns")
    return results


class _Collected:
    """The records a batch's calls returned, with their keys, times and input offsets."""

    def __init__(self) -> None:
        self.keys: list[Any] = []
        self.records: list[dict[str, Any]] = []
        self.stamps: list[int] = []
        self.offsets: list[int | None] = []

    def add(self, key: Any, record: dict[str, Any], rowtime: int, offset: int | None) -> None:
        self.keys.append(key)
        self.records.append(record)
        self.stamps.append(int(record.get("ROWTIME", rowtime)))
        self.offsets.append(offset)

    def error(self, context: OperatorContext, key: Any, offset: int | None, message: str) -> None:
        context.out.errors.append(
            {
                "type": "RECORD_PROCESSING_ERROR",
                "query": context.query_id,
                "message": f"{message} (key {key!r})",
                "topic": context.item.partition.topic,
                "partition": context.partition,
                "offset": offset,
            }
        )

    def mapped(self, plan: QueryPlan, context: OperatorContext, reference: str) -> Mapped:
        """The records as the emit operator takes them; a record whose columns are missing
        or not of their types goes to the processing log instead."""
        keep = [True] * len(self.records)
        columns: list[list[Any]] = []
        for column in plan.value:
            try:  # every record has the column: taken out in one pass, in C
                columns.append(list(map(itemgetter(column.name), self.records)))
                continue
            except KeyError:
                pass
            data = []
            for i, r in enumerate(self.records):
                if column.name not in r:
                    if keep[i]:
                        self.error(
                            context,
                            self.keys[i],
                            self.offsets[i],
                            f"{reference} returned a record without {column.name}",
                        )
                    keep[i] = False
                data.append(r.get(column.name))
            columns.append(data)
        arrow_values: list[pa.Array] = []
        for column, data in zip(plan.value, columns, strict=True):
            arrow_type = column.type.to_arrow()
            try:
                arrow_values.append(pa.array(data, arrow_type))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
                # which records: each on its own, the bad ones to the processing log
                for i, value in enumerate(data):
                    try:
                        pa.array([value], arrow_type)
                    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
                        if keep[i]:
                            self.error(
                                context,
                                self.keys[i],
                                self.offsets[i],
                                f"{reference} returned a {column.name} that is not a "
                                f"{column.type}: {e}",
                            )
                        keep[i] = False
                arrow_values.append(
                    pa.array(
                        [v if k else None for v, k in zip(data, keep, strict=True)], arrow_type
                    )
                )
        one = len(plan.key) == 1
        key_columns = []
        for j, column in enumerate(plan.key):
            data = [k if one else k[j] for k in self.keys]
            key_columns.append(pa.array(data, column.type.to_arrow()))
        stamps = pa.array(self.stamps, pa.int64())
        if not all(keep):
            mask = pa.array(keep)
            key_columns = [k.filter(mask) for k in key_columns]
            arrow_values = [v.filter(mask) for v in arrow_values]
            stamps = stamps.filter(mask)
        n = len(stamps)
        return Mapped(key_columns, arrow_values, stamps, np.zeros(n, bool), None)


__all__ = ["Fired", "KeyState", "StatefulProcessor", "Timers"]
