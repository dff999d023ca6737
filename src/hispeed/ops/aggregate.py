"""GROUP BY, windowed or not, over a stream or a table: the per-record reference path.

Each input record updates its group's state and yields one change (ksqlDB with its record
cache off). Group keys and aggregate arguments are computed for the whole batch at once; the
state updates walk the records in order; the select list and HAVING are computed for all
the changes at once.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Mapping, Sequence
from itertools import repeat
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.aggregate_modifiers import CountDistinct, Distinct, Filtered
from hispeed.functions.aggregates import Aggregate, hashable, unhashable
from hispeed.functions.registry import EvalContext
from hispeed.gc_pause import gc_paused
from hispeed.log.base import HEADERS_TYPE
from hispeed.ops import aggregate_table
from hispeed.ops.aggregate_batch import (
    DistinctAdder,
    batch_adder,
    batched,
    group_runs,
    last_rows,
)
from hispeed.ops.base import OperatorContext, Outputs
from hispeed.ops.changes import Change, only_rows
from hispeed.ops.decode import frame_headers
from hispeed.ops.emit import SinkEncoder
from hispeed.ops.vectorized import FastPath, VectorizedAggregator
from hispeed.ops.vectorized_sessions import SessionAggregator
from hispeed.ops.watermark import window_clock
from hispeed.ops.window import final_retained_from, row_windows, window_starts
from hispeed.plan.model import QueryPlan, field_name
from hispeed.state.changelog import write_stream_time
from hispeed.state.columns import CHANGELOG_KIND, ColumnarStateStore
from hispeed.state.keyed import KeyedStateStore
from hispeed.state.multisets import CHUNK_KIND, MultisetChunks
from hispeed.state.stores import PickledStores

#: the kinds of the reference path's pickled state (the changelog keys' first item)
PICKLED_KINDS = "STWPXH"
#: the engine property: bytes a query's keyed state holds in memory before it spills to files
STATE_BUDGET = "state.memory.budget.bytes"
DEFAULT_STATE_BUDGET = 1024 * 1024 * 1024
#: the engine property: the directory spilled state goes to (default: the system's temporary
#: directory; the server gives its data directory's `state-spill`)
STATE_SPILL_DIR = "state.spill.dir"


class Aggregator:
    """The aggregate operator: GROUP BY's changes, by the vectorized paths where they run the
    plan and the batch, else record by record; its changes go to the emit operator."""

    def __init__(
        self, plan: QueryPlan, properties: Mapping[str, Any], emitter: SinkEncoder
    ) -> None:
        """`properties`: the engine's (the record cache's size decides whether every record's
        change is output); `emitter`: the emit operator the changes go to."""
        self.plan = plan
        self.emitter = emitter
        agg = self.plan.aggregation
        assert agg is not None
        self.agg = agg
        #: the query's calls and the row time's (the last): a state has one entry per call
        self.calls = agg.state_calls
        for call in self.calls:  # the settings in effect (ksqlDB configures its UDAFs)
            call.logic.configure(properties)
        #: the reference path's state, a store per kind (state/stores.py), changelogged
        #: entry by entry under the kind's letter
        self.pickled = PickledStores(PICKLED_KINDS)
        #: "S": (group, window) -> list of aggregate states (a window store)
        self.states = self.pickled["S"]
        #: "T": a table source's current rows: source key -> (group, args) it contributed
        self.table_rows = self.pickled["T"]
        #: "W": session windows per group: list of [start, end] (a session index)
        self.sessions = self.pickled["W"]
        #: "P": (group, window) whose latest output row passed HAVING (so a failing one
        #: deletes it)
        self.present = self.pickled["P"]
        #: "X": EMIT FINAL: the newest record time in each open window, as changelogs written
        #: before a final row's time was taken from its state's row time (read, never written)
        self.window_time = self.pickled["X"]
        #: "H": EMIT FINAL: the headers of the last record that changed each open window
        #: (only windows whose last record had headers), which its final row carries, as
        #: Kafka Streams' suppression buffer keeps each key's last record context
        self.window_headers = self.pickled["H"]
        #: the (kind, key) of the entries changed since the last checkpoint
        self.dirty = self.pickled.dirty
        #: the headers of the record being processed (the reference path's changes take them)
        self._headers: Any = None
        self.final = self.plan.emit == "FINAL"
        cache = str(properties.get("ksql.streams.cache.max.bytes.buffering", ""))
        #: ksqlDB with its record cache off: every input record's change is output
        self.per_record = cache == "0"
        #: whole batches at a time, for the query shapes ops/vectorized.py and
        #: ops/vectorized_sessions.py support
        coalesce = not self.per_record
        self.vectorized: FastPath | None = VectorizedAggregator.build(
            self.plan, coalesce=coalesce
        ) or SessionAggregator.build(self.plan, coalesce=coalesce)
        self.store: ColumnarStateStore | KeyedStateStore | None = (
            self.vectorized.store if isinstance(self.vectorized, VectorizedAggregator) else None
        )
        if isinstance(self.store, KeyedStateStore):
            self.store.budget = int(properties.get(STATE_BUDGET, DEFAULT_STATE_BUDGET))
            self.store.arena.spill_dir = properties.get(STATE_SPILL_DIR) or None
        #: where the (group, window) states are: in `states` (the reference path's form), or
        #: in the fast path's columns (`store`) while `states` is empty
        self.in_dict = self.store is None
        #: the changelog holds the states as per-key "S" records (else as the store's chunks)
        self._key_records = self.store is None
        #: "S" records to delete at the next checkpoint (the states went back into columns)
        self._stale_keys: set[Any] = set()
        #: a stream's unwindowed GROUP BY whose calls all add a group's values at once: a
        #: batch per group (ops/aggregate_batch.py), not record by record
        self.by_group = (
            plan.source.kind == "STREAM"
            and agg.window is None
            and not self.final
            and not self.per_record
            and all(batched(call.logic) for call in self.calls)
        )
        #: the places of the DISTINCT calls' multisets in a state list: their changelog's
        #: chunks (state/multisets.py), read back by every path, written by the by-group
        #: path (it notes every value a set takes; the others write the sets whole)
        distinct = [i for i, c in enumerate(self.calls) if _is_distinct(c.logic)]
        self.multisets = MultisetChunks(distinct) if distinct else None
        #: chunks were restored: the states are assembled from them before they are used
        self._assemble = False
        if self.multisets is not None and self.by_group and self.store is None:
            self.pickled.encoders["S"] = self.multisets.encode
        #: each call's result of its state (None: the state itself), without the calls
        #: through FILTER's wrapper, COUNT(DISTINCT)'s or the identity of most aggregates
        self._result_of = [_result_of(call.logic) for call in self.calls]
        #: a table's records a batch at a time (ops/aggregate_table.py) when only the groups'
        #: last changes are output; False: record by record (`_table_update`, the reference)
        self.table_batches = aggregate_table.eligible(plan)
        #: EMIT FINAL: no window closes before stream time reaches this (a lower bound of the
        #: open windows' end plus grace), so a record that closes none costs no scan
        self._next_close = -math.inf

    def restore(self, name: Any, value: Any) -> None:
        """Take back a state read from the changelog (`name`: its `(kind, ...)` key)."""
        kind = name[0]
        if self.multisets is not None and kind in ("S", CHUNK_KIND):
            self._assemble = True
            if kind == CHUNK_KIND:
                self.multisets.restore(name, value)
                return
        if kind == CHANGELOG_KIND:
            if self.store is not None:
                self.store.restore(name, value)
            return
        if kind == "S":
            self.in_dict = self._key_records = True
        self.pickled.restore(name, value)

    # -- processing -------------------------------------------------------------------------

    @gc_paused
    def process(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> None:
        """Aggregate a batch: its changes to the emit operator, its state changes and stream
        time to the changelog."""
        self._assembled()
        if self.store is not None and self.in_dict:
            self._to_columns()
        fast = self.vectorized
        ready = self.in_dict == (self.store is None)  # the states are in the fast path's form
        if fast is not None and ready and fast.process(self, frame, context):
            return  # else the fast path refused this batch, having changed nothing
        self.process_records(frame, tombstones, context)

    def _assembled(self) -> None:
        """The restored multisets put together from their chunks (once, after a restore)."""
        if self._assemble:
            assert self.multisets is not None
            self.multisets.assemble(self.states)
            self._assemble = False

    def process_records(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> None:
        """The reference path: the records one by one."""
        if not self.in_dict:
            assert self.store is not None
            self.states = self.pickled.replace("S", self.store.take_dict())
            self.in_dict = True
        if self.by_group:
            self._process_by_group(frame, context)
            return
        ctx = EvalContext()
        label = self.plan.label
        n = frame.num_rows
        where = None
        if self.plan.where is not None:
            where = np.asarray(
                pc.fill_null(self.plan.where(frame, ctx), False).to_numpy(zero_copy_only=False)
            )
        groups = [g(frame, ctx).to_pylist() for g in self.agg.group_exprs]
        args = [[a(frame, ctx).to_pylist() for a in call.args] for call in self.calls]
        stamps = frame.column(field_name(label, "ROWTIME")).to_pylist()
        header_column = frame_headers(frame, label)
        headers = header_column.to_pylist() if header_column is not None else None
        context.report(ctx, frame, label)
        changes: list[Change] = []
        is_table = self.plan.source.kind == "TABLE"
        source_keys = None
        if is_table:
            key_names = [field_name(label, c.name) for c in self.plan.source.key_columns]
            source_keys = (
                list(zip(*(frame.column(k).to_pylist() for k in key_names), strict=True))
                if key_names
                else [()] * n
            )
        # ksqlDB's stream time of the partition; a window table function's watermark
        clock = window_clock(self.agg.window, context.stream_time, context.partition, context.idle)
        stream_time = clock.seed
        finals: list[Change] = []
        self._next_close = -math.inf  # the states may have changed hands since: look again
        batched = is_table and self.table_batches and not self.final and not self.per_record
        if batched:
            # only the groups' last changes are output: made once (ops/aggregate_table.py)
            assert source_keys is not None
            group_keys = (
                list(zip(*([hashable(v) for v in g] for g in groups), strict=True))
                if groups
                else [()] * n
            )
            passed = [True] * n if where is None else np.asarray(where, bool).tolist()
            deleted = np.asarray(tombstones, bool).tolist()
            present = [passed[i] and not deleted[i] and None not in group_keys[i] for i in range(n)]
            changes = aggregate_table.table_changes(
                self.calls,
                self._results,
                self.table_rows,
                self.states,
                self.dirty,
                source_keys,
                group_keys,
                args,
                present,
                headers,
            )
        for i in range(0 if batched else n):
            ts = stamps[i]
            group = tuple(hashable(g[i]) for g in groups)
            self._headers = headers[i] if headers is not None else None
            row_args = [[a[i] for a in call_args] for call_args in args]
            passes = where is None or bool(where[i])
            if is_table:
                assert source_keys is not None
                self._table_update(
                    source_keys[i],
                    group,
                    row_args,
                    passes and not tombstones[i] and None not in group,
                    ts,
                    changes,
                )
                continue
            if not passes or None in group:
                continue  # ksqlDB drops rows whose grouping key is NULL
            stream_time = clock.row(ts, stream_time)
            if self.final:
                self._close_windows(stream_time, finals)
                before = len(changes)
                self._stream_update(group, row_args, ts, stream_time, changes)
                grace = self.agg.close_ms
                for c in changes[before:]:
                    if c.window is None:
                        continue
                    key = (c.group, c.window)
                    self._next_close = min(self._next_close, c.window[1] + grace)
                    if c.results is None:  # a session merged away
                        if self.window_time.pop(key, None) is not None:
                            self.dirty.add(("X", key))
                        if self.window_headers.pop(key, None) is not None:
                            self.dirty.add(("H", key))
                    elif c.headers is not None:
                        self.window_headers[key] = c.headers
                        self.dirty.add(("H", key))
                    elif self.window_headers.pop(key, None) is not None:
                        self.dirty.add(("H", key))
                continue
            self._stream_update(group, row_args, ts, stream_time, changes)
        self._headers = None
        times = context.stream_time
        clock.see(frame.column(field_name(label, "ROWTIME")))
        stream_time = clock.done(stream_time)
        if self.final:
            self._close_windows(stream_time, finals)
            changes = finals
        elif not self.per_record:
            changes = _coalesce(changes)
        self.evict(times)
        self._emit(changes, context.out)
        self.checkpoint(context.out, times)

    def _process_by_group(self, frame: pa.RecordBatch, context: OperatorContext) -> None:
        """The reference path's changes, a group's records added at once (by_group)."""
        ctx = EvalContext()
        label = self.plan.label
        keep = np.ones(frame.num_rows, bool)
        if self.plan.where is not None:
            passed = pc.fill_null(self.plan.where(frame, ctx), False)
            keep = np.asarray(passed.to_numpy(zero_copy_only=False), bool)
        groups = [g(frame, ctx) for g in self.agg.group_exprs]
        order, keys, starts = group_runs(groups, keep)
        rows = pa.array(order, pa.int64())
        lengths = np.diff(np.append(starts, len(order)))
        adders = [
            batch_adder(call.logic, [a(frame, ctx).take(rows) for a in call.args], starts, lengths)
            for call in self.calls
        ]
        header_column = frame_headers(frame, label)
        headers = header_column.to_pylist() if header_column is not None else None
        context.report(ctx, frame, label)
        partition = context.partition
        stream_time = context.stream_time.get(partition, 0)
        if len(order):
            stamps = frame.column(field_name(label, "ROWTIME")).take(rows)
            stream_time = max(stream_time, pc.max(stamps).as_py())
        states_of = self.states
        # each group's states, updated a call at a time (a column of all groups' states)
        state_keys = [(group, None) for group in keys]
        init = self._init
        old = [s or init() for s in map(states_of.get, state_keys)]
        columns: list[Sequence[Any]] = list(zip(*old, strict=True)) if old else [()] * len(adders)
        results: list[Sequence[Any]] = []
        distinct: list[tuple[int, DistinctAdder]] = []
        for p, (add, result_of) in enumerate(zip(adders, self._result_of, strict=True)):
            column = columns[p] = add(columns[p])
            if isinstance(add, DistinctAdder):
                distinct.append((p, add))  # its multisets were updated in place
            results.append(column if result_of is None else list(map(result_of, column)))
        group_states = list(map(list, zip(*columns, strict=True)))
        states_of.update(zip(state_keys, group_states, strict=True))
        if "S" in self.pickled.encoders:
            self._write_chunked(state_keys, group_states, distinct, context.out)
        else:
            self.dirty.update(zip(repeat("S"), state_keys))
        times = context.stream_time
        times[partition] = max(times.get(partition, 0), stream_time)
        self.evict(times)
        self._emit_groups(keys, results, last_rows(order, starts), headers, context.out)
        self.checkpoint(context.out, times)

    def _write_chunked(
        self,
        keys: list[Any],
        states: list[list[Any]],
        distinct: list[tuple[int, DistinctAdder]],
        out: Outputs,
    ) -> None:
        """Write the by-group path's changed states now, their sets as chunks of what each
        group added (state/multisets.py), all groups at once."""
        chunks = self.multisets
        assert chunks is not None
        chunks.flush_stale(out.changelog)  # before this batch's chunks, which may reuse a name
        positions = [p for p, _ in distinct]
        sizes = np.zeros(len(keys), np.int64)
        for _, add in distinct:
            sizes += add.sizes
        added: list[dict[int, list[Any]] | None] = list(
            map(
                dict,
                map(zip, repeat(positions), zip(*(add.added for _, add in distinct), strict=True)),
            )
        )
        for i in np.flatnonzero(sizes == 0).tolist():
            added[i] = None  # its sets took nothing: its chunks stay as they are
        records = chunks.encode_all(keys, states, added, sizes.tolist(), out.changelog)
        self.pickled.write("S", keys, records, out.changelog)

    def checkpoint(self, out: Outputs, stream_time: dict[int, int]) -> None:
        """Write stream time and every changed state to the changelog (it commits with the
        outputs and the input offsets)."""
        write_stream_time(out.changelog, stream_time)
        if self.multisets is not None:
            self.multisets.flush_stale(out.changelog)
        if self.store is not None:
            self._checkpoint_columns(out)
        self.pickled.checkpoint(out.changelog)

    def _checkpoint_columns(self, out: Outputs) -> None:
        """Write the fast path's states, or all states in the reference's form when they do
        not fit its columns; the changelog holds one form only, as a restore reads it back."""
        store = self.store
        assert store is not None
        if self.in_dict:
            self._to_columns()
        if self.in_dict:
            if not self._key_records:  # from now on, per-key records of every state
                self.dirty.update(("S", k) for k in self.states)
                self._key_records = True
        else:
            changed = [k for k in self.dirty if k[0] == "S"]
            self.dirty.difference_update(changed)
            for key in self._stale_keys:
                out.changelog[pickle.dumps(("S", key))] = None
            self._stale_keys.clear()
        store.checkpoint(out.changelog)

    def _to_columns(self) -> None:
        """Hand the states back to the fast path's columns, if they fit them."""
        assert self.store is not None
        if not self.store.load_dict(self.states):
            return
        if self._key_records:  # delete the per-key records, live or written in this batch
            self._stale_keys.update(self.states)
            self._stale_keys.update(k[1] for k in self.dirty if k[0] == "S")
            self._key_records = False
        self.states = self.pickled.replace("S", {})
        self.in_dict = False

    def close_windows(self, stream_time: int) -> list[Change]:
        """EMIT FINAL: take out the windows (in `states`) whose end plus grace stream time
        has reached; their final changes, in output order."""
        self._assembled()
        finals: list[Change] = []
        self._next_close = -math.inf  # the fast path changed the states without a bound
        self._close_windows(stream_time, finals)
        return finals

    def emit_changes(self, changes: list[Change], out: Outputs) -> None:
        """Output changes through the select list, HAVING and the emit operator."""
        self._emit(changes, out)

    def _close_windows(self, stream_time: int, finals: list[Change]) -> None:
        """EMIT FINAL: output each window whose end plus grace stream time has reached,
        stamped with its newest record's time (its state's row time)."""
        grace = self.agg.close_ms
        if stream_time < self._next_close:
            return
        window = self.agg.window
        session = window is not None and window.kind == "SESSION"
        closing = sorted(
            (k for k in self.states if k[1] is not None and k[1][1] + grace <= stream_time),
            key=lambda k: (k[1][1], k[1][0]),
        )
        retained_from = None
        if window is not None and not session:
            assert window.size_ms is not None
            advance = window.advance_ms or window.size_ms
            retained_from = final_retained_from(
                stream_time, window.size_ms, advance, grace, window.retention_ms
            )
        for key in closing:
            state = self.states.pop(key)
            if retained_from is not None and key[1][0] < retained_from:
                # no longer held by the window store when it closed: not output
                self.dirty.add(("S", key))
                if self.window_time.pop(key, None) is not None:
                    self.dirty.add(("X", key))
                if self.window_headers.pop(key, None) is not None:
                    self.dirty.add(("H", key))
                continue
            if session:
                state = state[1]  # (rows, running states)
                group_sessions = self.sessions.get(key[0], [])
                if list(key[1]) in group_sessions:
                    group_sessions.remove(list(key[1]))
                self.dirty.add(("W", key[0]))
            results = self._results(state)
            if self.window_time.pop(key, None) is not None:
                self.dirty.add(("X", key))
            headers = self.window_headers.pop(key, None)
            finals.append(Change(key[0], key[1], results, results[-1], headers))
            self.dirty.add(("S", key))
            if headers is not None:
                self.dirty.add(("H", key))
        self._next_close = min(
            (k[1][1] + grace for k in self.states if k[1] is not None), default=math.inf
        )

    def _add(self, states: list[Any], row_args: list[list[Any]]) -> list[Any]:
        return [
            call.logic.add(s, a) for call, s, a in zip(self.calls, states, row_args, strict=True)
        ]

    def _results(self, states: list[Any]) -> list[Any]:
        return [s if f is None else f(s) for f, s in zip(self._result_of, states, strict=True)]

    def _init(self) -> list[Any]:
        return [call.logic.init() for call in self.calls]

    def _change(
        self, group: tuple[Any, ...], window: tuple[int, int] | None, states: list[Any]
    ) -> Change:
        """The change to a key, stamped with its row time (the newest record time it has
        seen, as Kafka Streams stamps an aggregate; the last call's result)."""
        results = self._results(states)
        return Change(group, window, results, results[-1], self._headers)

    def _stream_update(
        self,
        group: tuple[Any, ...],
        row_args: list[list[Any]],
        ts: int,
        stream_time: int,
        changes: list[Change],
    ) -> None:
        window = self.agg.window
        if window is None:
            key = (group, None)
            states = self._add(self.states.get(key) or self._init(), row_args)
            self.states[key] = states
            self.dirty.add(("S", key))
            changes.append(self._change(group, None, states))
            return
        grace = self.agg.grace_ms
        if window.kind == "SESSION":
            self._session_update(group, row_args, ts, stream_time, changes)
            return
        size = window.size_ms
        advance = window.advance_ms or size
        for start, end in _windows(window.kind, ts, size, advance, window.offset_ms):
            if end + grace <= stream_time:
                continue  # the window has closed: a late record
            wkey: tuple[Any, Any] = (group, (start, end))
            states = self._add(self.states.get(wkey) or self._init(), row_args)
            self.states[wkey] = states
            self.dirty.add(("S", wkey))
            changes.append(self._change(group, (start, end), states))

    def _session_update(
        self,
        group: tuple[Any, ...],
        row_args: list[list[Any]],
        ts: int,
        stream_time: int,
        changes: list[Change],
    ) -> None:
        """Open or extend a session; sessions the record bridges merge into one.

        A session's state is (its records' arguments or None, their aggregate states). A new
        record adds to the states. Sessions merge with the aggregates' `merge` when all have
        one (then no records are kept), or else by folding the merged sessions' records.
        """
        assert self.agg.window is not None
        gap = self.agg.window.size_ms
        sessions = self.sessions.setdefault(group, [])
        overlapping = sorted(s for s in sessions if s[0] - gap <= ts <= s[1] + gap)
        start = min([ts] + [s[0] for s in overlapping])
        end = max([ts] + [s[1] for s in overlapping])
        close = end + self.agg.close_ms
        if close < stream_time or (self.final and close == stream_time):
            # too late to open or extend a session: Kafka Streams' session aggregate drops a
            # record once stream time has passed the session's end + grace + gap; with EMIT
            # FINAL a session closed (output) at that time takes no more records either
            return
        mergeable = all(call.logic.mergeable for call in self.calls)
        rows: list[list[list[Any]]] | None = None if mergeable else []
        running: list[Any] | None = None
        for s in overlapping:
            old_key = (group, (s[0], s[1]))
            old_rows, old_running = self.states.pop(old_key, (None, None))
            if mergeable:
                running = (
                    old_running
                    if running is None
                    else [
                        call.logic.merge(a, b)
                        for call, a, b in zip(self.calls, running, old_running, strict=True)
                    ]
                )
            elif len(overlapping) == 1:
                rows, running = old_rows, old_running  # extend in place: no copies
            else:
                assert rows is not None
                rows += old_rows
            self.dirty.add(("S", old_key))
            sessions.remove(s)
            if (s[0], s[1]) != (start, end):
                # the merged-away session is deleted as of its own last record
                changes.append(Change(group, (s[0], s[1]), None, s[1], self._headers))
        if running is None:  # a new session, or a merge to replay
            running = self._init()
            for r in rows or []:
                running = self._add(running, r)
        if rows is not None:
            rows.append(row_args)
        states = self._add(running, row_args)
        sessions.append([start, end])
        self.dirty.add(("W", group))
        key = (group, (start, end))
        self.states[key] = (rows, states)
        self.dirty.add(("S", key))
        changes.append(self._change(group, (start, end), states))

    def _table_update(
        self,
        source_key: Any,
        group: tuple[Any, ...],
        row_args: list[list[Any]],
        present: bool,
        ts: int,
        changes: list[Change],
    ) -> None:
        old = self.table_rows.pop(source_key, None)
        self.dirty.add(("T", source_key))
        if old is not None:
            old_group, old_args = old
            key = (old_group, None)
            states = self.states.get(key) or self._init()
            # the row time takes this record's time, not the old row's
            undo_args = [*old_args[:-1], row_args[-1]]
            states = [
                call.logic.undo(s, a)
                for call, s, a in zip(self.calls, states, undo_args, strict=True)
            ]
            self.states[key] = states
            self.dirty.add(("S", key))
            if not (present and old_group == group):
                # a row that stays in its group changes it once, after the new value is in
                changes.append(self._change(old_group, None, states))
        if not present:
            return
        key = (group, None)
        states = self._add(self.states.get(key) or self._init(), row_args)
        self.states[key] = states
        self.dirty.add(("S", key))
        self.table_rows[source_key] = (group, row_args)
        changes.append(self._change(group, None, states))

    def evict(self, stream_time: dict[int, int]) -> None:
        """Forget windows that can no longer change (memory bounded by open windows)."""
        window = self.agg.window
        if window is None:
            return
        horizon = self.horizon(stream_time)
        for key in [k for k in self.states if k[1] is not None and k[1][1] < horizon]:
            del self.states[key]
            self.dirty.add(("S", key))
            if window.kind == "SESSION":
                group_sessions = self.sessions.get(key[0], [])
                if list(key[1]) in group_sessions:
                    group_sessions.remove(list(key[1]))
                self.dirty.add(("W", key[0]))

    def horizon(self, stream_time: dict[int, int]) -> int:
        """Windows that end before this time can no longer change (any partition's time)."""
        window = self.agg.window
        now = max(stream_time.values(), default=0)
        retention = window.retention_ms if window is not None and window.retention_ms else 0
        return int(now - max(self.agg.close_ms, retention))

    # -- output -----------------------------------------------------------------------------

    def _emit(self, changes: list[Change], out: Outputs) -> None:
        if not changes:
            return
        agg = self.agg
        arrays: list[pa.Array] = []
        names: list[str] = []
        for i, col in enumerate(agg.group_columns):
            arrays.append(
                _array([unhashable(c.group[i], col.type) for c in changes], col.type.to_arrow())
            )
            names.append(col.field)
        if all(c.results is not None for c in changes):  # a column a call, at once
            columns = list(zip(*[c.results for c in changes], strict=True))
        else:
            columns = [
                tuple(c.results[j] if c.results is not None else None for c in changes)
                for j in range(len(self.calls))
            ]
        for call, column in zip(self.calls, columns, strict=True):
            arrays.append(_array(list(column), call.column.type.to_arrow()))
            names.append(call.column.field)
        windowed = agg.window is not None
        if windowed:
            arrays.append(
                pa.array([c.window[0] if c.window else None for c in changes], pa.int64())
            )
            arrays.append(
                pa.array([c.window[1] if c.window else None for c in changes], pa.int64())
            )
            names += ["$WINDOWSTART", "$WINDOWEND"]
        post = pa.RecordBatch.from_arrays(arrays, names=names)
        headers = (
            pa.array([c.headers for c in changes], HEADERS_TYPE)
            if any(c.headers is not None for c in changes)
            else None
        )
        self._emit_post(
            post,
            pa.array([c.timestamp for c in changes], pa.int64()),
            np.array([c.results is None for c in changes]),
            lambda: [(c.group, c.window) for c in changes],
            headers,
            out,
        )

    def _emit_groups(
        self,
        keys: list[tuple[Any, ...]],
        results: list[Sequence[Any]],
        last: np.ndarray,
        headers: list[Any] | None,
        out: Outputs,
    ) -> None:
        """The by-group path's changes (no window, none deleted): group `i`'s key `keys[i]`,
        each call's results a column in group order; output in the order of the groups'
        last records (`last`: each group's), with their headers."""
        if not keys:
            return
        agg = self.agg
        order = np.argsort(last)
        rows = pa.array(order)
        arrays: list[pa.Array] = []
        names: list[str] = []
        for col, values in zip(agg.group_columns, zip(*keys, strict=True), strict=True):
            hashed = list(map(unhashable, values, repeat(col.type)))
            arrays.append(_array(hashed, col.type.to_arrow()).take(rows))
            names.append(col.field)
        for call, column in zip(self.calls, results, strict=True):
            arrays.append(_array(column, call.column.type.to_arrow()).take(rows))
            names.append(call.column.field)
        post = pa.RecordBatch.from_arrays(arrays, names=names)
        at = last[order].tolist()
        changed = None
        if headers is not None:
            taken = [headers[i] for i in at]
            if any(h is not None for h in taken):
                changed = pa.array(taken, HEADERS_TYPE)
        self._emit_post(
            post,
            pa.array(results[-1], pa.int64()).take(rows),  # the row time's
            np.zeros(len(keys), bool),
            lambda: [(keys[i], None) for i in order.tolist()],
            changed,
            out,
        )

    def _emit_post(
        self,
        post: pa.RecordBatch,
        stamps: pa.Array,
        deleted: np.ndarray,
        keys_of: Callable[[], list[Any]],
        headers: pa.Array | None,
        out: Outputs,
    ) -> None:
        """Output changes (`post`: their groups, results and windows as columns; `keys_of`:
        their (group, window) keys, which HAVING needs) through the select list, HAVING
        and the emit operator."""
        ctx = EvalContext()
        keys = [c.expr(post, ctx) for c in self.plan.key]
        values = [c.expr(post, ctx) for c in self.plan.value]
        emit = np.ones(len(deleted), bool)
        if self.plan.having is not None:
            keep = np.asarray(
                pc.fill_null(self.plan.having(post, ctx), False).to_numpy(zero_copy_only=False)
            )
            deleted |= ~keep
            # a row that fails HAVING deletes the key only if its last output passed
            for i, key in enumerate(keys_of()):
                if deleted[i]:
                    emit[i] = self.present.pop(key, False)
                else:
                    self.present[key] = True
                self.dirty.add(("P", key))
        windowed = self.agg.window is not None
        window = (post.column("$WINDOWSTART"), post.column("$WINDOWEND")) if windowed else None
        if not emit.any():
            return
        if not emit.all():
            keys, values, stamps, deleted, window = only_rows(
                emit, keys, values, stamps, deleted, window
            )
            if headers is not None:
                headers = headers.filter(pa.array(emit))
        self.emitter.emit(keys, values, stamps, deleted, out, window=window, headers=headers)


