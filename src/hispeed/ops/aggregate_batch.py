"""GROUP BY over a stream without a window, a whole batch per group at once: the path for
the aggregate calls the vectorized path has no kernel for (DISTINCT, FILTER, MAX of text).

The reference path adds a batch's records one by one and keeps each group's last change
(when every record's change is not asked for); this path sorts the batch's records by group
(stably, so each group keeps its records' order), hands each call all of a group's values at
once (`add_values`: C-level loops over Python lists, no call per record) and makes the same
last change per group, in the order of the groups' last records, as `_coalesce` leaves them.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.aggregate_modifiers import CountDistinct, Distinct, Filtered
from hispeed.functions.aggregates import Aggregate, Count, Max, Min, hashable
from hispeed.ops.changes import Change

#: the calls' logic this path adds a group's values at once for (exact types: a subclass
#: may add differently)
_BATCHED = (Count, Max, Min, CountDistinct, Distinct, Filtered)


def batched(logic: Aggregate) -> bool:
    """Whether `add_values` adds for this logic (else the reference path runs)."""
    if isinstance(logic, Filtered):
        return batched(logic.inner)
    return type(logic) in _BATCHED or (isinstance(logic, Max) and logic.undoable)


def add_values(logic: Aggregate, state: Any, columns: Sequence[list[Any]], rows: int) -> Any:
    """`logic.add` of each of `rows` rows of `columns` (one list per value argument) in turn."""
    if isinstance(logic, Filtered):
        passed = [k is True for k in columns[0]]
        rest = [list(itertools.compress(c, passed)) for c in columns[1:]]
        return add_values(logic.inner, state, rest, sum(passed))
    if isinstance(logic, Distinct):
        values = columns[0]
        counter: Counter[Any] = state
        if values and isinstance(values[0], list | dict):
            counter.update(hashable(v) for v in values if v is not None)
        else:
            counter.update(values)
            counter.pop(None, None)
        return state
    if type(logic) is Count:
        if not columns:  # COUNT(*): the rows
            return state + rows
        return state + len(columns[0]) - columns[0].count(None)
    assert isinstance(logic, Min | Max)
    present = [v for v in columns[0] if v is not None]
    if not present:
        return state
    best = min(present) if logic.smallest else max(present)
    if state is None:
        return best
    return min(state, best) if logic.smallest else max(state, best)


def group_runs(
    groups: list[pa.Array], keep: np.ndarray
) -> tuple[np.ndarray, list[tuple[Any, ...]], np.ndarray]:
    """The rows to aggregate (`keep`, and no NULL in their group) ordered by group, stably;
    each group's key (hashable values) and where its run starts in that order."""
    n = len(keep)
    codes = np.zeros(n, np.int64)
    dictionaries: list[list[Any]] = []
    for g in groups:
        encoded = pc.dictionary_encode(g.combine_chunks() if isinstance(g, pa.ChunkedArray) else g)
        indices = encoded.indices
        keep = keep & np.asarray(indices.is_valid().to_numpy(zero_copy_only=False), bool)
        size = len(encoded.dictionary)
        idx = np.asarray(pc.fill_null(indices, 0).to_numpy(zero_copy_only=False), np.int64)
        codes = codes * max(size, 1) + idx
        dictionaries.append([hashable(v) for v in encoded.dictionary.to_pylist()])
    rows = np.nonzero(keep)[0]
    order = rows[np.argsort(codes[rows], kind="stable")]
    sorted_codes = codes[order]
    starts = (
        np.concatenate(([0], np.nonzero(np.diff(sorted_codes))[0] + 1))
        if len(order)
        else np.zeros(0, np.int64)
    )
    keys: list[tuple[Any, ...]] = []
    sizes = [len(d) for d in dictionaries]
    for code in sorted_codes[starts].tolist():
        parts = []
        for size in reversed(sizes):
            code, i = divmod(code, max(size, 1))
            parts.append(i)
        parts.reverse()
        keys.append(tuple(d[i] for d, i in zip(dictionaries, parts, strict=True)))
    return order, keys, starts


def changes_by_group(
    order: np.ndarray,
    keys: list[tuple[Any, ...]],
    starts: np.ndarray,
    make: Any,
    headers: list[Any] | None,
) -> list[Change]:
    """Each group's change (`make(run_index, rows_slice)`), in the order of the groups' last
    records, with its last record's headers."""
    ends = np.append(starts[1:], len(order))
    last = order[ends - 1] if len(order) else np.zeros(0, np.int64)
    changes: list[tuple[int, Change]] = []
    for i, (start, end) in enumerate(zip(starts.tolist(), ends.tolist(), strict=True)):
        change = make(i, keys[i], start, end)
        at = int(last[i])
        change.headers = headers[at] if headers is not None else None
        changes.append((at, change))
    changes.sort(key=lambda c: c[0])
    return [c for _, c in changes]
