"""Plan `LAG(value [, offset [, default]]) OVER (PARTITION BY ... ORDER BY time)`.

ksqlDB has no window functions (confluentinc/ksql#4750, #9386). LAG can be computed as each
row arrives: a partition's last `offset` values are all it needs. So a stream query may use
it in its select list, over the stream's event time; each call becomes a column of the frame
(`scope.replaced`), which ops/lag.py fills before the select list is computed.

LEAD's value is a later row's: a row with LEAD calls is written when the row `offset` after
it in its partition arrives (the largest offset of the query's LEAD calls), with the event
time it had; the partition's last rows wait (ops/lag.py holds them in its state).
"""

from __future__ import annotations

import dataclasses

from hispeed.catalog import Source
from hispeed.expr.scope import Scope
from hispeed.plan.model import LagCall, QueryPlan, RankingPlan
from hispeed.plan.over_frames import FRAMED, framed_call
from hispeed.plan.scope import compile_clause, error_at, is_aggregate, ordered_clause, walk
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql

SHAPE = "LAG(value [, offset [, default]]) OVER (PARTITION BY ... ORDER BY ROWTIME)"


#: the OVER calls a query over one stream computes as rows arrive
ROW_BY_ROW = ("LAG", "LEAD", *FRAMED)


def lag_calls(select: ast.Select) -> list[ast.OverCall]:
    """The LAG, LEAD and framed aggregate calls of the select list."""
    return [
        x
        for item in select.items
        if isinstance(item, ast.SelectItem)
        for x in walk(item.expr)
        if isinstance(x, ast.OverCall) and x.name in ROW_BY_ROW
    ]


def plan_lags(select: ast.Select, source: Source, scope: Scope) -> None:
    """Check the select list's LAG and framed aggregate calls and make each a column of the
    frame."""
    calls = lag_calls(select)
    if not calls:
        return
    first = calls[0]
    if source.kind != "STREAM" and any(c.name not in FRAMED for c in calls):
        bad = next(c for c in calls if c.name not in FRAMED)
        raise error_at(
            bad, f"{bad.name}(...) OVER runs over a stream's rows, not a table's: {SHAPE}"
        )
    aggregated = any(
        is_aggregate(x) for i in select.items if isinstance(i, ast.SelectItem) for x in walk(i.expr)
    )
    if select.group_by or aggregated or select.window is not None:
        raise error_at(
            first, f"{first.name}(...) OVER cannot be used with GROUP BY, WINDOW or aggregates"
        )
    for call in calls:
        if call.partition_by != first.partition_by or call.order_by != first.order_by:
            raise error_at(
                call,
                "the OVER calls of one query share one PARTITION BY and ORDER BY (their "
                "frames may differ)",
            )
    if source.kind == "TABLE":
        _plan_table(select, calls, scope)
        return
    times = {"ROWTIME", *([source.timestamp] if source.timestamp else [])}
    order = first.order_by
    if (
        len(order) != 1
        or order[0][1]
        or not isinstance(order[0][0], ast.ColumnRef)
        or order[0][0].name not in times
    ):
        named = " or ".join(sorted(times))
        raise error_at(
            first,
            f"{first.name}(...) OVER orders a partition by the stream's event time, ascending: "
            f"ORDER BY {named} (what can be computed as rows arrive)",
        )
    partition = tuple(ordered_clause(e, scope, "PARTITION BY") for e in first.partition_by)
    for n, call in enumerate(dict.fromkeys(calls)):
        if call.name in FRAMED:
            scope.replaced[call] = framed_call(call, n, partition, scope)
            continue
        if call.frame is not None:
            raise error_at(call, f"LAG takes no frame (ROWS or RANGE): {SHAPE}")
        if call.name == "LEAD" and len(call.args) == 3:
            raise error_at(
                call.args[2],
                "LEAD over a stream takes no default: a row is written when the row `offset` "
                "after it in its partition arrives, so there is always one (LEAD(value [, "
                "offset]))",
            )
        if not 1 <= len(call.args) <= 3:
            raise error_at(call, f"LAG takes a value, an offset and a default: {SHAPE}")
        value = compile_clause(call.args[0], scope, "SELECT")
        offset = 1
        if len(call.args) > 1:
            arg = call.args[1]
            if not isinstance(arg, ast.Literal) or type(arg.value) is not int or arg.value < 1:
                raise error_at(
                    arg, f"{call.name}'s offset is a whole number above 0, not {sql(arg)}"
                )
            offset = int(arg.value)
        default = None
        if len(call.args) > 2:
            default = compile_clause(call.args[2], scope, "SELECT")
            widened = (
                default.type is not None
                and default.type.name in ("INTEGER", "BIGINT")
                and value.type is not None
                and value.type.name in ("BIGINT", "DOUBLE")
            )
            if (
                default.type is not None
                and value.type is not None
                and default.type != value.type
                and not widened
            ):
                raise error_at(
                    call.args[2],
                    f"LAG's default must be of its value's type, {value.type}, not {default.type}",
                )
        typ = value.type or T.STRING
        scope.replaced[call] = LagCall(
            f"$lag{n}", typ, f"$lag{n}", None, value, offset, default, partition, call.name
        )


def _plan_table(select: ast.Select, calls: list[ast.OverCall], scope: Scope) -> None:
    """Aggregates over frames of a table's rows (ops/over_table.py): the result is a table
    keyed as the input, each row's value maintained as rows enter, move and leave."""
    first = calls[0]
    items = {id(i.expr) for i in select.items if isinstance(i, ast.SelectItem)}
    for call in calls:
        if id(call) not in items:
            raise error_at(
                call, f"over a table, {call.name}(...) OVER (...) is a select item of its own"
            )
    if not first.order_by:
        raise error_at(first, f"{first.name}(...) OVER a table's rows needs ORDER BY: {SHAPE}")
    order = tuple((ordered_clause(e, scope, "ORDER BY"), desc) for e, desc in first.order_by)
    ranged = next((c for c in calls if c.frame and c.frame[0] == "RANGE" and c.frame[1]), None)
    if ranged is not None:
        typ = order[0][0].type
        if len(order) != 1 or order[0][1] or typ is None or typ.name not in ("INTEGER", "BIGINT"):
            raise error_at(
                ranged,
                "a RANGE frame over a table's rows is ordered by one whole-number time column "
                "(milliseconds), ascending",
            )
    partition = tuple(ordered_clause(e, scope, "PARTITION BY") for e in first.partition_by)
    for n, call in enumerate(dict.fromkeys(calls)):
        made = framed_call(call, n, partition, scope)
        scope.replaced[call] = dataclasses.replace(made, order=order)


def table_frames(plan: QueryPlan) -> None:
    """A plan over a table with framed aggregates runs them as its ranking step (ops/
    over_table.py), keyed by the table's key."""
    if not plan.lags or plan.source.kind != "TABLE":
        return
    first = plan.lags[0]
    plan.ranking = RankingPlan(
        "OVER",
        list(first.partition),
        list(first.order),
        0,
        None,
        [
            compile_clause(ast.ColumnRef(c.name), plan.scope, "SELECT")
            for c in plan.source.key_columns
        ],
        list(plan.lags),
    )
    plan.lags = []
