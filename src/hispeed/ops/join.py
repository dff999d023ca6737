"""Joins at run time: each side's records through the join steps, into joined rows.

A polled batch comes from one side's topic (or from two sides of a self-join). Its records go
through the steps in order: side 0 enters step 0 from the left, side i (i >= 1) enters step
i - 1 from the right, and each step's output enters the next step from the left. Each step
walks its input records one by one against its state, so the result is exactly the
record-at-a-time semantics of Kafka Streams' join processors, which ksqlDB uses:

- stream-stream: both sides are kept for the window (`WITHIN before, after` plus grace); a
  record joins every record of the other side with its key inside the window, stamped with
  the later of the two times. Without GRACE PERIOD an unmatched record of an outer side is
  sent at once, joined to NULLs (ksqlDB's old semantics); with GRACE PERIOD it waits until
  its window closes, and is sent only if nothing joined it meanwhile.
- stream-table: a stream record joins the table's current row for its key; table changes
  update the state and send nothing.
- table-table: a change on either side sends the joined row (or a deletion) for its key,
  stamped with the later of the two rows' times; a foreign-key join looks up the right row
  by a left column and sends again for every left row that refers to a right row that
  changed.

Each joined row carries the headers of the record whose processing sent it (a stream record
that found its matches, the table change, the record whose stream time closed an outer row's
window), as Kafka Streams' join processors forward the current record's.

The state goes to the query's changelog with the rest of its state, so a restart goes on
where the last commit left off.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from bisect import insort
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.aggregates import hashable as _hashable
from hispeed.functions.aggregates import unhashable as _unhashable
from hispeed.functions.registry import EvalContext
from hispeed.log.base import HEADERS_TYPE, PolledBatch
from hispeed.ops.base import Outputs
from hispeed.ops.decode import SourceDecoder, frame_headers, headers_field
from hispeed.ops.stream_join import ColumnarStreamJoin, supported
from hispeed.plan.model import (
    LABEL,
    PSEUDO_COLUMNS,
    ROWKEY,
    JoinPlan,
    JoinStep,
    QueryPlan,
    field_name,
)
from hispeed.plan.scope import source_scope

#: Kafka Streams' grace for windows given without one (JoinWindows.of)
LEGACY_GRACE_MS = 24 * 3600 * 1000


@dataclass
class Event:
    """A record on its way through the steps: a row of fields, or a table row's deletion."""

    row: dict[str, Any]
    ts: int
    key: Any = None  # a table row's primary key; a step's output key
    deleted: bool = False
    partition: int = 0
    offset: int = 0
    #: the headers of the record that sent it (a list of {"key", "value"}), or None
    headers: Any = None


