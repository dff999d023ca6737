"""Plan Top-N and deduplication: `ROW_NUMBER() OVER (...)` in a subquery bounded by its rank.

ksqlDB has no window functions (confluentinc/ksql#4750, #4903, #9386); hispeed runs the two
shapes Flink SQL maintains incrementally over an unbounded input:

    SELECT * FROM (
      SELECT auction, bidder, price,
             ROW_NUMBER() OVER (PARTITION BY auction ORDER BY price DESC) AS rn
      FROM bid) WHERE rn <= 10                        -- Top-N: the 10 highest per auction
    ... ORDER BY dateTime ASC) WHERE rn = 1           -- deduplication: the first row
    ... ORDER BY dateTime DESC) WHERE rn = 1          -- deduplication: the latest row

The result is a table keyed by the PARTITION BY columns and the rank (ops/topn.py keeps it
up to date: each change of a rank is an upsert of its key, a rank left empty a tombstone);
deduplication's (`rn = 1`) by the PARTITION BY columns alone, as Flink's unique key is: its
rank, always 1, is a value where it is selected.
RANK() and DENSE_RANK() rank a table's rows: tied rows share a rank, so their result is keyed
by the PARTITION BY columns and the input table's key, the rank a value.
Every other use of ROW_NUMBER is refused here with what is supported.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hispeed.catalog import Catalog, Source
from hispeed.errors import SqlError
from hispeed.expr.scope import Compiled, Scope, ScopeColumn
from hispeed.plan import joins
from hispeed.plan.columns import output_names
from hispeed.plan.lag import ROW_BY_ROW
from hispeed.plan.model import (
    LABEL,
    ROW_WINDOW_END,
    JoinPlan,
    OutputColumn,
    QueryPlan,
    RankingPlan,
    RowWindows,
    field_name,
)
from hispeed.plan.scope import (
    compile_clause,
    default_name,
    error_at,
    leftmost,
    ordered_clause,
    source_scope,
    walk,
)
from hispeed.plan.window_tvf import ranked_rows, session_rows, session_scope
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql
from hispeed.sql.windows import ENDS_IN_KEY

#: the shape that is supported, for the messages
SHAPE = (
    "SELECT * FROM (SELECT ..., ROW_NUMBER() OVER (PARTITION BY k ORDER BY v DESC) AS rn "
    "FROM s) WHERE rn <= N (Top-N), or ... WHERE rn = 1 (deduplication)"
)
RANKING = ("ROW_NUMBER", "RANK", "DENSE_RANK")


def _unavailable(*_: Any) -> Any:
    raise AssertionError("the rank column is the Top-N operator's, not computed from the frame")


def over_calls(select: ast.Select) -> list[ast.OverCall]:
    """The OVER calls anywhere in a query's own clauses (not its subquery's)."""
    exprs: list[ast.Expr] = [i.expr for i in select.items if isinstance(i, ast.SelectItem)]
    exprs += [e for e in (select.where, select.having) if e is not None]
    exprs += [*select.group_by, *select.partition_by]
    return [x for e in exprs for x in walk(e) if isinstance(x, ast.OverCall)]


def refuse_over(select: ast.Select, lag: bool = False) -> None:
    """A query without a subquery: ROW_NUMBER there is refused, saying what is supported;
    `lag`: LAG in the select list is left to plan/lag.py (a query over one stream)."""
    items = {
        id(x)
        for i in select.items
        if isinstance(i, ast.SelectItem)
        for x in walk(i.expr)
        if isinstance(x, ast.OverCall) and x.name in ROW_BY_ROW
    }
    calls = [c for c in over_calls(select) if not (lag and id(c) in items)]
    if not calls:
        return
    call = calls[0]
    if call.name in RANKING:
        raise error_at(
            call,
            f"{call.name}() OVER (...) is supported in a subquery whose rank the outer query "
            f"bounds: {SHAPE}",
        )
    raise error_at(
        call,
        f"{call.name}(...) OVER (...) is not supported here: the window functions are "
        f"ROW_NUMBER() for Top-N and deduplication ({SHAPE}), and LAG and AVG, SUM, COUNT, "
        "MIN, MAX over ROWS or RANGE frames in the select list of a query over one stream",
    )


def plan_subquery(
    select: ast.Select, catalog: Catalog, sink_kind: str | None, sink_name: str | None
) -> QueryPlan:
    """The plan of a query over `(SELECT ..., ROW_NUMBER() OVER (...) AS rn FROM s)`."""
    sub = select.from_
    assert isinstance(sub, ast.Subquery)
    inner = sub.query
    over, at = _the_over_call(sub)
    windowed: tuple[Source, ast.Expr] | None = None
    row_windows: RowWindows | None = None
    #: PARTITION BY as the user wrote it, for messages (a window TVF's columns are rewritten)
    written = over.partition_by
    tvf_select = inner  # SESSION's rows are held until their session closes
    if isinstance(inner.from_, ast.WindowTvf):
        # window Top-N and deduplication over a window table function's rows
        inner, tvf_source, window_end, row_windows = ranked_rows(inner, over, catalog)
        windowed = (tvf_source, window_end)
        over, at = _the_over_call(dataclasses.replace(sub, query=inner))
    _check_clauses(select, inner, over, sink_kind is not None)
    if sink_kind == "STREAM":
        raise error_at(
            select,
            "a Top-N or deduplication result changes as rows enter and leave it: create it "
            "with CREATE TABLE ... AS SELECT, not as a STREAM",
        )
    join: JoinPlan | None = None
    scope: Scope
    if isinstance(inner.from_, ast.Join):
        # over a join's rows (Nexmark q9: each auction's winning bid among those it joins)
        join, scope, source = joins.plan_relation(
            inner.from_, catalog, compile_clause, error_at, inner.where
        )
        inner = joins.with_filter(inner, join)
        if join.kind != "STREAM":
            raise error_at(
                inner.from_, f"ROW_NUMBER() over a join of tables is not supported: {SHAPE}"
            )
        label = LABEL
        before = joins.expand_items(
            dataclasses.replace(inner, items=inner.items[:at]), join, error_at
        )
        after = joins.expand_items(
            dataclasses.replace(inner, items=inner.items[at + 1 :]), join, error_at
        )
        items: list[ast.SelectItem | None] = [*before, None, *after]
    else:
        ref = inner.from_
        assert isinstance(ref, ast.SourceRef)
        if windowed is not None:
            source = windowed[0]  # its event time the DESCRIPTOR's column
        else:
            source = catalog.get(ref.name, line=ref.pos[0] or 1, column=ref.pos[1] or 1)
        label = ref.label
        scope = source_scope(source, label)
        if row_windows is not None:
            # the window end the operator gives each copy of a HOP's or CUMULATE's row
            end = ScopeColumn(ROW_WINDOW_END, T.BIGINT, field_name(label, ROW_WINDOW_END), label)
            scope = Scope([*scope.columns, end])
        session_scope(tvf_select, scope, label)
        # the subquery's columns by name: their expressions over the source (None: the rank)
        items = _expand(inner, source, label, at)
    rank_name = inner.items[at].alias  # type: ignore[union-attr]
    assert rank_name is not None
    limit = _limit(select.where, rank_name, sub.alias, select)
    names = output_names([i for i in items if i is not None], scope)
    named = iter(names)
    columns: dict[str, ast.Expr | None] = {}
    order: list[str] = []
    for item in items:
        name = rank_name if item is None else next(named)
        columns[name] = None if item is None else _unqualified(item.expr, label, source.name)
        order.append(name)
    outputs, rank_index = _outputs(select, sub, columns, order, scope)
    partition = [_unqualified(e, label, source.name) for e in over.partition_by]
    key_at: list[int] = []
    for e, user in zip(partition, written, strict=True):
        found = next(
            (
                i
                for i, o in enumerate(_exprs(select, sub, columns, order))
                if o == e and i not in key_at
            ),
            None,
        )
        if found is None:
            raise error_at(
                user,
                f"the PARTITION BY expressions are the result's key: select {sql(user)} in the "
                "outer query",
            )
        key_at.append(found)
    if over.name != "ROW_NUMBER":
        # tied rows share a rank: the rank is no key, the input table's key tells them apart
        if source.kind != "TABLE" or join is not None:
            raise error_at(
                over,
                f"{over.name}() ranks a table's rows: tied rows share a rank, so the result is "
                "keyed by the PARTITION BY columns and the input table's key, which a stream's "
                f"rows do not have; over a stream use ROW_NUMBER() (ties by arrival): {SHAPE}",
            )
        exprs = _exprs(select, sub, columns, order)
        for c in source.key_columns:
            e = ast.ColumnRef(c.name)
            if any(exprs[i] == e for i in key_at):
                continue  # a PARTITION BY column already
            found = next(
                (i for i, o in enumerate(exprs) if o == e and i not in key_at),
                None,
            )
            if found is None:
                raise error_at(
                    over,
                    f"{over.name}()'s result is keyed by the PARTITION BY columns and the "
                    f"input table's key: select {sql(e)} in the outer query",
                )
            key_at.append(found)
    elif rank_index is not None and limit > 1:
        key_at.append(rank_index)
    elif limit > 1:
        raise error_at(
            select,
            f"select the rank ({rank_name}) in the outer query: a Top-N result is keyed by "
            "the PARTITION BY columns and the rank (only rn = 1 may leave it out)",
        )
    key = [outputs[i] for i in key_at]
    value = [o for i, o in enumerate(outputs) if i not in key_at]
    if not value and sink_kind is not None:
        raise error_at(select, "The projection contains no value columns.")
    where = None
    if inner.where is not None:
        where = compile_clause(_unqualified(inner.where, label, source.name), scope, "WHERE")
        if where.type is not None and where.type.name != "BOOLEAN":
            raise error_at(inner.where, f"WHERE must be a condition, not a {where.type}")
    ranking = RankingPlan(
        over.name,
        [ordered_clause(e, scope, "PARTITION BY") for e in partition],
        [
            (ordered_clause(_unqualified(e, label, source.name), scope, "ORDER BY"), desc)
            for e, desc in over.order_by
        ],
        limit,
        rank_index,
        [
            compile_clause(ast.ColumnRef(c), scope, "SELECT")
            for c in [c.name for c in source.key_columns] + _window_key(source)
        ]
        if source.kind == "TABLE"
        else None,
        window_end=None if windowed is None else compile_clause(windowed[1], scope, "PARTITION BY"),
        row_windows=row_windows,
        keep_last=source.kind != "TABLE"
        and windowed is None
        and limit == 1
        and _by_time_descending(over, source),
    )
    plan = QueryPlan(
        source,
        label,
        scope,
        where,
        key,
        value,
        sink_kind="TABLE",
        emit=select.emit,
        outputs=outputs,
        ranking=ranking,
        notes=[f"{over.name} Top-{limit} per partition" + (" per window" if windowed else "")],
        join=join,
    )
    session_rows(tvf_select, plan)  # over SESSION's rows: ranked once their session closes
    return plan


def _window_key(source: Any) -> list[str]:
    """A windowed table's rows are keyed by its key and their window (window Top-N: ranking
    a window aggregation's rows, PARTITION BY window_start, window_end)."""
    if source.window is None:
        return []
    return (
        ["WINDOWSTART"] if source.window.kind not in ENDS_IN_KEY else ["WINDOWSTART", "WINDOWEND"]
    )


