"""Plan a query: resolve its source, type its expressions and decide its output schema.

The plan is what a query task runs. Planning does every check that can fail before any
record flows, so a bad query is refused with a message that says what and where.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hispeed.catalog import Catalog, Source, WindowInfo
from hispeed.errors import HispeedError, SqlError
from hispeed.formats.base import Column
from hispeed.functions.aggregates import AGGREGATES, Aggregate, AggregateSpec, Max
from hispeed.functions.registry import FunctionTypeError
from hispeed.ops.expressions import Compiled, Scope, ScopeColumn, compile_expr
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql

if TYPE_CHECKING:
    from hispeed.plan.joins import JoinPlan

PSEUDO_COLUMNS = {"ROWTIME": T.BIGINT, "ROWPARTITION": T.INTEGER, "ROWOFFSET": T.BIGINT}
WINDOW_COLUMNS = {"WINDOWSTART": T.BIGINT, "WINDOWEND": T.BIGINT}
DEFAULT_GRACE_MS = 24 * 3600 * 1000


class UnsupportedError(HispeedError):
    """A query shape hispeed does not run yet: the message says which."""


def field_name(label: str, name: str) -> str:
    return f"{label}.{name}"


@dataclass
class AggregateCall:
    spec: AggregateSpec
    logic: Aggregate
    args: list[Compiled]  # the per-record value arguments
    column: ScopeColumn  # where the result sits after aggregation


@dataclass
class AggregationPlan:
    group_exprs: list[Compiled]
    group_columns: list[ScopeColumn]
    calls: list[AggregateCall]
    window: ast.WindowSpec | None
    grace_ms: int
    post_scope: Scope
    #: each aggregate's row time (the newest record time it has seen), kept beside the
    #: calls' states; no select item reads it
    row_time: AggregateCall
    #: per GROUP BY expression, the column it names when it is a plain column reference
    group_names: list[str | None] = dataclasses.field(default_factory=list)

    @property
    def state_calls(self) -> list[AggregateCall]:
        """The calls whose states the aggregation keeps: the query's, then `row_time`."""
        return [*self.calls, self.row_time]


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


@dataclass
class OutputColumn:
    name: str
    type: T.SqlType
    expr: Compiled


@dataclass(frozen=True)
class TableCall(ScopeColumn):
    """A table function in the select list: the column of its values, and how to get them."""

    function: Any = None  # functions.tables.TableFunction
    args: tuple[Compiled, ...] = ()
    arg_types: tuple[T.SqlType, ...] = ()


@dataclass
class QueryPlan:
    source: Source
    label: str
    scope: Scope
    where: Compiled | None
    key: list[OutputColumn]
    value: list[OutputColumn]
    aggregation: AggregationPlan | None = None
    having: Compiled | None = None
    sink_kind: str = "STREAM"
    #: PARTITION BY: the key is recomputed; the output goes to the partition of the new key
    repartition: bool = False
    limit: int | None = None
    emit: str | None = None
    window_info: WindowInfo | None = None
    notes: list[str] = field(default_factory=list)
    #: every output column in the order of the select list
    outputs: list[OutputColumn] = field(default_factory=list)
    #: a join's sides and steps: the query reads every side and runs over the joined rows
    join: JoinPlan | None = None
    #: table functions (EXPLODE...): each row becomes as many rows as they give values
    table_functions: list[TableCall] = field(default_factory=list)

    @property
    def key_columns(self) -> list[Column]:
        return [Column(c.name, c.type) for c in self.key]

    @property
    def value_columns(self) -> list[Column]:
        return [Column(c.name, c.type) for c in self.value]


def source_scope(source: Source, label: str) -> Scope:
    cols = [ScopeColumn(c.name, c.type, field_name(label, c.name), label) for c in source.columns]
    cols += [ScopeColumn(n, t, field_name(label, n), label) for n, t in PSEUDO_COLUMNS.items()]
    if source.window is not None:
        cols += [ScopeColumn(n, t, field_name(label, n), label) for n, t in WINDOW_COLUMNS.items()]
    return Scope(cols)


def _err(node: Any, message: str) -> SqlError:
    line, col = getattr(node, "pos", (1, 1))
    return SqlError(message, line or 1, col or 1)


