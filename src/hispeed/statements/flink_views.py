"""Flink's subqueries and views that one hispeed query cannot hold, made queries of their own.

Flink inlines a view where it is read and plans a query with its subqueries as one graph;
hispeed plans one query as one chain of operators (decode > join | aggregate > emit). So in
Flink statements (INSERT INTO a Flink sink, CREATE VIEW; docs/sql.md, "Flink SQL's DDL"):

- A subquery that is a join's input, or that aggregates or ranks (ROW_NUMBER) under a query
  that aggregates or ranks again, is made a view of its own, named `<sink or view>_<alias>`,
  and the query reads that view.
- A view (or such a subquery) that aggregates over a window table function is a stream, as
  Flink's window aggregation is append-only: each window's row comes once, when the window
  closes. Its rows are a windowed table's (`<name>_WINDOWS`, keyed by the GROUP BY columns,
  which are also copied into its value), read by a stream `<name>` of the view's columns
  whose record time is the view's `window_end` column. Joining two of them on equal
  `window_end` columns is then an interval join of 0 (Flink's window join).
- An aggregation over such a stream grouped by its time column (Flink's window aggregation
  over the `window_start`/`window_end` a window aggregation propagates) is itself a window
  aggregation: a TUMBLE of 1 millisecond over that column, so a group's row comes once, when
  the rows of a later window come.
- A view `SELECT *, PROCTIME() AS p FROM s` (Flink's processing-time attribute) is inlined as
  Flink does: a window table function over it with `DESCRIPTOR(p)` is one over `s` with
  `DESCRIPTOR(PROCTIME())` (docs/sql.md, "Processing-time windows"), whose rows come as the
  window grows (EMIT CHANGES: hispeed has no wall-clock timer to close it; the last row of a
  window is its count).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hispeed.catalog import Source
from hispeed.errors import SqlError
from hispeed.plan.scope import default_name, is_aggregate, walk
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.flink import JoinedSubquery
from hispeed.sql.format import sql
from hispeed.statements import queries, sources
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result

#: makes a view: (parts, name, its query, where it was written, the call) -> the result
MakeView = Callable[[EngineParts, str, ast.Select, ast.Pos, Call], Result]

_WINDOW_BOUNDS = ("WINDOW_START", "WINDOW_END")


def _ranks_or_aggregates(query: ast.Select) -> bool:
    """Whether the query's own select list aggregates or ranks (OVER), or it groups."""
    items = [x for i in query.items if isinstance(i, ast.SelectItem) for x in walk(i.expr)]
    return bool(query.group_by) or any(
        is_aggregate(x) or isinstance(x, ast.OverCall) for x in items
    )


