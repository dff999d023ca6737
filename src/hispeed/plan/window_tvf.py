"""Flink's windowing table functions, planned onto hispeed's windowed aggregation.

`FROM TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECOND)` gives each row of `bid`
the columns `window_start`, `window_end` and `window_time` of its window; a window
aggregation `GROUP BY window_start, window_end, ...` over it is ksqlDB's windowed
aggregation (`WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY ...`) with Flink's output: one row
per window and group, when stream time (the newest event time seen) passes the window's end
(EMIT FINAL with no grace period: Flink's watermark without delay). So it runs on the
vectorized TUMBLING, HOPPING and SESSION paths, as fast as ksqlDB's own windows.

`rewrite` turns such a SELECT into the ksqlDB-dialect one the planner knows: the window
columns become WINDOWSTART / WINDOWEND (a TUMBLE without aggregation computes its window
from the row's time), and the DESCRIPTOR's column becomes the source's event time for this
query (ROWTIME), as a Flink time attribute is.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hispeed.catalog import PROCESSING_TIME, Catalog, Source
from hispeed.expr.scope import Scope, ScopeColumn
from hispeed.plan.model import (
    ROW_WINDOW_END,
    SESSION_END,
    SESSION_START,
    QueryPlan,
    RowWindows,
    SessionRowsPlan,
    field_name,
)
from hispeed.plan.scope import compile_clause, error_at, is_aggregate, source_scope, walk
from hispeed.sql import ast
from hispeed.sql import types as T

#: Flink's names of the columns a windowing table function adds
TVF_COLUMNS = ("WINDOW_START", "WINDOW_END", "WINDOW_TIME")

#: the window store's retention under a window TVF's aggregation: ksqlDB's EMIT FINAL
#: never outputs a window its store no longer holds when stream time jumps past it by more
#: than size + grace (ops/window.py, final_retained_from); Flink outputs every window the
#: watermark passes, so the store keeps them all (a window leaves it once output anyway):
#: a retention past any jump of a BIGINT time (2^62 ms, still clear of int64's overflow when
#: subtracted from a stream time)
KEEP_UNTIL_OUTPUT_MS = 2**62

# CUMULATING: the aggregation's own kind for CUMULATE (ops/aggregate.py), never parsed
_KINDS = {"TUMBLE": "TUMBLING", "HOP": "HOPPING", "SESSION": "SESSION", "CUMULATE": "CUMULATING"}


@dataclasses.dataclass(frozen=True)
class Rewritten:
    """A window TVF query as the planner's own dialect says it."""

    select: ast.Select
    #: the query's source, its event time the DESCRIPTOR's column
    source: Source
    #: the aggregation groups by the window alone: one group per window, with no key
    keyless: bool


def rewrite(
    select: ast.Select, catalog: Catalog, columns: dict[str, ast.Expr] | None = None
) -> Rewritten:
    """The SELECT over `select.from_` (a window TVF) in the planner's dialect; an error for
    what Flink's window TVFs refuse or hispeed does not run yet, at its place. `columns`: the
    window columns' expressions when an operator assigns rows to their windows itself."""
    tvf = select.from_
    assert isinstance(tvf, ast.WindowTvf)
    if select.window is not None:
        raise error_at(select.window, "A window table function in FROM cannot have a WINDOW clause")
    line, col = tvf.source.pos
    source = catalog.get(tvf.source.name, line=line or 1, column=col or 1)
    if source.kind != "STREAM":
        raise error_at(
            tvf.source, f"{tvf.kind} windows a stream; {source.name} is a {source.kind.lower()}"
        )
    if source.window is not None:
        raise error_at(tvf.source, f"{tvf.kind} cannot window {source.name}: it is windowed")
    source = _with_event_time(tvf, source)
    timestamp_type = _time_type(source)
    label = tvf.label
    aggregated = bool(select.group_by) or any(
        is_aggregate(x)
        for e in [*(i.expr for i in select.items if isinstance(i, ast.SelectItem)), select.having]
        if e is not None
        for x in walk(e)
    )
    if aggregated:
        return _aggregation(select, tvf, source, label, timestamp_type)
    if tvf.kind == "SESSION":
        columns = _session_columns(tvf)
    if columns is None and tvf.kind != "TUMBLE" and timestamp_type.name == "TIMESTAMP":
        raise error_at(
            tvf,
            f"{tvf.kind} without a window aggregation windows a BIGINT time column only, for "
            "now; DESCRIBE gives the column's type",
        )
    if columns is None:
        columns = _row_windows(tvf)
    plain = _replace_columns(select, label, source, columns, timestamp_type)
    ref = ast.SourceRef(source.name, label, pos=tvf.pos)
    return Rewritten(dataclasses.replace(plain, from_=ref), source, keyless=False)


