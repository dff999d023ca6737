"""The stream to windowed table join step (plan/windowed_joins.py, confluentinc/ksql#4736): a
stream record joins each row of its key whose window holds the record's time; the windowed
table's changes (a window's new aggregate, its deletion) update the state and send nothing.

Windows that ended more than `query.temporal.retention.ms` (a day by default) behind the
stream's time are let go: a stream record that much later than its window joins it no more,
and the state stays bounded by the windows of that span."""

from __future__ import annotations

from typing import Any

from hispeed.ops.join_steps import Event, JoinStepRunner
from hispeed.plan.model import JoinStep


class StreamWindowedTableJoin(JoinStepRunner):
    """State: each key's windows, (start, end) -> the window's current row."""

    def __init__(
        self,
        step: JoinStep,
        left_fields: list[str],
        right_fields: list[str],
        session: bool,
        retention_ms: int,
    ) -> None:
        super().__init__(step, left_fields, right_fields)
        self.retention_ms = retention_ms
        #: the stream time of the last sweep for windows past the retention
        self.swept = 0
        #: key -> {(window start, window end): row}
        self.windows: dict[Any, dict[tuple[int, int], dict[str, Any]]] = {}
        #: a session window's end is its last record's time, so it holds its end
        self.session = session

    def _holding(self, key: Any, ts: int) -> list[dict[str, Any]]:
        """The rows of `key`'s windows that hold time `ts`, earliest window first."""
        found = self.windows.get(key)
        if not found:
            return []
        return [
            row
            for (start, end), row in sorted(found.items(), key=lambda item: item[0])
            if start <= ts and (ts <= end if self.session else ts < end)
        ]

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out = []
        inner = self.step.kind == "INNER"
        residual = self.step.residual
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            if k is None:
                continue
            rows = self._holding(k, e.ts)
            if residual is not None and rows:
                joined = [self.joined(e.row, r) for r in rows]
                passed = residual(joined)
                rows = [r for r, ok in zip(rows, passed, strict=True) if ok]
            if not rows and not inner:
                rows_or_none: list[dict[str, Any] | None] = [None]
            else:
                rows_or_none = list(rows)
            for row in rows_or_none:
                joined_row = self.joined(e.row, row)
                out.append(Event(joined_row, e.ts, k, False, e.partition, e.offset, e.headers))
        self._expire(st[0])
        return out

    def _expire(self, now: int) -> None:
        """Let windows past the retention go; a sweep over all windows at most every eighth
        of the retention of stream time, so it costs little per record."""
        if now - self.swept < max(self.retention_ms // 8, 1):
            return
        self.swept = now
        horizon = now - self.retention_ms
        for key in list(self.windows):
            for start, end in [w for w in self.windows[key] if w[1] < horizon]:
                self._put((key, start, end), None)
                self.dirty.add((key, start, end))

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        # keys are (key, window start, window end), as the runtime gives a windowed side's
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            if k is None:
                continue
            self._put(k, None if e.deleted else e.row)
            self.dirty.add(k)
        self._expire(st[0])
        return []

    def _put(self, k: tuple[Any, int, int], row: dict[str, Any] | None) -> None:
        key, start, end = k
        windows = self.windows.setdefault(key, {})
        if row is None:
            windows.pop((start, end), None)
            if not windows:
                del self.windows[key]
        else:
            windows[(start, end)] = row

    def state(self) -> dict[Any, Any]:
        changed = {}
        for d in self.dirty:
            key, start, end = d
            changed[d] = self.windows.get(key, {}).get((start, end))
        self.dirty.clear()
        return changed

    def restore(self, name: Any, value: Any) -> None:
        self._put(name, value)