def hoist(
    parts: EngineParts, query: ast.Select, owner: str, call: Call, make: MakeView
) -> ast.Select:
    """`query` with the subqueries one hispeed query cannot hold made views of their own
    (`make`), each named `<owner>_<alias>` and read by that name (module docstring)."""

    def view_of(sub: ast.Select, alias: str | None, pos: ast.Pos) -> ast.SourceRef:
        label = alias or "SUBQUERY"
        name = f"{owner}_{label}"
        make(parts, name, sub, pos, call)
        return ast.SourceRef(name, label, pos=pos)

    ttl = state_ttl_ms(parts.properties.get(STATE_TTL), query.pos)

    def relation(rel: ast.Relation) -> ast.Relation:
        if isinstance(rel, ast.Join):
            rel = _processing_time_lookup(parts, rel)
            right: ast.SourceRef = rel.right
            if isinstance(right, JoinedSubquery) and right.query is not None:
                right = view_of(right.query, right.alias, right.pos)
            left = rel.left
            if isinstance(left, ast.Subquery):
                left = view_of(left.query, left.alias, left.pos)
            return dataclasses.replace(rel, left=relation(left), right=right, unbounded_ms=ttl)
        if isinstance(rel, ast.Subquery):  # its joins are Flink's too
            inner = _named_stars(parts, rel.query)
            return dataclasses.replace(
                rel, query=dataclasses.replace(inner, from_=relation(inner.from_))
            )
        return rel

    query = _named_stars(parts, query)
    from_ = relation(query.from_)
    if isinstance(from_, ast.Subquery):
        # a Top-N over an aggregation (Flink's window Top-N over a window aggregation): the
        # ranking subquery reads the aggregation made a view
        middle = from_.query
        agg = middle.from_
        if (
            isinstance(agg, ast.Subquery)
            and _ranks_or_aggregates(middle)
            and _ranks_or_aggregates(agg.query)
        ):
            made = view_of(agg.query, agg.alias, agg.pos)
            from_ = dataclasses.replace(from_, query=dataclasses.replace(middle, from_=made))
    if isinstance(from_, ast.Subquery) and _ranks_or_aggregates(query):
        inner = from_.query
        if _ranks_or_aggregates(inner) or isinstance(inner.from_, ast.Subquery):
            from_ = view_of(inner, from_.alias, from_.pos)
    query = _propagated_window(parts, _proctime(parts, dataclasses.replace(query, from_=from_)))
    for item in query.items:
        for x in walk(item.expr) if isinstance(item, ast.SelectItem) else ():
            if isinstance(x, ast.FunctionCall) and x.name.upper() == "PROCTIME":
                raise SqlError(
                    "PROCTIME() is Flink's processing-time attribute: hispeed takes it as a "
                    "view's column (CREATE VIEW v AS SELECT *, PROCTIME() AS p FROM s) that a "
                    "window table function's DESCRIPTOR(p) reads, or as DESCRIPTOR(PROCTIME())",
                    *x.pos,
                )
    return query


#: Flink's setting of how long a regular join keeps its state; hispeed's default bounds it
STATE_TTL = "table.exec.state.ttl"
DEFAULT_STATE_TTL_MS = 24 * 60 * 60 * 1000
_UNITS = {
    "ms": 1,
    "s": 1000,
    "sec": 1000,
    "min": 60_000,
    "h": 3_600_000,
    "d": 86_400_000,
}


def state_ttl_ms(value: Any, pos: ast.Pos) -> int:
    """`table.exec.state.ttl` in milliseconds: Flink's duration text ('1 h', '30 min',
    '3600 s', '500 ms'; a bare number is milliseconds), 24 hours when not set. hispeed keeps
    a join's state for a bounded time: 0 (Flink's "forever") is refused."""
    if value is None:
        return DEFAULT_STATE_TTL_MS
    text = str(value).strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz").strip()
    unit = text[len(number) :].strip() or "ms"
    if not (number.isascii() and number.isdigit()) or unit not in _UNITS or int(number) <= 0:
        raise SqlError(
            f"'{STATE_TTL}' = '{value}': give how long a join keeps its rows, a positive "
            "duration like '1 h', '30 min', '3600 s' or '500 ms' (hispeed keeps none forever)",
            *pos,
        )
    return int(number) * _UNITS[unit]


def _named_stars(parts: EngineParts, query: ast.Select) -> ast.Select:
    """`a.*` over a join: a's columns under their own names, as in Flink (ksqlDB's `a.*` there
    names them A_ID, ...)."""
    if not isinstance(query.from_, ast.Join):
        return query
    labels: dict[str, str] = {}
    node: ast.Relation = query.from_
    while isinstance(node, ast.Join):
        labels[node.right.label] = node.right.name
        node = node.left
    if isinstance(node, ast.SourceRef):
        labels[node.label] = node.name
    items: list[ast.SelectItem | ast.AllColumns] = []
    for item in query.items:
        if not isinstance(item, ast.AllColumns) or item.source is None:
            items.append(item)
            continue
        source = parts.catalog.sources.get(labels.get(item.source, ""))
        if source is None:
            items.append(item)
            continue
        for column in [*source.key_columns, *source.value_columns]:
            ref = ast.ColumnRef(column.name, item.source, pos=item.pos)
            items.append(ast.SelectItem(ref, column.name, pos=item.pos))
    return dataclasses.replace(query, items=tuple(items))


