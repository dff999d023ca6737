"""Plan a query: resolve its source, type its expressions and decide its output schema.

The plan is what a query task runs. Planning does every check that can fail before any
record flows, so a bad query is refused with a message that says what and where.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hispeed.catalog import Catalog, Source
from hispeed.errors import SqlError
from hispeed.expr.scope import Compiled, Scope, ScopeColumn
from hispeed.functions.registry import FunctionTypeError
from hispeed.functions.tables import lookup_table
from hispeed.plan import joins
from hispeed.plan.aggregates import plan_aggregate
from hispeed.plan.columns import (
    check_value_columns,
    key_missing,
    key_more_than_once,
    output_column,
    output_names,
)
from hispeed.plan.lag import plan_lags, table_frames
from hispeed.plan.model import (
    LABEL,
    WINDOW_COLUMNS,
    JoinPlan,
    LagCall,
    OutputColumn,
    QueryPlan,
    RowWindows,
    TableCall,
    field_name,
    window_fields,
)
from hispeed.plan.pull import refuse_order_by
from hispeed.plan.ranking import plan_subquery, refuse_over
from hispeed.plan.scope import (
    compile_clause,
    error_at,
    is_aggregate,
    source_scope,
    walk,
)
from hispeed.plan.semijoin import rewrite as semijoin
from hispeed.plan.subquery import flatten
from hispeed.plan.validate import (
    check_column_references,
    check_emit_final,
    check_kafka_group_by,
    check_persistent_sources,
    check_reserved_names,
)
from hispeed.plan.window_join import rewrite as rewrite_window_join
from hispeed.plan.window_tvf import rewrite as rewrite_window_tvf
from hispeed.plan.window_tvf import session_rows, session_scope
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql


def plan_select(
    select: ast.Select,
    catalog: Catalog,
    sink_kind: str | None = None,
    sink_name: str | None = None,
) -> QueryPlan:
    """The plan of a SELECT; `sink_kind` and `sink_name` are its sink's (CREATE ... AS
    SELECT), None for a transient query."""
    if select.limit is not None and select.limit < 0 and select.emit is not None:
        raise error_at(select, f"LIMIT must be a number of rows, not {select.limit}")
    refuse_order_by(select, sink_kind)  # a pull query's ORDER BY is planned in plan/pull.py
    plan = _plan_select(select, catalog, sink_kind, sink_name)
    session_rows(select, plan)  # SESSION's rows, held until their session closes
    replaced = plan.scope.replaced
    plan.table_functions = [c for c in replaced.values() if isinstance(c, TableCall)]
    plan.lags = [c for c in replaced.values() if isinstance(c, LagCall)]
    table_frames(plan)  # aggregates OVER frames of a table's rows (ops/over_table.py)
    return plan


def _plan_select(
    select: ast.Select,
    catalog: Catalog,
    sink_kind: str | None = None,
    sink_name: str | None = None,
) -> QueryPlan:
    select = flatten(select)  # a subquery that filters and projects (plan/subquery.py)
    select = semijoin(select, catalog, sink_kind)  # IN / EXISTS (SELECT ...): plan/semijoin.py
    if isinstance(select.from_, ast.Subquery):
        return plan_subquery(select, catalog, sink_kind, sink_name)
    refuse_over(select, lag=isinstance(select.from_, ast.SourceRef))
    if isinstance(select.from_, ast.Join):
        return _plan_join(select, catalog, sink_kind, sink_name)
    if isinstance(select.from_, ast.WindowJoin):
        select, window, row_windows = rewrite_window_join(select, catalog)
        return _plan_join(select, catalog, sink_kind, sink_name, window, row_windows)
    tvf = rewrite_window_tvf(select, catalog) if isinstance(select.from_, ast.WindowTvf) else None
    original, select = select, select if tvf is None else tvf.select
    assert isinstance(select.from_, ast.SourceRef)
    ref = select.from_
    line, col = ref.pos
    source = tvf.source if tvf else catalog.get(ref.name, line=line or 1, column=col or 1)
    label = ref.label
    scope = source_scope(source, label)
    session_scope(original, scope, label)  # SESSION's bounds, once its sessions close
    written_group_by = select.group_by
    check_column_references(select, scope, (label, source.name))
    select = _unqualify(select, label, source)
    plan_lags(select, source, scope)  # LAG calls become columns of the frame (ops/lag.py)
    where = _where(select, scope)
    items = _struct_stars(_expand(select, source, label, transient=sink_kind is None), scope)
    has_aggregates = any(is_aggregate(x) for item in items for x in walk(item.expr)) or (
        select.having is not None
    )
    _table_calls(items, source, scope, has_aggregates or bool(select.group_by))
    # ksqlDB's LogicalPlanner: a WINDOW without GROUP BY is refused only when nothing is
    # aggregated; with aggregates the aggregation's own checks speak
    if select.window is not None and not select.group_by and not has_aggregates:
        raise error_at(select.window, "WINDOW clause requires a GROUP BY clause.", located=True)
    check_reserved_names(items, persistent=sink_kind is not None)
    check_persistent_sources(select, [source], persistent=sink_kind is not None)
    check_kafka_group_by(select, [(label, source)])
    if select.group_by or has_aggregates:
        if select.partition_by:
            raise error_at(select.partition_by[0], "PARTITION BY cannot be used with GROUP BY")
        return plan_aggregate(
            select,
            source,
            label,
            scope,
            where,
            items,
            sink_kind,
            sink_name,
            written_group_by,
            keyless=tvf is not None and tvf.keyless,
        )
    if select.having is not None:
        raise error_at(select.having, "HAVING needs GROUP BY")
    check_emit_final(select)

    names = output_names(items, scope)
    outputs = []
    for item, name in zip(items, names, strict=True):
        compiled = compile_clause(item.expr, scope, "SELECT")
        outputs.append(OutputColumn(name, compiled.type or T.STRING, compiled))
    kind = sink_kind or source.kind
    if select.partition_by:
        if source.kind == "TABLE":
            raise error_at(
                select.partition_by[0],
                "PARTITION BY is not supported on tables; use GROUP BY to change a table's key",
            )
        parts = _partition_key(select, source, label, scope, items, sink_name)
        return _stateless_plan(select, source, label, scope, where, parts, kind, repartition=True)
    # the key columns pass through and must be selected
    key_names = [c.name for c in source.key_columns]
    keyed: dict[str, OutputColumn] = {}
    value = []
    for item, out in zip(items, outputs, strict=True):
        e = item.expr
        if (
            isinstance(e, ast.ColumnRef)
            and e.name in key_names
            and e.name not in keyed
            and (e.source is None or e.source == label)
        ):
            keyed[e.name] = out
        else:
            value.append(out)
    missing = [n for n in key_names if n not in keyed]
    if missing and sink_kind is not None:
        raise error_at(select, key_missing(sink_name, "key column", key_names))
    if sink_kind is not None:
        for name, out in keyed.items():
            again = [
                o.name
                for item, o in zip(items, outputs, strict=True)
                if o is not out and isinstance(item.expr, ast.ColumnRef) and item.expr.name == name
            ]
            if again:
                raise error_at(select, key_more_than_once(name, [out.name, *again]))
    key = [keyed[n] for n in key_names if n in keyed]
    check_value_columns(select, value, sink_kind)
    return _stateless_plan(select, source, label, scope, where, (key, value, outputs), kind)


def _stateless_plan(
    select: ast.Select,
    source: Source,
    label: str,
    scope: Scope,
    where: Compiled | None,
    parts: tuple[list[OutputColumn], list[OutputColumn], list[OutputColumn]],
    kind: str,
    *,
    repartition: bool = False,
    join: JoinPlan | None = None,
) -> QueryPlan:
    """A plan without aggregation: `parts` is (key, value, outputs)."""
    key, value, outputs = parts
    old_key = {c.name for c in source.key_columns}
    value_keys = tuple(
        i
        for i, e in enumerate(select.partition_by)
        if any(isinstance(x, ast.ColumnRef) and x.name not in old_key for x in walk(e))
    )
    return QueryPlan(
        source,
        label,
        scope,
        where,
        key,
        value,
        sink_kind=kind,
        repartition=repartition,
        value_keys=value_keys if repartition and join is None and key else (),
        limit=select.limit,
        emit=select.emit,
        window_info=source.window,
        outputs=outputs,
        join=join,
    )


def _where(select: ast.Select, scope: Scope) -> Compiled | None:
    if select.where is None:
        return None
    for e in walk(select.where):
        if is_aggregate(e):
            assert isinstance(e, ast.FunctionCall)
            # ksqlDB types the WHERE over the source's columns first, so an unknown column
            # (a window bound: WHERE runs before windowing) inside the call is reported first
            for arg in e.args:
                try:
                    compile_clause(arg, scope, "WHERE")
                except SqlError as err:  # named with the whole filter, as ksqlDB names it
                    reason = err.reason.split("\nStatement: ")[0]
                    shown = scope.shown(select.where)
                    raise SqlError(
                        f"{reason}\nStatement: {shown}", err.line, err.column, located=err.located
                    ) from None
            raise error_at(e, "aggregate functions are not allowed in WHERE; use HAVING")
    where = compile_clause(select.where, scope, "WHERE")
    if where.type is not None and where.type.name != "BOOLEAN":
        raise error_at(
            select.where,
            f"Type error in WHERE expression: Should evaluate to boolean but is "
            f"{scope.shown(select.where)} ({where.type}) instead.\nStatement: "
            f"{scope.shown(select.where)}",
        )
    return where


def _plan_join(
    select: ast.Select,
    catalog: Catalog,
    sink_kind: str | None,
    sink_name: str | None,
    window: tuple[int, int] | None = None,
    row_windows: RowWindows | None = None,
) -> QueryPlan:
    """A query over a join: the clauses run over the joined rows (plan/joins.py); `window`:
    a window join's (plan/window_join.py), which its one join step runs."""
    assert isinstance(select.from_, ast.Join)
    join, scope, source = joins.plan_relation(
        select.from_, catalog, compile_clause, error_at, select.where
    )
    if window is not None:
        join.steps[0] = dataclasses.replace(join.steps[0], window=window, row_windows=row_windows)
    if row_windows is not None:
        # each side's copy of a record carries its HOP or CUMULATE window's end (SESSION's
        # rows their session's start and end)
        scope.columns += [
            ScopeColumn(n, T.BIGINT, field_name(s.label, n), s.label)
            for s in join.sides
            for n in window_fields(row_windows)
        ]
    select = joins.with_filter(select, join)
    joins.check_window_bounds(select, error_at)
    label = LABEL
    where = _where(select, scope)
    items = _struct_stars(joins.expand_items(select, join, error_at), scope)
    select = dataclasses.replace(select, items=tuple(items))
    has_aggregates = any(is_aggregate(x) for item in items for x in walk(item.expr))
    _table_calls(items, source, scope, has_aggregates or bool(select.group_by))
    aggregated = has_aggregates or select.having is not None
    if select.window is not None and not select.group_by and not aggregated:
        raise error_at(select.window, "WINDOW clause requires a GROUP BY clause.", located=True)
    check_reserved_names(items, persistent=sink_kind is not None)
    sides = [side.source for side in join.sides]
    check_persistent_sources(select, sides, persistent=sink_kind is not None)
    if select.group_by or has_aggregates or select.having is not None:
        if select.partition_by:
            raise error_at(select.partition_by[0], "PARTITION BY cannot be used with GROUP BY")
        plan = plan_aggregate(
            select, source, label, scope, where, items, sink_kind, sink_name, select.group_by
        )
        plan.join = join
        return plan
    check_emit_final(select)
    kind = sink_kind or source.kind
    if select.partition_by:
        # matched to the select items as ksqlDB matches them: both qualified by its sanitizer
        items = [dataclasses.replace(i, expr=joins.qualified(i.expr, join, scope)) for i in items]
        select = dataclasses.replace(
            select,
            items=tuple(items),
            partition_by=joins.qualified(select.partition_by, join, scope),
        )
        parts = _partition_key(select, source, label, scope, items, sink_name)
        return _stateless_plan(
            select, source, label, scope, where, parts, kind, repartition=True, join=join
        )
    names = output_names(items, scope)
    outputs = [output_column(item, name, scope) for item, name in zip(items, names, strict=True)]
    at = joins.key_items(items, join, scope)
    key: list[OutputColumn] = []
    if sink_kind is not None:
        problem = joins.check_key(items, names, at, join, scope, sink_name)
        if problem is not None:
            raise error_at(select, problem)
        if (join.steps[0].foreign_key or join.paired) and len(at) > 1:
            # a multi-column left key, or both tables' keys (plan/nonkey_joins.py): their
            # own columns
            key = [outputs[i] for i in at]
        else:
            # the key is the join's: the other side's when this side is missing from an
            # outer join
            key = [dataclasses.replace(outputs[at[0]], expr=joins.result_key(scope, join))]
            outputs[at[0]] = key[0]
    value = [o for i, o in enumerate(outputs) if not (key and i in at)]
    check_value_columns(select, value, sink_kind)
    return _stateless_plan(
        select, source, label, scope, where, (key, value, outputs), kind, join=join
    )


