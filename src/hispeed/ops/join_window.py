"""The window join step (Flink's window join of two window table functions' rows; planned by
plan/window_join.py): each record is put in its TUMBLE window with its key, and when stream
time reaches a window's end the window is joined and let go: every pair of its left and right
rows of one key (stamped with the later of their times), and for an outer join each row of an
outer side that nothing joined, with NULLs for the other side. Nothing of a window is output
before it closes, and nothing after: a record whose window has closed when it arrives is late
and dropped, as Flink drops one behind the watermark (hispeed's watermark is ksqlDB's stream
time, the newest record time read on either side, with no grace period). A record with a NULL
key joins nothing, as in ksqlDB's joins.
"""

from __future__ import annotations

from typing import Any

from hispeed.ops.join_steps import Event, JoinStepRunner
from hispeed.plan.model import JoinStep

#: the state entry of the arrival counter and the stream time
_CLOCK = ("clock",)


class WindowJoin(JoinStepRunner):
    """Both sides' records kept by window and key until the window closes."""

    def __init__(self, step: JoinStep, left_fields: list[str], right_fields: list[str]) -> None:
        super().__init__(step, left_fields, right_fields)
        assert step.window is not None
        self.size, self.offset = step.window
        #: (side, window start, key) -> [(arrival, time, row)], in arrival order
        self.rows: dict[tuple[int, int, Any], list[tuple[int, int, dict[str, Any]]]] = {}
        #: window start -> the keys with rows in it
        self.open: dict[int, set[Any]] = {}
        self.seq = 0
        #: the stream time (kept here too: the join's own is not in the changelog)
        self.now: int | None = None
        self.outer = [step.kind in ("LEFT", "FULL"), step.kind in ("RIGHT", "FULL")]

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        return self._side(0, events, keys, st)

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        return self._side(1, events, keys, st)

    def _side(self, side: int, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        size, offset = self.size, self.offset
        for e, k in zip(events, keys, strict=True):
            t = e.ts
            before = self.now
            if before is None or t > before:
                self.now = t
            start = t - (t - offset) % size
            if before is not None and start + size <= before:
                continue  # its window has closed: a late record
            if k is None:
                continue  # a NULL key joins nothing
            self.seq += 1
            self.rows.setdefault((side, start, k), []).append((self.seq, t, e.row))
            self.open.setdefault(start, set()).add(k)
            self.dirty.add((side, start, k))
        self.dirty.add(_CLOCK)
        if self.now is None or not events:
            return []
        st[0] = max(st[0], self.now)
        return self._close(self.now, events[-1])

    def _close(self, now: int, trigger: Event) -> list[Event]:
        """Join and let go of every window stream time has reached the end of."""
        out: list[Event] = []
        for start in sorted(s for s in self.open if s + self.size <= now):
            for k in sorted(self.open.pop(start), key=repr):
                lefts = self._take(0, start, k)
                rights = self._take(1, start, k)
                out += self._joined(lefts, rights, k, trigger)
        return out

    def _take(self, side: int, start: int, key: Any) -> list[tuple[int, int, dict[str, Any]]]:
        self.dirty.add((side, start, key))
        return self.rows.pop((side, start, key), [])

    def _joined(
        self,
        lefts: list[tuple[int, int, dict[str, Any]]],
        rights: list[tuple[int, int, dict[str, Any]]],
        key: Any,
        trigger: Event,
    ) -> list[Event]:
        """A window's rows of one key joined: its pairs, then the unmatched outer rows."""
        residual = self.step.residual
        out: list[Event] = []
        matched_left: set[int] = set()
        matched_right: set[int] = set()
        for lseq, lt, lrow in lefts:
            for rseq, rt, rrow in rights:
                row = self.joined(lrow, rrow)
                if residual is not None and not residual([row])[0]:
                    continue  # ON's other conditions fail: no match
                matched_left.add(lseq)
                matched_right.add(rseq)
                out.append(_event(row, max(lt, rt), key, trigger))
        if self.outer[0]:
            out += [
                _event(self.joined(row, None), t, key, trigger)
                for seq, t, row in lefts
                if seq not in matched_left
            ]
        if self.outer[1]:
            out += [
                _event(self.joined(None, row), t, key, trigger)
                for seq, t, row in rights
                if seq not in matched_right
            ]
        return out

    def state(self) -> dict[Any, Any]:
        changed: dict[Any, Any] = {}
        for d in self.dirty:
            changed[d] = (self.seq, self.now) if d == _CLOCK else self.rows.get(d)
        self.dirty.clear()
        return changed

    def restore(self, name: Any, value: Any) -> None:
        if name == _CLOCK:
            self.seq, self.now = value
            return
        if value is None:
            self.rows.pop(name, None)
            return
        self.rows[name] = value
        self.open.setdefault(name[1], set()).add(name[2])


def _event(row: dict[str, Any], ts: int, key: Any, trigger: Event) -> Event:
    return Event(row, ts, key, False, trigger.partition, trigger.offset, trigger.headers)
