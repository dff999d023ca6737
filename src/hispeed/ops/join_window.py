"""The window join step (Flink's window join of two window table functions' rows; planned by
plan/window_join.py): each record is put in its TUMBLE window with its key (a copy in each of
its HOP or CUMULATE windows, the window's end in the copy), and when the watermark reaches
a window's end the window is joined and let go: every pair of its left and right rows of one
key (stamped with the later of their times), and for an outer join each row of an outer side
that nothing joined, with NULLs for the other side. Nothing of a window is output
before it closes, and nothing after: a record whose window has closed when it arrives is late
and dropped, as Flink drops one behind the watermark (the least of both inputs' partitions'
newest record times, ops/watermark.py, with no delay). A record with a NULL key joins
nothing; an outer side's is sent NULL-padded when its window closes, as Flink sends it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hispeed.ops.join_steps import Event, JoinStepRunner
from hispeed.ops.session_rows import merge_session
from hispeed.ops.watermark import LEVEL, NEVER, BatchClock, Idleness
from hispeed.ops.window import row_windows
from hispeed.plan.model import JoinStep

#: the state entry of the arrival counter and the stream time
_CLOCK = ("clock",)


class WindowJoin(JoinStepRunner):
    """Both sides' records kept by window and key until the window closes."""

    def __init__(
        self,
        step: JoinStep,
        left_fields: list[str],
        right_fields: list[str],
        topics: tuple[str, str] = ("", ""),
        idle: Idleness | None = None,
    ) -> None:
        """`topics`: each side's input topic (the watermark is over their partitions);
        `idle`: which of them hold it back (the task's)."""
        super().__init__(step, left_fields, right_fields)
        self.topics = topics
        self.idle = idle
        assert step.window is not None
        self.size, self.offset = step.window
        self.windows = step.row_windows
        #: HOP, CUMULATE: the field of each side's copies that holds their window's end
        self.end_field = [
            fields[-1] if self.windows is not None else "" for fields in (left_fields, right_fields)
        ]
        #: (side, window end, key) -> [(arrival, time, row)], in arrival order
        self.rows: dict[tuple[int, int, Any], list[tuple[int, int, dict[str, Any]]]] = {}
        #: window end -> the keys with rows in it
        self.open: dict[int, set[Any]] = {}
        self.seq = 0
        #: the newest record time of each input partition, (topic, partition), and the
        #: watermark under `LEVEL` (ops/watermark.py)
        self.times: dict[Any, int] = {}
        self.outer = [step.kind in ("LEFT", "FULL"), step.kind in ("RIGHT", "FULL")]
        #: SESSION: (side, key) -> its open sessions, [start, last row time, [(arrival,
        #: time, row)]], each side's sessions per join key (its PARTITION BY)
        self.session = self.windows is not None and self.windows.kind == "SESSION"
        self.sessions: dict[tuple[int, Any], list[list[Any]]] = {}
        self.start_field = [
            fields[-2] if self.session else "" for fields in (left_fields, right_fields)
        ]

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        return self._side(0, events, keys, st)

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        return self._side(1, events, keys, st)

    def _side(self, side: int, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        befores, level, newest = self._clock(side, events)
        if self.session:
            return self._session_side(side, events, keys, st, (befores, level, newest))
        ends = self._ends(events)
        for e, k, windows, before in zip(events, keys, ends, befores, strict=True):
            t = e.ts
            if k is None and not self.outer[side]:
                continue  # a NULL key joins nothing (an outer side's is sent NULL-padded)
            for end in windows:
                if end <= before:
                    continue  # this window has closed: late for it
                row = e.row
                if self.windows is not None:
                    row = {**row, self.end_field[side]: end}
                self.seq += 1
                self.rows.setdefault((side, end, k), []).append((self.seq, t, row))
                self.open.setdefault(end, set()).add(k)
                self.dirty.add((side, end, k))
        self.dirty.add(_CLOCK)
        if level is None:
            return []
        st[0] = max(st[0], newest)
        return self._close(level, events[-1]) if level > NEVER else []

    def _clock(self, side: int, events: list[Event]) -> tuple[list[int], int | None, int]:
        """The watermark before each record of a side's batch, the watermark after it (None:
        no records) and its newest record time."""
        topic = self.topics[side]
        clock: BatchClock | None = None
        now = NEVER
        befores = []
        for e in events:
            if clock is None or clock.partition != (topic, e.partition):
                if clock is not None:
                    clock.done(now)
                clock = BatchClock(self.times, (topic, e.partition), self.idle, watermark=True)
                now = clock.seed
            befores.append(now)
            now = clock.row(e.ts, now)
        if clock is None:
            return befores, None, NEVER
        return befores, clock.done(now), clock.newest

    def _session_side(
        self,
        side: int,
        events: list[Event],
        keys: list[Any],
        st: list[int],
        clocked: tuple[list[int], int | None, int],
    ) -> list[Event]:
        """SESSION's rows: each merges the open sessions of its side and key less than the
        gap from it (late, and dropped, if its session had ended when it came)."""
        assert self.windows is not None
        gap = self.windows.size_ms
        befores, level, newest = clocked
        for e, k, before in zip(events, keys, befores, strict=True):
            if k is None and not self.outer[side]:
                continue  # a NULL key joins nothing (an outer side's is sent NULL-padded)
            entry = (self.seq + 1, e.ts, e.row)
            merged = merge_session(self.sessions.get((side, k), []), e.ts, before, gap, entry)
            if merged is None:
                continue  # its session had closed: late
            self.seq += 1
            self.sessions[(side, k)] = merged
            self.dirty.add(("S", side, k))
        self.dirty.add(_CLOCK)
        if level is None:
            return []
        st[0] = max(st[0], newest)
        return self._close_sessions(level, events[-1]) if level > NEVER else []

    def _close_sessions(self, now: int, trigger: Event) -> list[Event]:
        """Join the sessions the watermark has reached the end of: a key's left and right
        sessions with the same bounds, in the order of their end."""
        assert self.windows is not None
        gap = self.windows.size_ms
        # (end, start, key) -> each side's rows, the session's bounds in their fields
        closing: dict[tuple[int, int, Any], tuple[list[Any], list[Any]]] = {}
        for (side, k), sessions in list(self.sessions.items()):
            ended = [s for s in sessions if s[1] + gap <= now]
            if not ended:
                continue
            rest = [s for s in sessions if s[1] + gap > now]
            if rest:
                self.sessions[(side, k)] = rest
            else:
                del self.sessions[(side, k)]
            self.dirty.add(("S", side, k))
            for start, last, rows in ended:
                bounds = {self.start_field[side]: start, self.end_field[side]: last + gap}
                held = closing.setdefault((last + gap, start, k), ([], []))[side]
                held += [(seq, t, {**row, **bounds}) for seq, t, row in rows]
        out: list[Event] = []
        for end, start, k in sorted(closing, key=lambda c: (c[0], c[1], repr(c[2]))):
            lefts, rights = closing[(end, start, k)]
            out += self._joined(lefts, rights, k, trigger)
        return out

    def _ends(self, events: list[Event]) -> list[list[int]]:
        """Each record's windows' ends: TUMBLE's one, HOP's or CUMULATE's several."""
        stamps = np.array([e.ts for e in events], np.int64)
        if self.windows is None:
            return [[int(end)] for end in stamps - (stamps - self.offset) % self.size + self.size]
        w = self.windows
        rows, ends = row_windows(stamps, w.kind, w.size_ms, w.step_ms, w.offset_ms)
        out: list[list[int]] = [[] for _ in events]
        for i, end in zip(rows.tolist(), ends.tolist(), strict=True):
            out[i].append(end)
        return out

    def _close(self, now: int, trigger: Event) -> list[Event]:
        """Join and let go of every window stream time has reached the end of."""
        out: list[Event] = []
        for end in sorted(e for e in self.open if e <= now):
            for k in sorted(self.open.pop(end), key=repr):
                lefts = self._take(0, end, k)
                rights = self._take(1, end, k)
                out += self._joined(lefts, rights, k, trigger)
        return out

    def _take(self, side: int, end: int, key: Any) -> list[tuple[int, int, dict[str, Any]]]:
        self.dirty.add((side, end, key))
        return self.rows.pop((side, end, key), [])

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
        for lseq, lt, lrow in lefts if key is not None else ():  # NULL keys join nothing
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
            if d == _CLOCK:
                changed[d] = (self.seq, dict(self.times))
            elif d[0] == "S":  # SESSION's open sessions of a side and key
                changed[d] = self.sessions.get((d[1], d[2]))
            else:
                changed[d] = self.rows.get(d)
        self.dirty.clear()
        return changed

    def restore(self, name: Any, value: Any) -> None:
        if name == _CLOCK:
            self.seq, times = value
            # a changelog written before the watermark held the stream time alone
            self.times = times if isinstance(times, dict) else {LEVEL: times or NEVER}
            return
        if name[0] == "S":  # SESSION's open sessions of a side and key
            if value is None:
                self.sessions.pop((name[1], name[2]), None)
            else:
                self.sessions[(name[1], name[2])] = value
            return
        if value is None:
            self.rows.pop(name, None)
            return
        self.rows[name] = value
        self.open.setdefault(name[1], set()).add(name[2])


def _event(row: dict[str, Any], ts: int, key: Any, trigger: Event) -> Event:
    return Event(row, ts, key, False, trigger.partition, trigger.offset, trigger.headers)