def _proctime(parts: EngineParts, query: ast.Select) -> ast.Select:
    """A window table function over a processing-time view: over the view's source, with
    DESCRIPTOR(PROCTIME()), its rows as they change (module docstring)."""
    tvf = query.from_
    views = parts.catalog.flink_views
    if not isinstance(tvf, ast.WindowTvf) or tvf.source.name not in views:
        return query
    view = views[tvf.source.name]
    column = proctime_column(view.query)
    if column is None or tvf.time_column != column:
        return query
    base = view.query.from_
    assert isinstance(base, ast.SourceRef)
    source = dataclasses.replace(base, alias=tvf.source.alias or tvf.source.name)
    new_tvf = dataclasses.replace(tvf, source=source, time_column="PROCTIME()")
    return dataclasses.replace(query, from_=new_tvf, emit=query.emit or "CHANGES")


def _processing_time_lookup(parts: EngineParts, join: ast.Join) -> ast.Join:
    """`s JOIN t FOR SYSTEM_TIME AS OF s.p`, where `s` is `(SELECT *, PROCTIME() AS p FROM
    src)` (or a view of that shape): Flink's processing-time temporal join, a lookup of `t`
    as it is when each record comes, which is hispeed's stream-table join of `src`."""
    at, left = join.as_of, join.left
    if not isinstance(at, ast.ColumnRef):
        return join
    if isinstance(left, ast.Subquery):
        query, label = left.query, left.alias
    elif isinstance(left, ast.SourceRef) and left.name in parts.catalog.flink_views:
        query, label = parts.catalog.flink_views[left.name].query, left.label
    else:
        return join
    column = proctime_column(query)
    base = query.from_
    if column is None or column != at.name or at.source not in (None, label):
        return join
    assert isinstance(base, ast.SourceRef)
    source = ast.SourceRef(base.name, label or base.name, pos=left.pos)
    return dataclasses.replace(join, left=source, as_of=None)


def proctime_column(query: ast.Select) -> str | None:
    """The column a view `SELECT *, PROCTIME() AS p FROM s` names its processing time (None
    for any other view)."""
    if not isinstance(query.from_, ast.SourceRef) or query.where or query.group_by:
        return None
    found = None
    for item in query.items:
        if isinstance(item, ast.AllColumns):
            continue
        expr = item.expr
        if isinstance(expr, ast.FunctionCall) and expr.name.upper() == "PROCTIME" and not expr.args:
            found = item.alias
        elif not isinstance(expr, ast.ColumnRef):
            return None
    return found


def _propagated_window(parts: EngineParts, query: ast.Select) -> ast.Select:
    """An aggregation over a window view grouped by its time column: a 1 ms TUMBLE over it."""
    src = query.from_
    if not isinstance(src, ast.SourceRef) or not query.group_by:
        return query
    source = parts.catalog.sources.get(src.name)
    if source is None or not is_window_view(parts, source) or source.timestamp is None:
        return query
    time = source.timestamp
    grouped = {
        g.name
        for g in query.group_by
        if isinstance(g, ast.ColumnRef) and g.source in (None, src.label)
    }
    if time not in grouped:
        return query
    tvf = ast.WindowTvf("TUMBLE", src, time, 1, pos=src.pos, time_pos=src.pos)
    bounds = tuple(ast.ColumnRef(b, pos=query.pos) for b in _WINDOW_BOUNDS)
    return dataclasses.replace(query, from_=tvf, group_by=(*query.group_by, *bounds))


def is_window_view(parts: EngineParts, source: Source) -> bool:
    """Whether `source` is the stream of a window view (over a windowed table's topic)."""
    table = parts.catalog.sources.get(f"{source.name}_WINDOWS")
    return (
        source.kind == "STREAM"
        and table is not None
        and table.window is not None
        and table.topic == source.topic
    )


