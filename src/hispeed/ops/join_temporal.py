"""The temporal (versioned) join step, `JOIN t FOR SYSTEM_TIME AS OF s.time ON s.k = t.id`:
each stream record joins the version of the table's row for its key that was valid at the
record's time (the latest version whose own time is not after it), not the row as it is now.

The table keeps every version of each key's row, in time order, a deletion being a version
with no row. So a stream record that comes late still joins the version of its time, and a
table change stamped earlier than versions already seen takes its place among them. A
version no stream record can choose any more is let go: one superseded before the stream's
time less `join.temporal.retention.ms` (plan/temporal.py), as Flink drops the versions
older than the watermark.
"""

from __future__ import annotations

import bisect
import datetime as dt
from typing import Any

from hispeed.ops.join_steps import Event, JoinStepRunner
from hispeed.plan.model import JoinStep


def _millis(value: Any) -> int | None:
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        return int(when.timestamp() * 1000)
    return None if value is None else int(value)


class VersionedTableJoin(JoinStepRunner):
    """Stream records join the table's version at their time; table changes add versions."""

    def __init__(
        self, step: JoinStep, left_fields: list[str], right_fields: list[str], retention_ms: int
    ) -> None:
        super().__init__(step, left_fields, right_fields)
        assert step.as_of is not None
        self.time_field = step.as_of
        self.retention_ms = retention_ms
        #: key -> (the versions' times ascending, their rows: None for a deletion)
        self.versions: dict[Any, tuple[list[int], list[dict[str, Any] | None]]] = {}

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out = []
        inner = self.step.kind == "INNER"
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            at = _millis(e.row.get(self.time_field))
            row = None
            if k is not None and at is not None and k in self.versions:
                times, rows = self.versions[k]
                i = bisect.bisect_right(times, at) - 1
                row = rows[i] if i >= 0 else None
            residual = self.step.residual
            if (
                row is not None
                and residual is not None
                and not residual([self.joined(e.row, row)])[0]
            ):
                row = None  # ON's other conditions fail: no match (plan/join_conditions.py)
            if row is None and inner:
                continue  # (a NULL key joins nothing: a LEFT join sends it NULL-padded, as Flink)
            joined = self.joined(e.row, row)
            out.append(Event(joined, e.ts, k, False, e.partition, e.offset, e.headers))
        return out

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        for e, k in zip(events, keys, strict=True):
            if k is None:
                continue
            times, rows = self.versions.setdefault(k, ([], []))
            i = bisect.bisect_right(times, e.ts)
            if i > 0 and times[i - 1] == e.ts:  # the same time again: the newer one wins
                rows[i - 1] = None if e.deleted else e.row
            else:
                times.insert(i, e.ts)
                rows.insert(i, None if e.deleted else e.row)
            self._prune(k, st[0])
            self.dirty.add(k)
        return []

    def _prune(self, key: Any, stream_time: int) -> None:
        """Let go of the versions superseded before the stream's time less the retention."""
        times, rows = self.versions[key]
        horizon = stream_time - self.retention_ms
        # the version valid at the horizon stays; those before it cannot be chosen
        keep = max(0, bisect.bisect_right(times, horizon) - 1)
        if keep:
            del times[:keep], rows[:keep]
        if len(rows) == 1 and rows[0] is None and times[0] <= horizon:
            del self.versions[key]

    def state(self) -> dict[Any, Any]:
        changed: dict[Any, Any] = {}
        for k in self.dirty:
            entry = self.versions.get(k)
            changed[k] = None if entry is None else [list(entry[0]), list(entry[1])]
        self.dirty.clear()
        return changed

    def restore(self, name: Any, value: Any) -> None:
        if value is None:
            self.versions.pop(name, None)
            return
        times, rows = value
        self.versions[name] = (list(times), list(rows))