def _the_over_call(sub: ast.Subquery) -> tuple[ast.OverCall, int]:
    """The subquery's one `ROW_NUMBER() OVER (...) AS rn` item, and its index."""
    inner = sub.query
    found: list[tuple[ast.OverCall, int]] = []
    for i, item in enumerate(inner.items):
        if not isinstance(item, ast.SelectItem):
            continue
        for x in walk(item.expr):
            if isinstance(x, ast.OverCall):
                if x is not item.expr:
                    raise error_at(x, f"{x.name}() OVER (...) must be a select item of its own")
                found.append((x, i))
    nested = [x for e in (inner.where, inner.having) if e for x in walk(e)]
    nested += [x for e in (*inner.group_by, *inner.partition_by) for x in walk(e)]
    bad = next((x for x in nested if isinstance(x, ast.OverCall)), None)
    if bad is not None:
        raise error_at(bad, f"{bad.name}() OVER (...) is for the select list only")
    if not found:
        raise error_at(
            sub, f"a subquery in FROM is supported for Top-N and deduplication only: {SHAPE}"
        )
    if len(found) > 1:
        raise error_at(found[1][0], f"one ROW_NUMBER() per subquery is supported: {SHAPE}")
    over, at = found[0]
    if over.name not in RANKING:
        raise error_at(
            over,
            f"{over.name}(...) OVER (...) in a subquery is not supported; ROW_NUMBER() is: {SHAPE}",
        )
    if over.args:
        raise error_at(over, f"{over.name}() takes no arguments")
    if not over.order_by:
        raise error_at(
            over, f"{over.name}() OVER (...) needs ORDER BY: the order that ranks the rows"
        )
    item = inner.items[at]
    assert isinstance(item, ast.SelectItem)
    if item.alias is None:
        raise error_at(over, "name the rank for the outer query's WHERE: ROW_NUMBER() ... AS rn")
    return over, at


