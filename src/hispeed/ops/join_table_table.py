"""The table-table join step, and the foreign-key join.

A change on either side sends the joined row (or a deletion) for its key, stamped with the
later of the two rows' times; a foreign-key join looks up the right row by a left column and
sends again for every left row that refers to a right row that changed.
"""

from __future__ import annotations

from typing import Any

from hispeed.ops.join_steps import Event, TablesStepRunner, ordered
from hispeed.plan.model import JoinStep


class TableTableJoin(TablesStepRunner):
    """Both tables' current rows; a change on either side sends the join for its key."""

    def __init__(
        self, step: JoinStep, left_fields: list[str], right_fields: list[str], key_fields: list[str]
    ) -> None:
        super().__init__(step, left_fields, right_fields)
        #: table key -> (row, ts, join key) of the left; join key -> (row, ts) of the right
        self.lefts: dict[Any, tuple[dict[str, Any], int, Any]] = {}
        self.rights: dict[Any, tuple[dict[str, Any], int]] = {}
        #: foreign-key joins: right key -> the left table keys that refer to it
        self.refs: dict[Any, set[Any]] = {}
        #: foreign-key joins: the left table keys not sent a joined row since their left row
        #: came: a key never sent has nothing to delete (a key missing here was sent one, so
        #: a changelog written before this set was kept deletes as it did)
        self.unsent: set[Any] = set()
        self.key_fields = key_fields
        kind = step.kind
        self.keep_left = kind in ("LEFT", "FULL")
        self.keep_right = kind in ("RIGHT", "FULL")
        #: the left side's rows are a windowed table's, keyed by window (#4736)
        self.windowed = False

    def _emit(
        self,
        key: Any,
        left: tuple[dict[str, Any], int, Any] | None,
        right: tuple[dict[str, Any], int] | None,
        trigger: Event,
        out: list[Event],
        existed: bool,
    ) -> None:
        """Send the join of `left` and `right` for `key`, or its deletion."""
        lrow, rrow = self._matched(left[0] if left else None, right[0] if right else None)
        present = (lrow is not None and rrow is not None) or (
            (lrow is not None and self.keep_left) or (rrow is not None and self.keep_right)
        )
        ts = max([trigger.ts, *(x[1] for x in (left, right) if x is not None)])
        where = (trigger.partition, trigger.offset, trigger.headers)
        if present:
            self._unsent(key, False)
            out.append(Event(self.joined(lrow, rrow), ts, key, False, *where))
        elif existed:
            row = self.joined(None, None)
            # a windowed table's key is (key, window start, end): its key column is the key
            plain = key[0] if self.windowed and isinstance(key, tuple) else key
            parts = plain if isinstance(plain, tuple) and len(self.key_fields) > 1 else (plain,)
            for f, part in zip(self.key_fields, parts, strict=False):
                row[f] = part
            out.append(Event(row, ts, key, True, *where))

    def _unsent(self, key: Any, unsent: bool) -> None:
        """Mark a foreign-key join's left key as sent no row (or as sent one)."""
        if self.step.foreign_key and (key in self.unsent) != unsent:
            (self.unsent.add if unsent else self.unsent.discard)(key)
            self.dirty.add(("U", key))

    def _matched(self, lrow: Any, rrow: Any) -> tuple[Any, Any]:
        """The rows that join: both, or (when ON's other conditions fail them) the one an
        outer join keeps alone, as if the other were missing."""
        residual = self.step.residual
        if lrow is None or rrow is None or residual is None:
            return lrow, rrow
        if residual([self.joined(lrow, rrow)])[0]:
            return lrow, rrow
        return (lrow if self.keep_left else None), (rrow if self.keep_right else None)

    def _had(self, lrow: Any, rrow: Any) -> bool:
        lrow, rrow = self._matched(lrow, rrow)
        return (lrow is not None and rrow is not None) or (
            (lrow is not None and self.keep_left) or (rrow is not None and self.keep_right)
        )

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out: list[Event] = []
        fk = self.step.foreign_key
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            tkey = e.key if fk else k
            if tkey is None:
                continue
            old = self.lefts.get(tkey)
            old_right = self.rights.get(old[2]) if old is not None else None
            # a foreign-key join deletes a key it sent a row for, even if the row is gone
            # already (as ksqlDB does), and never one it did not
            existed = old is not None and (
                tkey not in self.unsent
                if fk
                else self._had(old[0], old_right[0] if old_right else None)
            )
            if old is None:
                self._unsent(tkey, True)
            if fk and old is not None and old[2] is not None:
                self.refs.get(old[2], set()).discard(tkey)
            self.dirty.add(("L", tkey))
            if e.deleted:
                self.lefts.pop(tkey, None)
                if fk:
                    if existed:
                        self._emit(tkey, None, None, e, out, True)
                    self._unsent(tkey, False)  # no left row, nothing kept for it
                    continue
                right = self.rights.get(tkey)
                self._emit(tkey, None, right, e, out, existed or right is not None)
                continue
            entry = (e.row, e.ts, k)
            self.lefts[tkey] = entry
            if fk and k is not None:
                self.refs.setdefault(k, set()).add(tkey)
            right = self.rights.get(k) if k is not None else None
            if fk and k is None and not self.keep_left:
                # a NULL foreign key joins nothing: an inner join's old result for the row
                # (if it joined) goes, or it would stay in the result, stale
                if existed:
                    self._emit(tkey, None, None, e, out, True)
                self._unsent(tkey, True)  # as if it were new: nothing to delete
                continue
            self._emit(tkey, entry, right, e, out, existed)
        return out

    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out: list[Event] = []
        fk = self.step.foreign_key
        for e, k in zip(events, keys, strict=True):
            st[0] = max(st[0], e.ts)
            if k is None:
                continue
            old = self.rights.get(k)
            self.dirty.add(("R", k))
            new = None if e.deleted else (e.row, e.ts)
            if new is None:
                self.rights.pop(k, None)
            else:
                self.rights[k] = new
            if fk:
                for tkey in ordered(self.refs.get(k, ())):
                    referring = self.lefts[tkey]
                    # stamped with the right record's time
                    sent = tkey not in self.unsent
                    self._emit(tkey, (referring[0], e.ts, k), new, e, out, sent)
                continue
            left = self.lefts.get(k)
            existed = self._had(left[0] if left else None, old[0] if old else None)
            self._emit(k, left, new, e, out, existed)
        return out

    def state(self) -> dict[Any, Any]:
        marks = {d for d in self.dirty if d[0] == "U"}
        self.dirty -= marks
        return {**super().state(), **{d: (True if d[1] in self.unsent else None) for d in marks}}

    def restore(self, name: Any, value: Any) -> None:
        if name[0] == "U":
            self.unsent.add(name[1])
        elif name[0] == "L":
            self.lefts[name[1]] = value
            if self.step.foreign_key and value[2] is not None:
                self.refs.setdefault(value[2], set()).add(name[1])
        else:
            self.rights[name[1]] = value
