"""A windowed stream joined to tables (plan/windowed_joins.py, confluentinc/ksql#4736): each
record of a stream whose keys carry windows (`WINDOW_TYPE`, as a windowed aggregation's
output read back as a stream) looks up each table's row of its key, as a stream-table join
does; the record keeps its window, so the result is a windowed stream keyed as the input.

The first step gets each record's join key with its window, (key, start, end) (ops/join.py
keys a windowed side's records so); it looks the table up by the key and sends the joined
row under the whole windowed key. The steps after it look their tables up by their join
keys (the same key: a windowed source is joined on its key only) and keep the windowed key
the row came with.
"""

from __future__ import annotations

from typing import Any

from hispeed.ops.join_steps import Event
from hispeed.ops.join_stream_table import StreamTableJoin
from hispeed.plan.model import JoinStep


class WindowedStreamTableJoin(StreamTableJoin):
    """A stream-table step whose stream records are keyed by window (the table's state and
    its changes are the stream-table step's)."""

    def __init__(
        self, step: JoinStep, left_fields: list[str], right_fields: list[str], first: bool
    ) -> None:
        super().__init__(step, left_fields, right_fields)
        #: the first step: its join keys are (key, window start, window end)
        self.first = first

    def left(self, events: list[Event], keys: list[Any], st: list[int]) -> list[Event]:
        out: list[Event] = []
        for e, k in zip(events, keys, strict=True):
            windowed = k if self.first else e.key
            plain = k[0] if self.first and k is not None else k
            for joined in super().left([e], [plain], st):
                joined.key = windowed
                out.append(joined)
        return out