def _check_clauses(
    select: ast.Select, inner: ast.Select, over: ast.OverCall, persistent: bool
) -> None:
    if not isinstance(inner.from_, ast.SourceRef | ast.Join):
        raise error_at(
            inner.from_, f"ROW_NUMBER() reads a stream, a table or a join (no subquery): {SHAPE}"
        )
    for clause, node in (
        ("WINDOW", inner.window),
        ("GROUP BY", inner.group_by[0] if inner.group_by else None),
        ("PARTITION BY", inner.partition_by[0] if inner.partition_by else None),
        ("HAVING", inner.having),
    ):
        if node is not None:
            raise error_at(node, f"{clause} is not supported in a Top-N subquery: {SHAPE}")
    if inner.emit is not None or inner.limit is not None:
        raise error_at(inner, "EMIT and LIMIT go on the outer query, not in the subquery")
    for clause, node in (
        ("WINDOW", select.window),
        ("GROUP BY", select.group_by[0] if select.group_by else None),
        ("PARTITION BY", select.partition_by[0] if select.partition_by else None),
        ("HAVING", select.having),
    ):
        if node is not None:
            raise error_at(node, f"{clause} is not supported over a Top-N subquery: {SHAPE}")
    if select.emit == "FINAL" or (select.emit is None and not persistent):
        raise error_at(
            select,
            "a Top-N or deduplication query is kept up to date as rows arrive: end it with "
            "EMIT CHANGES (CREATE TABLE ... AS SELECT ... EMIT CHANGES, or a push query)",
        )
    if select.limit is not None:
        raise error_at(select, "LIMIT is not supported over a Top-N subquery")