def _expand(
    select: ast.Select, source: Source, label: str, transient: bool = False
) -> list[ast.SelectItem]:
    """Spell out `*`: key, value and header columns; a transient query over a windowed source
    also gets WINDOWSTART and WINDOWEND (a persistent one keeps them in its windowed key)."""
    items: list[ast.SelectItem] = []
    for item in select.items:
        if isinstance(item, ast.AllColumns):
            if item.source is not None and item.source != label:
                raise error_at(
                    item,
                    f"Failed to prepare statement: '{item.source}' is not a valid stream/table "
                    "name or alias.",
                )
            cols = [
                *source.key_columns,
                *source.value_columns,
                *(c for c, _ in source.header_columns),
            ]
            if source.window is not None and transient:
                items += [
                    ast.SelectItem(ast.ColumnRef(c.name, pos=item.pos), pos=item.pos)
                    for c in source.key_columns
                ]
                items += [
                    ast.SelectItem(ast.ColumnRef(n, pos=item.pos), pos=item.pos)
                    for n in WINDOW_COLUMNS
                ]
                cols = [*source.value_columns, *(c for c, _ in source.header_columns)]
            items += [
                ast.SelectItem(ast.ColumnRef(c.name, pos=item.pos), pos=item.pos) for c in cols
            ]
        else:
            items.append(item)
    return items