def session_columns(tvf: ast.WindowTvf, label: str, source: Source) -> dict[str, ast.Expr]:
    """SESSION's window columns of a window join's side `label` (plan/window_join.py), in
    the type of `source`'s event-time column."""
    columns = _session_columns(tvf, label)
    if _time_type(_with_event_time(tvf, source)).name == "TIMESTAMP":
        return {k: ast.FunctionCall("FROM_UNIXTIME", (e,), pos=tvf.pos) for k, e in columns.items()}
    return columns


def _session_columns(tvf: ast.WindowTvf, label: str | None = None) -> dict[str, ast.Expr]:
    """SESSION's window columns of a row whose session has closed: its bounds in the columns
    the operator adds (ops/session_rows.py, ops/join_window.py), over `label`'s columns."""
    label = label or tvf.label
    end = ast.ColumnRef(SESSION_END, label, pos=tvf.pos)
    return {
        "WINDOW_START": ast.ColumnRef(SESSION_START, label, pos=tvf.pos),
        "WINDOW_END": end,
        "WINDOW_TIME": _plus(end, -1),
    }


def session_scope(select: ast.Select, scope: Scope, label: str) -> None:
    """Add SESSION's bounds to the scope of its rows' query (`select` as written), which
    ops/session_rows.py fills when a session closes."""
    tvf = select.from_
    if not isinstance(tvf, ast.WindowTvf) or tvf.kind != "SESSION":
        return
    scope.columns += [
        ScopeColumn(n, T.BIGINT, field_name(label, n), label) for n in (SESSION_START, SESSION_END)
    ]


def session_rows(select: ast.Select, plan: QueryPlan) -> None:
    """SESSION's rows without aggregation (`select` as written): the plan holds each row
    until its session closes, its partition SESSION's PARTITION BY columns."""
    tvf = select.from_
    if not isinstance(tvf, ast.WindowTvf) or tvf.kind != "SESSION" or plan.aggregation:
        return
    source = plan.source
    _check_partition_columns(tvf, source)
    partition = [compile_clause(k, plan.scope, "PARTITION BY") for k in tvf.partition_by]
    plan.session_rows = SessionRowsPlan(tvf.size_ms, partition)


def ranked_rows(
    inner: ast.Select, over: ast.OverCall, catalog: Catalog
) -> tuple[ast.Select, Source, ast.Expr, RowWindows | None]:
    """Window Top-N and deduplication over a window table function's rows (a ranking
    subquery `SELECT ..., ROW_NUMBER() OVER (PARTITION BY window_start, window_end, ...)
    FROM TUMBLE(...)`): the subquery over the source, as `rewrite` gives it; the source with
    the DESCRIPTOR's column as its event time; and each row's window end, in epoch
    milliseconds, that closes its ranks (ops/window_rank.py); and HOP's or CUMULATE's windows,
    which the operator puts each row in (a copy per window, its end in `ROW_WINDOW_END`).
    An error at its place for what Flink refuses or hispeed does not run yet."""
    tvf = inner.from_
    assert isinstance(tvf, ast.WindowTvf)
    line, col = tvf.source.pos
    known = catalog.get(tvf.source.name, line=line or 1, column=col or 1)
    names = {_tvf_column(e, tvf.label, known) for e in over.partition_by}
    if not {"WINDOW_START", "WINDOW_END"} <= names:
        raise error_at(
            over,
            f"{over.name}() over a window table function's rows ranks each window's rows: "
            "PARTITION BY window_start, window_end (and any other columns)",
        )
    if inner.group_by or inner.having is not None:
        at = inner.group_by[0] if inner.group_by else inner.having
        raise error_at(
            at,
            "a window aggregation and its ranking are two statements: create the aggregation "
            "as a table (CREATE TABLE ... AS SELECT ... GROUP BY window_start, window_end, "
            "...), then rank its rows",
        )
    _resolve_order_by(over, tvf, known)
    if tvf.kind == "TUMBLE":
        rewritten = rewrite(inner, catalog)
        return rewritten.select, rewritten.source, _row_windows(tvf)["WINDOW_END"], None
    if tvf.kind == "SESSION":  # the rows of closed sessions (ops/session_rows.py)
        rewritten = rewrite(inner, catalog)
        return rewritten.select, rewritten.source, _session_columns(tvf)["WINDOW_END"], None
    assert tvf.step_ms is not None  # HOP's slide, CUMULATE's step: the parser requires them
    columns = _assigned(tvf, None)
    rewritten = rewrite(inner, catalog, columns)
    windows = RowWindows(tvf.kind, tvf.size_ms, tvf.step_ms, tvf.offset_ms)
    return rewritten.select, rewritten.source, columns["WINDOW_END"], windows


