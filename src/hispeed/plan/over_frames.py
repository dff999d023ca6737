"""Plan an aggregate over a window frame: `AVG(x) OVER (PARTITION BY k ORDER BY t ROWS BETWEEN
10 PRECEDING AND CURRENT ROW)`, or `RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW`.

ksqlDB has no window functions (confluentinc/ksql#4750, #9386). As in Flink SQL's OVER
aggregation, each row of a stream gets one result, computed as it arrives, over the rows of
its partition that precede it in event time: the last n (ROWS) or those whose time is within
the interval before its own (RANGE), itself included. plan/lag.py checks the query's shape
(one stream, event-time order, no GROUP BY) for these calls and LAG alike; this module
compiles an aggregate call into a column of the frame that ops/lag.py fills
(ops/over_frames.py computes it).
"""

from __future__ import annotations

from hispeed.expr.scope import Compiled, Scope
from hispeed.plan.model import LagCall
from hispeed.plan.scope import compile_clause, error_at
from hispeed.sql import ast
from hispeed.sql import types as T

#: the aggregates that may run over a frame
FRAMED = ("AVG", "SUM", "COUNT", "MIN", "MAX")
SHAPE = (
    "AVG|SUM|COUNT|MIN|MAX(x) OVER (PARTITION BY ... ORDER BY ROWTIME [ROWS BETWEEN n "
    "PRECEDING AND CURRENT ROW | RANGE BETWEEN INTERVAL '1' HOUR PRECEDING AND CURRENT ROW])"
)
_NUMBERS = ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL")


def framed_call(
    call: ast.OverCall, n: int, partition: tuple[Compiled, ...], scope: Scope
) -> LagCall:
    """The frame column of one aggregate OVER call (its n-th among the query's)."""
    name = call.name
    if name == "COUNT" and not call.args:
        value: Compiled | None = None
    elif len(call.args) != 1:
        raise error_at(call, f"{name}(...) OVER takes one argument: {SHAPE}")
    else:
        value = compile_clause(call.args[0], scope, "SELECT")
    typ: T.SqlType
    if name == "COUNT":
        typ = T.BIGINT
    else:
        assert value is not None
        given = value.type or T.DOUBLE
        if name in ("AVG", "SUM") and given.name not in _NUMBERS:
            raise error_at(call.args[0], f"{name} OVER takes a number, not a {given}")
        if name in ("MIN", "MAX") and given.name in ("ARRAY", "MAP", "STRUCT", "BOOLEAN"):
            raise error_at(call.args[0], f"{name} OVER takes an orderable value, not a {given}")
        typ = T.DOUBLE if name == "AVG" else given
    frame = call.frame
    field = f"$over{n}"
    return LagCall(field, typ, field, None, value, 1, None, partition, name, frame)