def _limit(where: ast.Expr | None, rank: str, alias: str | None, select: ast.Select) -> int:
    """N of the outer `WHERE rn <= N` (`rn < N`: N - 1; `rn = 1`: 1)."""
    problem = (
        f"the outer query's WHERE bounds the rank and says nothing else: WHERE {rank} <= N "
        f"(Top-N) or WHERE {rank} = 1 (deduplication); filter the rows in the subquery's WHERE"
    )
    if where is None:
        raise error_at(
            select,
            f"ROW_NUMBER() needs the outer query to bound the rank (an unbounded rank would "
            f"keep every row): {SHAPE}",
        )
    if not isinstance(where, ast.BinaryOp):
        raise error_at(leftmost(where), problem)
    mirrored = {"<=": ">=", "<": ">", "=": "=", ">=": "<=", ">": "<"}
    op, left, right = where.op, where.left, where.right
    if isinstance(left, ast.Literal):
        op, left, right = mirrored.get(op, op), right, left
    is_rank = (
        isinstance(left, ast.ColumnRef)
        and left.name == rank
        and (left.source is None or left.source == alias)
    )
    if not is_rank or not isinstance(right, ast.Literal) or type(right.value) is not int:
        raise error_at(leftmost(where), problem)
    n = int(right.value)
    if op == "<":
        n -= 1
    elif op == "=" and n != 1:
        raise error_at(
            leftmost(where),
            f"{rank} = 1 keeps one row per partition; {rank} = {n} is not supported",
        )
    elif op not in ("<=", "="):
        raise error_at(leftmost(where), problem)
    if n < 1:
        raise error_at(leftmost(where), f"the rank bound keeps no row: {rank} <= {n}")
    return n


def _expand(inner: ast.Select, source: Any, label: str, at: int) -> list[ast.SelectItem | None]:
    """The subquery's items with `*` spelled out; None stands for the rank."""
    out: list[ast.SelectItem | None] = []
    for i, item in enumerate(inner.items):
        if i == at:
            out.append(None)
        elif isinstance(item, ast.AllColumns):
            if item.source is not None and item.source not in (label, source.name):
                raise error_at(item, f"'{item.source}' is not a valid stream/table name or alias.")
            cols = [*source.key_columns, *source.value_columns]
            out += [ast.SelectItem(ast.ColumnRef(c.name, pos=item.pos), pos=item.pos) for c in cols]
        else:
            out.append(item)
    return out


