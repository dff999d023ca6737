"""GROUP BY over a stream without a window, a whole batch per group at once: the path for
the aggregate calls the vectorized path has no kernel for (DISTINCT, FILTER, MAX of text).

The reference path adds a batch's records one by one and keeps each group's last change
(when every record's change is not asked for); this path sorts the batch's records by group
(stably, so each group keeps its records' order), hands each call all of a group's values at
once (`batch_adder`: Arrow and numpy over the batch, a few operations per group) and makes the same
last change per group, in the order of the groups' last records, as `_coalesce` leaves them.
"""

from __future__ import annotations

import collections
import operator
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.aggregate_modifiers import CountDistinct, Distinct, Filtered
from hispeed.functions.aggregates import NAN_KEY, Aggregate, Count, Max, Min, hashable

#: counts an iterable's items into a mapping, in C: what `Counter.update` calls after a
#: check of its argument that costs more than counting a group's few values
_count_into: Callable[[Any, Any], None] = getattr(
    collections, "_count_elements", lambda counter, values: counter.update(values)
)

#: the calls' logic this path adds a group's values at once for (exact types: a subclass
#: may add differently)
_BATCHED = (Count, Max, Min, CountDistinct, Distinct, Filtered)


def batched(logic: Aggregate) -> bool:
    """Whether `batch_adder` adds for this logic (else the reference path runs)."""
    if isinstance(logic, Filtered):
        return batched(logic.inner)
    return type(logic) in _BATCHED or (isinstance(logic, Max) and logic.undoable)


#: a call's adder for one batch: each group's state (in group order) -> its state after
#: the group's values (a multiset is updated in place and is its own new state)
Adder = Callable[[Sequence[Any]], Sequence[Any]]


def batch_adder(
    logic: Aggregate, columns: Sequence[pa.Array], starts: np.ndarray, lengths: np.ndarray
) -> Adder:
    """For one call and one batch (`columns`: its values, in group order; group `i` is rows
    `starts[i]` .. + `lengths[i]`): `add(states)`, every group's state after its values, as
    `logic.add` of each in turn would leave it. The per-batch work (the filter, counts per
    group) is done here at once, and `add` walks the groups in C (`map`): no Python
    statement per group."""
    mask = None
    if isinstance(logic, Filtered):
        mask = pc.fill_null(columns[0], False)
        columns, logic = columns[1:], logic.inner
    if type(logic) is Count:
        valid = columns[0].is_valid() if columns else None
        if mask is not None:
            valid = mask if valid is None else pc.and_(valid, mask)
        if valid is None:
            counts = lengths.tolist()
        else:
            flags = np.asarray(valid.to_numpy(zero_copy_only=False), np.int64)
            counts = np.add.reduceat(flags, starts).tolist() if len(flags) else []
        return lambda states: list(map(operator.add, states, counts))
    values = columns[0]
    if isinstance(logic, Distinct):
        return DistinctAdder(values, mask, starts)
    if mask is not None:  # a row the filter leaves out counts as a NULL: skipped
        values = pc.if_else(mask, values, pa.nulls(len(values), values.type))
    assert isinstance(logic, Min | Max)
    pick = min if logic.smallest else max
    # each group's least or greatest value at once (NULLs skipped); groups are numbered in
    # order, so Arrow's groups (in order of first appearance) are the runs' order
    runs = np.repeat(np.arange(len(starts)), lengths)
    how = "min" if logic.smallest else "max"
    table = pa.table({"g": runs, "v": values})
    best = table.group_by("g", use_threads=False).aggregate([("v", how)])
    bests = best.column(f"v_{how}").to_pylist()

    def extreme(state: Any, value: Any) -> Any:
        if value is None:
            return state
        return value if state is None else pick(state, value)

    return lambda states: list(map(extreme, states, bests))


