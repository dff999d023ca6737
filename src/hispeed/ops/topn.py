"""The Top-N operator: `ROW_NUMBER() OVER (PARTITION BY p ORDER BY o) ... WHERE rn <= N`.

plan/ranking.py plans it; its result is a table keyed by the partition and the rank. Each
partition's rows are kept in rank order: a stream's best N only (a row that ranks below the
N-th can never come back, since a stream's rows are never taken back), a table's every
current row (an update or delete of a row in the top N lets the next one in). After a
batch, each partition it touched is compared rank by rank with what it was before: a rank
that now holds another row is an upsert of its key, a rank left empty (a table's rows
deleted) a tombstone. Deduplication is the case N = 1: ordered by time ascending the first
row stays (later ones rank below it and change nothing), descending each newer row replaces
it.

Ties in the order go to the row that came first (as Flink's Top-N keeps them), except in
keep-last deduplication (a stream's `ORDER BY <time> DESC`, N = 1), where, as in Flink's, a
row at the kept row's time replaces it. The kept
rows are the operator's `PickledStores`, written to the query's changelog with each batch in
the transaction that commits the batch's outputs (runtime/task.py), and restored from it at
a restart.
"""

from __future__ import annotations

import bisect
import functools
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext
from hispeed.ops.base import OperatorContext, rows_setting
from hispeed.ops.emit import SinkEncoder
from hispeed.ops.topn_batch import batch_eligible, rank_stream_batch
from hispeed.plan.model import QueryPlan, field_name
from hispeed.plan.window_limit import DEFAULT_TABLE_ROWS, TABLE_ROWS_PROPERTY
from hispeed.state.stores import ChangelogChanges, KindStore, PickledStores

#: the store kinds: each partition's ranked rows, a table input's rows by key (where each
#: sits), and the arrival counter that breaks ties
RANKS, ROWS, SEQUENCE = "TR", "TK", "TS"


@functools.total_ordering
class _Descending:
    """A value that sorts in reverse (for ORDER BY ... DESC over what cannot be negated)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Descending) and self.value == other.value

    def __lt__(self, other: _Descending) -> bool:
        return bool(other.value < self.value)

    def __hash__(self) -> int:
        return hash(self.value)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_Descending, (self.value,))


class _NaN:
    """Where a DOUBLE NaN sorts: Java's Double.compare (Flink's Top-N comparator, ksqlDB) and
    DuckDB make NaN the greatest value and equal to itself, so ascending it follows every
    finite number (a NULL, as infinity, still after it) and descending (`first`) it precedes
    every number. A float's comparison with it falls back to these methods."""

    __slots__ = ("first",)

    def __init__(self, first: bool) -> None:
        self.first = first

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _NaN) and other.first == self.first

    def __hash__(self) -> int:
        return hash(("NaN", self.first))

    def __lt__(self, other: Any) -> bool:
        if isinstance(other, _NaN):
            return False
        return self.first or bool(other == _LAST)

    def __le__(self, other: Any) -> bool:
        return self == other or self.__lt__(other)

    def __gt__(self, other: Any) -> bool:
        return not self <= other

    def __ge__(self, other: Any) -> bool:
        return not self < other

    def __reduce__(self) -> tuple[Any, ...]:
        return (_NaN, (self.first,))


def _numbers(values: list[Any], descending: bool) -> list[Any]:
    """Numbers already negated for DESC, with NaN at its place and NULL last."""
    nan = _NaN(descending)
    return [_LAST if v is None else nan if v != v else v for v in values]


def sort_column(values: pa.Array, descending: bool, numeric: bool) -> list[Any]:
    """One ORDER BY column's values as they sort, nulls last either way (as DuckDB and
    Flink's default put them for ascending order): a number as itself (negated for DESC,
    a null as infinity, NaN the greatest number), anything else as (0, value) or, for a
    null, (1, 0)."""
    if numeric:
        signed = pc.negate(values) if descending else values
        if values.null_count == 0 and not (
            pa.types.is_floating(values.type) and pc.any(pc.is_nan(values)).as_py()
        ):
            return signed.to_pylist()  # type: ignore[no-any-return]
        return _numbers(signed.to_pylist(), descending)
    if not descending:
        return [(1, 0) if v is None else (0, v) for v in values.to_pylist()]
    return [(1, 0) if v is None else (0, _Descending(v)) for v in values.to_pylist()]


