"""Joins of windowed sources with unwindowed ones (confluentinc/ksql#4736).

ksqlDB refuses any join of a windowed source with an unwindowed one. One such join has a
clear meaning, and it is the one its users asked for: a stream joined to the result of a
windowed aggregation on the key, each stream record meeting the windows of its key that
contain its time (`WINDOWSTART <= ROWTIME < WINDOWEND`; a session window holds its end too,
the time of its last record). A record in a hopping window's overlap meets each window it
falls in, one joined row each; a LEFT JOIN keeps a record no window holds, with NULLs. The
result is an unwindowed stream stamped with the stream record's time, as a stream-table join.

A windowed table joined to unwindowed tables is the foreign-key join's shape: each window's
row is enriched by each table's row of its key (or of any of its columns, or of a column of
a table joined before), and a change of that row sends every window of the key again; the
result is the windowed table's windows (ops/join_table_table.py's foreign-key join, the
window's key as the row's key, one such lookup a table, as issue 8576's several foreign keys).

A windowed stream (its keys carry windows: `WINDOW_TYPE`) joined to tables on its key is a
stream-table join whose records keep their windows (ops/join_windowed_stream.py).

The other mixes stay refused with ksqlDB's message and hispeed's reason (`mixed_reason`): an
unwindowed table before a windowed one (its row would meet every window of its key, and one
with none would have no window), a windowed table's RIGHT or FULL join to tables (the same),
a table before a stream, and a windowed stream with an unwindowed one (records are matched
by key and window, and one side has none).
"""

from __future__ import annotations

from typing import Any

from hispeed.plan.model import JoinSide
from hispeed.sql import ast


def stream_to_windowed_tables(sides: list[JoinSide]) -> bool:
    """Whether the join is an unwindowed stream (the first side) joined to windowed tables:
    every windowed side is a table, so each step is a stream-table step whose table is
    looked up by the stream record's key and time."""
    first = sides[0].source
    if first.kind != "STREAM" or first.window is not None:
        return False
    windowed = [s for s in sides[1:] if s.source.window is not None]
    return bool(windowed) and all(s.source.kind == "TABLE" for s in windowed)


def _windowed_then_tables(sides: list[JoinSide], kind: str) -> bool:
    """Whether the first side is a windowed `kind` (STREAM or TABLE) and every other side an
    unwindowed table."""
    first = sides[0].source
    rest = sides[1:]
    plain = all(s.source.kind == "TABLE" and s.source.window is None for s in rest)
    return bool(rest) and first.kind == kind and first.window is not None and plain


def windowed_table_to_tables(sides: list[JoinSide]) -> bool:
    """Whether the join is a windowed table (the first side) joined to unwindowed tables,
    each step planned as a foreign-key join keyed by the window's key."""
    return _windowed_then_tables(sides, "TABLE")


def windowed_stream_to_tables(sides: list[JoinSide]) -> bool:
    """Whether the join is a windowed stream (the first side) joined to unwindowed tables:
    each record looks up each table's row of its key and keeps its window
    (ops/join_windowed_stream.py)."""
    return _windowed_then_tables(sides, "STREAM")


def check_windowed_stream_key(
    jn: ast.Join, sides: list[JoinSide], left_field: str | None, err: Any
) -> None:
    """Refuse a windowed stream joined to a table on anything but the stream's key: its
    records would have to be re-keyed by another column, windows and all (#4385)."""
    if not windowed_stream_to_tables(sides):
        return
    first = sides[0]
    if left_field in [f"{first.label}.{c.name}" for c in first.source.key_columns]:
        return
    raise err(
        jn.on,
        "Implicit repartitioning of windowed sources is not supported. See "
        "https://github.com/confluentinc/ksql/issues/4385. hispeed joins a windowed stream "
        f"to tables on the stream's key only (`{first.label}`'s key columns): each record "
        "looks up its key's row and keeps its window.",
    )


def mixed_reason(sides: list[JoinSide]) -> str:
    """Why a join of windowed and unwindowed sources that hispeed does not run has no
    defined meaning (or how to write the one that has), for ksqlDB's refusal."""
    first = sides[0].source
    streams = [s for s in sides if s.source.kind == "STREAM"]
    windowed = [s for s in sides if s.source.window is not None]
    if first.kind == "TABLE" and first.window is None:
        w = windowed[0]
        return (
            "hispeed joins a windowed table to tables with the windowed table first: "
            f"`FROM {w.source.name} JOIN {first.name} ...` enriches each window's row by its "
            "key's row. With an unwindowed table first, a row of it would meet every window "
            "of its key, and a row no window holds would have no window to be keyed by."
        )
    if first.kind == "TABLE" and len(streams) > 0:
        return (
            f"A stream joins a table from the left only: write `FROM {streams[0].source.name} "
            f"JOIN {first.name} ...`, in which each record meets the windows of its key "
            "holding its time."
        )
    if any(s.source.window is not None for s in streams) and len(streams) > 1:
        return (
            "A join of a windowed stream matches records by their key and window, and the "
            "records of an unwindowed stream have none: join that stream to the windowed "
            "table the windowed stream's records come from (a stream meets the windows of a "
            "windowed table holding each record's time)."
        )
    return (
        "hispeed joins an unwindowed stream to windowed tables, a windowed table to "
        "unwindowed tables (windowed table first) and a windowed stream to unwindowed tables "
        "on its key; in other mixes a row without a window would have to meet rows of "
        "windows with no rule for which."
    )


def outer_reason(jn: ast.Join, sides: list[JoinSide]) -> str:
    """Why a windowed table's RIGHT or FULL join to tables is refused, or '' (the others)."""
    if jn.kind not in ("RIGHT", "FULL") or not windowed_table_to_tables(sides):
        return ""
    return (
        "A windowed table joined to tables keeps its windows: a row of the right table "
        "that no window of its key holds would have no window to be keyed by. Join LEFT "
        "for every window, with NULLs where no row matches."
    )