def _struct_stars(items: list[ast.SelectItem], scope: Scope) -> list[ast.SelectItem]:
    """Spell out `s->*`: one item per field of the STRUCT, named as the field."""
    out: list[ast.SelectItem] = []
    for item in items:
        e = item.expr
        if not isinstance(e, ast.StructStar):
            out.append(item)
            continue
        base = compile_clause(e.base, scope, "SELECT")
        if base.type is None or base.type.name != "STRUCT":
            raise error_at(e, f"{sql(e.base)} is not a STRUCT: `->*` needs one")
        out += [
            ast.SelectItem(ast.Dereference(e.base, name, pos=e.pos), name, pos=item.pos)
            for name, _ in base.type.fields
        ]
    return out


def _partition_key(
    select: ast.Select,
    source: Source,
    label: str,
    scope: Scope,
    items: list[ast.SelectItem],
    sink_name: str | None,
) -> tuple[list[OutputColumn], list[OutputColumn], list[OutputColumn]]:
    """PARTITION BY: (key, value, outputs). The key columns are the select items equal to the
    PARTITION BY expressions; with `*` in the select list, an expression not selected becomes
    a key column of its own (named as its column or field, or KSQL_COL_n) and `*` stands for
    the value columns, then the old key columns, less those the new key holds."""
    exprs = select.partition_by
    nulls = [e for e in exprs if isinstance(e, ast.Literal) and e.value is None]
    if nulls and len(exprs) > 1:
        raise error_at(nulls[0], "Cannot PARTITION BY multiple columns including NULL")
    compiled = [compile_clause(e, scope, "PARTITION BY") for e in exprs if e not in nulls]
    starred = any(isinstance(i, ast.AllColumns) for i in select.items)
    if starred:
        moved = {e.name for e in exprs if isinstance(e, ast.ColumnRef)}
        items = []
        for item in select.items:
            if not isinstance(item, ast.AllColumns):
                items.append(item)
                continue
            cols = [*source.value_columns, *source.key_columns]
            items += [
                ast.SelectItem(ast.ColumnRef(c.name, pos=item.pos), pos=item.pos)
                for c in cols
                if c.name not in moved
            ]
    if nulls:  # PARTITION BY NULL: no key
        names = output_names(items)
        outputs = [
            output_column(item, name, scope) for item, name in zip(items, names, strict=True)
        ]
        return [], outputs, outputs
    used: dict[int, int] = {}  # partition expression -> select item
    for i, e in enumerate(exprs):
        match = next(
            (j for j, item in enumerate(items) if j not in used.values() and item.expr == e), None
        )
        if match is not None:
            used[i] = match
    if sink_name is not None:
        _check_partition_key_once(select, exprs, items, used)
    missing = [e for i, e in enumerate(exprs) if i not in used]
    if missing and not starred:
        shown = [sql(_qualify(e, source.name)) for e in exprs]  # ksqlDB lists them all
        raise error_at(select, key_missing(sink_name, "partitioning expression", shown))
    extra = [ast.SelectItem(e) for e in missing]
    names = output_names(items + extra)
    outputs = [output_column(item, name, scope) for item, name in zip(items, names, strict=False)]
    synthesized = iter(
        OutputColumn(name, c.type or T.STRING, c)
        for name, c in zip(
            names[len(items) :],
            [compiled[i] for i in range(len(exprs)) if i not in used],
            strict=True,
        )
    )
    key = [outputs[used[i]] if i in used else next(synthesized) for i in range(len(exprs))]
    value = [o for j, o in enumerate(outputs) if j not in used.values()]
    return key, value, outputs


