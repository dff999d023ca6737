"""Each aggregate: its result type, its per-record results, and taking values back (tables)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import pytest

from hispeed.functions.aggregates import AGGREGATES
from hispeed.functions.registry import FunctionTypeError
from hispeed.sql import types as T


def run(
    name: str, types: Sequence[T.SqlType], rows: list[list[Any]], params: Sequence[Any] = ()
) -> tuple[T.SqlType, list[Any]]:
    logic = AGGREGATES[name].make(list(types), list(params))
    state = logic.init()
    results = []
    for args in rows:
        state = logic.add(state, args)
        results.append(logic.result(state))
    return logic.result_type(), results


@pytest.mark.parametrize(
    ("name", "types", "rows", "params", "result_type", "results"),
    [
        ("COUNT", [T.BIGINT], [[1], [None], [3]], (), T.BIGINT, [1, 1, 2]),
        ("COUNT", [], [[], [], []], (), T.BIGINT, [1, 2, 3]),
        ("SUM", [T.INTEGER], [[1], [None], [2]], (), T.INTEGER, [1, 1, 3]),
        ("SUM", [T.INTEGER], [[2147483647], [1]], (), T.INTEGER, [2147483647, -2147483648]),
        ("SUM", [T.DOUBLE], [[1.5], [2.5]], (), T.DOUBLE, [1.5, 4.0]),
        (
            "SUM",
            [T.decimal(4, 2)],
            [[Decimal("1.10")], [Decimal("2.05")]],
            (),
            T.decimal(4, 2),
            [Decimal("1.10"), Decimal("3.15")],
        ),
        ("AVG", [T.INTEGER], [[1], [None], [4]], (), T.DOUBLE, [1.0, 1.0, 2.5]),
        ("MIN", [T.STRING], [["b"], [None], ["a"]], (), T.STRING, ["b", "b", "a"]),
        ("MAX", [T.BIGINT], [[1], [5], [3]], (), T.BIGINT, [1, 5, 5]),
        ("COUNT_DISTINCT", [T.STRING], [["a"], ["b"], ["a"], [None]], (), T.BIGINT, [1, 2, 2, 2]),
        ("LATEST_BY_OFFSET", [T.STRING], [["a"], [None], ["c"]], (), T.STRING, ["a", "a", "c"]),
        ("LATEST_BY_OFFSET", [T.STRING], [["a"], [None]], (False,), T.STRING, ["a", None]),
        (
            "LATEST_BY_OFFSET",
            [T.INTEGER],
            [[1], [2], [3]],
            (2,),
            T.array(T.INTEGER),
            [[1], [1, 2], [2, 3]],
        ),
        ("EARLIEST_BY_OFFSET", [T.STRING], [[None], ["b"], ["c"]], (), T.STRING, [None, "b", "b"]),
        (
            "COLLECT_LIST",
            [T.INTEGER],
            [[1], [None], [1]],
            (),
            T.array(T.INTEGER),
            [[1], [1, None], [1, None, 1]],
        ),
        (
            "COLLECT_SET",
            [T.INTEGER],
            [[1], [2], [1]],
            (),
            T.array(T.INTEGER),
            [[1], [1, 2], [1, 2]],
        ),
        (
            "TOPK",
            [T.INTEGER],
            [[3], [7], [5], [1]],
            (2,),
            T.array(T.INTEGER),
            [[3], [7, 3], [7, 5], [7, 5]],
        ),
        (
            "TOPKDISTINCT",
            [T.INTEGER],
            [[3], [3], [1]],
            (2,),
            T.array(T.INTEGER),
            [[3], [3], [3, 1]],
        ),
        (
            "HISTOGRAM",
            [T.STRING],
            [["a"], ["b"], ["a"]],
            (),
            T.map_(T.STRING, T.BIGINT),
            [{"a": 1}, {"a": 1, "b": 1}, {"a": 2, "b": 1}],
        ),
        (
            "STDDEV_POP",
            [T.DOUBLE],
            [[2.0], [4.0], [6.0]],
            (),
            T.DOUBLE,
            [0.0, 1.0, math.sqrt(8 / 3)],
        ),
        # ksqlDB's STDDEV_SAMP returns the sample variance (its UDAF's map takes no root)
        ("STDDEV_SAMP", [T.DOUBLE], [[2.0], [4.0], [6.0]], (), T.DOUBLE, [0.0, 2.0, 4.0]),
        (
            "STDDEV_SAMPLE",
            [T.DOUBLE],
            [[2.0], [4.0], [6.0]],
            (),
            T.DOUBLE,
            [0.0, math.sqrt(2), 2.0],
        ),
        ("ATTR", [T.STRING], [["a"], ["a"], ["b"]], (), T.STRING, ["a", "a", None]),
        ("ATTR", [T.array(T.INTEGER)], [[[1, 2]], [[1, 2]]], (), T.array(T.INTEGER), [[1, 2]] * 2),
    ],
)
def test_aggregates(
    name: str,
    types: list[T.SqlType],
    rows: list[list[Any]],
    params: tuple[Any, ...],
    result_type: T.SqlType,
    results: list[Any],
) -> None:
    got_type, got = run(name, types, rows, params)
    assert got_type == result_type
    for g, want in zip(got, results, strict=True):
        if isinstance(want, float):
            assert g == pytest.approx(want)
        else:
            assert g == want


def test_correlation() -> None:
    _, got = run("CORRELATION", [T.DOUBLE, T.DOUBLE], [[1.0, 2.0], [2.0, 4.0], [3.0, 7.0]])
    assert math.isnan(got[0])
    assert got[1] == pytest.approx(1.0)
    assert got[2] == pytest.approx(0.9933992677987828)


def _java_correlation(points: list[tuple[float, float]]) -> float:
    """ksqlDB's CorrelationUdaf.map, written out: sums, then its single-pass formula."""
    n = len(points)
    sx = sy = sxx = syy = sxy = 0.0
    for x, y in points:
        sx, sy, sxx, syy, sxy = sx + x, sy + y, sxx + x * x, syy + y * y, sxy + x * y
    return (n * sxy - sx * sy) / math.sqrt((n * sxx - sx * sx) * (n * syy - sy * sy))