def table_rows_limit(properties: dict[str, Any]) -> int:
    """`query.topn.table.max.rows` from an engine's or query's properties."""
    return rows_setting(properties, TABLE_ROWS_PROPERTY, DEFAULT_TABLE_ROWS)


#: where a null number sorts: after every number
_LAST = float("inf")
#: the types whose values sort as numbers
NUMERIC = ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL")


def ranked_values(
    plan: QueryPlan, computed: list[int], frame: pa.RecordBatch, ctx: EvalContext
) -> tuple[list[Any], list[Any], list[Any]]:
    """Each row of `frame` as a ranking sees it: its partition (a value, or a tuple of
    several), where it sorts, and its `computed` outputs (a tuple)."""
    ranking = plan.ranking
    assert ranking is not None
    parts = [c(frame, ctx).to_pylist() for c in ranking.partition]
    partitions: list[Any] = (
        parts[0] if len(parts) == 1 else list(zip(*parts, strict=True)) if parts else [()]
    )
    if not parts:
        partitions = [()] * frame.num_rows
    columns = [
        sort_column(c(frame, ctx), descending, c.type is not None and c.type.name in NUMERIC)
        for c, descending in ranking.order
    ]
    # one ORDER BY column sorts by its values themselves, several by tuples of them
    sorts = columns[0] if len(columns) == 1 else list(zip(*columns, strict=True))
    outputs = plan.outputs
    values = [outputs[i].expr(frame, ctx).to_pylist() for i in computed]
    rows = list(zip(*values, strict=True)) if values else [()] * frame.num_rows
    return partitions, sorts, rows


def output_places(plan: QueryPlan) -> tuple[list[int], list[int], list[int]]:
    """The places among a ranking's outputs of those computed from its rows (all but the
    rank), of its key columns and of its value columns."""
    outputs = plan.outputs
    assert plan.ranking is not None
    rank = plan.ranking.rank_index
    where = {id(o): i for i, o in enumerate(outputs)}
    return (
        [i for i in range(len(outputs)) if i != rank],
        [where[id(c)] for c in plan.key],
        [where[id(c)] for c in plan.value],
    )


def output_arrays(
    plan: QueryPlan, computed: list[int], rows: list[Any], ranks: list[int]
) -> dict[int, pa.Array]:
    """The outputs of ranked rows as columns by output index: the `computed` ones from the
    rows' values (tuples), the rank (where it is selected) from `ranks`."""
    outputs = plan.outputs
    columns = list(zip(*rows, strict=True)) if computed else []
    arrays: dict[int, pa.Array] = {
        i: pa.array(data, outputs[i].type.to_arrow())
        for i, data in zip(computed, columns, strict=True)
    }
    assert plan.ranking is not None
    rank_at = plan.ranking.rank_index
    if rank_at is not None:
        arrays[rank_at] = pa.array(ranks, pa.int64())
    return arrays