def _walk(e: ast.Expr) -> list[ast.Expr]:
    """e and every expression inside it, parents first."""
    out = [e]
    for value in vars(e).values():
        if isinstance(value, ast.Expr):
            out += _walk(value)
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, ast.Expr):
                    out += _walk(item)
                elif isinstance(item, tuple):
                    out += [x for sub in item if isinstance(sub, ast.Expr) for x in _walk(sub)]
    return out


def _is_aggregate(e: ast.Expr) -> bool:
    return isinstance(e, ast.FunctionCall) and e.name.upper() in AGGREGATES


def default_name(e: ast.Expr) -> str | None:
    """The column name an unaliased select item gets, or None for a generated KSQL_COL_n."""
    if isinstance(e, ast.ColumnRef):
        return e.name
    if isinstance(e, ast.Dereference):
        return e.field
    return None


def plan_select(
    select: ast.Select,
    catalog: Catalog,
    sink_kind: str | None = None,
    sink_name: str | None = None,
) -> QueryPlan:
    if select.limit is not None and select.limit < 0 and select.emit is not None:
        raise _err(select, f"LIMIT must be a number of rows, not {select.limit}")
    plan = _plan_select(select, catalog, sink_kind, sink_name)
    replaced = plan.scope.replaced
    plan.table_functions = [c for c in replaced.values() if isinstance(c, TableCall)]
    return plan


