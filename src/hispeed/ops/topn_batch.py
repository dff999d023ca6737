"""Top-N over a stream, a batch at a time: what ops/topn.py's row path does row by row, in
column operations and one step per partition a batch changes.

A stream's rows are never taken back, so after a batch each partition holds the best N of
its kept rows and the batch's rows, ties going to the row that came first (the kept rows
before the batch's). The batch's rows and each touched partition's kept rows (as rows
arriving before the batch's) are sorted together by (partition, ORDER BY values, arrival);
the first N of each partition are its new ranks. A rank is written again when it holds
another row than before, as the row path writes it; the partitions' changes come in the
order in which the row path changes them: that of the first row that entered each (the
first row better than its N-th kept row, or its first row if it kept fewer than N).

Only Python's part is per partition changed (its kept entries, as the row path keeps them:
`(ORDER BY values, arrival number, row)`), so the state stays as the row path writes and
reads it. It runs where the ORDER BY columns are integers and the PARTITION BY columns are
integers, strings or booleans (Python's order and equality of them are the columns'); any
other ranking takes the row path.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from hispeed.functions.registry import EvalContext
from hispeed.ops.base import OperatorContext
from hispeed.ops.emit import SinkEncoder
from hispeed.plan.model import QueryPlan, RankingPlan, field_name
from hispeed.state.stores import KindStore

#: the ORDER BY and PARTITION BY types whose order and equality the batch path keeps
ORDER_TYPES = ("INTEGER", "BIGINT")
PARTITION_TYPES = ("INTEGER", "BIGINT", "STRING", "BOOLEAN")
#: where a row no partition has sorts (larger than any position)
_NONE = np.iinfo(np.int64).max


class Ranking(Protocol):
    """What the batch path uses of ops/topn.py's operator."""

    plan: QueryPlan
    ranking: RankingPlan
    emitter: SinkEncoder
    limit: int
    #: the outputs computed from the rows, and where the key's and the value's columns are
    computed: list[int]
    key_at: list[int]
    value_at: list[int]

    def ranks(self) -> KindStore:
        """Each partition's kept entries."""
        ...

    def reserve_sequences(self, n: int) -> int:
        """The first of `n` arrival numbers taken in a row."""
        ...

    def emit_changes(
        self, changed: list[tuple[Any, int, Any]], times: dict[Any, int], ctx: OperatorContext
    ) -> None:
        """Write changed ranks given as (partition, rank, row)."""
        ...


def batch_eligible(ranking: RankingPlan) -> bool:
    """Whether a ranking runs a batch at a time: a stream's ROW_NUMBER over integer ORDER BY
    columns and integer, string or boolean PARTITION BY columns."""
    return (
        ranking.table_key is None
        and ranking.function == "ROW_NUMBER"
        and all(c.type is not None and c.type.name in ORDER_TYPES for c, _ in ranking.order)
        and all(c.type is not None and c.type.name in PARTITION_TYPES for c in ranking.partition)
    )


def _sort_value(values: list[Any]) -> Any:
    """A row's ORDER BY values as the row path keeps them (ops/topn.py's `sort_column`): one
    column's value itself, several as a tuple; NULL as infinity (after every number)."""
    kept = [math.inf if v is None else v for v in values]
    return kept[0] if len(kept) == 1 else tuple(kept)


def _column_values(sort: Any, width: int) -> list[Any]:
    """A kept entry's ORDER BY values back as the columns' (infinity: NULL)."""
    values = [sort] if width == 1 else list(sort)
    return [None if isinstance(v, float) and math.isinf(v) else v for v in values]