def _assigned(tvf: ast.WindowTvf, label: str | None) -> dict[str, ast.Expr]:
    """HOP's or CUMULATE's window columns of a copy of a row the operator put in one of its
    windows, the window's end in `ROW_WINDOW_END` (epoch milliseconds), over `label`'s
    columns."""
    place = tvf.pos
    end = ast.ColumnRef(ROW_WINDOW_END, label, pos=place)
    start = (
        _plus(end, -tvf.size_ms)
        if tvf.kind == "HOP"
        else _floor(ast.ColumnRef("ROWTIME", label, pos=place), tvf.size_ms, tvf.offset_ms, place)
    )
    return {"WINDOW_START": start, "WINDOW_END": end, "WINDOW_TIME": _plus(end, -1)}


def assigned_columns(tvf: ast.WindowTvf, label: str, source: Source) -> dict[str, ast.Expr]:
    """HOP's or CUMULATE's window columns of a window join's side `label` (plan/window_join.py),
    in the type of `source`'s event-time column."""
    columns = _assigned(tvf, label)
    if _time_type(_with_event_time(tvf, source)).name == "TIMESTAMP":
        return {k: ast.FunctionCall("FROM_UNIXTIME", (e,), pos=tvf.pos) for k, e in columns.items()}
    return columns


def _resolve_order_by(over: ast.OverCall, tvf: ast.WindowTvf, known: Source) -> None:
    """The ranking's ORDER BY resolved against the window table function's columns as the
    user sees them (the source's, WINDOW_START, WINDOW_END, WINDOW_TIME), before `rewrite`
    turns the window columns into expressions of ROWTIME: an unknown column's message lists
    them."""
    source = _with_event_time(tvf, known)
    label = tvf.label
    windows = [
        ScopeColumn(n, _time_type(source), field_name(label, n), label)
        for n in ("WINDOW_START", "WINDOW_END", "WINDOW_TIME")
    ]
    scope = Scope([*source_scope(source, label).columns, *windows])
    for e, _ in over.order_by:
        compile_clause(e, scope, "ORDER BY")


