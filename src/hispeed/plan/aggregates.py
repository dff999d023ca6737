"""Plan an aggregation: GROUP BY, the aggregate calls, HAVING, windows and their grace.

The select items and HAVING are compiled over the aggregation's result (`post_scope`): the
GROUP BY expressions and each aggregate call become columns of it, so a column read outside
an aggregate must be (part of) a GROUP BY expression.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from hispeed.catalog import Source, WindowInfo
from hispeed.errors import HispeedError
from hispeed.expr.scope import Compiled, Scope, ScopeColumn
from hispeed.functions.aggregate_modifiers import Filtered, distinct
from hispeed.functions.aggregates import AGGREGATES, Aggregate, Max
from hispeed.functions.registry import FunctionTypeError, lookup
from hispeed.plan.columns import check_value_columns, key_missing, output_names
from hispeed.plan.model import (
    DEFAULT_GRACE_MS,
    WINDOW_COLUMNS,
    AggregateCall,
    AggregationPlan,
    OutputColumn,
    QueryPlan,
    field_name,
)
from hispeed.plan.scope import compile_clause, error_at, is_aggregate, walk
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql


class NewestTime(Max):
    """An aggregate's row time: Kafka Streams stamps an aggregate with the newest of its
    records' times and its stored time, also when a table row is taken back."""

    undoable = True

    def undo(self, state: Any, args: Sequence[Any]) -> Any:
        return self.add(state, args)


def _row_time_call(label: str) -> AggregateCall:
    """The hidden call that keeps an aggregate's row time (see `NewestTime`)."""
    column = field_name(label, "ROWTIME")
    read = Compiled(T.BIGINT, lambda batch, ctx: batch.column(column))
    return AggregateCall(
        AGGREGATES["MAX"],
        NewestTime([T.BIGINT], []),
        [read],
        ScopeColumn("$ROWTIME", T.BIGINT, "$ROWTIME"),
    )