def is_window_aggregation(query: ast.Select) -> bool:
    """An aggregation over an event-time window table function (Flink: append-only)."""
    tvf = query.from_
    return (
        isinstance(tvf, ast.WindowTvf)
        and tvf.time_column != "PROCTIME()"
        and bool(query.group_by)
        and query.emit is None
    )


def create_window_view(
    parts: EngineParts, name: str, query: ast.Select, pos: ast.Pos, call: Call
) -> Result:
    """The view `name` of a window aggregation: the windowed table `<name>_WINDOWS` (its key
    columns copied into its value) and the stream `name` over its topic (module docstring)."""
    table_name = f"{name}_WINDOWS"
    if table_name in parts.catalog.sources:
        raise SqlError(f"Cannot add view '{name}': {table_name} exists", *pos)
    tvf = query.from_
    assert isinstance(tvf, ast.WindowTvf)
    labels = {tvf.alias, tvf.source.alias, tvf.source.name, None}
    keys = [
        g
        for g in query.group_by
        if not (isinstance(g, ast.ColumnRef) and g.name in _WINDOW_BOUNDS and g.source in labels)
    ]
    items: list[ast.SelectItem | ast.AllColumns] = []
    names: list[str] = []
    time: str | None = None
    key_texts = {sql(k): k for k in keys}
    selected: set[str] = set()
    for n, item in enumerate(query.items):
        if not isinstance(item, ast.SelectItem):
            raise SqlError("a window aggregation's view names its columns (no *)", *item.pos)
        out = item.alias or default_name(item.expr) or f"KSQL_COL_{n}"
        names.append(out)
        text = sql(item.expr)
        if text in key_texts:
            # the key's own column (renamed), and its copy in the value under the view's name
            selected.add(text)
            items.append(ast.SelectItem(item.expr, f"{out}_KEY", pos=item.pos))
            copy = ast.FunctionCall("AS_VALUE", (item.expr,), pos=item.pos)
            items.append(ast.SelectItem(copy, out, pos=item.pos))
        else:
            items.append(dataclasses.replace(item, alias=out))
        if isinstance(item.expr, ast.ColumnRef) and (
            item.expr.name == "WINDOW_END"
            # a window propagated (grouped by the time column): that column is the time
            or (item.expr.name == tvf.time_column and text in key_texts)
        ):
            time = out
    for n, (text, key) in enumerate(key_texts.items()):
        if text not in selected:  # Flink need not select what it groups by; ksqlDB must
            items.append(ast.SelectItem(key, f"GROUP_KEY_{n}", pos=query.pos))
    table_query = dataclasses.replace(query, items=tuple(items))
    props = {"KEY_FORMAT": ast.Property("JSON", pos=pos)}
    create = ast.CreateAsSelect("TABLE", table_name, table_query, props, pos=pos)
    queries.create_as_select(parts, create, call)
    table = parts.catalog.sources[table_name]
    types = {c.name: c.type for c in table.value_columns}
    columns = tuple(ast.ColumnDef(n, types.get(n, T.STRING), pos=pos) for n in names)
    stream_props: dict[str, ast.Property] = {
        "KAFKA_TOPIC": ast.Property(table.topic, pos=pos),
        "VALUE_FORMAT": ast.Property("JSON", pos=pos),
        "KEY_FORMAT": ast.Property("KAFKA", pos=pos),
    }
    if time is not None:
        stream_props["TIMESTAMP"] = ast.Property(time, pos=pos)
    stream = ast.CreateSource("STREAM", name, columns, stream_props, pos=pos)
    sources.create_source(parts, stream, call)
    return Result("status", f"View {name} created: the stream of {table_name}'s windows")


def drop_view_parts(parts: EngineParts, name: str, drop: Any, call: Call) -> None:
    """With a window view's stream dropped, its windowed table goes too."""
    table = f"{name}_WINDOWS"
    if table in parts.catalog.sources:
        drop(parts, ast.Drop("TABLE", table), call)


__all__ = [
    "create_window_view",
    "drop_view_parts",
    "hoist",
    "is_window_aggregation",
    "is_window_view",
    "proctime_column",
]