def _row_windows(tvf: ast.WindowTvf) -> dict[str, ast.Expr]:
    """Each row's windows without aggregation: TUMBLE's one, computed from ROWTIME; HOP's and
    CUMULATE's several, a row out for each (EXPLODE over GENERATE_SERIES of their bounds)."""
    at = tvf.pos
    if tvf.kind == "TUMBLE":
        start = _floor(ast.ColumnRef("ROWTIME", pos=at), tvf.size_ms, tvf.offset_ms, at)
        return {
            "WINDOW_START": start,
            "WINDOW_END": _plus(start, tvf.size_ms),
            "WINDOW_TIME": _plus(start, tvf.size_ms - 1),
        }
    time = ast.ColumnRef("ROWTIME", pos=at)
    assert tvf.step_ms is not None  # HOP's slide, CUMULATE's step: the parser requires them
    step = ast.Literal(tvf.step_ms, T.BIGINT, pos=at)
    if tvf.step_ms >= 1 << 31:
        raise error_at(tvf, f"{tvf.kind} without a window aggregation steps 24 days at most")
    every = ast.Literal(tvf.step_ms, T.INTEGER, pos=at)  # GENERATE_SERIES steps by an INTEGER

    def series(low: ast.Expr, high: ast.Expr, shift: int) -> ast.Expr:
        args = (_plus(low, shift), _plus(high, shift), every)
        return ast.FunctionCall(
            "EXPLODE", (ast.FunctionCall("GENERATE_SERIES", args, pos=at),), pos=at
        )

    if tvf.kind == "HOP":
        # the latest start at or before the row, and the earliest whose window still holds it
        last = _floor(time, tvf.step_ms, tvf.offset_ms, at)
        back = ast.BinaryOp(
            "-", ast.Literal(tvf.size_ms - 1, T.BIGINT, pos=at), ast.BinaryOp("-", time, last)
        )
        first = ast.BinaryOp("-", last, ast.BinaryOp("*", ast.BinaryOp("/", back, step), step))
        return {
            "WINDOW_START": series(first, last, 0),
            "WINDOW_END": series(first, last, tvf.size_ms),
            "WINDOW_TIME": series(first, last, tvf.size_ms - 1),
        }
    # CUMULATE: one start per max size; the ends from the first step past the row to the max
    start = _floor(time, tvf.size_ms, tvf.offset_ms, at)
    past = ast.BinaryOp("/", ast.BinaryOp("-", time, start), step)
    first_end = ast.BinaryOp("+", start, ast.BinaryOp("*", _plus(past, 1), step))
    last_end = _plus(start, tvf.size_ms)
    return {
        "WINDOW_START": start,
        "WINDOW_END": series(first_end, last_end, 0),
        "WINDOW_TIME": series(first_end, last_end, -1),
    }


def window_columns(tvf: ast.WindowTvf, time: ast.Expr, source: Source) -> dict[str, ast.Expr]:
    """TUMBLE's window columns of a row whose event time (epoch milliseconds) is `time`, in
    the type of `source`'s event-time column (a window join's sides: plan/window_join.py)."""
    at = tvf.pos
    start = _floor(time, tvf.size_ms, tvf.offset_ms, at)
    columns = {
        "WINDOW_START": start,
        "WINDOW_END": _plus(start, tvf.size_ms),
        "WINDOW_TIME": _plus(start, tvf.size_ms - 1),
    }
    if _time_type(_with_event_time(tvf, source)).name == "TIMESTAMP":
        return {k: ast.FunctionCall("FROM_UNIXTIME", (e,), pos=at) for k, e in columns.items()}
    return columns


def _aggregation(
    select: ast.Select, tvf: ast.WindowTvf, source: Source, label: str, timestamp_type: T.SqlType
) -> Rewritten:
    """A window aggregation: GROUP BY window_start, window_end and other keys."""
    names = [_tvf_column(g, label, source) for g in select.group_by]
    missing = [n for n in ("WINDOW_START", "WINDOW_END") if n not in names]
    if missing:
        raise error_at(
            select.group_by[0] if select.group_by else select,
            "A window aggregation over a window table function groups by window_start and "
            f"window_end (GROUP BY window_start, window_end, ...); {missing[0].lower()} is "
            "missing",
        )
    _check_partition_keys(tvf, source, select.group_by, names)
    # SESSION: Flink's session ends `gap` after its last row; ksqlDB's WINDOWEND is that row's
    end_shift = tvf.size_ms if tvf.kind == "SESSION" else 0
    window_start = ast.ColumnRef("WINDOWSTART", pos=tvf.pos)
    window_end = _plus(ast.ColumnRef("WINDOWEND", pos=tvf.pos), end_shift)
    columns = {
        "WINDOW_START": window_start,
        "WINDOW_END": window_end,
        "WINDOW_TIME": _plus(window_end, -1),
    }
    keys = tuple(g for g, n in zip(select.group_by, names, strict=True) if n is None)
    grouped = dataclasses.replace(select, group_by=keys, having=_counted(select))
    plain = _replace_columns(grouped, label, source, columns, timestamp_type)
    keyless = not keys
    if keyless:
        plain = dataclasses.replace(plain, group_by=(ast.Literal(True, T.BOOLEAN, pos=tvf.pos),))
    # SESSION: Flink's rows join a session while less than the gap apart (each row's window
    # is [t, t + gap) and overlapping ones merge), ksqlDB's while at most the gap apart; and
    # ksqlDB's session closes at its last row + gap + grace, Flink's at its end (last + gap)
    session = tvf.kind == "SESSION"
    size = tvf.size_ms - 1 if session else tvf.size_ms
    if size <= 0:
        raise error_at(tvf, "SESSION's gap must be at least 2 milliseconds")
    window = ast.WindowSpec(
        _KINDS[tvf.kind],
        size,
        tvf.step_ms if tvf.kind in ("HOP", "CUMULATE") else None,
        grace_ms=1 if session else None,
        retention_ms=KEEP_UNTIL_OUTPUT_MS,
        pos=tvf.pos,
        # windows start at offset + k * slide (TUMBLE's slide is its size), CUMULATE's at
        # offset + k * max size: only the offset's remainder matters
        offset_ms=tvf.offset_ms % (tvf.size_ms if tvf.kind != "HOP" else (tvf.step_ms or 1)),
        watermark=True,
    )
    emit = select.emit or "FINAL"
    ref = ast.SourceRef(source.name, label, pos=tvf.pos)
    return Rewritten(
        dataclasses.replace(plain, from_=ref, window=window, emit=emit), source, keyless
    )


