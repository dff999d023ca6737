"""The table-table join on columns that are not the right table's key (ksqlDB's issue 9352).

`t1 JOIN t2 ON t1.a = t2.b`, where `t2.b` is not `t2`'s primary key, is many to many: a row
of either table joins every row of the other with the same value. Its result is keyed by the
pair of the rows' keys (the left input's key columns, then the right table's), the only key
under which each joined row has a place of its own: keyed by the left table's key alone (as
ksqlDB's foreign-key join is), the rows of one left row with two right rows would overwrite
each other, and the retraction of one would delete the other. A LEFT (or FULL) join's left
row that joins nothing is keyed by its key and NULLs for the right table's; a RIGHT (or
FULL) join's right row that joins nothing by NULLs for the left key and its own key.

Each change retracts what it takes away and sends what it makes: a left row's change deletes
the pairs it no longer makes (its value moved, it was deleted) and sends the ones it makes
now; a right row's change does the same for the left rows of its old and new values. An
outer side's unmatched row goes when its first match comes and comes back when its last
goes: a change computes the result rows it can touch (the changed row's, and the unmatched
rows of the other side's rows it matched or matches) before and after, and sends the
difference.

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
#: result rows by key: the left and right rows of each (None: the side it lacks)
Rows = dict[tuple[Any, ...], tuple[Entry | None, Entry | None]]


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
        self.keep_left = step.kind in ("LEFT", "FULL")
        self.keep_right = step.kind in ("RIGHT", "FULL")
        self.max_rows = max_rows
        #: rows past `max_rows`, for the processing log: (message, partition, offset)
        self.refused: list[tuple[str, int, int]] = []

    # -- the rows a change touches -----------------------------------------------------------

    def _key(self, left: Entry | None, right: Entry | None) -> tuple[Any, ...]:
        """The result key of a pair, or of an unmatched row: both rows' key columns, NULLs
        for the side it lacks."""
        lrow = left[0] if left is not None else {}
        rrow = right[0] if right is not None else {}
        return (
            *(lrow.get(f) for f in self.left_key_fields),
            *(rrow.get(f) for f in self.right_key_fields),
        )

    def _matching(self, left: Entry, rkeys: Iterable[Any]) -> list[Any]:
        """Those of `rkeys` whose rows match `left` (ON's other conditions, if any)."""
        found = [k for k in ordered(rkeys) if k in self.rights]
        residual = self.step.residual
        if residual is None or not found:
            return found
        passes = residual([self.joined(left[0], self.rights[k][0]) for k in found])
        return [k for k, ok in zip(found, passes, strict=True) if ok]

    def _any(self, left: Entry, rkeys: set[Any]) -> bool:
        """Whether any of right rows `rkeys` (the rows of its value) matches `left`."""
        return bool(rkeys) if self.step.residual is None else bool(self._matching(left, rkeys))

    def _matched(self, right: Entry) -> bool:
        """Whether any left row matches `right` (an outer right side's row is unmatched
        when none does)."""
        lkeys = self.left_index.get(right[2], ()) if right[2] is not None else ()
        residual = self.step.residual
        if residual is None or not lkeys:
            return bool(lkeys)
        passes = residual([self.joined(self.lefts[k][0], right[0]) for k in lkeys])
        return any(passes)

    def _of_left(self, lkey: Any, rkeys: Iterable[Any] | None) -> Rows:
        """The rows of left row `lkey`: its pairs (with those of `rkeys` only, when given),
        or, a LEFT or FULL join's row that matches nothing, itself alone."""
        left = self.lefts.get(lkey)
        if left is None:
            return {}
        value = left[2]
        among = self.right_index.get(value, set()) if value is not None else set()
        matches = self._matching(left, among if rkeys is None else among & set(rkeys))
        out: Rows = {}
        for rkey in matches:
            right = self.rights[rkey]
            out[self._key(left, right)] = (left, right)
        if self.keep_left and not (matches if rkeys is None else self._any(left, among)):
            out[self._key(left, None)] = (left, None)
        return out

    def _unmatched_right(self, rkey: Any) -> Rows:
        """A RIGHT or FULL join's right row `rkey` alone, if it matches nothing."""
        right = self.rights.get(rkey)
        if not self.keep_right or right is None or self._matched(right):
            return {}
        return {self._key(None, right): (None, right)}

    def _touched(self, lkeys: set[Any], rkeys: set[Any], pairs_of: set[Any] | None) -> Rows:
        """The result rows a change can alter: the rows of left rows `lkeys` (their pairs
        with `pairs_of` only, when given) and the unmatched rows of right rows `rkeys`."""
        rows: Rows = {}
        for lkey in ordered(lkeys):
            rows.update(self._of_left(lkey, pairs_of))
        for rkey in ordered(rkeys):
            rows.update(self._unmatched_right(rkey))
        return rows

    def _emit(self, before: Rows, after: Rows, trigger: Event, out: list[Event]) -> None:
        """Retract what went, send what came or changed (a row of the same entries is the
        same row: an unmatched row the change did not touch is not sent again)."""
        for key in ordered(before.keys() - after.keys()):
            self._retract(key, trigger, out)
        for key, (left, right) in after.items():
            old = before.get(key)
            if old is not None and old[0] is left and old[1] is right:
                continue
            self._send(key, left, right, trigger, out)

    def _send(
        self, key: Any, left: Entry | None, right: Entry | None, trigger: Event, out: list[Event]
    ) -> None:
        ts = max(trigger.ts, *(x[1] for x in (left, right) if x is not None))
        row = self.joined(left[0] if left is not None else None, right[0] if right else None)
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

    def _near(self, old: Entry | None, new: Entry | None) -> set[Any]:
        """The left rows under a right row's old and new join values."""
        keys: set[Any] = set()
        for x in (old, new):
            if x is not None and x[2] is not None:
                keys |= self.left_index.get(x[2], set())
        return keys

    # -- the two inputs ----------------------------------------------------------------------

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out: list[Event] = []
        for e, value in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            lkey = e.key
            if lkey is None:
                continue
            old = self.lefts.get(lkey)
            entry: Entry | None = None
            if not e.deleted and self._admitted(self.left_index, lkey, value, e, "left"):
                entry = (e.row, e.ts, value)
            # the right rows it matched or matches: whether they match anything (a RIGHT
            # or FULL join's unmatched rows) can change with this row
            rkeys: set[Any] = set()
            if self.keep_right:
                for x in (old, entry):
                    if x is not None and x[2] is not None:
                        rkeys.update(self._matching(x, self.right_index.get(x[2], ())))
            before = self._touched({lkey}, rkeys, None)
            self._place(self.lefts, self.left_index, lkey, entry)
            self.dirty.add(("L", lkey))
            self._emit(before, self._touched({lkey}, rkeys, None), e, out)
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
            lkeys = self._near(old, entry)
            before = self._touched(lkeys, {rkey}, {rkey})
            self._place(self.rights, self.right_index, rkey, entry)
            self.dirty.add(("R", rkey))
            self._emit(before, self._touched(lkeys, {rkey}, {rkey}), e, out)
        return out

    # -- changelog ---------------------------------------------------------------------------

    def restore(self, name: Any, value: Any) -> None:
        side, key = name
        if side == "L":
            self._place(self.lefts, self.left_index, key, value)
        else:
            self._place(self.rights, self.right_index, key, value)
