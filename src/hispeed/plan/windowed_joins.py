"""Joins of an unwindowed stream with windowed tables (confluentinc/ksql#4736).

ksqlDB refuses any join of a windowed source with an unwindowed one. One such join has a
clear meaning, and it is the one its users asked for: a stream joined to the result of a
windowed aggregation on the key, each stream record meeting the windows of its key that
contain its time (`WINDOWSTART <= ROWTIME < WINDOWEND`; a session window holds its end too,
the time of its last record). A record in a hopping window's overlap meets each window it
falls in, one joined row each; a LEFT JOIN keeps a record no window holds, with NULLs. The
result is an unwindowed stream stamped with the stream record's time, as a stream-table join.

A windowed table joined to an unwindowed table (two sides) is the foreign-key join's shape:
each window's row is enriched by the table's row of its key (or of any of its columns), and a
change of that row sends every window of the key again; the result is the windowed table's
windows (ops/join_table_table.py's foreign-key join, the window's key as the row's key).

The other mixes stay refused with ksqlDB's message: a windowed stream or table on the left
joined to a stream (its rows' windows would have to be matched against rows without one),
and more than two sides when one is a windowed table joined to unwindowed ones.
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


def windowed_table_to_table(sides: list[JoinSide]) -> bool:
    """Whether the join is a windowed table (the first side) joined to one unwindowed table,
    planned as a foreign-key join keyed by the window's key."""
    first = sides[0].source
    return (
        len(sides) == 2
        and first.kind == "TABLE"
        and first.window is not None
        and sides[1].source.kind == "TABLE"
        and sides[1].source.window is None
    )
