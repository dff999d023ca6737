"""Joins of an unwindowed stream with windowed tables (confluentinc/ksql#4736).

ksqlDB refuses any join of a windowed source with an unwindowed one. One such join has a
clear meaning, and it is the one its users asked for: a stream joined to the result of a
windowed aggregation on the key, each stream record meeting the windows of its key that
contain its time (`WINDOWSTART <= ROWTIME < WINDOWEND`; a session window holds its end too,
the time of its last record). A record in a hopping window's overlap meets each window it
falls in, one joined row each; a LEFT JOIN keeps a record no window holds, with NULLs. The
result is an unwindowed stream stamped with the stream record's time, as a stream-table join.

The other mixes stay refused with ksqlDB's message: a windowed stream or table on the left
(its rows' windows would have to be matched against rows without one), and table-table joins
of windowed with unwindowed tables.
"""

from __future__ import annotations

from hispeed.plan.model import JoinSide


def stream_to_windowed_tables(sides: list[JoinSide]) -> bool:
    """Whether the join is an unwindowed stream (the first side) joined to windowed tables:
    every windowed side is a table, so each step is a stream-table step whose table is
    looked up by the stream record's key and time."""
    first = sides[0].source
    if first.kind != "STREAM" or first.window is not None:
        return False
    windowed = [s for s in sides[1:] if s.source.window is not None]
    return bool(windowed) and all(s.source.kind == "TABLE" for s in windowed)
