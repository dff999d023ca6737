"""Expressions compile once and compute whole columns with SQL NULL semantics."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from hispeed.errors import SqlError
from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Scope, ScopeColumn
from hispeed.functions.registry import EvalContext
from hispeed.sql import types as T
from hispeed.sql.parser import parse_expression

COLUMNS = {
    "I": (T.INTEGER, [1, 2, None, -7]),
    "B": (T.BIGINT, [10, None, 30, 3]),
    "D": (T.DOUBLE, [1.5, 2.0, None, -0.5]),
    "S": (T.STRING, ["apple", "Banana", None, "cherry"]),
    "F": (T.BOOLEAN, [True, False, None, True]),
    "A": (T.array(T.INTEGER), [[1, 2, 3], [], None, [5, None]]),
    "M": (T.map_(T.STRING, T.INTEGER), [[("a", 1)], [("b", 2), ("a", 3)], None, []]),
    "ST": (
        T.struct([("X", T.INTEGER), ("Y", T.STRING)]),
        [{"X": 1, "Y": "one"}, None, {"X": None, "Y": "three"}, {"X": 4, "Y": None}],
    ),
    "DEC": (T.decimal(4, 2), [Decimal("1.25"), Decimal("10.50"), None, Decimal("-2.00")]),
}


def evaluate(text: str) -> tuple[Any, list[tuple[int, str]]]:
    scope = Scope([ScopeColumn(n, t, n) for n, (t, _) in COLUMNS.items()])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(v, t.to_arrow()) for t, v in COLUMNS.values()], names=list(COLUMNS)
    )
    compiled = compile_expr(parse_expression(text), scope)
    ctx = EvalContext()
    return compiled(batch, ctx).to_pylist(), ctx.errors


def values(text: str) -> Any:
    return evaluate(text)[0]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I + 1", [2, 3, None, -6]),
        ("B * I", [10, None, None, -21]),
        ("I / 2", [0, 1, None, -3]),  # Java truncates toward zero
        ("I % 3", [1, 2, None, -1]),
        ("D * 2", [3.0, 4.0, None, -1.0]),
        ("I + D", [2.5, 4.0, None, -7.5]),
        ("DEC + 1", [Decimal("2.25"), Decimal("11.50"), None, Decimal("-1.00")]),
        ("-I", [-1, -2, None, 7]),
        ("I > 1", [False, True, False, False]),
        ("S = 'apple'", [True, False, False, False]),
        ("F AND I > 0", [True, False, False, False]),
        ("F OR I > 0", [True, True, None, True]),
        ("NOT F", [False, True, None, False]),
        ("I IS NULL", [False, False, True, False]),
        ("S IS NOT NULL", [True, True, False, True]),
        ("I IN (1, 2)", [True, True, None, False]),
        ("I NOT IN (1, 2)", [False, False, None, True]),
        ("I BETWEEN 0 AND 2", [True, True, False, False]),
        ("S LIKE '%an%'", [False, True, None, False]),
        ("S NOT LIKE 'a%'", [False, True, None, True]),
        (
            "CASE WHEN I > 1 THEN 'big' WHEN I > 0 THEN 'small' ELSE 'neg' END",
            ["small", "big", "neg", "neg"],
        ),
        ("CASE I WHEN 1 THEN 'one' END", ["one", None, None, None]),
        ("CAST(I AS STRING)", ["1", "2", None, "-7"]),
        ("CAST(D AS INT)", [1, 2, None, 0]),
        ("CAST('12' AS BIGINT)", [12, 12, 12, 12]),
        ("CAST(F AS STRING)", ["true", "false", None, "true"]),
        ("CAST(I AS DECIMAL(4, 1))", [Decimal("1.0"), Decimal("2.0"), None, Decimal("-7.0")]),
        ("CAST(D AS STRING)", ["1.5", "2.0", None, "-0.5"]),
        ("ST->X", [1, None, None, 4]),
        ("ST->y", ["one", None, "three", None]),
        ("A[1]", [1, None, None, 5]),
        ("A[-1]", [3, None, None, None]),
        ("A[10]", [None, None, None, None]),
        ("M['a']", [1, 3, None, None]),
        ("ARRAY[I, 10]", [[1, 10], [2, 10], [None, 10], [-7, 10]]),
        ("MAP('k' := I)", [[("k", 1)], [("k", 2)], [("k", None)], [("k", -7)]]),
        ("STRUCT(N := I)", [{"N": 1}, {"N": 2}, {"N": None}, {"N": -7}]),
        ("S || '!'", ["apple!", "Banana!", "!", "cherry!"]),  # CONCAT skips NULLs
        ("UCASE(S)", ["APPLE", "BANANA", None, "CHERRY"]),
        ("COALESCE(I, 0)", [1, 2, 0, -7]),
        ("TRANSFORM(A, x => x * 10)", [[10, 20, 30], [], None, [50, None]]),
        ("FILTER(A, x => x > 1)", [[2, 3], [], None, [5]]),
        ("REDUCE(A, 0, (s, x) => s + x)", [6, 0, 0, None]),
        ("TRANSFORM(A, x => x + I)", [[2, 3, 4], [], None, [-2, None]]),
        (
            "TRANSFORM(M, (k, v) => UCASE(k), (k, v) => v + 1)",
            [[("A", 2)], [("B", 3), ("A", 4)], None, []],
        ),
        ("FILTER(M, (k, v) => v > 1)", [[], [("b", 2), ("a", 3)], None, []]),
        ("REDUCE(M, 0, (s, k, v) => s + v)", [1, 5, 0, 0]),
    ],
)
def test_expressions(text: str, expected: list[Any]) -> None:
    assert values(text) == expected


def test_a_row_that_cannot_be_computed_is_null_and_reported() -> None:
    result, errors = evaluate("B / (I - 1)")
    assert result == [None, None, None, 0]
    assert errors == [(0, "/ by zero")]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("NOPE + 1", "column 'NOPE' cannot be resolved. The columns here are: I, B, D"),
        ("S + 1", "Unsupported arithmetic types. STRING INTEGER"),
        ("I > 'x'", "Cannot compare I (INTEGER) to 'x' (STRING) with GREATER_THAN."),
        ("I IN ('x')", 'invalid input syntax for type INTEGER: "x"'),
        ("ST->Z", "the struct has no field Z"),
        ("NOT S", "NOT needs a BOOLEAN"),
        ("CAST(A AS INT)", "Cast of ARRAY<INTEGER> to INTEGER is not supported"),
        ("ARRAY[]", "Array constructor cannot be empty"),
        ("ARRAY[NULL]", "Cannot construct an array with all NULL elements"),
        ("UCASE(I)", "Function 'ucase' does not accept parameters (INTEGER)"),
        ("NOSUCH(I)", "Can't find any functions with the name 'NOSUCH'"),
        ("FILTER(A, x => x + 1)", "FILTER needs a BOOLEAN lambda"),
        ("x => 1", "a lambda is only allowed as an argument of TRANSFORM, FILTER or REDUCE"),
    ],
)
def test_errors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(SqlError) as err:
        evaluate(text)
    assert message in str(err.value)
    assert err.value.line == 1


def test_case_branches_run_only_for_their_rows() -> None:
    result, errors = evaluate("CASE WHEN I - 1 <> 0 THEN B / (I - 1) ELSE -1 END")
    assert result == [-1, None, -1, 0]  # a NULL condition is not true: ELSE
    assert errors == []  # the division by zero in row 0 was never computed


def test_functions_of_no_arguments_fill_every_row() -> None:
    assert values("PI()") == [3.141592653589793] * 4
    assert len(set(values("UUID()"))) == 4


def test_greatest_and_least_resolve_as_ksqldb_overloads() -> None:
    import datetime as dt

    assert values("GREATEST(B, NULL)") == [10, None, 30, 3]
    assert values("GREATEST(I, D, NULL)") == [1.5, 2.0, None, -0.5]  # a DOUBLE decides
    assert (
        values("LEAST(PARSE_DATE('2022-06-15', 'yyyy-MM-dd'), '2022-06-14')")
        == [dt.date(2022, 6, 14)] * 4
    )
    for text, shown in [
        ("GREATEST(I, B)", "(INTEGER, BIGINT)"),
        ("GREATEST(NULL, NULL)", "(null, null)"),
    ]:
        with pytest.raises(SqlError, match="ambiguous method parameters"):
            values(text)
        with pytest.raises(SqlError) as err:
            values(text)
        assert shown in str(err.value)


def test_in_lists_read_literals_as_the_operand_type() -> None:
    assert values("S IN (true, 10, 'apple')") == [True, False, None, False]
    assert values("I IN ('2147483648', '2.0')") == [False, True, None, False]
    assert values("A IN (ARRAY['1', '2', '3'])") == [True, False, None, False]
    with pytest.raises(SqlError, match='invalid input syntax for type INTEGER: "x"'):
        values("A IN (ARRAY['x'])")
    with pytest.raises(SqlError, match="operator does not exist: ARRAY<INTEGER> = ARRAY<BOOLEAN>"):
        values("A IN (ARRAY[F])")


def test_a_null_argument_fits_any_parameter() -> None:
    assert values("SUBSTRING(S, NULL)") == [None] * 4
    assert values("SUBSTRING(S, 2, NULL)") == [None] * 4


def test_arithmetic_with_an_untyped_null_is_refused() -> None:
    with pytest.raises(SqlError, match=r"Arithmetic on types INTEGER and null are not supported"):
        values("I + NULL")
    assert values("I + CAST(NULL AS INT)") == [None] * 4


def test_round_keeps_every_digit_of_a_wide_decimal() -> None:
    big = T.decimal(33, 16)
    scope = Scope([ScopeColumn("V", big, "V")])
    batch = pa.RecordBatch.from_arrays(
        [pa.array([Decimal("12345678987654321.4999999999999999")], big.to_arrow())], names=["V"]
    )
    ctx = EvalContext()
    out = compile_expr(parse_expression("ROUND(V, 0)"), scope)(batch, ctx).to_pylist()
    assert out == [Decimal("12345678987654321")]
    assert ctx.errors == []


def test_a_double_compares_equal_to_the_decimal_literal_it_was_written_as(
    tmp_path: Path,
) -> None:
    """11.1 (a DECIMAL literal) is the double 11.1, not 11.100000000000001 (Arrow's own cast
    from DECIMAL divides in floating point)."""
    from hispeed.engine import Engine

    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM s (id INT KEY, d DOUBLE) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        engine.insert("s", {"ID": 1, "D": 11.1})
        engine.drain()
        rows = engine.query(
            "SELECT d = 11.1 AS eq, d = CAST(11.1 AS DOUBLE) AS eq2, "
            "CAST(0.3 AS DOUBLE) AS third FROM s"
        )
    assert rows == [{"EQ": True, "EQ2": True, "THIRD": 0.3}]