def plan_aggregate(
    select: ast.Select,
    source: Source,
    label: str,
    scope: Scope,
    where: Compiled | None,
    items: list[ast.SelectItem],
    sink_kind: str | None,
    sink_name: str | None,
    written_group_by: tuple[ast.Expr, ...],
    *,
    keyless: bool = False,
) -> QueryPlan:
    """The plan of a query with GROUP BY or aggregate calls (a push query without GROUP BY
    aggregates the whole stream as one group); `written_group_by` is GROUP BY as written,
    for messages. `keyless`: a window table function's aggregation by its windows alone (one
    group per window, whose sink has no key column but the window)."""
    _check_functions_exist([i.expr for i in items] + ([select.having] if select.having else []))
    for e in [i.expr for i in items] + ([select.having] if select.having else []):
        for x in walk(e):
            if is_aggregate(x):
                assert isinstance(x, ast.FunctionCall)
                for arg in x.args:
                    if any(is_aggregate(y) for y in walk(arg)):
                        raise error_at(x, f"Aggregate functions can not be nested: {sql(x)}")
    for g in select.group_by:
        bad = next((x for x in walk(g) if is_aggregate(x)), None)
        if isinstance(bad, ast.FunctionCall):
            raise error_at(
                g,
                f"GROUP BY does not support aggregate functions: {bad.name} is an "
                "aggregate function.",
            )
    has_aggregates = any(
        is_aggregate(x)
        for e in [i.expr for i in items] + ([select.having] if select.having else [])
        for x in walk(e)
    )
    if select.group_by and not has_aggregates:
        raise error_at(
            select, "GROUP BY requires aggregate functions in either the SELECT or HAVING clause."
        )
    if not select.group_by:
        loose = [sql(i.expr) for i in items if _loose_columns(i.expr)]
        if loose:
            raise error_at(
                select,
                "Non-aggregate SELECT expression(s) not part of GROUP BY: " + ", ".join(loose),
            )
        first = next(x for item in items for x in walk(item.expr) if is_aggregate(x))
        assert isinstance(first, ast.FunctionCall)
        shown = f"{first.name}(ROWTIME)" if first.star else sql(first)
        if sink_kind is not None:
            raise error_at(
                select,
                f"CREATE {sink_kind} AS SELECT statement does not support aggregate "
                f"function [{shown}] without a GROUP BY clause.",
            )
        # a push query may aggregate a whole stream: one group, with no key
        whole = (ast.Literal(True, T.BOOLEAN, pos=select.pos),)
        select = dataclasses.replace(select, group_by=whole)
        written_group_by = whole
    seen_groups: list[ast.Expr] = []
    for g, original in zip(select.group_by, written_group_by, strict=True):
        if g in seen_groups:
            raise error_at(g, f"Duplicate GROUP BY expression: {sql(original)}")
        seen_groups.append(g)
    group_exprs = [compile_clause(g, scope, "GROUP BY") for g in select.group_by]
    for g, c in zip(select.group_by, group_exprs, strict=True):
        if c.type is None:
            raise error_at(g, "GROUP BY NULL is not allowed")
        if any(is_aggregate(x) for x in walk(g)):
            raise error_at(g, "GROUP BY cannot contain aggregate functions")
    group_columns = [
        ScopeColumn(f"$g{i}", c.type or T.STRING, f"$g{i}") for i, c in enumerate(group_exprs)
    ]
    replaced: dict[ast.Expr, ScopeColumn] = {
        g: gc for g, gc in zip(select.group_by, group_columns, strict=True)
    }
    if select.window is not None:
        _check_window_bounds(items, select.group_by, select.having)
    calls: list[AggregateCall] = []
    exprs = [i.expr for i in items] + ([select.having] if select.having is not None else [])
    for e in exprs:
        for x in walk(e):
            if is_aggregate(x) and x not in replaced:
                assert isinstance(x, ast.FunctionCall)
                call = _aggregate_call(x, scope, len(calls))
                calls.append(call)
                replaced[x] = call.column
    window_cols: list[ScopeColumn] = []
    if select.window is not None:
        window_cols = [ScopeColumn(n, T.BIGINT, f"${n}") for n in WINDOW_COLUMNS]
        for wc in window_cols:
            replaced[ast.ColumnRef(wc.name)] = wc
    post_scope = Scope(
        [*group_columns, *(c.column for c in calls), *window_cols], flat_names=scope.flat_names
    )
    names = output_names(
        items, type_of=lambda e: _post_type(e, post_scope, replaced, select.group_by)
    )
    offending = [
        sql(i.expr)
        for i in items
        if any(
            isinstance(x, ast.ColumnRef)
            and x not in replaced
            and not _inside_replaced(i.expr, x, replaced)
            for x in walk(i.expr)
        )
    ]
    if offending:
        raise error_at(
            select,
            "Non-aggregate SELECT expression(s) not part of GROUP BY: "
            + ", ".join(offending)
            + "\nEither add the column(s) to the GROUP BY or remove them from the "
            "SELECT.",
        )
    outputs: list[OutputColumn] = []
    for item, name in zip(items, names, strict=True):
        outputs.append(
            OutputColumn(
                name, T.STRING, _compile_post(item.expr, post_scope, replaced, select.group_by)
            )
        )
        outputs[-1].type = outputs[-1].expr.type or T.STRING
    having = None
    if select.having is not None:
        having = _compile_post(select.having, post_scope, replaced, select.group_by, "HAVING")
        if having.type is not None and having.type.name != "BOOLEAN":
            raise error_at(
                select.having,
                "Type error in HAVING expression: Should evaluate to boolean but is "
                f"{sql(select.having)} ({having.type}) instead.",
            )
    # key columns: the select items that are the GROUP BY expressions
    key: list[OutputColumn] = []
    value: list[OutputColumn] = []
    used: set[int] = set()
    missing: list[str] = []
    for g in select.group_by:
        match = next((i for i, item in enumerate(items) if i not in used and item.expr == g), None)
        if match is None:
            missing.append(sql(g))
            continue
        used.add(match)
        key.append(outputs[match])
    if missing and sink_kind is not None and not keyless:  # a push query need not select it
        raise error_at(select, key_missing(sink_name, "grouping expression", missing))
    for i, item in enumerate(items):
        if i in used:
            continue
        twin = next((j for j in used if items[j].expr == item.expr), None)
        if twin is not None:
            raise error_at(
                item,
                "The projection contains a key column more than once: "
                f"`{outputs[twin].name}` and `{outputs[i].name}`.",
            )
    if source.kind == "TABLE":
        stream_only = [c.spec.name for c in calls if not c.logic.undoable]
        if stream_only:
            names_ = list(dict.fromkeys(stream_only))
            listed = (
                names_[0] if len(names_) == 1 else (", ".join(names_[:-1]) + " and " + names_[-1])
            )
            raise error_at(
                select,
                f"The aggregation functions {listed} cannot be applied to a table "
                "source, only to a stream source.",
            )
    window_names = set()
    for i, (item, out) in enumerate(zip(items, outputs, strict=True)):
        if i in used:
            continue
        if (
            select.window is not None
            and isinstance(item.expr, ast.ColumnRef)
            and item.expr.name in WINDOW_COLUMNS
            and item.alias is None
        ):
            window_names.add(out.name)
            continue  # windowed keys carry their bounds; WINDOWSTART/END are not value columns
        value.append(out)
    check_value_columns(select, value, sink_kind)
    window = select.window
    if window is not None and source.kind == "TABLE":
        raise error_at(window, "Windowing not supported for table aggregations.")
    if select.emit == "FINAL" and window is None:
        raise error_at(select, "EMIT FINAL is only supported for windowed aggregations.")
    # a window without GRACE PERIOD accepts late records for 24 hours, as ksqlDB's does;
    # with EMIT FINAL it closes at its end, so that final results come when it ends
    grace = 0 if select.emit == "FINAL" else DEFAULT_GRACE_MS
    if window is not None and window.grace_ms is not None:
        grace = window.grace_ms
    agg = AggregationPlan(
        group_exprs,
        group_columns,
        calls,
        window,
        grace,
        post_scope,
        _row_time_call(label),
        [g.name if isinstance(g, ast.ColumnRef) else None for g in select.group_by],
    )
    window_info = None
    if window is not None:
        window_info = WindowInfo(window.kind, window.size_ms if window.kind != "SESSION" else None)
    return QueryPlan(
        source,
        label,
        scope,
        where,
        key,
        value,
        agg,
        having,
        sink_kind=sink_kind or "TABLE",
        limit=select.limit,
        emit=select.emit,
        window_info=window_info,
        outputs=outputs,
    )


