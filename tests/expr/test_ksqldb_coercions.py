"""ksqlDB's implicit and explicit conversions of user-written values (its SqlBooleans,
CoercionUtil and CastEvaluator), computed through the expression compiler."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pytest

from hispeed.errors import SqlError
from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Scope, ScopeColumn
from hispeed.functions.registry import EvalContext
from hispeed.sql import types as T
from hispeed.sql.parser import parse_expression

TEXTS = ["yes", "Y", " t ", "TrU", "true", "no", "f", "maybe", "", "truex", None]


def values(text: str) -> Any:
    """`text` computed over one STRING column S holding TEXTS and one BOOLEAN column F."""
    scope = Scope([ScopeColumn("S", T.STRING, "S"), ScopeColumn("F", T.BOOLEAN, "F")])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(TEXTS, pa.string()), pa.array([True] * len(TEXTS))], names=["S", "F"]
    )
    return compile_expr(parse_expression(text), scope)(batch, EvalContext()).to_pylist()


def test_cast_text_to_boolean_takes_prefixes_of_true_and_yes() -> None:
    """CastEvaluator's STRING -> BOOLEAN is SqlBooleans.parseBoolean: a prefix of 'true' or
    'yes' (trimmed, any case) is true, every other text false."""
    assert values("CAST(S AS BOOLEAN)") == [
        True, True, True, True, True, False, False, False, False, False, None
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("literal", "expected"), [("'tr'", True), ("'Y'", True), ("'N'", False), ("'fals'", False)]
)
def test_a_text_literal_in_a_boolean_in_list_is_read_exactly(literal: str, expected: bool) -> None:
    """CoercionUtil checks a text literal among BOOLEANs with SqlBooleans.parseBooleanExact:
    prefixes of true/yes and false/no."""
    assert values(f"F IN ({literal})") == [expected] * len(TEXTS)


def test_a_text_literal_that_is_no_boolean_is_refused_in_a_boolean_in_list() -> None:
    with pytest.raises(SqlError) as err:
        values("F IN (true, 'maybe')")
    assert 'invalid input syntax for type BOOLEAN: "maybe"' in str(err.value)


def test_struct_constructors_in_an_array_take_every_field() -> None:
    """CoercionUtil.resolveCommonStructType: a STRUCT(...) meeting a STRUCT widens it to the
    fields of both (the constructor's own first); an item lacking a field holds NULL there."""
    text = "ARRAY[NULL, STRUCT(X := 1, Y := S), STRUCT(Y := 'b', Z := CAST(2 AS BIGINT))]"
    scope = Scope([ScopeColumn("S", T.STRING, "S")])
    compiled = compile_expr(parse_expression(text), scope)
    assert compiled.type == T.array(T.struct([("Y", T.STRING), ("Z", T.BIGINT), ("X", T.INTEGER)]))
    batch = pa.RecordBatch.from_arrays([pa.array(["a"])], names=["S"])
    assert compiled(batch, EvalContext()).to_pylist() == [
        [None, {"Y": "a", "Z": None, "X": 1}, {"Y": "b", "Z": 2, "X": None}]
    ]


def test_struct_constructors_with_a_field_of_two_kinds_are_refused() -> None:
    with pytest.raises(SqlError):
        values("ARRAY[STRUCT(X := 1), STRUCT(X := F)]")


def test_a_map_of_only_null_values_is_refused_as_ksqldb_refuses_it() -> None:
    """ExpressionTypeManager.visitCreateMapExpression: no common type of the values."""
    with pytest.raises(SqlError) as err:
        values("MAP(S := NULL, 'k' := NULL)")
    assert "Cannot construct a map with all NULL values" in str(err.value)


def test_like_with_an_escape_and_a_pattern_per_row() -> None:
    """LikeEvaluator: after the escape character a % or _ is literal, also when the
    pattern is a column (one pattern per row)."""
    scope = Scope([ScopeColumn("V", T.STRING, "V"), ScopeColumn("P", T.STRING, "P")])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(["%", "x", "a_c", "abc", "!"]), pa.array(["!%", "!%", "a!_c", "a!_c", "!!"])],
        names=["V", "P"],
    )
    compiled = compile_expr(parse_expression("V LIKE P ESCAPE '!'"), scope)
    assert compiled(batch, EvalContext()).to_pylist() == [True, False, True, False, True]