def _check_partition_keys(
    tvf: ast.WindowTvf,
    source: Source,
    group_by: tuple[ast.Expr, ...],
    names: list[str | None],
) -> None:
    """SESSION's PARTITION BY under a window aggregation: its columns are the stream's, and
    the aggregation's groups (the GROUP BY's keys besides the window) are its partitions,
    whose sessions the aggregation keeps apart (as Flink's session window aggregation does)."""
    _check_partition_columns(tvf, source)
    if not tvf.partition_by:
        return
    others = [g for g, n in zip(group_by, names, strict=True) if n is None]
    grouped = {g.name for g in others if isinstance(g, ast.ColumnRef)}
    keys = {k.name for k in tvf.partition_by}
    if keys != grouped or len(others) != len(grouped):
        raise error_at(
            group_by[0],
            "a SESSION window aggregation groups by its PARTITION BY columns and the window: "
            f"GROUP BY {', '.join(k.name.lower() for k in tvf.partition_by)}, window_start, "
            "window_end",
        )


def _check_partition_columns(tvf: ast.WindowTvf, source: Source) -> None:
    """SESSION's PARTITION BY names columns of its stream."""
    for key in tvf.partition_by:
        if source.column(key.name) is None:
            known = ", ".join(c.name for c in source.columns)
            raise error_at(
                key, f"PARTITION BY {key.name}: {source.name} has no such column ({known})"
            )


def _counted(select: ast.Select) -> ast.Expr | None:
    """HAVING of a window aggregation; one that calls no aggregate (Flink's distinct rows
    per window) gets `COUNT(*) > 0`, always true of a group, as ksqlDB's planner wants an
    aggregate to run the aggregation."""
    exprs = [i.expr for i in select.items if isinstance(i, ast.SelectItem)]
    if select.having is not None:
        exprs.append(select.having)
    if any(is_aggregate(x) for e in exprs for x in walk(e)):
        return select.having
    count = ast.FunctionCall("COUNT", (), star=True, pos=select.pos)
    some = ast.BinaryOp(">", count, ast.Literal(0, T.BIGINT, pos=select.pos), pos=select.pos)
    return some if select.having is None else ast.BinaryOp("AND", some, select.having)


def _with_event_time(tvf: ast.WindowTvf, source: Source) -> Source:
    """`source` with the DESCRIPTOR's column as its event time (ROWTIME) for this query."""
    name = tvf.time_column
    if name == "ROWTIME" or name == source.timestamp:
        return source
    if name == PROCESSING_TIME:
        return dataclasses.replace(source, timestamp=PROCESSING_TIME, timestamp_format=None)
    column = source.column(name)
    if column is None:
        known = ", ".join(c.name for c in source.columns)
        raise error_at(
            _At(tvf.time_pos),
            f"DESCRIPTOR({name}) names no column of {source.name} (its columns: {known}, ROWTIME; "
            "or PROCTIME() for the processing time)",
        )
    if column.type.name not in ("BIGINT", "TIMESTAMP"):
        raise error_at(
            _At(tvf.time_pos),
            f"DESCRIPTOR({name}) must name a column of event time, a TIMESTAMP or a BIGINT "
            f"of epoch milliseconds; {name} is {column.type}",
        )
    return dataclasses.replace(source, timestamp=name, timestamp_format=None)


