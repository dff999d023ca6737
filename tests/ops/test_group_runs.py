"""`group_runs`, the by-group aggregation's grouping of a batch: every group and its key,
also when the group columns are so many and so wide that the product of their distinct
counts passes int64 (where one combined code per row would wrap)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hispeed.ops.aggregate_batch import group_runs


def _groups(columns: list[pa.Array]) -> dict[tuple[object, ...], list[int]]:
    order, keys, starts = group_runs(columns, np.ones(len(columns[0]), bool))
    ends = np.append(starts[1:], len(order))
    return {key: sorted(order[s:e].tolist()) for key, s, e in zip(keys, starts, ends, strict=True)}


def test_wide_group_columns_keep_every_group_and_its_key() -> None:
    n = 70_000  # four columns of 70,000 distinct values: 2.4e19 combinations, past int64
    rng = np.random.default_rng(3)
    columns = [pa.array(rng.permutation(n)) for _ in range(4)]
    columns[3] = pa.array([f"s{v}" for v in columns[3].to_pylist()])
    # rows 0 and 1 share every value: one group of two rows
    for c in range(4):
        values = columns[c].to_pylist()
        values[1] = values[0]
        columns[c] = pa.array(values)
    got = _groups(columns)
    rows = list(zip(*(c.to_pylist() for c in columns), strict=True))
    expected: dict[tuple[object, ...], list[int]] = {}
    for i, row in enumerate(rows):
        expected.setdefault(row, []).append(i)
    assert len(expected) == n - 1
    assert got == expected


def test_nulls_leave_their_rows_out_and_order_is_by_key_columns() -> None:
    a = pa.array(["x", None, "y", "x", "y"])
    b = pa.array([1, 2, None, 1, 3])
    order, keys, starts = group_runs([a, b], np.ones(5, bool))
    assert keys == [("x", 1), ("y", 3)]
    assert order.tolist() == [0, 3, 4]
    assert starts.tolist() == [0, 2]