def _unqualified(e: Any, label: str, name: str) -> Any:
    """`e` with `label.col` written `col` (the subquery reads one source)."""
    if isinstance(e, ast.ColumnRef):
        return ast.ColumnRef(e.name, pos=e.pos) if e.source in (label, name) else e
    if isinstance(e, ast.Expr):
        changes = {
            k: _within(v, lambda x: _unqualified(x, label, name))
            for k, v in vars(e).items()
            if k != "pos"
        }
        return dataclasses.replace(e, **changes)
    return _within(e, lambda x: _unqualified(x, label, name))


def _substituted(
    e: ast.Expr, sub: ast.Subquery, columns: dict[str, ast.Expr | None], rank: str
) -> ast.Expr:
    """An outer expression over the subquery's columns, as one over the source's."""
    if isinstance(e, ast.ColumnRef) and (e.source is None or e.source == sub.alias):
        if e.name not in columns:
            known = ", ".join(columns)
            raise error_at(e, f"{e.name} is not a column of the subquery; its columns: {known}")
        found = columns[e.name]
        if found is None:
            raise error_at(e, f"the rank {rank} may be selected as it is, not computed on")
        return found
    if isinstance(e, ast.ColumnRef):
        raise error_at(e, f"'{e.source}' is not the subquery's alias")
    changes: dict[str, Any] = {}
    for k, v in vars(e).items():
        if k != "pos":
            changes[k] = _within(v, lambda x: _substituted(x, sub, columns, rank))
    return dataclasses.replace(e, **changes)


def _within(value: Any, fix: Any) -> Any:
    """`value` (an expression, or tuples of them) with `fix` applied to each expression."""
    if isinstance(value, ast.Expr):
        return fix(value)
    if isinstance(value, tuple):
        return tuple(_within(v, fix) for v in value)
    return value


def _outer_items(
    select: ast.Select, sub: ast.Subquery, order: list[str]
) -> list[tuple[str | None, ast.Expr]]:
    """The outer select list as (alias, expression over the subquery's columns)."""
    out: list[tuple[str | None, ast.Expr]] = []
    for item in select.items:
        if isinstance(item, ast.AllColumns):
            if item.source is not None and item.source != sub.alias:
                raise error_at(item, f"'{item.source}' is not the subquery's alias")
            out += [(None, ast.ColumnRef(n, pos=item.pos)) for n in order]
        else:
            out.append((item.alias, item.expr))
    return out


def _exprs(
    select: ast.Select, sub: ast.Subquery, columns: dict[str, ast.Expr | None], order: list[str]
) -> list[ast.Expr | None]:
    """Each outer item's expression over the source (None: the rank)."""
    rank = next(n for n, e in columns.items() if e is None)
    out: list[ast.Expr | None] = []
    for _, e in _outer_items(select, sub, order):
        if isinstance(e, ast.ColumnRef) and e.name == rank and e.source in (None, sub.alias):
            out.append(None)
        else:
            out.append(_substituted(e, sub, columns, rank))
    return out


def _outputs(
    select: ast.Select,
    sub: ast.Subquery,
    columns: dict[str, ast.Expr | None],
    order: list[str],
    scope: Any,
) -> tuple[list[OutputColumn], int | None]:
    """The outer select list's columns compiled over the source; the rank's index."""
    items = _outer_items(select, sub, order)
    exprs = _exprs(select, sub, columns, order)
    names: list[str] = []
    for alias, e in items:
        names.append(alias or default_name(e) or f"KSQL_COL_{len(names)}")
    if len(set(names)) != len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise error_at(select, f"Duplicate value columns found in schema: `{twice}`")
    outputs: list[OutputColumn] = []
    rank_index = None
    for i, (name, expr) in enumerate(zip(names, exprs, strict=True)):
        if expr is None:
            if rank_index is not None:
                raise SqlError("the rank may be selected once", *select.pos)
            rank_index = i
            outputs.append(OutputColumn(name, T.BIGINT, Compiled(T.BIGINT, _unavailable)))
            continue
        compiled = compile_clause(expr, scope, "SELECT")
        outputs.append(OutputColumn(name, compiled.type or T.STRING, compiled))
    return outputs, rank_index


def _by_time_descending(over: ast.OverCall, source: Source) -> bool:
    """Whether `over` orders by the stream's time alone, latest first (Flink's keep-last
    deduplication, where ties go to the later row)."""
    if len(over.order_by) != 1:
        return False
    e, descending = over.order_by[0]
    name = e.name.upper() if isinstance(e, ast.ColumnRef) else None
    return descending and name is not None and name in ("ROWTIME", (source.timestamp or "").upper())
