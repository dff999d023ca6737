"""The stream-stream join step, record by record.

Both sides are kept for the window (`WITHIN before, after` plus grace); a record joins every
record of the other side with its key inside the window, stamped with the later of the two
times. Without GRACE PERIOD an unmatched record of an outer side is sent at once, joined to
NULLs, and joined again when a match comes later (ksqlDB's old semantics, its "spurious"
results). With GRACE PERIOD (and in an interval join of time bounds, grace 0) ksqlDB's docs
say the grace "defines when the left/outer join result is emitted" and "events that arrive
after the grace period has passed are dropped as late records and not joined": an unmatched
outer record waits until its window and grace have passed (stream time past `ts + after +
grace`), is sent NULL-padded only if nothing joined it, and from then on joins nothing; one
that comes after that point is sent NULL-padded at once and joins nothing later either. So each
outer record comes out either joined or NULL-padded, never both. (ops/join_columnar.py runs
the common shape a whole batch at a time.)
"""

from __future__ import annotations

from bisect import insort
from typing import Any

from hispeed.ops.join_steps import LEGACY_GRACE_MS, Event, JoinStepRunner, kept_for_ms
from hispeed.plan.model import JoinStep


class StreamStreamJoin(JoinStepRunner):
    """Both sides kept per key for the window; outer rows wait for their window with GRACE."""

    def __init__(self, step: JoinStep, left_fields: list[str], right_fields: list[str]) -> None:
        super().__init__(step, left_fields, right_fields)
        self.grace = step.grace_ms if step.grace_ms is not None else LEGACY_GRACE_MS
        self.retention = kept_for_ms(step, self.grace)
        #: side (0 left, 1 right) -> key -> [(ts, seq, row)]
        self.buffers: list[dict[Any, list[tuple[int, int, dict[str, Any]]]]] = [{}, {}]
        #: unmatched rows of outer sides waiting for their window to close: (ts, side, seq)
        self.pending: dict[tuple[int, int, int], tuple[Any, dict[str, Any]]] = {}
        self.seq = 0
        self.outer = [step.kind in ("LEFT", "FULL"), step.kind in ("RIGHT", "FULL")]
        #: the newest record time seen on each side
        self.newest = [0, 0]

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        return self._side(0, events, keys, st)

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        return self._side(1, events, keys, st)

    def _side(self, side: int, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        step = self.step
        # the window around a record of this side, in the other side's times
        before, after = (
            (step.before_ms, step.after_ms) if side == 0 else (step.after_ms, step.before_ms)
        )
        out: list[Event] = []
        own, other = self.buffers[side], self.buffers[1 - side]
        for e, k in zip(events, keys, strict=True):
            t = e.ts
            st[0] = max(st[0], t)
            now = st[0]
            if k is None and not (step.pad_null_keys and self.outer[side]):
                continue  # a NULL key joins nothing (ksqlDB's WITHIN: the record is dropped)
            if t == now and self.pending:
                out += self._expire(now, e)
            if k is None:  # Flink's interval join: sent NULL-padded once its window closes
                out += self._unmatched(side, e, t, after, now)
                self.seq += 1
                self.newest[side] = max(self.newest[side], t)
                continue
            # a record is visible while it is within retention of its own side's newest time
            visible = self.newest[1 - side] - self.retention
            matched = False
            for ot, oseq, orow in other.get(k, ()):
                if ot < max(0, t - before) or ot > t + after or ot <= visible:
                    continue
                pair = (e.row, orow) if side == 0 else (orow, e.row)
                if step.residual is not None and not step.residual([self.joined(*pair)])[0]:
                    continue  # ON's other conditions fail: no match
                matched = True
                if self.pending.pop((ot, 1 - side, oseq), None) is not None:
                    self.dirty.add(("P", ot, 1 - side, oseq))
                out.append(self._out(self.joined(*pair), max(t, ot), k, e))
            if not matched and self.outer[side]:
                if step.grace_ms is None or t + after + self.grace < now:
                    alone = self.joined(e.row, None) if side == 0 else self.joined(None, e.row)
                    out.append(self._out(alone, t, k, e))
                    if step.grace_ms is not None:
                        # its window and grace have passed: sent NULL-padded, it joins
                        # nothing that comes later (no match after its NULL-padded row)
                        self.seq += 1
                        self.newest[side] = max(self.newest[side], t)
                        continue
                else:
                    self.pending[(t, side, self.seq + 1)] = (k, e.row)
                    self.dirty.add(("P", t, side, self.seq + 1))
            self.seq += 1
            # kept in time order (then arrival order): matches come out in that order
            insort(own.setdefault(k, []), (t, self.seq, e.row), key=_time_order)
            self.newest[side] = max(self.newest[side], t)
            self.dirty.add((side, k))
        # expired records are already invisible; forgetting them is memory upkeep, per batch
        self._evict()
        return out

    def _unmatched(self, side: int, e: Event, t: int, after: int, now: int) -> list[Event]:
        """A record of an outer side with a NULL key, which nothing joins: sent NULL-padded
        at once if its window has closed, else when it closes (never kept to be joined)."""
        if t + after + self.grace < now:
            alone = self.joined(e.row, None) if side == 0 else self.joined(None, e.row)
            return [self._out(alone, t, None, e)]
        self.pending[(t, side, self.seq + 1)] = (None, e.row)
        self.dirty.add(("P", t, side, self.seq + 1))
        return []

    def _expire(self, now: int, trigger: Event) -> list[Event]:
        """Send the waiting outer rows whose window has closed, oldest first."""
        out = []
        step = self.step
        for ts, side, seq in sorted(self.pending):
            look = step.after_ms if side == 0 else step.before_ms
            if ts + look + self.grace >= now:
                continue
            k, row = self.pending.pop((ts, side, seq))
            self.dirty.add(("P", ts, side, seq))
            pair = (row, None) if side == 0 else (None, row)
            out.append(self._out(self.joined(*pair), ts, k, trigger))
            self._forget(side, k, ts, seq)
        return out

    def _forget(self, side: int, key: Any, ts: int, seq: int) -> None:
        """Take a record sent NULL-padded out of what the other side's records join: a late
        record of the other side must not join it after its NULL-padded row went out."""
        kept = self.buffers[side].get(key)
        if not kept:
            return
        left = [r for r in kept if (r[0], r[1]) != (ts, seq)]
        if len(left) == len(kept):
            return
        if left:
            self.buffers[side][key] = left
        else:
            del self.buffers[side][key]
        self.dirty.add((side, key))

    def _evict(self) -> None:
        for side in (0, 1):
            horizon = self.newest[side] - self.retention + 1  # what lookups no longer see
            buf = self.buffers[side]
            for k in [k for k, rows in buf.items() if rows and rows[0][0] < horizon]:
                kept = [r for r in buf[k] if r[0] >= horizon]
                if kept:
                    buf[k] = kept
                else:
                    del buf[k]
                self.dirty.add((side, k))

    @staticmethod
    def _out(row: dict[str, Any], ts: int, key: Any, e: Event) -> Event:
        return Event(row, ts, key, False, e.partition, e.offset, e.headers)

    def state(self) -> dict[Any, Any]:
        changed: dict[Any, Any] = {}
        for d in self.dirty:
            if d[0] == "P":
                changed[d] = self.pending.get(d[1:])
            else:
                changed[d] = self.buffers[d[0]].get(d[1])
        changed[("seq",)] = (self.seq, self.newest)
        self.dirty.clear()
        return changed

    def restore(self, name: Any, value: Any) -> None:
        if name == ("seq",):
            self.seq, self.newest = value
        elif name[0] == "P":
            self.pending[name[1:]] = value
        else:
            self.buffers[name[0]][name[1]] = value


def _time_order(entry: tuple[int, int, Any]) -> tuple[int, int]:
    return entry[0], entry[1]