def rank_stream_batch(
    op: Ranking, frame: pa.RecordBatch, ctx: EvalContext, context: OperatorContext
) -> None:
    """Rank a stream's batch into `op`'s partitions (see the module); the changed ranks go
    to its sink, its stores are updated as the row path updates them."""
    import polars as pl  # 0.2 s to import: only for queries with a ranking

    plan, ranking = op.plan, op.ranking
    n = frame.num_rows
    # every column evaluated over the whole batch, as the row path does (a row's errors are
    # reported whether or not it enters the ranks)
    parts = [c(frame, ctx) for c in ranking.partition]
    orders = [(c(frame, ctx), descending) for c, descending in ranking.order]
    outputs = plan.outputs
    computed = [outputs[i].expr(frame, ctx) for i in op.computed]
    stamps = np.asarray(
        frame.column(field_name(plan.label, "ROWTIME")).to_numpy(zero_copy_only=False), np.int64
    )
    context.report(ctx, frame, plan.label)

    width = len(orders)
    names = [f"k{j}" for j in range(width)]
    columns: dict[str, Any] = {f"p{j}": pl.from_arrow(a) for j, a in enumerate(parts)} or {
        "p0": pl.zeros(n, pl.Int8, eager=True)
    }
    for name, (values, descending) in zip(names, orders, strict=True):
        key = pl.Series(pl.from_arrow(values)).cast(pl.Int64)
        columns[name] = -key if descending else key
    columns["i"] = np.arange(n, dtype=np.int64)
    batch = pl.DataFrame(columns).with_columns(
        g=pl.col("i").min().over([c for c in columns if c.startswith("p")])
    )
    # each partition touched: numbered by its first row; its key as the row path keeps it
    firsts = batch.filter(pl.col("i") == pl.col("g"))["i"].to_numpy()
    taken = [a.take(pa.array(firsts)).to_pylist() for a in parts]
    keys: list[Any] = (
        taken[0]
        if len(taken) == 1
        else list(zip(*taken, strict=True))
        if taken
        else [()] * len(firsts)
    )
    store = op.ranks()
    limit = op.limit
    # the kept entries of the touched partitions, as rows before the batch's
    kept: list[Any] = []
    kept_g: list[int] = []
    kept_i: list[int] = []
    kept_at: list[int] = []
    kept_worst: list[bool] = []
    kept_sorts: list[list[Any]] = []
    for first, p in zip(firsts.tolist(), keys, strict=True):
        entries = store.get(p)
        if not entries:
            continue
        full = len(entries) >= limit
        last = len(entries) - 1
        for at, entry in enumerate(entries):
            kept.append(entry)
            kept_g.append(first)
            kept_i.append(at - len(entries))
            kept_at.append(at)
            kept_worst.append(full and at == last)
            kept_sorts.append(_column_values(entry[0], width))
    rows = batch.select("g", *names, "i").with_columns(
        o=pl.lit(-1, pl.Int64), at=pl.lit(-1, pl.Int64), worst=pl.lit(False)
    )
    if kept:
        sorts = list(zip(*kept_sorts, strict=True))
        old = pl.DataFrame(
            {
                "g": pl.Series(kept_g, dtype=pl.Int64),
                **{name: pl.Series(sorts[j], dtype=pl.Int64) for j, name in enumerate(names)},
                "i": pl.Series(kept_i, dtype=pl.Int64),
                "o": pl.Series(range(len(kept)), dtype=pl.Int64),
                "at": pl.Series(kept_at, dtype=pl.Int64),
                "worst": pl.Series(kept_worst, dtype=pl.Boolean),
            }
        )
        rows = pl.concat([rows, old], how="vertical")
    # ties in arrival order; for keep-last deduplication the later row first
    ranked = rows.sort(
        ["g", *names, "i"],
        descending=[False] * (1 + width) + [ranking.keep_last],
        nulls_last=True,
    )
    g = ranked["g"].to_numpy()
    i = ranked["i"].to_numpy()
    o = ranked["o"].to_numpy()
    was = ranked["at"].to_numpy()
    worst = ranked["worst"].to_numpy()
    m = len(g)
    starts_at = np.ones(m, bool)
    starts_at[1:] = g[1:] != g[:-1]
    starts = np.flatnonzero(starts_at)
    group = np.cumsum(starts_at) - 1
    pos = np.arange(m) - starts[group]
    new = i >= 0
    # a row enters if its partition kept fewer than N rows or it sorts before the N-th
    worst_pos = np.full(len(starts), _NONE, np.int64)
    worst_pos[group[worst]] = pos[worst]
    entering = new & (pos < worst_pos[group])
    first_in = np.full(len(starts), _NONE, np.int64)
    np.minimum.at(first_in, group[entering], i[entering])
    changed = first_in[group] < _NONE
    final = pos < limit
    emitted = final & changed & (new | (was != pos))
    # the ranks' new rows: the kept entries of each changed partition, in rank order
    stays = final & changed
    base = op.reserve_sequences(n)
    entered = i[stays & new]
    values = [a.take(pa.array(entered)).to_pylist() for a in computed]
    entered_rows = list(zip(*values, strict=True)) if values else [()] * len(entered)
    entered_sorts = [
        _sort_value(list(v))
        for v in zip(*[batch[name].gather(entered).to_list() for name in names], strict=True)
    ]
    new_entry = {
        int(at): (s, base + int(at), row)
        for at, s, row in zip(entered, entered_sorts, entered_rows, strict=True)
    }
    where = {int(f): k for f, k in zip(firsts.tolist(), keys, strict=True)}
    entries_of: dict[int, list[Any]] = {}
    for gi, ii, oi in zip(g[stays].tolist(), i[stays].tolist(), o[stays].tolist(), strict=True):
        entries_of.setdefault(gi, []).append(new_entry[ii] if ii >= 0 else kept[oi])
    for gi, entries in entries_of.items():
        store.put(where[gi], entries)
    # a partition's time: that of its last row that entered (the newest of its new ranks)
    newest = np.full(len(starts), -1, np.int64)
    np.maximum.at(newest, group[stays & new], i[stays & new])
    at_rows = np.flatnonzero(emitted)
    order = at_rows[np.lexsort((pos[at_rows], first_in[group[at_rows]]))]
    if not len(order):
        return
    when = stamps[newest[group[order]]]
    ranks = pos[order] + 1
    if new[order].all():
        _emit_batch_rows(op, computed, i[order], ranks, when, context)
        return
    changes = [
        (where[int(gi)], int(r), new_entry[int(ii)][2] if ii >= 0 else kept[int(oi)][2])
        for gi, ii, oi, r in zip(g[order], i[order], o[order], ranks, strict=True)
    ]
    times = {where[int(gi)]: int(t) for gi, t in zip(g[order], when, strict=True)}
    op.emit_changes(changes, times, context)


def _emit_batch_rows(
    op: Ranking,
    computed: list[pa.Array],
    rows: np.ndarray,
    ranks: np.ndarray,
    when: np.ndarray,
    context: OperatorContext,
) -> None:
    """Write changed ranks that all hold rows of the batch: taken from its columns."""
    outputs = op.plan.outputs
    at = pa.array(rows)
    arrays: dict[int, pa.Array] = {}
    for i, values in zip(op.computed, computed, strict=True):
        wanted = outputs[i].type.to_arrow()
        column = values.take(at)
        arrays[i] = column if column.type == wanted else column.cast(wanted)
    rank_at = op.ranking.rank_index
    if rank_at is not None:
        arrays[rank_at] = pa.array(ranks, pa.int64())
    op.emitter.emit(
        [arrays[i] for i in op.key_at],
        [arrays[i] for i in op.value_at],
        pa.array(when, pa.int64()),
        np.zeros(len(rows), bool),
        context.out,
    )