def _check_partition_key_once(
    select: ast.Select,
    exprs: tuple[ast.Expr, ...],
    items: list[ast.SelectItem],
    used: dict[int, int],
) -> None:
    """Refuse a persistent query selecting a PARTITION BY expression under several names:
    ksqlDB resolves every select item equal to a PARTITION BY expression to the new key
    column (UserRepartitionNode.resolveSelect), and its FinalProjectNode refuses a key column
    projected more than once."""
    for i, match in used.items():
        e = exprs[i]
        twins = [j for j, item in enumerate(items) if item.expr == e]
        if len(twins) < 2:
            continue
        names = output_names(items)
        key = e.name if isinstance(e, ast.ColumnRef) else names[match]
        raise error_at(select, key_more_than_once(key, [names[j] for j in twins]))


def _table_calls(
    items: list[ast.SelectItem], source: Source, scope: Scope, aggregated: bool
) -> None:
    """Find the table functions of the select list; their calls are replaced by columns
    (`scope.replaced` maps each call to a `TableCall`, a ScopeColumn of the value)."""
    calls = [
        x
        for item in items
        for x in walk(item.expr)
        if isinstance(x, ast.FunctionCall) and lookup_table(x.name) is not None
    ]
    if not calls:
        return
    for call in calls:  # ksqlDB's Analyzer: one table function per expression path
        inner = next((x for a in call.args for x in walk(a) if x in calls), None)
        if isinstance(inner, ast.FunctionCall):
            raise error_at(call, f"Table functions cannot be nested: {call.name}({inner.name}())")
    if aggregated:
        raise error_at(calls[0], "Table functions cannot be used with aggregations.")
    if source.kind == "TABLE":
        raise error_at(calls[0], "Table source is not supported with table functions")
    for call in calls:
        if call in scope.replaced:
            continue  # the same call twice: one column
        fn = lookup_table(call.name)
        assert fn is not None
        args = [compile_clause(a, scope, "SELECT") for a in call.args]
        types = [a.type or T.STRING for a in args]
        try:
            out = fn.resolve(types)
        except FunctionTypeError as e:
            raise error_at(call, str(e)) from None
        n = len(scope.replaced)
        scope.replaced[call] = TableCall(
            f"$t{n}", out, f"$t{n}", None, fn, tuple(args), tuple(types)
        )


