"""The stream-table join step: a stream record joins the table's current row for its key;
table changes update the state and send nothing."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.ops.join_steps import Event, JoinStepRunner
from hispeed.plan.model import JoinStep


class StreamTableJoin(JoinStepRunner):
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

    def has_snapshot(self) -> bool:
        """Whether the table's columns are built (no change since)."""
        return self._snapshot is not None

    def rows_for(
        self, keys: list[Any], types: dict[str, pa.DataType]
    ) -> tuple[np.ndarray, list[pa.Array]]:
        """The table's rows for `keys`, as `snapshot` gives them (a slot per key: -2 for a
        null key, -1 for none, else its row of the columns) but with one row per key: for
        a few keys, cheaper than building the whole table's columns."""
        rows = [None if k is None else self.table.get(k) for k in keys]
        slots = np.fromiter(
            (
                -2 if k is None else (-1 if r is None else i)
                for i, (k, r) in enumerate(zip(keys, rows, strict=True))
            ),
            np.int64,
            count=len(keys),
        )
        columns = [
            pa.array([None if r is None else r.get(f) for r in rows], types[f])
            for f in self.right_fields
        ]
        return slots, columns

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out = []
        inner = self.step.kind == "INNER"
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            if k is None:
                continue
            row = self.table.get(k)
            residual = self.step.residual
            if (
                row is not None
                and residual is not None
                and not residual([self.joined(e.row, row)])[0]
            ):
                row = None  # ON's other conditions fail: no match
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
