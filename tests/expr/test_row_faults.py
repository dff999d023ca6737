"""A value an expression cannot compute makes that row NULL (and a row error for the processing
log) or follows SQL's NULL rules; it never fails the whole batch, which would stop the query.
Found by the SQL fuzzer's extreme literals (tests/faults/test_sql_fuzz.py)."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pyarrow as pa

from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Scope, ScopeColumn
from hispeed.functions.registry import EvalContext
from hispeed.sql import types as T
from hispeed.sql.parser import parse_expression

COLUMNS = {
    "A": (T.array(T.INTEGER), [[1, 2], [], None]),
    "M": (T.map_(T.STRING, T.INTEGER), [[("a", 1)], [], None]),
}


def evaluate(text: str) -> tuple[list[Any], list[tuple[int, str]]]:
    scope = Scope([ScopeColumn(n, t, n) for n, (t, _) in COLUMNS.items()])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(v, t.to_arrow()) for t, v in COLUMNS.values()], names=list(COLUMNS)
    )
    ctx = EvalContext()
    return compile_expr(parse_expression(text), scope)(batch, ctx).to_pylist(), ctx.errors


def test_a_map_looked_up_by_null_is_null() -> None:
    assert evaluate("M[NULL]") == ([None, None, None], [])
    assert evaluate("M['a']") == ([1, None, None], [])


def test_a_reduce_whose_state_outgrows_its_decimal_is_null_for_that_row() -> None:
    # the state is DECIMAL(1, 1), the type of -0.0: 0.0 + 1 no longer fits
    values, errors = evaluate("REDUCE(A, -0.0, (s, x) => s + x)")
    assert values == [None, Decimal("0.0"), Decimal("0.0")]  # [] and NULL: the initial state
    assert errors == [(0, "the value 1.0 does not fit in DECIMAL(1, 1)")]