def _plan_select(
    select: ast.Select,
    catalog: Catalog,
    sink_kind: str | None = None,
    sink_name: str | None = None,
) -> QueryPlan:
    if isinstance(select.from_, ast.Join):
        return _plan_join(select, catalog, sink_kind, sink_name)
    assert isinstance(select.from_, ast.SourceRef)
    ref = select.from_
    line, col = ref.pos
    source = catalog.get(ref.name, line=line or 1, column=col or 1)
    label = ref.label
    scope = source_scope(source, label)
    written_group_by = select.group_by
    select = _unqualify(select, label, source)
    where = _where(select, scope)
    items = _struct_stars(_expand(select, source, label, transient=sink_kind is None), scope)
    has_aggregates = any(_is_aggregate(x) for item in items for x in _walk(item.expr)) or (
        select.having is not None
    )
    _table_calls(items, source, scope, has_aggregates or bool(select.group_by))
    if select.window is not None and not select.group_by:
        raise _err(select.window, "WINDOW clause requires a GROUP BY clause.")
    _check_reserved_names(
        items, sink_kind, windowed=select.window is not None or source.window is not None
    )
    if select.group_by or has_aggregates:
        if select.partition_by:
            raise _err(select.partition_by[0], "PARTITION BY cannot be used with GROUP BY")
        return _plan_aggregate(
            select, source, label, scope, where, items, sink_kind, sink_name, written_group_by
        )
    if select.having is not None:
        raise _err(select.having, "HAVING needs GROUP BY")

    names = _output_names(items, scope)
    outputs = []
    for item, name in zip(items, names, strict=True):
        compiled = _compile(item.expr, scope, "SELECT")
        outputs.append(OutputColumn(name, compiled.type or T.STRING, compiled))
    kind = sink_kind or source.kind
    if select.partition_by:
        if source.kind == "TABLE":
            raise _err(
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
        raise _err(select, _key_missing(sink_name, "key column", key_names))
    if sink_kind is not None:
        for name, out in keyed.items():
            again = [
                o.name
                for item, o in zip(items, outputs, strict=True)
                if o is not out and isinstance(item.expr, ast.ColumnRef) and item.expr.name == name
            ]
            if again:
                raise _err(
                    select,
                    f"The projection contains a key column (`{name}`) more than once, aliased "
                    f"as: {out.name} and {' and '.join(again)}.",
                )
    key = [keyed[n] for n in key_names if n in keyed]
    _check_value_columns(select, value, sink_kind)
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
    return QueryPlan(
        source,
        label,
        scope,
        where,
        key,
        value,
        sink_kind=kind,
        repartition=repartition,
        limit=select.limit,
        emit=select.emit,
        window_info=source.window,
        outputs=outputs,
        join=join,
    )


def _where(select: ast.Select, scope: Scope) -> Compiled | None:
    if select.where is None:
        return None
    for e in _walk(select.where):
        if _is_aggregate(e):
            raise _err(e, "aggregate functions are not allowed in WHERE; use HAVING")
    where = _compile(select.where, scope, "WHERE")
    if where.type is not None and where.type.name != "BOOLEAN":
        raise _err(
            select.where,
            f"Type error in WHERE expression: Should evaluate to boolean but is "
            f"{sql(select.where)} ({where.type}) instead.",
        )
    return where


def _plan_join(
    select: ast.Select, catalog: Catalog, sink_kind: str | None, sink_name: str | None
) -> QueryPlan:
    """A query over a join: the clauses run over the joined rows (plan/joins.py)."""
    from hispeed.plan import joins

    assert isinstance(select.from_, ast.Join)
    join, scope, source = joins.plan_relation(select.from_, catalog, _compile, _err)
    label = joins.LABEL
    where = _where(select, scope)
    items = _struct_stars(joins.expand_items(select, join, _err), scope)
    select = dataclasses.replace(select, items=tuple(items))
    has_aggregates = any(_is_aggregate(x) for item in items for x in _walk(item.expr))
    _table_calls(items, source, scope, has_aggregates or bool(select.group_by))
    if select.window is not None and not select.group_by:
        raise _err(select.window, "WINDOW clause requires a GROUP BY clause.")
    _check_reserved_names(items, sink_kind, windowed=select.window is not None, join=True)
    if select.group_by or has_aggregates or select.having is not None:
        if select.partition_by:
            raise _err(select.partition_by[0], "PARTITION BY cannot be used with GROUP BY")
        plan = _plan_aggregate(
            select, source, label, scope, where, items, sink_kind, sink_name, select.group_by
        )
        plan.join = join
        return plan
    kind = sink_kind or source.kind
    if select.partition_by:
        parts = _partition_key(select, source, label, scope, items, sink_name)
        return _stateless_plan(
            select, source, label, scope, where, parts, kind, repartition=True, join=join
        )
    names = _output_names(items, scope)
    outputs = [_output(item, name, scope) for item, name in zip(items, names, strict=True)]
    at = joins.key_items(items, join, scope)
    key: list[OutputColumn] = []
    if sink_kind is not None:
        problem = joins.check_key(items, names, at, join, scope, sink_name)
        if problem is not None:
            raise _err(select, problem)
        if join.steps[0].foreign_key and len(at) > 1:
            key = [outputs[i] for i in at]  # a multi-column left key: its own columns
        else:
            # the key is the join's: the other side's when this side is missing from an
            # outer join
            key = [dataclasses.replace(outputs[at[0]], expr=joins.result_key(scope, join))]
            outputs[at[0]] = key[0]
    value = [o for i, o in enumerate(outputs) if not (key and i in at)]
    _check_value_columns(select, value, sink_kind)
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
                raise _err(
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
        base = _compile(e.base, scope, "SELECT")
        if base.type is None or base.type.name != "STRUCT":
            raise _err(e, f"{sql(e.base)} is not a STRUCT: `->*` needs one")
        out += [
            ast.SelectItem(ast.Dereference(e.base, name, pos=e.pos), name, pos=item.pos)
            for name, _ in base.type.fields
        ]
    return out


def _output_names(items: list[ast.SelectItem], scope: Scope | None = None) -> list[str]:
    """The select items' column names (KSQL_COL_n for unnamed expressions); two items of one
    name are an error, naming the column's type when `scope` can type it, as ksqlDB does."""
    names: list[str | None] = [i.alias or default_name(i.expr) for i in items]
    taken = {n for n in names if n is not None}
    counter = 0
    out = []
    for name in names:
        if name is None:
            while f"KSQL_COL_{counter}" in taken:
                counter += 1
            name = f"KSQL_COL_{counter}"
            counter += 1
        out.append(name)
    seen: set[str] = set()
    for item, name in zip(items, out, strict=True):
        if name in seen:
            column = f"`{name}`"
            typed = _type_of(item.expr, scope) if scope is not None else None
            if typed is not None:
                column += f" {typed}"
            raise _err(
                item,
                f"Duplicate value columns found in schema: {column}; give one of "
                f"them another name with AS",
            )
        seen.add(name)
    return out


def _type_of(expr: ast.Expr, scope: Scope) -> T.SqlType | None:
    """The expression's type in `scope`, or None if it does not compile there (an aggregate
    call in a GROUP BY's select list)."""
    try:
        return _compile(expr, scope, "SELECT").type
    except HispeedError:
        return None


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
        raise _err(nulls[0], "Cannot PARTITION BY multiple columns including NULL")
    compiled = [_compile(e, scope, "PARTITION BY") for e in exprs if e not in nulls]
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
        names = _output_names(items)
        outputs = [_output(item, name, scope) for item, name in zip(items, names, strict=True)]
        return [], outputs, outputs
    used: dict[int, int] = {}  # partition expression -> select item
    for i, e in enumerate(exprs):
        match = next(
            (j for j, item in enumerate(items) if j not in used.values() and item.expr == e), None
        )
        if match is not None:
            used[i] = match
    missing = [e for i, e in enumerate(exprs) if i not in used]
    if missing and not starred:
        shown = [sql(_qualify(e, source.name)) for e in exprs]  # ksqlDB lists them all
        raise _err(select, _key_missing(sink_name, "partitioning expression", shown))
    extra = [ast.SelectItem(e) for e in missing]
    names = _output_names(items + extra)
    outputs = [_output(item, name, scope) for item, name in zip(items, names, strict=False)]
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


def _table_calls(
    items: list[ast.SelectItem], source: Source, scope: Scope, aggregated: bool
) -> None:
    """Find the table functions of the select list; their calls are replaced by columns
    (`scope.replaced` maps each call to a `TableCall`, a ScopeColumn of the value)."""
    from hispeed.functions.tables import lookup_table

    calls = [
        x
        for item in items
        for x in _walk(item.expr)
        if isinstance(x, ast.FunctionCall) and lookup_table(x.name) is not None
    ]
    if not calls:
        return
    if aggregated:
        raise _err(calls[0], "Table functions cannot be used with aggregations.")
    if source.kind == "TABLE":
        raise _err(calls[0], "Table source is not supported with table functions")
    for call in calls:
        if call in scope.replaced:
            continue  # the same call twice: one column
        fn = lookup_table(call.name)
        assert fn is not None
        args = [_compile(a, scope, "SELECT") for a in call.args]
        types = [a.type or T.STRING for a in args]
        try:
            out = fn.resolve(types)
        except FunctionTypeError as e:
            raise _err(call, str(e)) from None
        n = len(scope.replaced)
        scope.replaced[call] = TableCall(
            f"$t{n}", out, f"$t{n}", None, fn, tuple(args), tuple(types)
        )


def _output(item: ast.SelectItem, name: str, scope: Scope) -> OutputColumn:
    compiled = _compile(item.expr, scope, "SELECT")
    return OutputColumn(name, compiled.type or T.STRING, compiled)


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


def _plan_aggregate(
    select: ast.Select,
    source: Source,
    label: str,
    scope: Scope,
    where: Compiled | None,
    items: list[ast.SelectItem],
    sink_kind: str | None,
    sink_name: str | None,
    written_group_by: tuple[ast.Expr, ...],
) -> QueryPlan:
    _check_functions_exist([i.expr for i in items] + ([select.having] if select.having else []))
    for e in [i.expr for i in items] + ([select.having] if select.having else []):
        for x in _walk(e):
            if _is_aggregate(x):
                assert isinstance(x, ast.FunctionCall)
                for arg in x.args:
                    if any(_is_aggregate(y) for y in _walk(arg)):
                        raise _err(x, f"Aggregate functions can not be nested: {sql(x)}")
    for g in select.group_by:
        bad = next((x for x in _walk(g) if _is_aggregate(x)), None)
        if isinstance(bad, ast.FunctionCall):
            raise _err(
                g,
                f"GROUP BY does not support aggregate functions: {bad.name} is an "
                "aggregate function.",
            )
    has_aggregates = any(
        _is_aggregate(x)
        for e in [i.expr for i in items] + ([select.having] if select.having else [])
        for x in _walk(e)
    )
    if select.group_by and not has_aggregates:
        raise _err(
            select, "GROUP BY requires aggregate functions in either the SELECT or HAVING clause."
        )
    if not select.group_by:
        loose = [sql(i.expr) for i in items if _loose_columns(i.expr)]
        if loose:
            raise _err(
                select,
                "Non-aggregate SELECT expression(s) not part of GROUP BY: " + ", ".join(loose),
            )
        first = next(x for item in items for x in _walk(item.expr) if _is_aggregate(x))
        assert isinstance(first, ast.FunctionCall)
        shown = f"{first.name}(ROWTIME)" if first.star else sql(first)
        if sink_kind is not None:
            raise _err(
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
            raise _err(g, f"Duplicate GROUP BY expression: {sql(original)}")
        seen_groups.append(g)
    group_exprs = [_compile(g, scope, "GROUP BY") for g in select.group_by]
    for g, c in zip(select.group_by, group_exprs, strict=True):
        if c.type is None:
            raise _err(g, "GROUP BY NULL is not allowed")
        if any(_is_aggregate(x) for x in _walk(g)):
            raise _err(g, "GROUP BY cannot contain aggregate functions")
    group_columns = [
        ScopeColumn(f"$g{i}", c.type or T.STRING, f"$g{i}") for i, c in enumerate(group_exprs)
    ]
    replaced: dict[ast.Expr, ScopeColumn] = {
        g: gc for g, gc in zip(select.group_by, group_columns, strict=True)
    }
    calls: list[AggregateCall] = []
    exprs = [i.expr for i in items] + ([select.having] if select.having is not None else [])
    for e in exprs:
        for x in _walk(e):
            if _is_aggregate(x) and x not in replaced:
                assert isinstance(x, ast.FunctionCall)
                call = _aggregate_call(x, scope, len(calls))
                calls.append(call)
                replaced[x] = call.column
    window_cols: list[ScopeColumn] = []
    if select.window is not None:
        window_cols = [ScopeColumn(n, T.BIGINT, f"${n}") for n in WINDOW_COLUMNS]
        for wc in window_cols:
            replaced[ast.ColumnRef(wc.name)] = wc
    post_scope = Scope([*group_columns, *(c.column for c in calls), *window_cols])
    names = _output_names(items)
    offending = [
        sql(i.expr)
        for i in items
        if any(
            isinstance(x, ast.ColumnRef)
            and x not in replaced
            and not _inside_replaced(i.expr, x, replaced)
            for x in _walk(i.expr)
        )
    ]
    if offending:
        raise _err(
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
            raise _err(select.having, f"HAVING needs a BOOLEAN expression, not {having.type}")
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
    if missing and sink_kind is not None:  # a push query need not select its key
        raise _err(select, _key_missing(sink_name, "grouping expression", missing))
    for i, item in enumerate(items):
        if i in used:
            continue
        twin = next((j for j in used if items[j].expr == item.expr), None)
        if twin is not None:
            raise _err(
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
            raise _err(
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
    _check_value_columns(select, value, sink_kind)
    window = select.window
    if select.emit == "FINAL" and window is None:
        raise _err(select, "EMIT FINAL is only supported for windowed aggregations.")
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


_PREFIXES = {
    "WHERE": "Error in WHERE expression: ",
    "HAVING": "Error in HAVING expression: ",
    "SELECT": "Invalid Select: ",
}


def _compile(
    e: ast.Expr,
    scope: Scope,
    clause: str,
    replaced: dict[ast.Expr, ScopeColumn] | None = None,
) -> Compiled:
    """Compile an expression of one clause; its errors say which clause, as ksqlDB's do."""
    saved = scope.clause
    scope.clause = clause
    try:
        return compile_expr(e, scope, replaced)
    except SqlError as err:
        raise SqlError(_PREFIXES.get(clause, "") + err.reason, err.line, err.column) from None
    finally:
        scope.clause = saved


def _check_reserved_names(
    items: list[ast.SelectItem], sink_kind: str | None, *, windowed: bool, join: bool = False
) -> None:
    if sink_kind is None:
        return
    for item in items:
        name = item.alias or default_name(item.expr)
        reserved = set(PSEUDO_COLUMNS) | (set() if windowed else set(WINDOW_COLUMNS))
        if item.alias is not None and item.alias in reserved and not join:
            raise _err(
                item,
                f"`{item.alias}` is a reserved column name. You cannot use it as an alias for a "
                "column.",
            )
        if name in reserved:
            raise _err(
                item,
                f"Reserved column name in select: `{name}`. Please remove or alias the column.",
            )


def _loose_columns(e: ast.Expr) -> bool:
    """Whether `e` reads a column outside any aggregate call."""
    if _is_aggregate(e):
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
    from hispeed.functions.registry import lookup

    for e in exprs:
        for x in _walk(e):
            if isinstance(x, ast.FunctionCall):
                name = x.name.upper()
                if (
                    name not in AGGREGATES
                    and lookup(name) is None
                    and name not in ("IS_DISTINCT_FROM", "IS_NOT_DISTINCT_FROM")
                    and name not in ("TRANSFORM", "FILTER", "REDUCE")
                ):
                    raise _err(x, f"Can't find any functions with the name '{name}'")


def _key_missing(sink: str | None, what: str, names: list[str]) -> str:
    built = f"`{sink}`" if sink else "the result"
    if len(names) == 1:
        listed, plural = names[0], ""
    else:
        listed, plural = ", ".join(names[:-1]) + " and " + names[-1], "s"
    return (
        f"Key missing from projection (ie, SELECT). The query used to build {built} must "
        f"include the {what}{plural} {listed} in its projection (eg, SELECT "
        f"{', '.join(names)}...)."
    )


def _check_value_columns(select: ast.Select, value: list[OutputColumn], sink: str | None) -> None:
    if not value and sink is not None:
        raise _err(select, "The projection contains no value columns.")


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


def _compile_post(
    e: ast.Expr,
    post_scope: Scope,
    replaced: dict[ast.Expr, ScopeColumn],
    group_by: tuple[ast.Expr, ...],
    clause: str = "SELECT",
) -> Compiled:
    # a column used outside an aggregate must be (part of) a GROUP BY expression
    for x in _walk(e):
        if x in replaced:
            continue
        if isinstance(x, ast.ColumnRef) and not _inside_replaced(e, x, replaced):
            if clause == "HAVING":
                raise _err(x, f"Non-aggregate HAVING expression not part of GROUP BY: {sql(x)}")
            raise _err(
                x,
                f"Non-aggregate {clause} expression(s) not part of GROUP BY: {sql(e)}\n"
                "Either add the column(s) to the GROUP BY or remove them from the "
                f"{clause}.",
            )
    return _compile(e, post_scope, clause, replaced)


def _inside_replaced(
    root: ast.Expr, target: ast.Expr, replaced: dict[ast.Expr, ScopeColumn]
) -> bool:
    if root in replaced:
        return any(x is target for x in _walk(root))
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
            if any(x is target for x in _walk(child)) and _inside_replaced(child, target, replaced):
                return True
    return False


def _aggregate_call(e: ast.FunctionCall, scope: Scope, index: int) -> AggregateCall:
    name = e.name.upper()
    spec = AGGREGATES[name]
    args = list(e.args)
    if e.star:
        args = []
    if not spec.min_args <= len(args) <= spec.max_args:
        raise _err(e, f"{name} takes {spec.min_args} to {spec.max_args} arguments, not {len(args)}")
    values: list[Compiled] = []
    params: list[Any] = []
    types: list[T.SqlType] = []
    for i, a in enumerate(args):
        if i in spec.constant_args:
            if not isinstance(a, ast.Literal):
                raise _err(
                    a,
                    f"Parameter {i + 1} passed to function {name} must be a literal constant, "
                    f"but was expression: '{sql(a)}'",
                )
            params.append(a.value)
            continue
        for x in _walk(a):
            if _is_aggregate(x):
                inner = x.name if isinstance(x, ast.FunctionCall) else "?"
                raise _err(x, f"aggregate functions cannot be nested ({inner} in {name})")
        c = _compile(a, scope, "SELECT")
        values.append(c)
        types.append(c.type or T.STRING)
    if name == "COUNT" and len(args) == 1 and isinstance(args[0], ast.Literal):
        values, types = [], []  # COUNT(1) counts rows
    try:
        logic = spec.make(types or [T.BIGINT], params)
        result_type = logic.result_type()
    except FunctionTypeError as err:
        raise _err(e, str(err)) from None
    return AggregateCall(spec, logic, values, ScopeColumn(f"$a{index}", result_type, f"$a{index}"))
