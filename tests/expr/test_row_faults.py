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


def test_a_failed_cast_tells_the_value_its_type_and_its_column() -> None:
    # ksqlDB's processing log names the expression and the value; never a Python exception
    scope = Scope([ScopeColumn("TXT", T.STRING, "TXT"), ScopeColumn("D", T.DOUBLE, "D")])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(["abc", "7", " nope "]), pa.array([12345.5, 1.25, None])], names=["TXT", "D"]
    )
    expected = {
        "CAST(TXT AS INTEGER)": [
            "CAST(TXT AS INTEGER) failed: the STRING value 'abc' of column TXT cannot be"
            " converted to INTEGER",
            "CAST(TXT AS INTEGER) failed: the STRING value ' nope ' of column TXT cannot be"
            " converted to INTEGER",
        ],
        "CAST(TXT AS DECIMAL(4, 2))": [
            "CAST(TXT AS DECIMAL(4, 2)) failed: the STRING value 'abc' of column TXT cannot be"
            " converted to DECIMAL(4, 2)",
            "CAST(TXT AS DECIMAL(4, 2)) failed: the STRING value ' nope ' of column TXT cannot"
            " be converted to DECIMAL(4, 2)",
        ],
        "CAST(D AS DECIMAL(3, 1))": [
            "CAST(D AS DECIMAL(3, 1)) failed: the DOUBLE value 12345.5 of column D does not fit"
            " in DECIMAL(3, 1)"
        ],
        "CAST(TXT AS TIMESTAMP)": [
            f"CAST(TXT AS TIMESTAMP) failed: the STRING value {v} of column TXT cannot be"
            " converted to TIMESTAMP"
            for v in ("'abc'", "'7'", "' nope '")
        ],
        "CAST(CONCAT(TXT, 'x') AS DOUBLE)": [
            f"CAST(CONCAT(TXT, 'x') AS DOUBLE) failed: the STRING value {v} cannot be"
            " converted to DOUBLE"
            for v in ("'abcx'", "'7x'", "' nope x'")
        ],
    }
    for text, messages in expected.items():
        ctx = EvalContext()
        values = compile_expr(parse_expression(text), scope)(batch, ctx).to_pylist()
        assert [m for _, m in ctx.errors] == messages, text
        assert all(values[row] is None for row, _ in ctx.errors)
