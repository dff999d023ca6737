"""What an aggregation hands on: its changes to (group, window) keys.

The reference path (ops/aggregate.py) makes a list of `Change`, one object per change; the
vectorized paths (ops/vectorized.py, ops/vectorized_sessions.py) make `Changes`, the same as
columns. Both go through the select list and HAVING and on to the emit operator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.ops.aggregate_kernels import IntArray


@dataclass
class Change:
    """One change the reference path makes: a (group, window) key's new results."""

    group: tuple[Any, ...]
    window: tuple[int, int] | None
    results: list[Any] | None  # None: a deletion (a merged-away session)
    timestamp: int
    #: the headers of the record that made the change (a list of {"key", "value"}), or None
    headers: Any = None


@dataclass
class Changes:
    """A batch's changes, as columns: what the reference path's list of `Change` holds."""

    groups: list[pa.Array]  # one per GROUP BY expression
    results: list[pa.Array]  # one per state call (the row time's last)
    window: tuple[pa.Array, pa.Array] | None  # start and end, for a windowed query
    timestamps: pa.Array
    key_ids: IntArray  # each change's index in `keys`
    #: the (group, window) keys the changes are for, built when asked (HAVING needs them)
    make_keys: Callable[[], list[Any]] = field(repr=False)
    #: which changes delete their key (a merged-away session); None: none does
    deleted: np.ndarray | None = None
    #: each change's record: its row of the batch's frame (whose headers the change carries)
    rows: pa.Array | None = None

    def __len__(self) -> int:
        return len(self.timestamps)

    @cached_property
    def keys(self) -> list[Any]:
        return self.make_keys()

    def to_list(self) -> list[Change]:
        """The changes as the reference path's `Change` objects (for tests and debugging)."""
        groups = list(zip(*(g.to_pylist() for g in self.groups), strict=True))
        results = [r.to_pylist() for r in self.results]
        windows: list[tuple[int, int] | None] = (
            list(zip(self.window[0].to_pylist(), self.window[1].to_pylist(), strict=True))
            if self.window is not None
            else [None] * len(self)
        )
        deleted = self.deleted.tolist() if self.deleted is not None else [False] * len(self)
        return [
            Change(group, window, None if deleted[i] else [r[i] for r in results], ts)
            for i, (group, window, ts) in enumerate(
                zip(groups, windows, self.timestamps.to_pylist(), strict=True)
            )
        ]


Rows = tuple[list[pa.Array], list[pa.Array], pa.Array, np.ndarray, tuple[pa.Array, pa.Array] | None]


def only_rows(
    mask: np.ndarray,
    keys: list[pa.Array],
    values: list[pa.Array],
    stamps: pa.Array,
    deleted: np.ndarray,
    window: tuple[pa.Array, pa.Array] | None,
) -> Rows:
    """The output rows where `mask` is True: keys, values, timestamps, deletions, window."""
    selected = pa.array(mask)
    return (
        [pc.filter(k, selected) for k in keys],
        [pc.filter(v, selected) for v in values],
        pc.filter(stamps, selected),
        deleted[mask],
        None if window is None else (window[0].filter(selected), window[1].filter(selected)),
    )
