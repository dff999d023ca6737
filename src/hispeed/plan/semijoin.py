"""`x [NOT] IN (SELECT key FROM table ...)` and `[NOT] EXISTS (SELECT ... FROM table WHERE
table.key = x ...)` as semi-joins and anti-joins against a table (confluentinc/ksql#745).

Such a condition can be kept up to date incrementally when the subquery reads a table by its
key: a stream row passes if the key is in the table when the row arrives (a stream-table
join's lookup), and over a table input the row is taken back when the key leaves the table
(a table-table join's retraction). So the query is rewritten into the join that says the
same, and the join planner runs it:

    SELECT <outer items> FROM s WHERE s.x IN (SELECT k FROM t WHERE cond) AND rest
    ->  SELECT <outer items, named as before> FROM s LEFT JOIN t
          ON s.x = t.k WHERE t.k IS NOT NULL AND cond AND rest

The joined table keeps the label the user gave it (its alias or its name; `T_2` only when the
outer source or an earlier subquery has that label), and the subquery's own conditions are
checked against both sources before the rewrite: an error names the user's columns and shows
the user's condition, never the rewritten WHERE.

The table side has one row per key, so the join never repeats an outer row. A LEFT JOIN
kept where the key was found (rather than an INNER one) makes a table row whose value turns
NULL leave the result. NOT IN and NOT EXISTS keep the rows where the table side found no
row that passes `cond` (NOT IN also drops an outer row whose value is NULL, as SQL's
three-valued NOT IN does). The result keeps the outer source's key: a persistent stream is
partitioned back by it.

Anything else (a subquery over a stream, not by the table's key, under OR, in the select
list, in a pull query) is refused at its place, saying what is supported.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hispeed.catalog import Catalog, Source
from hispeed.errors import SqlError
from hispeed.expr.scope import Scope
from hispeed.plan.model import PSEUDO_COLUMNS
from hispeed.plan.scope import (
    compile_clause,
    default_name,
    error_at,
    is_aggregate,
    source_scope,
    walk,
)
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql

SHAPE = (
    "x [NOT] IN (SELECT key FROM table [WHERE ...]) or [NOT] EXISTS (SELECT ... FROM table "
    "WHERE table.key = x [AND ...]), each a condition of its own ANDed into WHERE"
)


def _subqueries(e: ast.Expr | None) -> list[ast.Expr]:
    return [x for x in walk(e) if isinstance(x, ast.InSubquery | ast.Exists)] if e else []


def _conjuncts(e: ast.Expr | None) -> list[ast.Expr]:
    out: list[ast.Expr] = []
    todo = [e] if e is not None else []
    while todo:
        x = todo.pop()
        if isinstance(x, ast.BinaryOp) and x.op == "AND":
            todo += [x.right, x.left]
        else:
            out.append(x)
    return out


def _and(parts: list[ast.Expr]) -> ast.Expr | None:
    out: ast.Expr | None = None
    for p in parts:
        out = p if out is None else ast.BinaryOp("AND", out, p, pos=getattr(p, "pos", ast.NOPOS))
    return out


def rewrite(select: ast.Select, catalog: Catalog, sink_kind: str | None) -> ast.Select:
    """The query with its IN / EXISTS subqueries as joins; a query without any as it is."""
    where_parts = _conjuncts(select.where)
    semis: list[tuple[ast.Expr, bool]] = []
    rest: list[ast.Expr] = []
    for part in where_parts:
        node, negated = part, False
        if isinstance(part, ast.UnaryOp) and part.op == "NOT":
            node, negated = part.operand, True
        if isinstance(node, ast.InSubquery):
            semis.append((node, negated != node.negated))
        elif isinstance(node, ast.Exists):
            semis.append((node, negated))
        else:
            rest.append(part)
    elsewhere = [x for e in rest for x in _subqueries(e)]
    elsewhere += [
        x for i in select.items if isinstance(i, ast.SelectItem) for x in _subqueries(i.expr)
    ]
    elsewhere += [
        x for e in (select.having, *select.group_by, *select.partition_by) for x in _subqueries(e)
    ]
    if elsewhere:
        raise error_at(elsewhere[0], f"a subquery is supported here only as a semi-join: {SHAPE}")
    if not semis:
        return select
    first = semis[0][0]
    if not isinstance(select.from_, ast.SourceRef):
        raise error_at(
            first,
            "IN / EXISTS with a subquery is supported over one stream or table (not a join, "
            f"a window table function or a subquery): {SHAPE}",
        )
    if sink_kind is None and select.emit is None:
        raise error_at(
            first,
            "IN / EXISTS with a subquery is not supported in a pull query: create the result "
            "as a table (CREATE TABLE ... AS SELECT ... WHERE x IN (SELECT ...)) and query it",
        )
    ref = select.from_
    outer = catalog.get(ref.name, line=ref.pos[0] or 1, column=ref.pos[1] or 1)
    label = ref.label
    relation: ast.Relation = ref
    extra: list[ast.Expr] = []
    taken = {label}
    for n, (node, negated) in enumerate(semis, 1):
        relation, kept = _join(node, negated, n, relation, outer, label, catalog, taken)
        extra += kept
    outer_names = {c.name for c in outer.columns}
    qualify = _qualifier(label, outer_names)
    partition_by = tuple(qualify(e) for e in select.partition_by)
    aggregated = bool(select.group_by) or any(
        is_aggregate(x) for i in select.items if isinstance(i, ast.SelectItem) for x in walk(i.expr)
    )
    if sink_kind == "STREAM" and outer.kind == "STREAM" and not partition_by and not aggregated:
        # the join keys its rows by the joined value; the filter's result keeps the outer key
        partition_by = tuple(ast.ColumnRef(c.name, label) for c in outer.key_columns)
    return dataclasses.replace(
        select,
        items=tuple(_items(select, outer, label, qualify)),
        from_=relation,
        where=_and([qualify(e) for e in rest] + extra),
        group_by=tuple(qualify(e) for e in select.group_by),
        partition_by=partition_by,
        having=select.having and qualify(select.having),
    )


def _join(
    node: ast.Expr,
    negated: bool,
    n: int,
    left: ast.Relation,
    outer: Source,
    label: str,
    catalog: Catalog,
    taken: set[str],
) -> tuple[ast.Join, list[ast.Expr]]:
    """The join for one IN / EXISTS, and the conditions it adds to WHERE; `taken`: the
    labels already in the query (the joined table's is added)."""
    assert isinstance(node, ast.InSubquery | ast.Exists)
    sub = node.query
    what = "IN" if isinstance(node, ast.InSubquery) else "EXISTS"
    nested = [
        x
        for e in (sub.where, *(i.expr for i in sub.items if isinstance(i, ast.SelectItem)))
        for x in _subqueries(e)
    ]
    if nested:
        # checked before anything is rewritten: the rewritten query is not the user's text
        raise error_at(
            nested[0],
            f"a subquery inside the subquery of {what} is not supported: {SHAPE}; join the "
            "inner tables into one table first (CREATE TABLE ... AS SELECT ... JOIN ...)",
        )
    if not isinstance(sub.from_, ast.SourceRef):
        raise error_at(node, f"the subquery of {what} reads one table: {SHAPE}")
    sref = sub.from_
    table = catalog.get(sref.name, line=sref.pos[0] or 1, column=sref.pos[1] or 1)
    if table.kind != "TABLE":
        raise error_at(
            sref,
            f"{what} (SELECT ... FROM {table.name}) is not supported: {table.name} is a "
            "stream, whose rows are never taken back, so whether a key is in it has no "
            f"answer that stays true; read it into a table first. {SHAPE}",
        )
    if table.window is not None or len(table.key_columns) != 1:
        raise error_at(
            sref, f"{what} reads a table of one key column, not windowed: {table.name} is not"
        )
    for clause, value in (
        ("GROUP BY", sub.group_by),
        ("HAVING", sub.having),
        ("WINDOW", sub.window),
        ("LIMIT", sub.limit),
        ("EMIT", sub.emit),
        ("PARTITION BY", sub.partition_by),
        ("ORDER BY", sub.order_by),
    ):
        if value:
            raise error_at(node, f"{clause} in the subquery of {what} is not supported: {SHAPE}")
    key = table.key_columns[0].name
    # the joined table goes by the user's label: errors from the join planner name it so
    alias = sref.label if sref.label not in taken else f"{sref.label}_{n}"
    taken.add(alias)
    inner_names = {c.name for c in table.columns}
    outer_names = {c.name for c in outer.columns}

    def resolve(e: ast.Expr) -> ast.Expr:
        return _resolved(e, sref.label, alias, inner_names, label, outer_names, frozenset())

    # checked under the user's own label for the table (the alias differs only when the
    # outer source has that label too: then under the alias)
    shown = sref.label if sref.label != label else alias
    try:
        conds = [resolve(c) for c in _conjuncts(sub.where)]
        _check_conditions(
            [
                _resolved(c, sref.label, shown, inner_names, label, outer_names, frozenset())
                for c in _conjuncts(sub.where)
            ],
            ((shown, table), (label, outer)),
        )
    except _UnresolvedError as e:
        raise _unresolved_error(e.ref, ((shown, table), (label, outer))) from None
    if isinstance(node, ast.InSubquery):
        items = sub.items
        item = items[0] if len(items) == 1 else None
        column = item.expr if isinstance(item, ast.SelectItem) else None
        if not (
            isinstance(column, ast.ColumnRef)
            and column.name == key
            and column.source in (None, sref.label)
        ):
            raise error_at(
                items[0] if items else node,
                f"IN (SELECT ...) selects the key of the table it reads, {table.name}.{key}, "
                f"and nothing else: {SHAPE}",
            )
        outer_value = _qualifier(label, outer_names)(node.operand)
        _check_in_types(node, outer, label, table, key)
    else:
        found = None
        for c in conds:
            if isinstance(c, ast.BinaryOp) and c.op == "=":
                for mine, theirs in ((c.left, c.right), (c.right, c.left)):
                    if (
                        mine == ast.ColumnRef(key, alias)
                        and not any(
                            isinstance(x, ast.ColumnRef) and x.source == alias for x in walk(theirs)
                        )
                        and any(isinstance(x, ast.ColumnRef) for x in walk(theirs))
                    ):
                        found = (c, theirs)
        if found is None:
            raise error_at(
                node,
                f"EXISTS needs its subquery's WHERE to match the key of {table.name} to the "
                f"outer query: WHERE {sref.label}.{key} = <outer column> [AND ...]. {SHAPE}",
            )
        conds.remove(found[0])
        outer_value = found[1]
    on = ast.BinaryOp("=", outer_value, ast.ColumnRef(key, alias), pos=node.pos)
    right = ast.SourceRef(table.name, alias, pos=sref.pos)
    # the subquery's other conditions go to WHERE, not ON: a filter over the joined rows takes
    # a row back (a tombstone) when an update of either side makes it fail
    cond = _and(conds)
    if not negated:
        # a LEFT JOIN kept where the key was found, not an INNER one: a table row whose value
        # turns NULL must leave the result; the left join sends it with no match, which WHERE
        # drops
        matched = ast.IsNull(ast.ColumnRef(key, alias), True, pos=node.pos)
        return ast.Join(left, right, "LEFT", on, None, pos=node.pos), [matched, *conds]
    absent: ast.Expr = ast.IsNull(ast.ColumnRef(key, alias), False, pos=node.pos)
    if cond is not None:
        # kept where no table row matches: none with the key, or the one there fails `cond`
        # (NULL included, as SQL's NOT EXISTS counts a NULL condition as no match)
        failed = ast.UnaryOp(
            "NOT", ast.FunctionCall("COALESCE", (cond, ast.Literal(False, T.BOOLEAN))), pos=node.pos
        )
        absent = ast.BinaryOp("OR", absent, failed, pos=node.pos)
    kept: list[ast.Expr] = [absent]
    if isinstance(node, ast.InSubquery):
        # SQL's NOT IN: a NULL value is in no list and out of none, so its row is dropped
        kept.append(ast.IsNull(outer_value, True, pos=node.pos))
    return ast.Join(left, right, "LEFT", on, None, pos=node.pos), kept


def _check_in_types(
    node: ast.InSubquery, outer: Source, label: str, table: Source, key: str
) -> None:
    """`x IN (SELECT key ...)` compares x with the key as a join does, types equal; said of
    the IN the user wrote, not of the join it becomes."""
    # the user's own operand (one source here: its names need no qualifier)
    got = compile_clause(node.operand, source_scope(outer, label), "WHERE").type
    want = table.key_columns[0].type
    if got is not None and got != want:
        raise error_at(
            node,
            f"IN (SELECT {key} FROM {table.name}) compares {sql(node.operand)} ({got}) with "
            f"the key {table.name}.{key} ({want}): the types must be the same; cast one to "
            f"the other, like CAST({sql(node.operand)} AS {want})",
        )


class _UnresolvedError(Exception):
    """A name of a subquery that is no column of its table nor of the outer source."""

    def __init__(self, ref: ast.ColumnRef) -> None:
        super().__init__(ref.name)
        self.ref = ref


def _columns_shown(sources: tuple[tuple[str, Source], ...]) -> str:
    """The columns a subquery's condition may name, as `LABEL.COLUMN`, for messages."""
    return ", ".join(
        f"{label}.{name}"
        for label, source in sources
        for name in [*(c.name for c in source.columns), *PSEUDO_COLUMNS]
    )


def _unresolved_error(ref: ast.ColumnRef, sources: tuple[tuple[str, Source], ...]) -> SqlError:
    """ksqlDB's message for a name no source has, listing the columns of both sources."""
    shown = f"{ref.source}.{ref.name}" if ref.source else ref.name
    return error_at(
        ref,
        f"WHERE column '{shown}' cannot be resolved. The columns here are: "
        + _columns_shown(sources),
        located=True,
    )


def _check_conditions(conds: list[ast.Expr], sources: tuple[tuple[str, Source], ...]) -> None:
    """Type-check the subquery's conditions over its table and the outer source, each under
    its label, before the rewrite: a mistake there is shown as the user wrote it (with the
    names placed), not inside the rewritten WHERE."""
    scope = Scope([c for label, source in sources for c in source_scope(source, label).columns])
    for cond in conds:
        compile_clause(cond, scope, "WHERE")


def _resolved(
    e: ast.Expr,
    inner_label: str,
    alias: str,
    inner_names: set[str],
    label: str,
    outer_names: set[str],
    bound: frozenset[str],
) -> ast.Expr:
    """A subquery's expression with its names placed: its own table's (innermost first, under
    the join's alias) or the outer query's (a correlated reference)."""
    if isinstance(e, ast.ColumnRef):
        if e.source is None and e.name in bound:
            return e
        if e.source == inner_label or (e.source is None and e.name in inner_names):
            if e.name not in inner_names and e.name not in PSEUDO_COLUMNS:
                raise _UnresolvedError(e)
            return dataclasses.replace(e, source=alias)
        if e.source in (None, label):
            if e.name not in outer_names and e.name not in PSEUDO_COLUMNS:
                raise _UnresolvedError(e)
            return dataclasses.replace(e, source=label)
        raise error_at(e, f"'{e.source}' is neither the subquery's table nor the outer source")
    if isinstance(e, ast.Lambda):
        body = _resolved(
            e.body, inner_label, alias, inner_names, label, outer_names, bound | set(e.params)
        )
        return dataclasses.replace(e, body=body)
    return _map_children(
        e,
        lambda x: _resolved(x, inner_label, alias, inner_names, label, outer_names, bound),
    )


def _qualifier(label: str, names: set[str]) -> Any:
    """A function qualifying the outer query's unqualified names with its source's label
    (the joined table's columns would otherwise make them ambiguous)."""

    def fix(e: ast.Expr, bound: frozenset[str] = frozenset()) -> ast.Expr:
        if isinstance(e, ast.ColumnRef):
            if e.source is None and e.name not in bound:
                return dataclasses.replace(e, source=label)
            return e
        if isinstance(e, ast.Lambda):
            return dataclasses.replace(e, body=fix(e.body, bound | set(e.params)))
        return _map_children(e, lambda x: fix(x, bound))

    return fix


def _map_children(e: ast.Expr, fix: Any) -> ast.Expr:
    def each(value: Any) -> Any:
        if isinstance(value, ast.Expr):
            return fix(value)
        if isinstance(value, tuple):
            return tuple(each(v) for v in value)
        return value

    changes = {f.name: each(getattr(e, f.name)) for f in dataclasses.fields(e) if f.name != "pos"}
    return dataclasses.replace(e, **changes)


def _items(
    select: ast.Select, outer: Source, label: str, qualify: Any
) -> list[ast.SelectItem | ast.AllColumns]:
    """The outer select list over the join, each item named as it was over the source."""
    out: list[ast.SelectItem | ast.AllColumns] = []
    for item in select.items:
        if isinstance(item, ast.AllColumns):
            if item.source not in (None, label):
                raise error_at(item, f"'{item.source}' is not the query's source")
            out += [
                ast.SelectItem(ast.ColumnRef(c.name, label), c.name, pos=item.pos)
                for c in [*outer.key_columns, *outer.value_columns]
            ]
            continue
        out.append(
            ast.SelectItem(qualify(item.expr), item.alias or default_name(item.expr), pos=item.pos)
        )
    return out
