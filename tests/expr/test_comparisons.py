"""Comparisons follow ksqlDB's rules (its ComparisonUtil): which types meet, with which
operators, and its messages for those that do not."""

from __future__ import annotations

import pytest

from hispeed.errors import SqlError
from tests.expr.test_compiler import evaluate, values


@pytest.mark.parametrize(
    ("text", "message", "column"),
    [
        # a text literal is not read as a number: ksqlDB compares types, not values
        ("I = '2'", "Cannot compare I (INTEGER) to '2' (STRING) with EQUAL.", 3),
        ("'2' < I", "Cannot compare '2' (STRING) to I (INTEGER) with LESS_THAN.", 5),
        ("F = 1", "Cannot compare F (BOOLEAN) to 1 (INTEGER) with EQUAL.", 3),
        # BOOLEAN, ARRAY, MAP and STRUCT values are only (un)equal, never ordered
        ("F < F", "Cannot compare F (BOOLEAN) to F (BOOLEAN) with LESS_THAN.", 3),
        ("A < A", "Cannot compare A (ARRAY<INTEGER>) to A (ARRAY<INTEGER>) with LESS_THAN.", 3),
        ("ST >= ST", "with GREATER_THAN_OR_EQUAL.", 4),
        ("M > M", "with GREATER_THAN.", 3),
        # an untyped NULL cannot be compared at all
        ("NULL <> NULL", "Comparison with NULL not supported: NULL <> NULL", 6),
        ("I = NULL", "Comparison with NULL not supported: INTEGER = NULL", 3),
        ("IS_DISTINCT_FROM(A, M)", "Cannot compare A (ARRAY<INTEGER>) to M", 1),
    ],
)
def test_comparisons_ksqldb_refuses_are_refused_with_its_message(
    text: str, message: str, column: int
) -> None:
    with pytest.raises(SqlError) as err:
        evaluate(text)
    assert message in err.value.reason
    assert (err.value.line, err.value.column) == (1, column)


def test_the_comparisons_it_allows_still_compute() -> False:
    assert values("F = F") == [True, True, False, True]
    assert values("A = A") == [True, True, False, True]
    assert values("ST <> ST") == [False, False, False, False]
    assert values("I < D") == [True, False, False, True]
    assert values("DEC > I") == [True, True, False, True]
    assert values("S < 'b'") == [True, True, False, False]
    assert values("I = CAST(NULL AS INT)") == [False] * 4


def test_an_in_list_names_the_type_it_had_widened_to() -> None:
    # DEC is DECIMAL(4, 2); with the INTEGER 10 the list is DECIMAL(12, 2) (ksqlDB's
    # CoercionUtil), and that is the type the BOOLEAN cannot meet
    with pytest.raises(SqlError) as err:
        evaluate("DEC IN (10, true)")
    assert "operator does not exist: DECIMAL(12, 2) = BOOLEAN (true)" in err.value.reason
    with pytest.raises(SqlError) as err:
        evaluate("DEC IN (true)")
    assert "operator does not exist: DECIMAL(4, 2) = BOOLEAN (true)" in err.value.reason
    assert values("DEC IN (10, 1.25)") == [True, False, None, False]


def test_a_null_side_makes_a_comparison_false_not_null() -> None:
    # ksqlDB's generated comparisons check both sides for null first and answer false
    # (SqlToJavaVisitor.nullCheckPrefix), so NOT of one is true
    assert values("I = B") == [False, False, False, False]
    assert values("NOT (I = B)") == [True, True, True, True]
    assert values("I IS DISTINCT FROM B") == [True, True, True, True]
