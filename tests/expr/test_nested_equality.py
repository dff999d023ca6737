"""Equality and distinctness of ARRAY, MAP and STRUCT values, as ksqlDB defines them (Java's
`equals`: element by element, entries regardless of order, field by field, a NULL inside
equal to a NULL there). Arrow has no `equal` kernel for these, so they must not reach it."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Scope, ScopeColumn
from hispeed.functions.registry import EvalContext
from hispeed.sql import types as T
from hispeed.sql.parser import parse_expression

INTS = T.array(T.INTEGER)
MAP = T.map_(T.STRING, T.INTEGER)
ST = T.struct([("X", T.INTEGER), ("Y", T.array(T.STRING))])
COLUMNS = {
    "A": (INTS, [[1, 2], [1, 2], None, None, [1, None], []]),
    "B": (INTS, [[1, 2], [2, 1], [1], None, [1, None], []]),
    "L": (T.array(T.BIGINT), [[1, 2], [1, 3], None, [1], None, []]),
    "M": (MAP, [[("a", 1), ("b", 2)], [("a", 1)], None, None, [("a", None)], []]),
    "N": (MAP, [[("b", 2), ("a", 1)], [("a", 2)], [], None, [("a", None)], []]),
    "S": (
        ST,
        [{"X": 1, "Y": ["p"]}, {"X": 1, "Y": ["p"]}, None, None, {"X": None, "Y": None}, None],
    ),
    "T": (
        ST,
        [{"X": 1, "Y": ["p"]}, {"X": 1, "Y": ["q"]}, {"X": 1, "Y": []}, None, None, None],
    ),
}


def values(text: str) -> Any:
    scope = Scope([ScopeColumn(n, t, n) for n, (t, _) in COLUMNS.items()])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(v, t.to_arrow()) for t, v in COLUMNS.values()], names=list(COLUMNS)
    )
    ctx = EvalContext()
    out = compile_expr(parse_expression(text), scope)(batch, ctx).to_pylist()
    assert ctx.errors == []
    return out


@pytest.mark.parametrize(
    ("text", "expected"),
    # a NULL side makes = and != false, not NULL (ksqlDB's generated comparisons)
    [
        ("A = B", [True, False, False, False, True, True]),
        ("A != B", [False, True, False, False, False, False]),
        ("A IS DISTINCT FROM B", [False, True, True, False, False, False]),
        ("A IS NOT DISTINCT FROM B", [True, False, False, True, True, True]),
        ("A = L", [True, False, False, False, False, True]),
        ("A IS DISTINCT FROM L", [False, True, False, True, True, False]),
        ("M = N", [True, False, False, False, True, True]),
        ("M IS DISTINCT FROM N", [False, True, True, False, False, False]),
        ("S = T", [True, False, False, False, False, False]),
        ("S IS DISTINCT FROM T", [False, True, True, False, True, False]),
        ("ARRAY[1] = ARRAY[1]", [True] * 6),
        ("ARRAY[1, 2] IS DISTINCT FROM ARRAY[2, 1]", [True] * 6),
        ("A IN (B, L)", [True, False, None, None, True, True]),
    ],
)
def test_nested_values_compare_as_ksqldb_compares_them(text: str, expected: list[Any]) -> None:
    assert values(text) == expected
