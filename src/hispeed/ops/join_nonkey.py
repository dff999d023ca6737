"""The table-table join on columns that are not the right table's key (ksqlDB's issue 9352).

`t1 JOIN t2 ON t1.a = t2.b`, where `t2.b` is not `t2`'s primary key, is many to many: a row
of either table joins every row of the other with the same value. Its result is keyed by the
pair of the rows' keys (the left input's key columns, then the right table's), the only key
under which each joined row has a place of its own: keyed by the left table's key alone (as
ksqlDB's foreign-key join is), the rows of one left row with two right rows would overwrite
each other, and the retraction of one would delete the other. A LEFT join's left row that
joins nothing is keyed by its key and NULLs for the right table's.

Each change retracts what it takes away and sends what it makes: a left row's change deletes
the pairs it no longer makes (its value moved, it was deleted) and sends the ones it makes
now; a right row's change does the same for the left rows of its old and new values; a LEFT
join's unmatched row goes when its first match comes and comes back when its last goes.

Both tables are kept, by key, with an index of each by join value. The rows of one table
with one join value are bounded (`query.join.nonkey.max.rows`): every change of a row on the
other side sends that many rows. A row past the bound is not joined (as if deleted) and the
processing log says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from hispeed.ops.base import rows_setting
from hispeed.ops.join_steps import Event, TablesStepRunner, ordered
from hispeed.plan.model import JoinStep

#: the property that bounds the rows of one table with one join value, and its default
MAX_ROWS_PROPERTY = "query.join.nonkey.max.rows"
DEFAULT_MAX_ROWS = 10_000

#: a kept row: its fields, its time and its join value
Entry = tuple[dict[str, Any], int, Any]


def max_rows_limit(properties: Mapping[str, Any]) -> int:
    """`query.join.nonkey.max.rows` from an engine's or query's properties."""
    return rows_setting(properties, MAX_ROWS_PROPERTY, DEFAULT_MAX_ROWS)


class NonKeyTableJoin(TablesStepRunner):
    """Both tables' rows by key, indexed by join value; every change sends its pairs."""

    def __init__(
        self,
        step: JoinStep,
        left_fields: list[str],
        right_fields: list[str],
        max_rows: int = DEFAULT_MAX_ROWS,
    ) -> None:
        super().__init__(step, left_fields, right_fields)
        assert step.pair_key is not None
        self.left_key_fields, self.right_key_fields = step.pair_key
        self.lefts: dict[Any, Entry] = {}
        self.rights: dict[Any, Entry] = {}
        #: join value -> the keys of the rows with it, each side
        self.left_index: dict[Any, set[Any]] = {}
        self.right_index: dict[Any, set[Any]] = {}
        self.keep_left = step.kind == "LEFT"
        self.max_rows = max_rows
        #: rows past `max_rows`, for the processing log: (message, partition, offset)
        self.refused: list[tuple[str, int, int]] = []

    # -- the pairs ---------------------------------------------------------------------------

    def _key(self, left: Entry, right: Entry | None) -> tuple[Any, ...]:
        """The result key of a pair (or of an unmatched left row): both rows' key columns."""
        lrow = left[0]
        parts = [lrow.get(f) for f in self.left_key_fields]
        if right is None:
            parts += [None] * len(self.right_key_fields)
        else:
            parts += [right[0].get(f) for f in self.right_key_fields]
        return tuple(parts)

    def _matching(self, left: Entry, rkeys: Iterable[Any]) -> list[Any]:
        """Those of `rkeys` whose rows match `left` (ON's other conditions, if any)."""
        found = [k for k in ordered(rkeys) if k in self.rights]
        residual = self.step.residual
        if residual is None or not found:
            return found
        passes = residual([self.joined(left[0], self.rights[k][0]) for k in found])
        return [k for k, ok in zip(found, passes, strict=True) if ok]

    def _pairs(self, left: Entry | None) -> list[tuple[Any, Entry, Entry | None]]:
        """What a left row gives: (result key, left, right) for each right row it matches,
        or for a LEFT join's row that matches none, itself alone."""
        if left is None:
            return []
        rkeys = self.right_index.get(left[2], ()) if left[2] is not None else ()
        out: list[tuple[Any, Entry, Entry | None]] = []
        for rkey in self._matching(left, rkeys):
            right = self.rights[rkey]
            out.append((self._key(left, right), left, right))
        if not out and self.keep_left:
            out.append((self._key(left, None), left, None))
        return out

    def _send(
        self, key: Any, left: Entry, right: Entry | None, trigger: Event, out: list[Event]
    ) -> None:
        ts = max(trigger.ts, left[1], right[1] if right is not None else 0)
        row = self.joined(left[0], right[0] if right is not None else None)
        where = (trigger.partition, trigger.offset, trigger.headers)
        out.append(Event(row, ts, key, False, *where))

    def _retract(self, key: tuple[Any, ...], trigger: Event, out: list[Event]) -> None:
        row = self.joined(None, None)
        for f, part in zip([*self.left_key_fields, *self.right_key_fields], key, strict=True):
            row[f] = part
        where = (trigger.partition, trigger.offset, trigger.headers)
        out.append(Event(row, trigger.ts, key, True, *where))

    # -- the state ---------------------------------------------------------------------------

    def _place(
        self, rows: dict[Any, Entry], index: dict[Any, set[Any]], key: Any, entry: Entry | None
    ) -> None:
        old = rows.pop(key, None)
        if old is not None and old[2] is not None:
            keys = index.get(old[2])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del index[old[2]]
        if entry is not None:
            rows[key] = entry
            if entry[2] is not None:
                index.setdefault(entry[2], set()).add(key)

    def _admitted(
        self, index: dict[Any, set[Any]], key: Any, value: Any, e: Event, side: str
    ) -> bool:
        """Whether a row may take its place under `value` (the bound on rows a value)."""
        keys = index.get(value) if value is not None else None
        if keys is None or key in keys or len(keys) < self.max_rows:
            return True
        self.refused.append(
            (
                f"a non-key join holds at most {self.max_rows} rows of one table with one "
                f"join value ({MAX_ROWS_PROPERTY}): the {side} row with key {key!r} and join "
                f"value {value!r} was not joined",
                e.partition,
                e.offset,
            )
        )
        return False

    # -- the two inputs ----------------------------------------------------------------------

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out: list[Event] = []
        for e, value in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            lkey = e.key
            if lkey is None:
                continue
            before = {k for k, _, _ in self._pairs(self.lefts.get(lkey))}
            entry: Entry | None = None
            if not e.deleted and self._admitted(self.left_index, lkey, value, e, "left"):
                entry = (e.row, e.ts, value)
            self._place(self.lefts, self.left_index, lkey, entry)
            self.dirty.add(("L", lkey))
            after = self._pairs(entry)
            kept = {k for k, _, _ in after}
            for key in ordered(before - kept):
                self._retract(key, e, out)
            for key, left, right in after:
                self._send(key, left, right, e, out)
        return out

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out: list[Event] = []
        for e, value in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            rkey = e.key
            if rkey is None:
                continue
            old = self.rights.get(rkey)
            entry: Entry | None = None
            if not e.deleted and self._admitted(self.right_index, rkey, value, e, "right"):
                entry = (e.row, e.ts, value)
            # the left rows of the old and the new value: their pairs with this row change
            lkeys: set[Any] = set()
            for x in (old, entry):
                if x is not None and x[2] is not None:
                    lkeys |= self.left_index.get(x[2], set())
            before = {lk: self._with(lk, rkey) for lk in lkeys}
            self._place(self.rights, self.right_index, rkey, entry)
            self.dirty.add(("R", rkey))
            for lkey in ordered(lkeys):
                left = self.lefts[lkey]
                now = self._with(lkey, rkey)
                for key in ordered(set(before[lkey]) - set(now)):
                    self._retract(key, e, out)
                for key, right in now.items():
                    if right is None and key in before[lkey]:
                        continue  # still unmatched: nothing of it changed
                    self._send(key, left, right, e, out)
        return out

    def _with(self, lkey: Any, rkey: Any) -> dict[Any, Entry | None]:
        """The rows of left row `lkey` that a change of right row `rkey` can touch: its pair
        with it, or (a LEFT join) the row alone when it matches nothing."""
        left = self.lefts[lkey]
        right = self.rights.get(rkey)
        if right is not None and right[2] == left[2] and self._matching(left, [rkey]):
            return {self._key(left, right): right}
        if self.keep_left and not self._matching(left, self.right_index.get(left[2], ())):
            return {self._key(left, None): None}
        return {}

    # -- changelog ---------------------------------------------------------------------------

    def restore(self, name: Any, value: Any) -> None:
        side, key = name
        if side == "L":
            self._place(self.lefts, self.left_index, key, value)
        else:
            self._place(self.rights, self.right_index, key, value)
