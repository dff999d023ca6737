import math
from decimal import Decimal

import pytest

from hispeed.functions.registry import FunctionTypeError, lookup
from hispeed.sql.types import BIGINT, DOUBLE, INTEGER, STRING, decimal
from tests.functions.util import call, col, values


def test_abs_keeps_type() -> None:
    assert values("ABS", col(INTEGER, -3, None, 4)) == [3, None, 4]
    assert lookup("abs").resolve([BIGINT]) == BIGINT  # type: ignore[union-attr]
    assert values("ABS", col(DOUBLE, -1.5)) == [1.5]
    assert values("ABS", col(decimal(4, 2), Decimal("-1.25"))) == [Decimal("1.25")]


def test_type_error_says_what_is_accepted() -> None:
    fn = lookup("SQRT")
    assert fn is not None
    with pytest.raises(FunctionTypeError, match=r"SQRT takes .*, not \(STRING\)"):
        fn.resolve([STRING])


@pytest.mark.parametrize(
    ("name", "inp", "expected"),
    [
        ("EXP", [0, 1], [1.0, math.e]),
        ("LN", [1, 0, -1], [0.0, -math.inf, math.nan]),
        ("SQRT", [4, -1], [2.0, math.nan]),
        ("CBRT", [-8], [-2.0]),
        ("ACOS", [2], [math.nan]),
        ("COT", [0], [math.inf]),
        ("DEGREES", [0], [0.0]),
        ("LOG", [1, 0], [0.0, -math.inf]),  # natural, as ksqlDB's LOG
    ],
)
def test_double_functions(name: str, inp: list[int], expected: list[float]) -> None:
    out = values(name, col(INTEGER, *inp, None))
    assert out[-1] is None
    for got, want in zip(out, expected, strict=False):
        assert got == pytest.approx(want, nan_ok=True)


def test_log_base_power_atan2_pi() -> None:
    out = values(
        "LOG", col(DOUBLE, 15.0, 15.0, 1.0, -15.0, None), col(DOUBLE, 13.0, 0.0, 13.0, 13.0, 1.0)
    )
    assert out[0] == pytest.approx(0.9471572411831843)
    assert out[1] == -math.inf
    assert math.isnan(out[2])
    assert math.isnan(out[3])
    assert out[4] is None
    assert values("POWER", col(INTEGER, 15, 0), col(INTEGER, -1, 0)) == [pytest.approx(1 / 15), 1.0]
    assert values("ATAN2", col(DOUBLE, 1.0), col(DOUBLE, 0.0)) == [pytest.approx(math.pi / 2)]
    assert values("PI") == [math.pi]


def test_sign() -> None:
    assert values("SIGN", col(DOUBLE, -3.0, 0.0, 2.5, None, math.nan)) == [-1, 0, 1, None, 0]


def test_ceil_floor() -> None:
    assert values("CEIL", col(DOUBLE, 1.1, -1.7, None)) == [2.0, -1.0, None]
    assert values("FLOOR", col(DOUBLE, 1.1, -1.7)) == [1.0, -2.0]
    assert values("CEIL", col(INTEGER, 3)) == [3]
    d = decimal(2, 1)
    assert values("CEIL", col(d, Decimal("1.1"), Decimal("-1.5"))) == [
        Decimal("2.0"),
        Decimal("-1.0"),
    ]


def test_ceil_decimal_overflow_is_row_error() -> None:
    out, ctx = call("CEIL", col(decimal(2, 1), Decimal("9.5"), Decimal("1.0")))
    assert out == [None, Decimal("1.0")]
    assert [row for row, _ in ctx.errors] == [0]
    assert "CEIL" in ctx.errors[0][1]


def test_round_double_half_up() -> None:
    out = values("ROUND", col(DOUBLE, 1.5, -1.5, 2.4, -2.6, 0.49999999999999994, None, math.nan))
    assert out == [2, -1, 2, -3, 0, None, 0]
    assert lookup("ROUND").resolve([DOUBLE]) == BIGINT  # type: ignore[union-attr]


def test_round_with_places() -> None:
    out = values("ROUND", col(DOUBLE, 1.005, -1.25, 111.0, None), col(INTEGER, 2, 1, -1, 1))
    assert out == [1.01, -1.2, 110.0, None]


def test_round_decimal() -> None:
    t = decimal(33, 16)
    assert lookup("ROUND").resolve([t]) == decimal(17, 0)  # type: ignore[union-attr]
    assert lookup("ROUND").resolve([t, INTEGER]) == t  # type: ignore[union-attr]
    v = Decimal("1234567898765432.1234567898765432")
    assert values("ROUND", col(t, v)) == [Decimal("1234567898765432")]
    assert values("ROUND", col(decimal(4, 2), Decimal("-1.25")), col(INTEGER, 1)) == [
        Decimal("-1.20")
    ]


def test_trunc() -> None:
    assert values("TRUNC", col(DOUBLE, 1.7, -1.7, None)) == [1, -1, None]
    out = values("TRUNC", col(DOUBLE, 12345.678, 12345.678, 1.234567), col(INTEGER, 2, -2, 10))
    assert out == [12345.67, 12300.0, 1.234567]
    t = decimal(12, 7)
    assert values("TRUNC", col(t, Decimal("-1.7000000"))) == [Decimal("-1")]
    assert values("TRUNC", col(t, Decimal("12345.6780000")), col(INTEGER, 1)) == [
        Decimal("12345.6000000")
    ]


def test_greatest_least() -> None:
    assert values("GREATEST", col(BIGINT, 1, None, None), col(BIGINT, 3, 2, None)) == [3, 2, None]
    assert values("LEAST", col(STRING, "b", None), col(STRING, "a", "c")) == ["a", "c"]
    fn = lookup("GREATEST")
    assert fn is not None
    assert fn.resolve([INTEGER, DOUBLE]) == DOUBLE
    with pytest.raises(FunctionTypeError):
        fn.resolve([STRING, INTEGER])
    with pytest.raises(FunctionTypeError):
        fn.resolve([])


def test_random_is_in_range() -> None:
    fn = lookup("RANDOM")
    assert fn is not None
    assert not fn.deterministic
    out = values("RANDOM")
    assert 0.0 <= out[0] < 1.0
