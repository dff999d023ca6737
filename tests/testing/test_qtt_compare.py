"""ksqlDB's comparison rules as the conformance runner applies them: lenient exactly where
ksqlDB's ExpectedRecordComparator is, strict everywhere else."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from hispeed.testing.qtt_compare import (
    headers_match,
    java_equals,
    matches,
    record_problem,
    response_problem,
)
from hispeed.testing.qtt_serde import JavaNumber, Window, Windowed


def I(n: int) -> JavaNumber:  # noqa: E743 - Java's Integer
    return JavaNumber("Integer", n)


def BD(text: str) -> JavaNumber:
    return JavaNumber("BigDecimal", Decimal(text))


@pytest.mark.parametrize(
    ("actual", "expected", "same"),
    [
        (I(1), 1, True),
        (I(1), Decimal("1.5"), True),  # ksqlDB truncates the node (intValue)
        (I(1), "1", False),  # a string is not a number
        (BD("1.0"), 1, False),  # a BigDecimal with a fraction never matches an int literal
        (BD("1.0E12"), 1_000_000_000_000, True),  # Java's text of a double: scale below 0
        (BD("1000000000000.0"), 1_000_000_000_000, False),
        (BD("2.50"), Decimal("2.5"), True),  # the case files' decimals are doubles' text
        (BD("2.5000000001"), Decimal("2.5"), False),
        (JavaNumber("Double", 1.0000001), Decimal("1.0"), True),  # within 0.000001
        (JavaNumber("Double", 1.00001), Decimal("1.0"), False),
        (True, True, True),
        (I(1), True, False),
        (None, None, True),
        (I(0), None, False),
        ("10", 10, False),
    ],
)
def test_numbers_and_scalars(actual: Any, expected: Any, same: bool) -> None:
    assert matches(actual, expected) is same


def test_structs_match_field_for_field_with_upper_cased_names() -> None:
    assert matches({"ID": I(1)}, {"id": 1})
    assert not matches({"ID": I(1), "X": None}, {"id": 1})  # an extra field, even null
    assert not matches({"ID": I(1)}, {"id": 1, "x": None})
    assert matches([I(1), None], [1, None])
    assert not matches([I(1)], [1, None])


def _problem(expected: dict[str, Any], key: Any, **kw: Any) -> str:
    return record_problem(
        expected,
        key,
        kw.get("value", {"V": I(1)}),
        kw.get("timestamp", 5),
        kw.get("headers", []),
        ran_with_insert_statements=kw.get("inserts", False),
    )


def test_a_missing_key_means_a_null_key() -> None:
    assert _problem({"value": {"V": 1}}, None) == ""
    assert "key" in _problem({"value": {"V": 1}}, "a")


def test_missing_headers_mean_none_and_a_missing_timestamp_any() -> None:
    assert _problem({"value": {"V": 1}}, None, headers=[]) == ""
    assert "headers" in _problem({"value": {"V": 1}}, None, headers=[("h", b"x")])
    assert headers_match([("h", b"!")], [{"KEY": "h", "VALUE": "IQ=="}])
    assert not headers_match([("h", None)], [{"KEY": "h", "VALUE": "IQ=="}])
    assert "timestamp" in _problem({"value": {"V": 1}, "timestamp": 4}, None)
    # no inputs (the case ran INSERT VALUES): an expected timestamp of 0 means any
    assert _problem({"value": {"V": 1}, "timestamp": 0}, None, inserts=True) == ""


def test_the_window_is_checked_with_its_type() -> None:
    session = Windowed("a", Window("SESSION", 0, 10))
    ok = {"key": "a", "value": {"V": 1}, "window": {"start": 0, "end": 10, "type": "session"}}
    assert _problem(ok, session) == ""
    time_window = {**ok, "window": {"start": 0, "end": 10, "type": "time"}}
    assert "window" in _problem(time_window, session)
    swapped = Windowed("a", Window("SESSION", 10, 0))
    assert "window" in _problem(ok, swapped)
    # a windowed key where none is expected fails, as it does in ksqlDB
    assert "key" in _problem({"key": "a", "value": {"V": 1}}, session)


def test_rest_keys_compare_with_javas_equals() -> None:
    assert java_equals(I(1), I(1))
    assert not java_equals(I(1), JavaNumber("Long", 1))
    assert java_equals(Windowed(I(1), Window("TIME", 0, 5)), Windowed(I(1), Window("TIME", 0, 5)))
    assert not java_equals(
        Windowed(I(1), Window("TIME", 0, 5)), Windowed(I(1), Window("SESSION", 0, 5))
    )


def test_responses_compare_fields_prefixes_and_unordered_rows() -> None:
    rows: list[Any] = []

    def counted(actual: Any, expected: Any, where: str) -> None:
        rows.append((actual, expected))

    actual = {"header": {"queryId": "transient_X_1", "schema": "`A` INTEGER"}}
    assert (
        response_problem(
            actual,
            {"header": {"queryId|starts_with": "transient_", "schema": "`A` INTEGER"}},
            statement=None,
            path="q",
            counted=counted,
        )
        == ""
    )
    problem = response_problem(
        actual, {"header": {"schema": "`A` INT"}}, statement=None, path="q", counted=counted
    )
    assert "schema" in problem  # the schema text is compared exactly
    missing = response_problem(
        {"row": {"columns": [1]}},
        {"finalMessage": "Limit Reached"},
        statement=None,
        path="q",
        counted=counted,
    )
    assert "finalMessage" in missing
    response_problem(
        {"row": {"columns": [1]}},
        {"row": {"columns": [2]}},
        statement=None,
        path="q->query[1]->row",
        counted=counted,
    )
    assert rows == [([1], [2])]  # rows go to the multiset check, not compared in place


def test_a_bigdecimal_never_matches_nan_or_infinity_text() -> None:
    # Java's new BigDecimal("NaN") throws: ksqlDB's check fails, and so does this one
    assert not matches(BD("1.5"), "NaN")
    assert not matches(BD("1.5"), "-Infinity")
    assert matches(BD("1.50"), "1.50")


def test_partitions_interleave_in_production_order_each() -> None:
    from hispeed.testing._qtt_strict import Actual, topic_problem

    def rec(v: int, p: int) -> Actual:
        return Actual(None, {"V": I(v)}, 0, [], p)

    def want(*values: int) -> list[dict[str, Any]]:
        return [{"value": {"V": v}} for v in values]

    # equal records in both partitions: a greedy pick of partition 0's 1 first would fail
    parts = [[rec(1, 0), rec(2, 0)], [rec(1, 1), rec(3, 1)]]
    problem = topic_problem(
        "t", want(1, 3, 1, 2), parts, ran_with_insert_statements=False, rest=False
    )
    assert problem == ""
    # within a partition the order is kept
    swapped = topic_problem(
        "t", want(2, 1, 1, 3), parts, ran_with_insert_statements=False, rest=False
    )
    assert "message 0" in swapped
