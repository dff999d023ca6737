"""What every join step shares at run time: the record on its way through (`Event`) and the
contract of a binary step (`JoinStepRunner`): records of its left and right inputs in, joined
rows out, its changed state for the changelog and the restore of it.

The steps, one per file: ops/join_stream_stream.py, ops/join_stream_table.py,
ops/join_table_table.py (with foreign-key joins); ops/join.py runs them in order.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hispeed.ops.decode import frame_headers, headers_field
from hispeed.plan.model import LABEL, PSEUDO_COLUMNS, ROWKEY, JoinStep, field_name

#: Kafka Streams' grace for join windows given without one (JoinWindows.of)
LEGACY_GRACE_MS = 24 * 3600 * 1000


def kept_for_ms(step: JoinStep, grace: int) -> int:
    """How long a stream-stream join keeps a side's records behind its newest time: until the
    last window that can reach one has closed (its end plus grace). With WITHIN (before,
    after) that is before + after + grace, Kafka Streams' store retention; a window that
    lies after a record (an interval join's `b.t BETWEEN a.t + 2 s AND a.t + 4 s`, before
    negative) ends `after` past it, later than before + after, and its record must be kept
    that long, as Flink's interval join keeps it, or a match that comes inside it is lost:
    visible while its side's newest time is at most its window's end plus grace."""
    before, after = step.before_ms, step.after_ms
    if min(before, after) >= 0:
        return before + after + grace
    return max(before, after) + 1 + grace


@dataclass
class Event:
    """A record on its way through the steps: a row of fields, or a table row's deletion."""

    row: dict[str, Any]
    ts: int
    key: Any = None  # a table row's primary key; a step's output key
    deleted: bool = False
    partition: int = 0
    offset: int = 0
    #: the headers of the record that sent it (a list of {"key", "value"}), or None
    headers: Any = None


class JoinStepRunner(ABC):
    """One binary join step at run time."""

    def __init__(self, step: JoinStep, left_fields: list[str], right_fields: list[str]) -> None:
        self.step = step
        self.left_fields = left_fields
        self.right_fields = right_fields
        self.dirty: set[Any] = set()

    def joined(self, left: dict[str, Any] | None, right: dict[str, Any] | None) -> dict[str, Any]:
        row: dict[str, Any] = {}
        row.update(left if left is not None else dict.fromkeys(self.left_fields))
        row.update(right if right is not None else dict.fromkeys(self.right_fields))
        return row

    @abstractmethod
    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        """Run records of the left input (with their join keys); the rows they give.
        `st` holds the stream time, which the records advance."""

    @abstractmethod
    def right(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        """Run records of the right input; the rows they give."""

    @abstractmethod
    def state(self) -> dict[Any, Any]:
        """The state changed since the last call, by name (None: deleted), for the changelog."""

    @abstractmethod
    def restore(self, name: Any, value: Any) -> None:
        """Take back one piece of state that `state` gave."""


class TablesStepRunner(JoinStepRunner):
    """A step that keeps both tables' rows (`lefts`, `rights`): its changelog entries are
    ("L" or "R", key) -> the row kept, or None when it went."""

    lefts: dict[Any, Any]
    rights: dict[Any, Any]

    def state(self) -> dict[Any, Any]:
        changed: dict[Any, Any] = {}
        for d in self.dirty:
            changed[d] = self.lefts.get(d[1]) if d[0] == "L" else self.rights.get(d[1])
        self.dirty.clear()
        return changed


def ordered(keys: Iterable[Any]) -> list[Any]:
    """Table keys in a stable order (by value when they compare, else by text)."""
    try:
        return sorted(keys)
    except TypeError:
        return sorted(keys, key=repr)


def joined_batch(
    arrays: list[pa.Array], names: list[str], frame: pa.RecordBatch, label: str, keys: pa.Array
) -> pa.RecordBatch:
    """Joined rows of a stream's records (`frame`, of side `label`): the sides' columns
    (`arrays`, `names`), then the records' own pseudo columns, the join key and the records'
    headers, as `$J.*` columns."""
    arrays, names = list(arrays), list(names)
    for name in PSEUDO_COLUMNS:
        arrays.append(frame.column(field_name(label, name)))
        names.append(field_name(LABEL, name))
    arrays.append(keys)
    names.append(field_name(LABEL, ROWKEY))
    headers = frame_headers(frame, label)
    if headers is not None:
        arrays.append(headers)
        names.append(headers_field(LABEL))
    return pa.RecordBatch.from_arrays(arrays, names=names)
