"""Subqueries in FROM (confluentinc/ksql#745): `SELECT ... FROM (SELECT ... FROM s WHERE ...) t
WHERE ... GROUP BY ...`, planned as the one query they amount to.

A subquery that projects and filters one source (or a join, or another such subquery) is
merged into the query over it: the outer query's references to the subquery's columns become
the subquery's expressions, the two WHERE clauses are ANDed, and the result is planned as any
query is, so its operators run as one chain (decode > filter > project or aggregate > emit)
with the retractions of a table input carried as they are for any query. A subquery that
aggregates is merged the same way under an outer query that only filters and projects its
rows: the outer WHERE becomes HAVING, which takes a group's row back (a tombstone) when it
stops matching. The Top-N and deduplication shape (ROW_NUMBER() OVER in the subquery) is
plan/ranking.py's, and is left to it.

What cannot be merged so is refused at its place, saying why: an aggregate over an
aggregate, a subquery with WINDOW, LIMIT, ORDER BY, EMIT, PARTITION BY or a table function
(EXPLODE changes how many rows there are, so the outer query's clauses cannot be moved into
it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hispeed.functions.tables import lookup_table
from hispeed.plan.model import PSEUDO_COLUMNS, WINDOW_COLUMNS
from hispeed.plan.scope import default_name, error_at, is_aggregate, walk
from hispeed.sql import ast


def is_ranking(sub: ast.Subquery) -> bool:
    """Whether the subquery is the Top-N / deduplication shape (an OVER call in its select
    list), planned by plan/ranking.py."""
    return any(
        isinstance(x, ast.OverCall)
        for item in sub.query.items
        if isinstance(item, ast.SelectItem)
        for x in walk(item.expr)
    )


def flatten(select: ast.Select) -> ast.Select:
    """The query with its subquery in FROM merged into it (nested ones first); a query without
    one, or with a ranking subquery, as it is."""
    sub = select.from_
    if not isinstance(sub, ast.Subquery) or is_ranking(sub):
        return select
    inner = flatten(sub.query)
    if isinstance(inner.from_, ast.Subquery):
        # a ranking subquery inside: the outer query reads a Top-N, which runs as its own
        raise error_at(
            sub,
            "a query over a Top-N or deduplication subquery is not supported in one "
            "statement: create the Top-N as a table (CREATE TABLE ... AS SELECT), then query it",
        )
    _check_inner(inner)
    columns = _columns(inner)
    name = sub.alias
    aggregated = bool(inner.group_by) or any(
        is_aggregate(x)
        for item in inner.items
        if isinstance(item, ast.SelectItem)
        for x in walk(item.expr)
    )

    def fix(e: ast.Expr) -> ast.Expr:
        return _substituted(e, columns, name, inner, frozenset())

    items = _items(select, inner, name, fix)
    where = select.where and fix(select.where)
    if aggregated:
        outer_aggregates = [
            x for i in select.items if isinstance(i, ast.SelectItem) for x in walk(i.expr)
        ]
        if (
            select.group_by
            or select.having
            or select.window
            or any(is_aggregate(x) for x in outer_aggregates)
        ):
            raise error_at(
                select.group_by[0] if select.group_by else select,
                "an aggregation over an aggregating subquery is not supported: the query "
                "over a subquery with GROUP BY may filter and project its rows only",
            )
        having = _and(inner.having, where)
        return dataclasses.replace(
            inner,
            items=tuple(items),
            having=having,
            emit=select.emit,
            limit=select.limit,
            partition_by=tuple(fix(e) for e in select.partition_by),
            order_by=tuple(dataclasses.replace(o, expr=fix(o.expr)) for o in select.order_by),
            pos=select.pos,
        )
    return dataclasses.replace(
        select,
        items=tuple(items),
        from_=inner.from_,
        where=_and(inner.where, where),
        group_by=tuple(fix(e) for e in select.group_by),
        partition_by=tuple(fix(e) for e in select.partition_by),
        having=select.having and fix(select.having),
        order_by=tuple(dataclasses.replace(o, expr=fix(o.expr)) for o in select.order_by),
    )


def _check_inner(inner: ast.Select) -> None:
    clauses: list[tuple[Any, str]] = [
        (inner.window, "WINDOW"),
        (inner.emit, "EMIT"),
        (inner.limit, "LIMIT"),
        (inner.partition_by, "PARTITION BY"),
        (inner.order_by, "ORDER BY"),
    ]
    for value, clause in clauses:
        if value:
            raise error_at(
                inner,
                f"{clause} in a subquery in FROM is not supported: the subquery is merged into "
                "the query over it, which may say it instead",
            )
    if isinstance(inner.from_, ast.WindowTvf):
        raise error_at(
            inner.from_, "a window table function in a subquery in FROM is not supported"
        )
    for item in inner.items:
        if isinstance(item, ast.AllColumns) and isinstance(inner.from_, ast.Join):
            raise error_at(
                item,
                "name the columns of a subquery over a join (`*` there gives each side's "
                "columns under new names)",
            )
        if isinstance(item, ast.SelectItem):
            call = next(
                (
                    x
                    for x in walk(item.expr)
                    if isinstance(x, ast.FunctionCall) and lookup_table(x.name) is not None
                ),
                None,
            )
            if call is not None:
                raise error_at(
                    call,
                    f"the table function {call.name} in a subquery in FROM is not supported: "
                    "it makes several rows of one",
                )


def _columns(inner: ast.Select) -> dict[str, ast.Expr | None]:
    """The subquery's columns by name: their expressions (None: a column of the source that
    `*` passes through, named only when the outer query asks for it)."""
    out: dict[str, ast.Expr | None] = {}
    for n, item in enumerate(inner.items):
        if isinstance(item, ast.SelectItem):
            name = item.alias or default_name(item.expr) or f"KSQL_COL_{n}"
            out[name] = item.expr
    return out


def _passes_star(inner: ast.Select) -> bool:
    return any(isinstance(i, ast.AllColumns) for i in inner.items)


def _substituted(
    e: ast.Expr,
    columns: dict[str, ast.Expr | None],
    alias: str | None,
    inner: ast.Select,
    bound: frozenset[str],
) -> ast.Expr:
    """`e` over the subquery's columns, as an expression over the subquery's source."""
    if isinstance(e, ast.ColumnRef) and e.source is None and e.name in bound:
        return e  # a lambda's parameter
    if isinstance(e, ast.ColumnRef) and e.source in (None, alias):
        found = columns.get(e.name)
        if found is not None:
            return found
        if _passes_star(inner) or e.name in PSEUDO_COLUMNS or e.name in WINDOW_COLUMNS:
            return ast.ColumnRef(e.name, pos=e.pos)
        known = ", ".join(columns)
        raise error_at(
            e, f"{e.name} is not a column of the subquery{f' {alias}' if alias else ''}: {known}"
        )
    if isinstance(e, ast.ColumnRef):
        raise error_at(e, f"'{e.source}' is not the subquery's alias ({alias or 'none given'})")
    if isinstance(e, ast.Lambda):
        body = _substituted(e.body, columns, alias, inner, bound | set(e.params))
        return dataclasses.replace(e, body=body)
    changes: dict[str, Any] = {}
    for field in dataclasses.fields(e):
        if field.name != "pos":
            value = getattr(e, field.name)
            changes[field.name] = _each(value, columns, alias, inner, bound)
    return dataclasses.replace(e, **changes)


def _each(
    value: Any,
    columns: dict[str, ast.Expr | None],
    alias: str | None,
    inner: ast.Select,
    bound: frozenset[str],
) -> Any:
    if isinstance(value, ast.Expr):
        return _substituted(value, columns, alias, inner, bound)
    if isinstance(value, tuple):
        return tuple(_each(v, columns, alias, inner, bound) for v in value)
    return value


def _items(
    select: ast.Select, inner: ast.Select, alias: str | None, fix: Any
) -> list[ast.SelectItem | ast.AllColumns]:
    """The outer select list over the subquery's source, each item keeping its name."""
    out: list[ast.SelectItem | ast.AllColumns] = []
    for item in select.items:
        if isinstance(item, ast.AllColumns):
            if item.source is not None and item.source != alias:
                raise error_at(item, f"'{item.source}' is not the subquery's alias")
            # the subquery's columns as it lists them (its own `*` passes the source's on)
            for n, i in enumerate(inner.items):
                if isinstance(i, ast.SelectItem):
                    name = i.alias or default_name(i.expr) or f"KSQL_COL_{n}"
                    out.append(dataclasses.replace(i, alias=name))
                else:
                    out.append(i)
            continue
        named = item.alias or default_name(item.expr)
        out.append(ast.SelectItem(fix(item.expr), named, pos=item.pos))
    return out


def _and(a: ast.Expr | None, b: ast.Expr | None) -> ast.Expr | None:
    if a is None or b is None:
        return a or b
    return ast.BinaryOp("AND", a, b, pos=getattr(b, "pos", ast.NOPOS))