def _qualify(e: Any, source: str) -> Any:
    """`e` with its unqualified columns qualified by `source`, for messages."""
    if isinstance(e, ast.ColumnRef):
        return e if e.source is not None else dataclasses.replace(e, source=source)
    if isinstance(e, ast.Expr):
        changes = {k: _qualify(v, source) for k, v in vars(e).items() if k != "pos"}
        changes = {k: v for k, v in changes.items() if v is not getattr(e, k)}
        return dataclasses.replace(e, **changes) if changes else e
    if isinstance(e, tuple):
        items = tuple(_qualify(v, source) for v in e)
        return items if any(a is not b for a, b in zip(items, e, strict=True)) else e
    return e


def _unqualify(select: ast.Select, label: str, source: Source) -> ast.Select:
    """Drop qualifiers that name the only source, so `T.A` and `A` are one expression."""

    def fix(e: Any) -> Any:
        if isinstance(e, ast.ColumnRef) and e.source in (label, source.name):
            return ast.ColumnRef(e.name, None, pos=e.pos)
        if isinstance(e, ast.Expr):
            changes = {}
            for name, value in vars(e).items():
                new = fix(value)
                if new is not value:
                    changes[name] = new
            return dataclasses.replace(e, **changes) if changes else e
        if isinstance(e, tuple):
            items = tuple(fix(v) for v in e)
            return items if any(a is not b for a, b in zip(items, e, strict=True)) else e
        return e

    items = tuple(
        dataclasses.replace(i, expr=fix(i.expr)) if isinstance(i, ast.SelectItem) else i
        for i in select.items
    )
    return dataclasses.replace(
        select,
        items=items,
        where=fix(select.where),
        group_by=fix(select.group_by),
        partition_by=fix(select.partition_by),
        having=fix(select.having),
    )