def _loose_columns(e: ast.Expr) -> bool:
    """Whether `e` reads a column outside any aggregate call."""
    if is_aggregate(e):
        return False
    if isinstance(e, ast.ColumnRef):
        return e.name not in WINDOW_COLUMNS
    return any(_loose_columns(c) for c in _children(e))


def _children(e: ast.Expr) -> list[ast.Expr]:
    out: list[ast.Expr] = []
    for value in vars(e).values():
        if isinstance(value, ast.Expr):
            out.append(value)
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, ast.Expr):
                    out.append(item)
                elif isinstance(item, tuple):
                    out += [x for x in item if isinstance(x, ast.Expr)]
    return out


def _check_functions_exist(exprs: list[ast.Expr]) -> None:
    for e in exprs:
        for x in walk(e):
            if isinstance(x, ast.FunctionCall):
                name = x.name.upper()
                if (
                    name not in AGGREGATES
                    and lookup(name) is None
                    and name not in ("IS_DISTINCT_FROM", "IS_NOT_DISTINCT_FROM")
                    and name not in ("TRANSFORM", "FILTER", "REDUCE")
                ):
                    raise error_at(x, f"Can't find any functions with the name '{name}'")


def _check_window_bounds(
    items: list[ast.SelectItem], group_by: tuple[ast.Expr, ...], having: ast.Expr | None
) -> None:
    """Refuse a window bound where a windowed aggregation cannot have it, in the order
    ksqlDB's AggregateAnalyzer looks: inside an aggregate call of the select list, then
    anywhere in GROUP BY, then anywhere in HAVING (the bounds exist only once the aggregate
    is computed, and only the SELECT clause reads the result's window)."""
    bounds = [x for i in items for call in walk(i.expr) if is_aggregate(call) for x in walk(call)]
    bounds += [x for g in group_by for x in walk(g)]
    bounds += walk(having) if having is not None else []
    for x in bounds:
        if isinstance(x, ast.ColumnRef) and x.name in WINDOW_COLUMNS:
            raise error_at(
                x,
                f"Window bounds column {x.name} can only be used in the SELECT clause of "
                "windowed aggregations and can not be passed to aggregate functions.\n"
                "See https://github.com/confluentinc/ksql/issues/4397",
            )


def _post_type(
    e: ast.Expr,
    post_scope: Scope,
    replaced: dict[ast.Expr, ScopeColumn],
    group_by: tuple[ast.Expr, ...],
) -> T.SqlType | None:
    """A select item's type after aggregation, or None when it cannot be typed there (it
    uses a column that is not grouped: refused later with its own message)."""
    try:
        return _compile_post(e, post_scope, replaced, group_by).type
    except HispeedError:
        return None