class DistinctAdder:
    """A DISTINCT call's adder for one batch: each group's non-NULL values (those the filter
    lets in) as one list, counted into the group's multiset in C (a `map` over the groups);
    `added` and `sizes` tell the changelog what each group added."""

    def __init__(self, values: pa.Array, mask: pa.Array | None, starts: np.ndarray) -> None:
        valid = values.is_valid()
        if mask is not None:
            valid = pc.and_(valid, mask)
        kept = values.filter(valid)
        if pa.types.is_integer(kept.type):  # no NULL left: numpy's ints, made faster
            listed = kept.to_numpy().tolist()
        else:
            listed = kept.to_pylist()
        if pa.types.is_nested(values.type):
            listed = [hashable(v) for v in listed]
        elif pa.types.is_floating(kept.type) and pc.any(pc.is_nan(kept)).as_py():
            # NaN equals NaN in a DISTINCT set (functions/aggregates.py, distinct_key)
            listed = [NAN_KEY if v != v else v for v in listed]
        flags = np.asarray(valid.to_numpy(zero_copy_only=False), np.int64)
        counts = np.add.reduceat(flags, starts) if len(flags) else np.zeros(0, np.int64)
        ends = np.cumsum(counts)
        #: how many values each group added (each occurrence once)
        self.sizes: np.ndarray = counts
        #: each group's values (an empty list for a group that added none)
        self.added: list[list[Any]] = list(
            map(listed.__getitem__, map(slice, (ends - counts).tolist(), ends.tolist()))
        )

    def __call__(self, states: Sequence[Counter[Any]]) -> Sequence[Counter[Any]]:
        collections.deque(map(_count_into, states, self.added), maxlen=0)
        return states


#: a bound on the combined group codes: their products stay within int64
_CODE_LIMIT = 2**62


def group_runs(
    groups: list[pa.Array], keep: np.ndarray
) -> tuple[np.ndarray, list[tuple[Any, ...]], np.ndarray]:
    """The rows to aggregate (`keep`, and no NULL in their group) ordered by group, stably;
    each group's key (hashable values) and where its run starts in that order."""
    n = len(keep)
    codes = np.zeros(n, np.int64)
    bound = 1  # codes are below this
    dictionaries: list[list[Any]] = []
    indices_of: list[np.ndarray] = []
    for g in groups:
        encoded = pc.dictionary_encode(g.combine_chunks() if isinstance(g, pa.ChunkedArray) else g)
        indices = encoded.indices
        keep = keep & np.asarray(indices.is_valid().to_numpy(zero_copy_only=False), bool)
        size = max(len(encoded.dictionary), 1)
        idx = np.asarray(pc.fill_null(indices, 0).to_numpy(zero_copy_only=False), np.int64)
        if bound * size >= _CODE_LIMIT:
            # several wide columns: renumber the codes so far densely (same order) first
            uniques, inverse = np.unique(codes, return_inverse=True)
            codes, bound = inverse.astype(np.int64).reshape(-1), len(uniques)
        codes = codes * size + idx
        bound *= size
        dictionaries.append([hashable(v) for v in encoded.dictionary.to_pylist()])
        indices_of.append(idx)
    rows = np.nonzero(keep)[0]
    order = rows[np.argsort(codes[rows], kind="stable")]
    sorted_codes = codes[order]
    starts = (
        np.concatenate(([0], np.nonzero(np.diff(sorted_codes))[0] + 1))
        if len(order)
        else np.zeros(0, np.int64)
    )
    # each group's key from its first row, a column at a time
    first = order[starts]
    parts = [
        list(map(d.__getitem__, idx[first].tolist()))
        for d, idx in zip(dictionaries, indices_of, strict=True)
    ]
    keys: list[tuple[Any, ...]] = list(zip(*parts, strict=True)) if parts else [()] * len(starts)
    return order, keys, starts


def last_rows(order: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Each group's last record (its row of the batch), of `group_runs`' order and starts."""
    if not len(order):
        return np.zeros(0, np.int64)
    last: np.ndarray = order[np.append(starts[1:], len(order)) - 1]
    return last