def _java_stddev_sample(values: list[float]) -> float:
    """ksqlDB's StandardDeviationSampleUdaf for doubles: the Youngs-Cramer recurrence."""
    count, total, m2 = 0, 0.0, 0.0
    for x in values:
        if count:
            delta = x * (count + 1) - (total + x)
            m2 = delta * delta / ((count + 1) * count) + m2
        count, total = count + 1, total + x
    return math.sqrt(m2 / (count - 1))


def test_correlation_and_stddev_agree_with_ksqldb_to_the_last_digit() -> None:
    # the outputs of a QTT case match exactly only when computed in ksqlDB's order
    points = [(0.1, 9.7), (3.3, -2.25), (7.77, 1.5), (1e3, 0.003), (-4.5, 12.0)]
    _, got = run("CORRELATION", [T.DOUBLE, T.DOUBLE], [list(p) for p in points])
    assert got[-1] == _java_correlation(points)
    values = [10.0, 12.0, 13.0, 14.1, 16.7]
    _, std = run("STDDEV_SAMPLE", [T.DOUBLE], [[v] for v in values])
    assert std[-1] == _java_stddev_sample(values)
    assert std[2] == 1.5275252316519465  # ksqlDB's own output for 10, 12, 13
    # Java's int sum overflows as ksqlDB's STRUCT<SUM integer> does
    big = [[2**31 - 1], [2**31 - 1], [5]]
    _, wrapped = run("STDDEV_SAMP", [T.INTEGER], big)
    _, exact = run("STDDEV_SAMP", [T.BIGINT], big)
    assert wrapped[-1] != exact[-1]


@pytest.mark.parametrize(
    "name",
    ["COUNT", "SUM", "AVG", "COUNT_DISTINCT", "HISTOGRAM", "COLLECT_LIST", "STDDEV_SAMP", "ATTR"],
)
def test_undo_takes_a_value_back(name: str) -> None:
    t = T.STRING if name in ("COUNT_DISTINCT", "HISTOGRAM", "COLLECT_LIST", "ATTR") else T.BIGINT
    value = "x" if t == T.STRING else 5
    other = "y" if t == T.STRING else 7
    logic = AGGREGATES[name].make([t], [])
    before = logic.add(logic.init(), [other])
    after = logic.undo(logic.add(before, [value]), [value])
    assert logic.result(after) == logic.result(before)


def test_bad_argument_types_say_what_is_accepted() -> None:
    with pytest.raises(FunctionTypeError, match="SUM takes INT, BIGINT, DOUBLE or DECIMAL"):
        AGGREGATES["SUM"].make([T.STRING], [])


def test_topk_with_other_columns_keeps_structs_in_ksqldb_order() -> None:
    # TOPK(sort, other..., k): ksqlDB's STRUCT<sort_col, col0, ...>; ties keep arrival order
    rows = [[5, "a"], [None, "skipped"], [7, "b"], [5, "c"], [1, "too small"], [6, "d"]]
    result_type, got = run("TOPK", [T.INTEGER, T.STRING], rows, params=(3,))
    assert result_type == T.array(T.struct([("sort_col", T.INTEGER), ("col0", T.STRING)]))
    assert got[3] == [
        {"sort_col": 7, "col0": "b"},
        {"sort_col": 5, "col0": "a"},
        {"sort_col": 5, "col0": "c"},
    ]
    assert got[4] == got[3]  # no greater than the smallest of three kept: nothing changes
    assert [e["col0"] for e in got[5]] == ["b", "d", "a"]
