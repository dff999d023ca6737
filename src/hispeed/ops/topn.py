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

Ties in the order go to the row that came first (as Flink's Top-N keeps them). The kept
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
from hispeed.ops.base import OperatorContext
from hispeed.ops.emit import SinkEncoder
from hispeed.plan.model import QueryPlan, field_name
from hispeed.state.stores import ChangelogChanges, PickledStores

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


def _sort_column(values: list[Any], descending: bool, numeric: bool) -> list[tuple[int, Any]]:
    """One ORDER BY column as sortable parts: nulls last either way (as DuckDB and Flink's
    default put them for ascending order)."""
    if not descending:
        return [(1, 0) if v is None else (0, v) for v in values]
    if numeric:
        return [(1, 0) if v is None else (0, -v) for v in values]
    return [(1, 0) if v is None else (0, _Descending(v)) for v in values]


class TopN:
    """Runs a plan's ranking over a query task's batches (see the module)."""

    def __init__(self, plan: QueryPlan, emitter: SinkEncoder) -> None:
        assert plan.ranking is not None
        self.plan = plan
        self.ranking = plan.ranking
        self.emitter = emitter
        self.limit = plan.ranking.limit
        self.stores = PickledStores([RANKS, ROWS, SEQUENCE])
        outputs = plan.outputs
        rank = plan.ranking.rank_index
        #: the outputs computed from the rows (all but the rank), in order
        self.computed = [i for i in range(len(outputs)) if i != rank]
        where = {id(o): i for i, o in enumerate(outputs)}
        self.key_at = [where[id(c)] for c in plan.key]
        self.value_at = [where[id(c)] for c in plan.value]

    # -- state ------------------------------------------------------------------------------

    def restore(self, name: Any, value: Any) -> None:
        """Take back a changelog entry of this operator's stores."""
        self.stores.restore(name, value)

    def checkpoint(self, changelog: ChangelogChanges) -> None:
        """Write what changed since the last checkpoint to the batch's changelog changes."""
        self.stores.checkpoint(changelog)

    def _next_sequence(self) -> int:
        store = self.stores[SEQUENCE]
        n: int = store.get("next", 0)
        store.put("next", n + 1)
        return n

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
        parts = [c(frame, ctx).to_pylist() for c in ranking.partition]
        partitions: list[Any] = (
            parts[0] if len(parts) == 1 else list(zip(*parts, strict=True)) if parts else [()]
        )
        if not parts:
            partitions = [()] * frame.num_rows
        columns = []
        for compiled, descending in ranking.order:
            numeric = compiled.type is not None and compiled.type.name in (
                "INTEGER",
                "BIGINT",
                "DOUBLE",
                "DECIMAL",
            )
            columns.append(_sort_column(compiled(frame, ctx).to_pylist(), descending, numeric))
        sorts = list(zip(*columns, strict=True))
        outputs = self.plan.outputs
        values = [outputs[i].expr(frame, ctx).to_pylist() for i in self.computed]
        rows = list(zip(*values, strict=True)) if values else [()] * frame.num_rows
        stamps = frame.column(field_name(plan.label, "ROWTIME")).to_pylist()
        keys = (
            list(zip(*[c(frame, ctx).to_pylist() for c in ranking.table_key], strict=True))
            if ranking.table_key is not None
            else None
        )
        context.report(ctx, frame, plan.label)
        before: dict[Any, list[Any]] = {}
        times: dict[Any, int] = {}
        if keys is None:
            self._rank_stream(partitions, sorts, rows, stamps, before, times)
        else:
            self._rank_table(partitions, sorts, rows, stamps, keys, deleted, before, times)
        self._emit(before, times, context)

    def _rank_stream(
        self,
        partitions: list[Any],
        sorts: list[Any],
        rows: list[Any],
        stamps: list[Any],
        before: dict[Any, list[Any]],
        times: dict[Any, int],
    ) -> None:
        """A stream's rows: each partition keeps its best N only."""
        store = self.stores[RANKS]
        n = self.limit
        for p, s, row, ts in zip(partitions, sorts, rows, stamps, strict=True):
            entries = store.get(p)
            if entries is None:
                entries = []
            elif len(entries) >= n and entries[-1][0] <= s:
                continue  # ranks below the N-th (a tie goes to the row that came first)
            if p not in before:
                before[p] = list(entries)
            entry = (s, self._next_sequence(), row)
            bisect.insort(entries, entry, key=_rank_of)
            if len(entries) > n:
                entries.pop()
            store.put(p, entries)
            times[p] = ts

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
        for i, (p, s, row, ts, key) in enumerate(
            zip(partitions, sorts, rows, stamps, keys, strict=True)
        ):
            old = where.get(key)
            if old is not None:  # the key's previous row leaves its partition
                old_p, seq = old
                entries = store.get(old_p, [])
                if old_p not in before:
                    before[old_p] = entries[:n]
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
                before[p] = entries[:n]
            seq = self._next_sequence()
            bisect.insort(entries, (s, seq, row), key=_rank_of)
            store.put(p, entries)
            where.put(key, (p, seq))
            times[p] = ts

    def _emit(
        self, before: dict[Any, list[Any]], times: dict[Any, int], ctx: OperatorContext
    ) -> None:
        """Compare each touched partition's ranks with what they were; emit the changes."""
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
        if not changed:
            return
        outputs = self.plan.outputs
        rank_at = self.ranking.rank_index
        width = len(self.ranking.partition)
        columns: dict[int, list[Any]] = {i: [] for i in range(len(outputs))}
        for p, rank, row in changed:
            if row is None:  # a tombstone: the key from the partition, no values
                parts = (p,) if width == 1 else tuple(p)
                for j, i in enumerate(k for k in self.key_at if k != rank_at):
                    columns[i].append(parts[j])
                for i in self.value_at:
                    columns[i].append(None)
            else:
                for i, v in zip(self.computed, row, strict=True):
                    columns[i].append(v)
            if rank_at is not None:
                columns[rank_at].append(rank)
        arrays = {
            i: pa.array(data, outputs[i].type.to_arrow()) for i, data in columns.items() if data
        }
        count = len(changed)
        empty = {i: pa.nulls(count, outputs[i].type.to_arrow()) for i in range(len(outputs))}
        keys = [arrays.get(i, empty[i]) for i in self.key_at]
        values = [arrays.get(i, empty[i]) for i in self.value_at]
        stamps = pa.array([times[p] for p, _, _ in changed], pa.int64())
        gone = np.array([row is None for _, _, row in changed], bool)
        self.emitter.emit(keys, values, stamps, gone, ctx.out)


def _rank_of(entry: tuple[Any, ...]) -> tuple[Any, int]:
    """An entry's place: its ORDER BY values, then its arrival (ties: the first first)."""
    return entry[0], entry[1]