class TopN:
    """Runs a plan's ranking over a query task's batches (see the module)."""

    def __init__(
        self, plan: QueryPlan, emitter: SinkEncoder, max_rows: int = DEFAULT_TABLE_ROWS
    ) -> None:
        assert plan.ranking is not None
        #: the most rows a table input's partition keeps (`TABLE_ROWS_PROPERTY`)
        self.max_rows = max_rows
        #: rows let go past `max_rows` in the batch being processed
        self.dropped = 0
        self.plan = plan
        self.ranking = plan.ranking
        self.emitter = emitter
        self.limit = plan.ranking.limit
        self.stores = PickledStores([RANKS, ROWS, SEQUENCE])
        #: the outputs computed from the rows (all but the rank), in order; the key's and
        #: the value's places among the outputs
        self.computed, self.key_at, self.value_at = output_places(plan)
        # a tombstone's computed columns: the key columns from the partition's values (in
        # PARTITION BY order, as the planner put the key), the rest None
        width = len(plan.ranking.partition)
        keyed = {i: j for j, i in enumerate(self.key_at[:width])}
        self._tombstone_template = [keyed.get(i) for i in self.computed]
        #: the arrival counter (kept in the store at the end of each batch)
        self._sequence: int | None = None
        #: a stream's ranking over integer ORDER BY columns runs a batch at a time
        #: (ops/topn_batch.py); the row path below is the reference it is tested against
        self.batched = batch_eligible(plan.ranking)

    # -- state ------------------------------------------------------------------------------

    def restore(self, name: Any, value: Any) -> None:
        """Take back a changelog entry of this operator's stores."""
        self.stores.restore(name, value)
        self._sequence = None

    def checkpoint(self, changelog: ChangelogChanges) -> None:
        """Write what changed since the last checkpoint to the batch's changelog changes."""
        self.stores.checkpoint(changelog)

    def _next_sequence(self) -> int:
        if self._sequence is None:
            self._sequence = int(self.stores[SEQUENCE].get("next", 0))
        n = self._sequence
        self._sequence = n + 1
        return n

    def reserve_sequences(self, n: int) -> int:
        """The first of `n` arrival numbers taken in a row (ops/topn_batch.py numbers a
        batch's rows by their place in it)."""
        first = self._next_sequence()
        self._sequence = first + n
        return first

    def ranks(self) -> KindStore:
        """Each partition's kept entries: `(ORDER BY values, arrival number, row)` in rank
        order."""
        return self.stores[RANKS]

    # -- running ----------------------------------------------------------------------------

    def process(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> None:
        """Rank a batch's rows into their partitions; the changed ranks go to the sink."""
        plan, ranking = self.plan, self.ranking
        ctx = EvalContext()
        deleted = np.asarray(tombstones, bool)
        table = ranking.table_key is not None
        if plan.where is not None:
            mask = np.asarray(pc.fill_null(plan.where(frame, ctx), False), bool)
            # a stream's row that fails it is dropped; a table's row leaves the ranks
            deleted = deleted | ~mask
        if not table and deleted.any():
            keep = pa.array(~deleted)
            frame = frame.filter(keep)
            deleted = deleted[~deleted]
        if frame.num_rows == 0:
            context.report(ctx, frame, plan.label)
            return
        if self.batched:
            rank_stream_batch(self, frame, ctx, context)
            self.stores[SEQUENCE].put("next", self._sequence)
            return
        partitions, sorts, rows = ranked_values(plan, self.computed, frame, ctx)
        stamps = frame.column(field_name(plan.label, "ROWTIME")).to_pylist()
        keys = (
            list(zip(*[c(frame, ctx).to_pylist() for c in ranking.table_key], strict=True))
            if ranking.table_key is not None
            else None
        )
        context.report(ctx, frame, plan.label)
        times: dict[Any, int] = {}
        changed: list[tuple[Any, int, Any]] = []  # (partition, rank, row or None)
        if keys is None:
            first = self._rank_stream(partitions, sorts, rows, stamps, times)
            ranks = self.stores[RANKS]
            for p, at in first.items():
                new = ranks[p]
                changed += [(p, r + 1, new[r][2]) for r in range(at, len(new))]
        else:
            before: dict[Any, list[Any]] = {}
            self._rank_table(partitions, sorts, rows, stamps, keys, deleted, before, times)
            if ranking.function != "ROW_NUMBER":
                self._emit_ties(self._compared_ties(before), times, context)
                changed = []
            else:
                changed = self._compared(before)
        if self.dropped:
            self._report_dropped(context)
        if self._sequence is not None:
            self.stores[SEQUENCE].put("next", self._sequence)
        if changed:
            self.emit_changes(changed, times, context)

    def _rank_stream(
        self,
        partitions: list[Any],
        sorts: list[Any],
        rows: list[Any],
        stamps: list[Any],
        times: dict[Any, int],
    ) -> dict[Any, int]:
        """A stream's rows: each partition keeps its best N only. Returns, per partition
        touched, the first rank index a row entered at: every rank from there down now holds
        another row (a stream's rows only push the rows below them down)."""
        store = self.stores[RANKS]
        n = self.limit
        keep_last = self.ranking.keep_last
        first: dict[Any, int] = {}
        for p, s, row, ts in zip(partitions, sorts, rows, stamps, strict=True):
            entries = store.get(p)
            if entries is None:
                entries = []
            elif len(entries) >= n and (entries[-1][0] < s if keep_last else entries[-1][0] <= s):
                continue  # ranks below the N-th (a tie goes to the row that came first)
            seq = self._next_sequence()
            # entries compare by their ORDER BY values, then their arrival (unique): never
            # by the row itself; keep-last deduplication puts a tie before the kept rows
            at = (
                bisect.bisect_left(entries, (s,))
                if keep_last
                else bisect.bisect_right(entries, (s, seq))
            )
            entries.insert(at, (s, seq, row))
            if len(entries) > n:
                entries.pop()
            if at < first.get(p, n):
                first[p] = at
            store.put(p, entries)
            times[p] = ts
        return first

    def _rank_table(
        self,
        partitions: list[Any],
        sorts: list[Any],
        rows: list[Any],
        stamps: list[Any],
        keys: list[Any],
        deleted: np.ndarray,
        before: dict[Any, list[Any]],
        times: dict[Any, int],
    ) -> None:
        """A table's changes: each partition keeps all its current rows, so that a row taken
        out of the top N (updated or deleted) lets the next one in."""
        store, where = self.stores[RANKS], self.stores[ROWS]
        n = self.limit
        # RANK and DENSE_RANK keep every row tied within the bound: the whole partition before
        ties = None if self.ranking.function == "ROW_NUMBER" else True
        for i, (p, s, row, ts, key) in enumerate(
            zip(partitions, sorts, rows, stamps, keys, strict=True)
        ):
            old = where.get(key)
            if old is not None:  # the key's previous row leaves its partition
                old_p, seq = old
                entries = store.get(old_p, [])
                if old_p not in before:
                    before[old_p] = entries[:n] if ties is None else list(entries)
                entries = [e for e in entries if e[1] != seq]
                if entries:
                    store.put(old_p, entries)
                else:
                    store.delete(old_p)
                times[old_p] = ts
                where.delete(key)
            if deleted[i]:
                continue
            entries = store.get(p, [])
            if p not in before:
                before[p] = entries[:n] if ties is None else list(entries)
            seq = self._next_sequence()
            bisect.insort(entries, (s, seq, row))
            if len(entries) > self.max_rows:
                # past the bound the worst row is let go (so a later delete above it may leave
                # a rank empty that it would have filled): counted, and logged per batch
                # (its key's entry in ROWS stays: a later change of it finds no row to take out)
                worst = entries.pop()
                self.dropped += 1
                if worst[1] == seq:
                    store.put(p, entries)
                    continue
            store.put(p, entries)
            where.put(key, (p, seq))
            times[p] = ts

    def _compared(self, before: dict[Any, list[Any]]) -> list[tuple[Any, int, Any]]:
        """Each touched partition's ranks compared with what they were: the changes."""
        store = self.stores[RANKS]
        n = self.limit
        changed: list[tuple[Any, int, Any]] = []  # (partition, rank, row or None)
        for p, old in before.items():
            new = store.get(p, [])[:n]
            for r in range(max(len(old), len(new))):
                if r >= len(new):
                    changed.append((p, r + 1, None))
                elif r >= len(old) or old[r][1] != new[r][1]:
                    changed.append((p, r + 1, new[r][2]))
        return changed

    def _report_dropped(self, context: OperatorContext) -> None:
        item = context.item
        context.out.errors.append(
            {
                "type": "RECORD_PROCESSING_ERROR",
                "query": context.query_id,
                "message": f"Top-N over a table: {self.dropped} row(s) ranked below the "
                f"{self.max_rows}-th of a partition were let go ({TABLE_ROWS_PROPERTY}); "
                "a rank emptied by later deletes may stay empty",
                "topic": item.partition.topic,
                "partition": item.partition.partition,
            }
        )
        self.dropped = 0

    def _ranked(self, entries: list[Any]) -> dict[Any, tuple[int, Any]]:
        """RANK or DENSE_RANK: each row ranked within the bound, by its arrival number (a
        table's row: one number while it stays) -> (rank, row)."""
        dense = self.ranking.function == "DENSE_RANK"
        out: dict[Any, tuple[int, Any]] = {}
        rank, distinct, previous = 0, 0, object()
        for at, (s, seq, row) in enumerate(entries):
            if s != previous:
                distinct += 1
                rank = distinct if dense else at + 1
                previous = s
            if rank > self.limit:
                break
            out[seq] = (rank, row)
        return out

    def _compared_ties(self, before: dict[Any, list[Any]]) -> list[tuple[Any, int, Any, bool]]:
        """RANK or DENSE_RANK: each touched partition's ranked rows compared with what they
        were: (partition, rank, row, a tombstone?) for each row that entered, moved or left."""
        store = self.stores[RANKS]
        changed: list[tuple[Any, int, Any, bool]] = []
        for p, old_entries in before.items():
            old, new = self._ranked(old_entries), self._ranked(store.get(p, []))
            changed += [(p, r, row, True) for seq, (r, row) in old.items() if seq not in new]
            changed += [
                (p, r, row, False) for seq, (r, row) in new.items() if old.get(seq) != (r, row)
            ]
        # a row updated in place leaves under its old arrival number and enters under a new
        # one: its key is written once, as the upsert
        at = [self.computed.index(i) for i in self.key_at if i in self.computed]
        upserted = {tuple(row[i] for i in at) for _, _, row, gone in changed if not gone}
        return [c for c in changed if not c[3] or tuple(c[2][i] for i in at) not in upserted]

    def _emit_ties(
        self, changed: list[tuple[Any, int, Any, bool]], times: dict[Any, int], ctx: OperatorContext
    ) -> None:
        """Write RANK's changes: keyed by the partition and the input's key (in each row)."""
        if not changed:
            return
        outputs = self.plan.outputs
        columns = (
            list(zip(*[row for _, _, row, _ in changed], strict=True)) if self.computed else []
        )
        arrays: dict[int, pa.Array] = {
            i: pa.array(data, outputs[i].type.to_arrow())
            for i, data in zip(self.computed, columns, strict=True)
        }
        rank_at = self.ranking.rank_index
        if rank_at is not None:
            arrays[rank_at] = pa.array([r for _, r, _, _ in changed], pa.int64())
        self.emitter.emit(
            [arrays[i] for i in self.key_at],
            [arrays[i] for i in self.value_at],
            pa.array([times[p] for p, _, _, _ in changed], pa.int64()),
            np.array([g for _, _, _, g in changed], bool),
            ctx.out,
        )

    def emit_changes(
        self, changed: list[tuple[Any, int, Any]], times: dict[Any, int], ctx: OperatorContext
    ) -> None:
        """Write the changed ranks: upserts of their rows, tombstones of emptied ranks."""
        # each change as the computed columns' values (a tombstone: the key from the
        # partition, no values), then turned into columns in one go
        width = len(self.ranking.partition)
        blank = self._tombstone_template
        rows = [
            row
            if row is not None
            else tuple(None if at is None else ((p,) if width == 1 else p)[at] for at in blank)
            for p, _, row in changed
        ]
        arrays = output_arrays(self.plan, self.computed, rows, [r for _, r, _ in changed])
        keys = [arrays[i] for i in self.key_at]
        values = [arrays[i] for i in self.value_at]
        stamps = pa.array([times[p] for p, _, _ in changed], pa.int64())
        gone = np.array([row is None for _, _, row in changed], bool)
        self.emitter.emit(keys, values, stamps, gone, ctx.out)
