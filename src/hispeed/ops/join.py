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

This module runs the steps (`JoinRuntime`); each kind of step has its own module:
ops/join_stream_stream.py, ops/join_stream_table.py, ops/join_table_table.py (and foreign
keys), with what they share in ops/join_steps.py; ops/join_columnar.py runs a one-step
stream-stream join a whole batch at a time.
"""

from __future__ import annotations

import pickle
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.aggregates import hashable, unhashable
from hispeed.functions.registry import EvalContext
from hispeed.log.base import HEADERS_TYPE, PolledBatch
from hispeed.ops.base import Outputs
from hispeed.ops.decode import SourceDecoder, frame_headers, headers_field
from hispeed.ops.join_columnar import ColumnarStreamJoin, supported
from hispeed.ops.join_lookup import DecodeCache, LookupJoin, decode_run
from hispeed.ops.join_lookup import supported as lookup_supported
from hispeed.ops.join_nonkey import DEFAULT_MAX_ROWS, NonKeyTableJoin
from hispeed.ops.join_steps import Event, JoinStepRunner, joined_batch
from hispeed.ops.join_stream_stream import StreamStreamJoin
from hispeed.ops.join_stream_table import StreamTableJoin
from hispeed.ops.join_table_table import TableTableJoin
from hispeed.ops.join_temporal import VersionedTableJoin
from hispeed.ops.join_window import WindowJoin
from hispeed.ops.join_windowed_stream import WindowedStreamTableJoin
from hispeed.ops.join_windowed_table import StreamWindowedTableJoin
from hispeed.ops.watermark import Idleness
from hispeed.plan.model import (
    LABEL,
    PSEUDO_COLUMNS,
    ROWKEY,
    JoinPlan,
    QueryPlan,
    field_name,
    window_fields,
)
from hispeed.plan.scope import source_scope
from hispeed.plan.temporal import DEFAULT_RETENTION_MS
from hispeed.registry import SchemaRegistry
from hispeed.sql.windows import ENDS_IN_KEY


class JoinRuntime:
    """Decodes each side's records and runs them through the join steps."""

    def __init__(
        self,
        plan: QueryPlan,
        query_id: str,
        registry: SchemaRegistry | None = None,
        temporal_retention_ms: int = DEFAULT_RETENTION_MS,
        nonkey_max_rows: int = DEFAULT_MAX_ROWS,
        idle: Idleness | None = None,
    ) -> None:
        """`idle`: which input partitions hold a window join's watermark back (the task's)."""
        join = plan.join
        assert join is not None
        self.plan = plan
        self.query_id = query_id
        self.join: JoinPlan = join
        self.decoders = [
            SourceDecoder(s.source, s.label, query_id, registry=registry) for s in join.sides
        ]
        #: the decoders, which keep each partition's last frame (the task decodes a batch
        #: to order it by time, then takes it in slices)
        self.decoding = DecodeCache(self.decoders)
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
        if join.steps and join.steps[0].row_windows is not None:
            # a window join of HOP's or CUMULATE's rows: each copy's window end, per side;
            # of SESSION's: each row's session's start and end
            for fields, side in zip(self.side_fields, join.sides, strict=True):
                for name in window_fields(join.steps[0].row_windows):
                    fields.append(field_name(side.label, name))
                    self.types[fields[-1]] = pa.int64()
        self.steps: list[JoinStepRunner] = []
        for step in join.steps:
            left_fields = [f for s in range(step.right) for f in self.side_fields[s]]
            right_fields = self.side_fields[step.right]
            if step.window is not None:  # Flink's window join (ops/join_window.py)
                pair = (join.sides[0].source.topic, join.sides[step.right].source.topic)
                self.steps.append(WindowJoin(step, left_fields, right_fields, pair, idle))
            elif step.left_kind == "STREAM" and step.right_kind == "STREAM":
                self.steps.append(StreamStreamJoin(step, left_fields, right_fields))
            elif step.as_of is not None:  # FOR SYSTEM_TIME AS OF (plan/temporal.py)
                self.steps.append(
                    VersionedTableJoin(step, left_fields, right_fields, temporal_retention_ms)
                )
            elif (w := join.sides[step.right].source.window) and not join.sides[0].source.window:
                # an unwindowed stream meets the windows holding its record's time (#4736)
                session, keep = w.kind == "SESSION", temporal_retention_ms
                runner = StreamWindowedTableJoin(step, left_fields, right_fields, session, keep)
                self.steps.append(runner)
            elif step.left_kind == "STREAM" and join.sides[0].source.window is not None:
                # a windowed stream's records look their key's rows up (#4736)
                first = step.right == 1
                self.steps.append(WindowedStreamTableJoin(step, left_fields, right_fields, first))
            elif step.left_kind == "STREAM":
                self.steps.append(StreamTableJoin(step, left_fields, right_fields))
            elif step.pair_key is not None:  # many to many (#9352): ops/join_nonkey.py
                self.steps.append(NonKeyTableJoin(step, left_fields, right_fields, nonkey_max_rows))
            else:
                key_fields = [f for f in join.key_fields if not f.startswith(LABEL)]
                table = TableTableJoin(step, left_fields, right_fields, key_fields)
                # a windowed table's rows look their key's row up (#4736): keyed by window
                table.windowed = step.foreign_key and join.sides[0].source.window is not None
                self.steps.append(table)
        self.stream_time = [0]
        self.key_type = join.key_type.to_arrow()
        #: a one-step stream-table join runs whole stream batches at once
        only = self.steps[0] if len(self.steps) == 1 else None
        self.lookup = (
            only
            if type(only) is StreamTableJoin and only.step.residual is None  # not windowed
            else None
        )
        #: so does a one-step stream-stream join of the common shape (ops/join_columnar.py)
        self.columnar: ColumnarStreamJoin | None = None
        labels = [s.label for s in join.sides]
        windowed = any(s.source.window is not None for s in join.sides)
        residual = any(step.residual is not None for step in join.steps)
        topics = [s.source.topic for s in join.sides]
        if not windowed and not residual and supported(join.steps, labels, topics):
            self.columnar = ColumnarStreamJoin(
                join.steps[0], labels, self.side_fields, self.types, self.key_type
            )
        #: a one-step stream-table join of plain keys runs whole runs of slices at once
        #: (ops/join_lookup.py)
        self.runs: LookupJoin | ColumnarStreamJoin | None = self.columnar
        versioned = any(step.as_of is not None for step in join.steps)
        if not residual and not versioned and lookup_supported(join.steps, topics, windowed):
            self.runs = LookupJoin(
                join.steps[0], labels, self.side_fields, self.types, self.key_type
            )
        #: keys of a table join whose last row passed WHERE (so a failing row deletes them)
        self.passed: set[Any] = set()
        self.passed_dirty: set[Any] = set()
        #: what holds state, for checkpoints and restores
        self.stores: list[Any] = (
            [self.runs] if self.runs else [self.columnar] if self.columnar else list(self.steps)
        )

    def looked_up_tables(self) -> list[str]:
        """Topics of tables that streams look up (their changes send nothing by themselves)."""
        return [
            self.join.sides[step.right].source.topic
            for step in self.join.steps
            if step.left_kind == "STREAM" and step.right_kind == "TABLE"
        ]

    # -- processing -------------------------------------------------------------------------

    def process_run(
        self, items: list[PolledBatch], out: Outputs
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """The joined rows of consecutive slices in processing order, as processing them
        one by one would give them, computed at once (a join with `runs` only)."""
        assert self.runs is not None
        sides = decode_run(self.decoding, self.topics, items, out.errors)
        batch = self.runs.process_run(sides, self.stream_time)
        if batch is None:
            return pa.RecordBatch.from_arrays([], names=[]), np.zeros(0, bool)
        return batch, np.zeros(batch.num_rows, bool)

    def process(self, item: PolledBatch, out: Outputs) -> tuple[pa.RecordBatch, np.ndarray]:
        """The joined rows a polled batch gives, and which of them are deletions."""
        if self.runs is not None:
            return self.process_run([item], out)
        events: list[Event] = []
        fast: list[pa.RecordBatch] = []
        for side in self.topics.get(item.partition.topic, []):
            frame, tombstones = self.decoding.decode(side, item, out.errors)
            if not frame.num_rows:
                continue
            if side == 0 and self.lookup is not None:
                fast.append(self._look_up(self.lookup, frame))
            else:
                events += self._side(side, frame, tombstones)
        self._refused(item, out)
        if fast and not events:
            batch = fast[0] if len(fast) == 1 else pa.concat_batches(_same_columns(fast))
            return batch, np.zeros(batch.num_rows, bool)
        batch, deleted = self._frame(events)
        if fast:
            batch = pa.concat_batches(_same_columns([*fast, batch]))
            deleted = np.concatenate([np.zeros(batch.num_rows - len(deleted), bool), deleted])
        return batch, deleted

    def _refused(self, item: PolledBatch, out: Outputs) -> None:
        """Send the rows a non-key join let go past its bound to the processing log."""
        for runner in self.steps:
            if isinstance(runner, NonKeyTableJoin) and runner.refused:
                for message, partition, offset in runner.refused:
                    out.errors.append(
                        {
                            "type": "RECORD_PROCESSING_ERROR",
                            "query": self.query_id,
                            "message": message,
                            "topic": item.partition.topic,
                            "partition": partition,
                            "offset": offset,
                        }
                    )
                runner.refused.clear()

    def _look_up(self, runner: StreamTableJoin, frame: pa.RecordBatch) -> pa.RecordBatch:
        """A stream batch joined to the table a whole batch at a time (a one-step
        stream-table join): one dict lookup per record, the rest in Arrow."""
        label = self.join.sides[0].label
        key_arr = runner.step.left_key(frame, EvalContext())
        keys = key_arr.to_pylist()
        if not _plain_type(key_arr.type):
            keys = [hashable(k) for k in keys]
        stamps = frame.column(field_name(label, "ROWTIME"))
        if len(stamps):
            self.stream_time[0] = max(self.stream_time[0], pc.max(stamps).as_py() or 0)
        if runner.has_snapshot() or len(keys) >= len(runner.table):
            index, columns = runner.snapshot(self.types)
            get = index.get
            slots = np.fromiter(
                (-2 if k is None else get(k, -1) for k in keys), np.int64, count=len(keys)
            )
        else:
            # a few stream rows right after table changes (inputs taken in time order come
            # in slices): look them up one by one instead of rebuilding the table's columns
            slots, columns = runner.rows_for(keys, self.types)
        keep = slots >= 0 if runner.step.kind == "INNER" else slots != -2
        if not keep.all():
            mask = pa.array(keep)
            frame, key_arr, slots = frame.filter(mask), key_arr.filter(mask), slots[keep]
        found = slots >= 0
        rows = pa.array(np.where(found, slots, 0), mask=~found)
        arrays = [frame.column(f) for f in self.side_fields[0]]
        arrays += [c.take(rows) for c in columns]
        names = [*self.side_fields[0], *runner.right_fields]
        return joined_batch(arrays, names, frame, label, key_arr.cast(self.key_type))

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
                values = [hashable(row[k]) for k in key_names]
                key = values[0] if len(values) == 1 else tuple(values)
            deleted = bool(tombstones[i]) if source.kind == "TABLE" else False
            events.append(Event(row, stamps[i], key, deleted, parts[i], offsets[i], headers[i]))
        index, from_left = (0, True) if side == 0 else (side - 1, False)
        step = self.steps[index].step
        key_arr = (step.left_key if from_left else step.right_key)(frame, EvalContext())
        keys = key_arr.to_pylist()
        if not _plain_type(key_arr.type):
            keys = [hashable(k) for k in keys]
        if source.window is not None:  # windowed records join only the same window
            starts = frame.column(field_name(label, "WINDOWSTART")).to_pylist()
            ends = frame.column(field_name(label, "WINDOWEND")).to_pylist()
            first = self.join.sides[0].source.window
            if first is not None and first.kind not in ENDS_IN_KEY and first.size_ms is not None:
                # a time window's key holds only its start (a session's or cumulating
                # window's holds its end too: each keeps its own): a side in another window size
                # (re-keyed into the left side's key format, as ksqlDB re-keys an SR-format
                # side) joins by start, its window as long as the left side's
                ends = [None if x is None else x + first.size_ms for x in starts]
            bounds = zip(starts, ends, strict=True)
            windows = [
                (k, s, e) if k is not None else None for k, (s, e) in zip(keys, bounds, strict=True)
            ]
            if from_left and self.steps[index].step.foreign_key:
                # a windowed table's rows look their key's row up (#4736): keyed by window
                for event, window in zip(events, windows, strict=True):
                    event.key = window
            else:
                keys = windows
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
        return [hashable(v) for v in values]

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
        if self.join.text_key:  # a key of several columns (both tables'): their text
            keys = [None if k is None else repr(k) for k in keys]
        elif key_type.name in ("ARRAY", "MAP", "STRUCT"):
            keys = [unhashable(k, key_type) for k in keys]
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
            k = hashable(k)
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


def _plain_type(t: pa.DataType) -> bool:
    """Whether values of `t` are hashable as Python gives them (no lists, maps or structs)."""
    return not (pa.types.is_nested(t) or pa.types.is_map(t))


def _plain(v: Any) -> Any:
    """A key as the frame's `$J.ROWKEY` holds it: a multi-column key by its first column."""
    return v[0] if isinstance(v, tuple) else v