def _windows(kind: str, ts: int, size: int, advance: int, offset: int) -> list[tuple[int, int]]:
    """(start, end) of the windows that hold a record at `ts`, ascending: TUMBLING's and
    HOPPING's of `size` starting every `advance` (from `offset`); CUMULATING's (a CUMULATE
    window table function's aggregation) of the window of `size` holding it (starting at
    `offset + k * size`), ending every `advance` from its start, from the first ending after
    the record. No window starts before epoch 0, as in ksqlDB."""
    if kind != "CUMULATING":
        shift = offset % advance
        starts = [s + shift for s in window_starts(ts - shift, size, advance)]
        return [(start, start + size) for start in starts]
    _, ends = row_windows(np.array([ts], np.int64), "CUMULATE", size, advance, offset)
    start = ts - (ts - offset) % size
    return [] if start < 0 else [(start, int(end)) for end in ends.tolist()]


def _result_of(logic: Aggregate) -> Callable[[Any], Any] | None:
    """What makes a call's result of its state, in fewest calls: None for the state itself
    (the base class's result), `len` for COUNT(DISTINCT ...), FILTER's inner result."""
    if isinstance(logic, Filtered):
        return _result_of(logic.inner)
    if type(logic) is CountDistinct:
        return len
    if type(logic).result is Aggregate.result:
        return None
    return logic.result


def _is_distinct(logic: Any) -> bool:
    """Whether a call's state is a DISTINCT multiset (FILTER (WHERE ...) around it or not)."""
    return isinstance(logic.inner if isinstance(logic, Filtered) else logic, Distinct)


def _coalesce(changes: list[Change]) -> list[Change]:
    """The latest change of each group and window, in the order of those latest changes."""
    last: dict[Any, int] = {}
    for i, c in enumerate(changes):
        last[(c.group, c.window)] = i
    keep = sorted(last.values())
    return [changes[i] for i in keep]


def _array(values: Sequence[Any], arrow_type: pa.DataType) -> pa.Array:
    if pa.types.is_map(arrow_type):
        values = [list(v.items()) if isinstance(v, dict) else v for v in values]
    return pa.array(values, arrow_type)