def _compile_post(
    e: ast.Expr,
    post_scope: Scope,
    replaced: dict[ast.Expr, ScopeColumn],
    group_by: tuple[ast.Expr, ...],
    clause: str = "SELECT",
) -> Compiled:
    # a column used outside an aggregate must be (part of) a GROUP BY expression
    for x in walk(e):
        if x in replaced:
            continue
        if isinstance(x, ast.ColumnRef) and not _inside_replaced(e, x, replaced):
            if clause == "HAVING":
                raise error_at(x, f"Non-aggregate HAVING expression not part of GROUP BY: {sql(x)}")
            raise error_at(
                x,
                f"Non-aggregate {clause} expression(s) not part of GROUP BY: {sql(e)}\n"
                "Either add the column(s) to the GROUP BY or remove them from the "
                f"{clause}.",
            )
    return compile_clause(e, post_scope, clause, replaced)


def _inside_replaced(
    root: ast.Expr, target: ast.Expr, replaced: dict[ast.Expr, ScopeColumn]
) -> bool:
    if root in replaced:
        return any(x is target for x in walk(root))
    for value in vars(root).values():
        children = (
            [value]
            if isinstance(value, ast.Expr)
            else [
                v
                for v in (value if isinstance(value, tuple) else ())
                for v in ((v,) if isinstance(v, ast.Expr) else v if isinstance(v, tuple) else ())
                if isinstance(v, ast.Expr)
            ]
        )
        for child in children:
            if any(x is target for x in walk(child)) and _inside_replaced(child, target, replaced):
                return True
    return False


def _aggregate_call(e: ast.FunctionCall, scope: Scope, index: int) -> AggregateCall:
    name = e.name.upper()
    spec = AGGREGATES[name]
    args = list(e.args)
    if e.star:
        args = []
    if spec.max_args is None:
        if len(args) < spec.min_args:
            raise error_at(e, f"{name} takes at least {spec.min_args} arguments, not {len(args)}")
    elif not spec.min_args <= len(args) <= spec.max_args:
        raise error_at(
            e, f"{name} takes {spec.min_args} to {spec.max_args} arguments, not {len(args)}"
        )
    values: list[Compiled] = []
    params: list[Any] = []
    types: list[T.SqlType] = []
    for i, a in enumerate(args):
        if i in spec.constant_args or i - len(args) in spec.constant_args:
            if not isinstance(a, ast.Literal):
                raise error_at(
                    a,
                    f"Parameter {i + 1} passed to function {name} must be a literal constant, "
                    f"but was expression: '{sql(a)}'",
                )
            params.append(a.value)
            continue
        for x in walk(a):
            if is_aggregate(x):
                inner = x.name if isinstance(x, ast.FunctionCall) else "?"
                raise error_at(x, f"aggregate functions cannot be nested ({inner} in {name})")
        c = compile_clause(a, scope, "SELECT")
        values.append(c)
        types.append(c.type or T.STRING)
    if name == "COUNT" and len(args) == 1 and isinstance(args[0], ast.Literal) and not e.distinct:
        values, types = [], []  # COUNT(1) counts rows
    try:
        logic = spec.make(types or [T.BIGINT], params)
        result_type = logic.result_type()
    except FunctionTypeError as err:
        raise error_at(e, str(err)) from None
    logic, values = _modifiers(e, scope, logic, values)
    return AggregateCall(spec, logic, values, ScopeColumn(f"$a{index}", result_type, f"$a{index}"))


def _modifiers(
    e: ast.FunctionCall, scope: Scope, logic: Aggregate, values: list[Compiled]
) -> tuple[Aggregate, list[Compiled]]:
    """The call's DISTINCT and FILTER (WHERE ...) around its logic (past ksqlDB:
    functions/aggregate_modifiers.py); the filter's condition becomes the first value."""
    name = e.name.upper()
    if e.distinct:
        if len(values) != 1 or logic.params:
            raise error_at(e, f"{name}(DISTINCT ...) takes one column or expression")
        logic = distinct(logic)
    if e.filter is None:
        return logic, values
    for x in walk(e.filter):
        if is_aggregate(x):
            raise error_at(x, f"FILTER (WHERE ...) of {name} cannot call an aggregate function")
    condition = compile_clause(e.filter, scope, "FILTER")
    if condition.type is not None and condition.type.name != "BOOLEAN":
        raise error_at(
            e.filter,
            f"FILTER (WHERE ...) of {name} must be a condition (BOOLEAN), not "
            f"{condition.type}: {sql(e.filter)}",
        )
    return Filtered(logic), [condition, *values]