def _time_type(source: Source) -> T.SqlType:
    """The type of the event-time column: window columns are given in it (BIGINT for ROWTIME)."""
    column = source.column(source.timestamp) if source.timestamp else None
    return T.TIMESTAMP if column is not None and column.type.name == "TIMESTAMP" else T.BIGINT


@dataclasses.dataclass(frozen=True)
class _At:
    pos: ast.Pos


def _tvf_column(e: ast.Expr, label: str, source: Source) -> str | None:
    """The window column `e` names (WINDOW_START, ...), or None."""
    if (
        isinstance(e, ast.ColumnRef)
        and e.name in TVF_COLUMNS
        and e.source in (None, label, source.name)
        and source.column(e.name) is None
    ):
        return e.name
    return None


def _plus(e: ast.Expr, millis: int) -> ast.Expr:
    if millis == 0:
        return e
    op = "+" if millis > 0 else "-"
    return ast.BinaryOp(op, e, ast.Literal(abs(millis), T.BIGINT, pos=_pos(e)), pos=_pos(e))


def _pos(e: ast.Expr) -> ast.Pos:
    pos: ast.Pos = getattr(e, "pos", ast.NOPOS)
    return pos


def _floor(time: ast.Expr, size: int, offset: int, at: ast.Pos) -> ast.Expr:
    """The latest `offset + k * size` at or before `time`."""
    width = ast.Literal(size, T.BIGINT, pos=at)
    shifted = _plus(time, -(offset % size))
    # ROWTIME is never negative, but ROWTIME - offset may be: a floor, not a truncation
    rest = ast.BinaryOp(
        "%", ast.BinaryOp("+", ast.BinaryOp("%", shifted, width, pos=at), width, pos=at), width
    )
    return ast.BinaryOp("-", time, rest, pos=at)


def _replace_columns(
    select: ast.Select,
    label: str,
    source: Source,
    columns: dict[str, ast.Expr],
    timestamp_type: T.SqlType,
) -> ast.Select:
    """`select` with each window column replaced by its expression (in the event time's type,
    named as Flink names it where it is selected alone)."""

    def value(name: str) -> ast.Expr:
        e = columns[name]
        if timestamp_type.name == "TIMESTAMP":
            return ast.FunctionCall("FROM_UNIXTIME", (e,), pos=_pos(e))
        return e

    def fix(e: Any) -> Any:
        if isinstance(e, ast.Expr):
            name = _tvf_column(e, label, source)
            if name is not None:
                placed: Any = value(name)  # every expression node has a pos
                return dataclasses.replace(placed, pos=_pos(e))
            changes = {}
            for field_name, field_value in vars(e).items():
                new = fix(field_value)
                if new is not field_value:
                    changes[field_name] = new
            return dataclasses.replace(e, **changes) if changes else e
        if isinstance(e, tuple):
            items = tuple(fix(v) for v in e)
            return items if any(a is not b for a, b in zip(items, e, strict=True)) else e
        return e

    items: list[ast.SelectItem | ast.AllColumns] = []
    for item in select.items:
        if isinstance(item, ast.AllColumns):
            if item.source not in (None, label, source.name):
                items.append(item)
                continue
            # `*` over a window TVF: the source's columns, then the window's
            items.append(item)
            items += [ast.SelectItem(value(n), n, pos=item.pos) for n in TVF_COLUMNS]
            continue
        name = _tvf_column(item.expr, label, source)
        alias = item.alias if item.alias is not None or name is None else name
        items.append(dataclasses.replace(item, expr=fix(item.expr), alias=alias))
    return dataclasses.replace(
        select,
        items=tuple(items),
        where=fix(select.where),
        group_by=fix(select.group_by),
        having=fix(select.having),
    )