class _Step(ABC):
    """One binary join step at run time."""

    def __init__(self, step: JoinStep, left_fields: list[str], right_fields: list[str]) -> None:
        self.step = step
        self.left_fields = left_fields
        self.right_fields = right_fields
        self.dirty: set[Any] = set()

    def joined(self, left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
        row: dict[str, Any] = {}
        row.update(left if left is not None else dict.fromkeys(self.left_fields))
        row.update(right if right is not None else dict.fromkeys(self.right_fields))
        return row

    @abstractmethod
    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        """Run records of the left input (with their join keys); the rows they give.
        `st` holds the stream time, which the records advance."""

    @abstractmethod
    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        """Run records of the right input; the rows they give."""

    @abstractmethod
    def state(self) -> dict[Any, Any]:
        """The state changed since the last call, by name (None: deleted), for the changelog."""

    @abstractmethod
    def restore(self, name: Any, value: Any) -> None:
        """Take back one piece of state that `state` gave."""


class _StreamStream(_Step):
    """Both sides kept per key for the window; outer rows wait for their window with GRACE."""

    def __init__(self, step: JoinStep, left_fields: list[str], right_fields: list[str]) -> None:
        super().__init__(step, left_fields, right_fields)
        self.grace = step.grace_ms if step.grace_ms is not None else LEGACY_GRACE_MS
        self.retention = step.before_ms + step.after_ms + self.grace
        #: side (0 left, 1 right) -> key -> [(ts, seq, row)]
        self.buffers: list[dict[Any, list[tuple[int, int, dict[str, Any]]]]] = [{}, {}]
        #: unmatched rows of outer sides waiting for their window to close: (ts, side, seq)
        self.pending: dict[tuple[int, int, int], tuple[Any, dict[str, Any]]] = {}
        self.seq = 0
        self.outer = [step.kind in ("LEFT", "FULL"), step.kind in ("RIGHT", "FULL")]
        #: the newest record time seen on each side
        self.newest = [0, 0]

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        return self._side(0, events, keys, st)

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        return self._side(1, events, keys, st)

    def _side(self, side: int, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        step = self.step
        # the window around a record of this side, in the other side's times
        before, after = (
            (step.before_ms, step.after_ms) if side == 0 else (step.after_ms, step.before_ms)
        )
        out: list[Event] = []
        own, other = self.buffers[side], self.buffers[1 - side]
        for e, k in zip(events, keys, strict=True):
            t = e.ts
            st[0] = max(st[0], t)
            now = st[0]
            if k is None:
                continue  # a NULL key joins nothing
            if t == now and self.pending:
                out += self._expire(now, e)
            # a record is visible while it is within retention of its own side's newest time
            visible = self.newest[1 - side] - self.retention
            matched = False
            for ot, oseq, orow in other.get(k, ()):
                if ot < max(0, t - before) or ot > t + after or ot <= visible:
                    continue
                matched = True
                if self.pending.pop((ot, 1 - side, oseq), None) is not None:
                    self.dirty.add(("P", ot, 1 - side, oseq))
                pair = (e.row, orow) if side == 0 else (orow, e.row)
                out.append(self._out(self.joined(*pair), max(t, ot), k, e))
            if not matched and self.outer[side]:
                if step.grace_ms is None or t + after < now:
                    alone = self.joined(e.row, None) if side == 0 else self.joined(None, e.row)
                    out.append(self._out(alone, t, k, e))
                else:
                    self.pending[(t, side, self.seq + 1)] = (k, e.row)
                    self.dirty.add(("P", t, side, self.seq + 1))
            self.seq += 1
            # kept in time order (then arrival order): matches come out in that order
            insort(own.setdefault(k, []), (t, self.seq, e.row), key=_time_order)
            self.newest[side] = max(self.newest[side], t)
            self.dirty.add((side, k))
        # expired records are already invisible; forgetting them is memory upkeep, per batch
        self._evict()
        return out

    def _expire(self, now: int, trigger: Event) -> list[Event]:
        """Send the waiting outer rows whose window has closed, oldest first."""
        out = []
        step = self.step
        for ts, side, seq in sorted(self.pending):
            look = step.after_ms if side == 0 else step.before_ms
            if ts + look + self.grace >= now:
                continue
            k, row = self.pending.pop((ts, side, seq))
            self.dirty.add(("P", ts, side, seq))
            pair = (row, None) if side == 0 else (None, row)
            out.append(self._out(self.joined(*pair), ts, k, trigger))
        return out

    def _evict(self) -> None:
        for side in (0, 1):
            horizon = self.newest[side] - self.retention + 1  # what lookups no longer see
            buf = self.buffers[side]
            for k in [k for k, rows in buf.items() if rows and rows[0][0] < horizon]:
                kept = [r for r in buf[k] if r[0] >= horizon]
                if kept:
                    buf[k] = kept
                else:
                    del buf[k]
                self.dirty.add((side, k))

    @staticmethod
    def _out(row: dict[str, Any], ts: int, key: Any, e: Event) -> Event:
        return Event(row, ts, key, False, e.partition, e.offset, e.headers)

    def state(self) -> dict[Any, Any]:
        changed: dict[Any, Any] = {}
        for d in self.dirty:
            if d[0] == "P":
                changed[d] = self.pending.get(d[1:])
            else:
                changed[d] = self.buffers[d[0]].get(d[1])
        changed[("seq",)] = (self.seq, self.newest)
        self.dirty.clear()
        return changed

    def restore(self, name: Any, value: Any) -> None:
        if name == ("seq",):
            self.seq, self.newest = value
        elif name[0] == "P":
            self.pending[name[1:]] = value
        else:
            self.buffers[name[0]][name[1]] = value


class _StreamTable(_Step):
    """A stream record joins the table's current row; table changes only update the state."""

    def __init__(self, step: JoinStep, left_fields: list[str], right_fields: list[str]) -> None:
        super().__init__(step, left_fields, right_fields)
        self.table: dict[Any, dict[str, Any]] = {}
        #: the table as columns, for whole batches of stream records (rebuilt after changes)
        self._snapshot: tuple[dict[Any, int], list[pa.Array]] | None = None

    def snapshot(self, types: dict[str, pa.DataType]) -> tuple[dict[Any, int], list[pa.Array]]:
        """(key -> row number, one array per right field) of the table as it is now."""
        if self._snapshot is None:
            rows = list(self.table.values())
            index = {k: i for i, k in enumerate(self.table)}
            columns = [pa.array([r.get(f) for r in rows], types[f]) for f in self.right_fields]
            self._snapshot = (index, columns)
        return self._snapshot

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out = []
        inner = self.step.kind == "INNER"
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            if k is None:
                continue
            row = self.table.get(k)
            if row is None and inner:
                continue
            joined = self.joined(e.row, row)
            out.append(Event(joined, e.ts, k, False, e.partition, e.offset, e.headers))
        return out

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            if k is None:
                continue
            if e.deleted:
                self.table.pop(k, None)
            else:
                self.table[k] = e.row
            self.dirty.add(k)
            self._snapshot = None
        return []

    def state(self) -> dict[Any, Any]:
        changed = {d: self.table.get(d) for d in self.dirty}
        self.dirty.clear()
        return changed

    def restore(self, name: Any, value: Any) -> None:
        self.table[name] = value
        self._snapshot = None


class _TableTable(_Step):
    """Both tables' current rows; a change on either side sends the join for its key."""

    def __init__(
        self, step: JoinStep, left_fields: list[str], right_fields: list[str], key_fields: list[str]
    ) -> None:
        super().__init__(step, left_fields, right_fields)
        #: table key -> (row, ts, join key) of the left; join key -> (row, ts) of the right
        self.lefts: dict[Any, tuple[dict[str, Any], int, Any]] = {}
        self.rights: dict[Any, tuple[dict[str, Any], int]] = {}
        #: foreign-key joins: right key -> the left table keys that refer to it
        self.refs: dict[Any, set[Any]] = {}
        self.key_fields = key_fields
        kind = step.kind
        self.keep_left = kind in ("LEFT", "FULL")
        self.keep_right = kind in ("RIGHT", "FULL")

    def _emit(
        self,
        key: Any,
        left: tuple[dict[str, Any], int, Any] | None,
        right: tuple[dict[str, Any], int] | None,
        trigger: Event,
        out: list[Event],
        existed: bool,
    ) -> None:
        """Send the join of `left` and `right` for `key`, or its deletion."""
        lrow = left[0] if left else None
        rrow = right[0] if right else None
        present = (lrow is not None and rrow is not None) or (
            (lrow is not None and self.keep_left) or (rrow is not None and self.keep_right)
        )
        ts = max([trigger.ts, *(x[1] for x in (left, right) if x is not None)])
        where = (trigger.partition, trigger.offset, trigger.headers)
        if present:
            out.append(Event(self.joined(lrow, rrow), ts, key, False, *where))
        elif existed:
            row = self.joined(None, None)
            parts = key if isinstance(key, tuple) and len(self.key_fields) > 1 else (key,)
            for f, part in zip(self.key_fields, parts, strict=False):
                row[f] = part
            out.append(Event(row, ts, key, True, *where))

    def _had(self, lrow: Any, rrow: Any) -> bool:
        return (lrow is not None and rrow is not None) or (
            (lrow is not None and self.keep_left) or (rrow is not None and self.keep_right)
        )

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out: list[Event] = []
        fk = self.step.foreign_key
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            tkey = e.key if fk else k
            if tkey is None:
                continue
            old = self.lefts.get(tkey)
            old_right = self.rights.get(old[2]) if old is not None else None
            # a foreign-key join sends a left row's change even when it joined nothing
            existed = old is not None and (fk or self._had(old[0], old_right))
            if fk and old is not None and old[2] is not None:
                self.refs.get(old[2], set()).discard(tkey)
            self.dirty.add(("L", tkey))
            if e.deleted:
                self.lefts.pop(tkey, None)
                if fk:
                    if existed:
                        self._emit(tkey, None, None, e, out, True)
                    continue
                right = self.rights.get(tkey)
                self._emit(tkey, None, right, e, out, existed or right is not None)
                continue
            entry = (e.row, e.ts, k)
            self.lefts[tkey] = entry
            if fk and k is not None:
                self.refs.setdefault(k, set()).add(tkey)
            right = self.rights.get(k) if k is not None else None
            if fk and k is None and not self.keep_left:
                continue  # an inner join leaves the old result for a NULL foreign key
            self._emit(tkey, entry, right, e, out, existed)
        return out

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out: list[Event] = []
        fk = self.step.foreign_key
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            if k is None:
                continue
            old = self.rights.get(k)
            self.dirty.add(("R", k))
            new = None if e.deleted else (e.row, e.ts)
            if new is None:
                self.rights.pop(k, None)
            else:
                self.rights[k] = new
            if fk:
                for tkey in _ordered(self.refs.get(k, ())):
                    referring = self.lefts[tkey]
                    # stamped with the right record's time
                    self._emit(tkey, (referring[0], e.ts, k), new, e, out, True)
                continue
            left = self.lefts.get(k)
            existed = self._had(left[0] if left else None, old[0] if old else None)
            self._emit(k, left, new, e, out, existed)
        return out

    def state(self) -> dict[Any, Any]:
        changed: dict[Any, Any] = {}
        for d in self.dirty:
            changed[d] = self.lefts.get(d[1]) if d[0] == "L" else self.rights.get(d[1])
        self.dirty.clear()
        return changed

    def restore(self, name: Any, value: Any) -> None:
        if name[0] == "L":
            self.lefts[name[1]] = value
            if self.step.foreign_key and value[2] is not None:
                self.refs.setdefault(value[2], set()).add(name[1])
        else:
            self.rights[name[1]] = value


class JoinRuntime:
    """Decodes each side's records and runs them through the join steps."""

    def __init__(self, plan: QueryPlan, query_id: str) -> None:
        join = plan.join
        assert join is not None
        self.plan = plan
        self.join: JoinPlan = join
        self.decoders = [SourceDecoder(s.source, s.label, query_id) for s in join.sides]
        #: topic -> the sides that read it (two for a self-join)
        self.topics: dict[str, list[int]] = {}
        for i, side in enumerate(join.sides):
            self.topics.setdefault(side.source.topic, []).append(i)
        #: each side's frame columns, and their Arrow types
        self.side_fields: list[list[str]] = []
        self.types: dict[str, pa.DataType] = {}
        for side in join.sides:
            cols = source_scope(side.source, side.label).columns
            self.side_fields.append([c.field for c in cols])
            for c in cols:
                self.types[c.field] = c.type.to_arrow()
        self.steps: list[_Step] = []
        for step in join.steps:
            left_fields = [f for s in range(step.right) for f in self.side_fields[s]]
            right_fields = self.side_fields[step.right]
            if step.left_kind == "STREAM" and step.right_kind == "STREAM":
                self.steps.append(_StreamStream(step, left_fields, right_fields))
            elif step.left_kind == "STREAM":
                self.steps.append(_StreamTable(step, left_fields, right_fields))
            else:
                key_fields = [f for f in join.key_fields if not f.startswith(LABEL)]
                self.steps.append(_TableTable(step, left_fields, right_fields, key_fields))
        self.stream_time = [0]
        self.key_type = join.key_type.to_arrow()
        #: a one-step stream-table join runs whole stream batches at once
        only = self.steps[0] if len(self.steps) == 1 else None
        self.lookup = only if isinstance(only, _StreamTable) else None
        #: so does a one-step stream-stream join of the common shape (ops/stream_join.py)
        self.columnar: ColumnarStreamJoin | None = None
        labels = [s.label for s in join.sides]
        windowed = any(s.source.window is not None for s in join.sides)
        if not windowed and supported(join.steps, labels, [s.source.topic for s in join.sides]):
            self.columnar = ColumnarStreamJoin(
                join.steps[0], labels, self.side_fields, self.types, self.key_type
            )
        #: keys of a table join whose last row passed WHERE (so a failing row deletes them)
        self.passed: set[Any] = set()
        self.passed_dirty: set[Any] = set()
        #: what holds state, for checkpoints and restores
        self.stores: list[Any] = [self.columnar] if self.columnar else list(self.steps)

    def looked_up_tables(self) -> list[str]:
        """Topics of tables that streams look up (their changes send nothing by themselves)."""
        return [
            self.join.sides[step.right].source.topic
            for step in self.join.steps
            if step.left_kind == "STREAM" and step.right_kind == "TABLE"
        ]

    # -- processing -------------------------------------------------------------------------

    def process(self, item: PolledBatch, out: Outputs) -> tuple[pa.RecordBatch, np.ndarray]:
        """The joined rows a polled batch gives, and which of them are deletions."""
        events: list[Event] = []
        fast: list[pa.RecordBatch] = []
        for side in self.topics.get(item.partition.topic, []):
            frame, tombstones = self.decoders[side].decode(item, out.errors)
            if not frame.num_rows:
                continue
            if side == 0 and self.lookup is not None:
                fast.append(self._look_up(self.lookup, frame))
            elif self.columnar is not None:
                step = self.join.steps[0]
                key = (step.left_key if side == 0 else step.right_key)(frame, EvalContext())
                fast.append(self.columnar.process(side, frame, key, self.stream_time))
            else:
                events += self._side(side, frame, tombstones)
        if fast and not events:
            batch = fast[0] if len(fast) == 1 else pa.concat_batches(_same_columns(fast))
            return batch, np.zeros(batch.num_rows, bool)
        batch, deleted = self._frame(events)
        if fast:
            batch = pa.concat_batches(_same_columns([*fast, batch]))
            deleted = np.concatenate([np.zeros(batch.num_rows - len(deleted), bool), deleted])
        return batch, deleted

    def _look_up(self, runner: _StreamTable, frame: pa.RecordBatch) -> pa.RecordBatch:
        """A stream batch joined to the table a whole batch at a time (a one-step
        stream-table join): one dict lookup per record, the rest in Arrow."""
        label = self.join.sides[0].label
        key_arr = runner.step.left_key(frame, EvalContext())
        keys = key_arr.to_pylist()
        if not _plain_type(key_arr.type):
            keys = [_hashable(k) for k in keys]
        stamps = frame.column(field_name(label, "ROWTIME"))
        if len(stamps):
            self.stream_time[0] = max(self.stream_time[0], pc.max(stamps).as_py() or 0)
        index, columns = runner.snapshot(self.types)
        get = index.get
        slots = np.fromiter(
            (-2 if k is None else get(k, -1) for k in keys), np.int64, count=len(keys)
        )
        keep = slots >= 0 if runner.step.kind == "INNER" else slots != -2
        if not keep.all():
            mask = pa.array(keep)
            frame, key_arr, slots = frame.filter(mask), key_arr.filter(mask), slots[keep]
        found = slots >= 0
        rows = pa.array(np.where(found, slots, 0), mask=~found)
        arrays = [frame.column(f) for f in self.side_fields[0]]
        arrays += [c.take(rows) for c in columns]
        names = [*self.side_fields[0], *runner.right_fields]
        for name in PSEUDO_COLUMNS:
            arrays.append(frame.column(field_name(label, name)))
            names.append(field_name(LABEL, name))
        arrays.append(key_arr.cast(self.key_type))
        names.append(field_name(LABEL, ROWKEY))
        headers = frame_headers(frame, label)
        if headers is not None:
            arrays.append(headers)
            names.append(headers_field(LABEL))
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _side(self, side: int, frame: pa.RecordBatch, tombstones: np.ndarray) -> list[Event]:
        source = self.join.sides[side].source
        label = self.join.sides[side].label
        rows = frame.to_pylist()
        hidden = headers_field(label)
        # the headers go with the event, not into the joined rows (nor the state)
        headers = (
            [row.pop(hidden) for row in rows]
            if frame_headers(frame, label) is not None
            else [None] * len(rows)
        )
        stamps = frame.column(field_name(label, "ROWTIME")).to_pylist()
        offsets = frame.column(field_name(label, "ROWOFFSET")).to_pylist()
        parts = frame.column(field_name(label, "ROWPARTITION")).to_pylist()
        key_names = [field_name(label, c.name) for c in source.key_columns]
        events = []
        for i, row in enumerate(rows):
            key = None
            if source.kind == "TABLE":
                values = [_hashable(row[k]) for k in key_names]
                key = values[0] if len(values) == 1 else tuple(values)
            deleted = bool(tombstones[i]) if source.kind == "TABLE" else False
            events.append(Event(row, stamps[i], key, deleted, parts[i], offsets[i], headers[i]))
        index, from_left = (0, True) if side == 0 else (side - 1, False)
        step = self.steps[index].step
        key_arr = (step.left_key if from_left else step.right_key)(frame, EvalContext())
        keys = key_arr.to_pylist()
        if not _plain_type(key_arr.type):
            keys = [_hashable(k) for k in keys]
        if source.window is not None:  # windowed records join only the same window
            bounds = zip(
                frame.column(field_name(label, "WINDOWSTART")).to_pylist(),
                frame.column(field_name(label, "WINDOWEND")).to_pylist(),
                strict=True,
            )
            keys = [
                (k, s, e) if k is not None else None for k, (s, e) in zip(keys, bounds, strict=True)
            ]
        return self._through(index, events, from_left=from_left, keys=keys)

    def _through(
        self, index: int, events: list[Event], *, from_left: bool, keys: list[Any] | None = None
    ) -> list[Event]:
        """Run events into step `index` (and on through the steps after it); `keys`: the
        events' join keys for the first step, if known."""
        while events and index < len(self.steps):
            runner = self.steps[index]
            step = runner.step
            if keys is None:
                keys = self._keys(step.left_key if from_left else step.right_key, events)
            if from_left:
                events = runner.left(events, keys, self.stream_time)
            else:
                events = runner.right(events, keys, self.stream_time)
            index += 1
            from_left = True
            keys = None
        return events if index >= len(self.steps) else []

    def _keys(self, compiled: Any, events: list[Event]) -> list[Any]:
        fields = list(dict.fromkeys(f for e in events for f in e.row))
        arrays = [
            pa.array([e.row.get(f) for e in events], self.types[f])
            for f in fields
            if f in self.types
        ]
        batch = pa.RecordBatch.from_arrays(arrays, names=[f for f in fields if f in self.types])
        values = compiled(batch, EvalContext()).to_pylist()
        return [_hashable(v) for v in values]

    def _frame(self, events: list[Event]) -> tuple[pa.RecordBatch, np.ndarray]:
        fields = [f for s in self.side_fields for f in s]
        arrays = [pa.array([e.row.get(f) for e in events], self.types[f]) for f in fields]
        names = list(fields)
        own = {
            "ROWTIME": [e.ts for e in events],
            "ROWPARTITION": [e.partition for e in events],
            "ROWOFFSET": [e.offset for e in events],
        }
        for name, t in PSEUDO_COLUMNS.items():
            arrays.append(pa.array(own[name], t.to_arrow()))
            names.append(field_name(LABEL, name))
        window = self.join.sides[0].source.window
        keys = [e.key for e in events]
        if window is not None:  # keys are (key, window start, window end)
            for i, bound in ((1, "WINDOWSTART"), (2, "WINDOWEND")):
                arrays.append(pa.array([k[i] if k else None for k in keys], pa.int64()))
                names.append(field_name(LABEL, bound))
            keys = [k[0] if k else None for k in keys]
        key_type = self.join.key_type
        if key_type.name in ("ARRAY", "MAP", "STRUCT"):
            keys = [_unhashable(k, key_type) for k in keys]
        else:
            keys = [_plain(k) for k in keys]
        arrays.append(pa.array(keys, self.key_type))
        names.append(field_name(LABEL, ROWKEY))
        if any(e.headers is not None for e in events):
            arrays.append(pa.array([e.headers for e in events], HEADERS_TYPE))
            names.append(headers_field(LABEL))
        deleted = np.array([e.deleted for e in events], bool)
        return pa.RecordBatch.from_arrays(arrays, names=names), deleted

    def filter_table(
        self, frame: pa.RecordBatch, mask: pa.Array, deleted: pa.Array
    ) -> tuple[pa.RecordBatch, pa.Array]:
        """WHERE over a table join's rows: a row that fails it deletes its key downstream
        only if the key's last row passed (else nothing is sent)."""
        keys = frame.column(field_name(LABEL, ROWKEY)).to_pylist()
        passes = np.asarray(mask.to_numpy(zero_copy_only=False), bool)
        gone = np.asarray(deleted.to_numpy(zero_copy_only=False), bool)
        send = np.ones(len(keys), bool)
        for i, k in enumerate(keys):
            k = _hashable(k)
            if passes[i] and not gone[i]:
                self.passed.add(k)
            else:
                send[i] = k in self.passed
                self.passed.discard(k)
            self.passed_dirty.add(k)
        out = pa.array(send)
        return frame.filter(out), pa.array(gone | ~passes).filter(out)

    # -- state ------------------------------------------------------------------------------

    def checkpoint(self, changelog: dict[bytes, bytes | None]) -> None:
        for i, step in enumerate(self.stores):
            for name, value in step.state().items():
                k = pickle.dumps(("J", i, name))
                changelog[k] = None if value is None else pickle.dumps(value)
        changelog[pickle.dumps(("J", -1, "time"))] = pickle.dumps(self.stream_time[0])
        for k in self.passed_dirty:
            changelog[pickle.dumps(("J", -2, k))] = pickle.dumps(True) if k in self.passed else None
        self.passed_dirty.clear()

    def restore(self, name: tuple[Any, ...], value: Any) -> None:
        _, i, inner = name
        if i == -2:
            self.passed.add(inner)
        elif i == -1:
            self.stream_time[0] = value
        else:
            self.stores[i].restore(inner, value)


def _same_columns(batches: list[pa.RecordBatch]) -> list[pa.RecordBatch]:
    """The joined batches with the hidden headers column in all or none, to concatenate."""
    name = headers_field(LABEL)
    have = [b.schema.get_field_index(name) >= 0 for b in batches]
    if all(have) or not any(have):
        return batches
    return [
        b if had else b.append_column(name, pa.nulls(b.num_rows, HEADERS_TYPE))
        for b, had in zip(batches, have, strict=True)
    ]


def _time_order(entry: tuple[int, int, Any]) -> tuple[int, int]:
    return entry[0], entry[1]


def _plain_type(t: pa.DataType) -> bool:
    """Whether values of `t` are hashable as Python gives them (no lists, maps or structs)."""
    return not (pa.types.is_nested(t) or pa.types.is_map(t))


def _plain(v: Any) -> Any:
    """A key as the frame's `$J.ROWKEY` holds it: a multi-column key by its first column."""
    return v[0] if isinstance(v, tuple) else v


def _ordered(keys: Iterable[Any]) -> list[Any]:
    """Left table keys in a stable order (by value when they compare, else by text)."""
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=repr)
