import pytest

from hispeed.functions.registry import FunctionTypeError, lookup
from hispeed.sql.types import BIGINT, BYTES, INTEGER, STRING, array, map_
from tests.functions.util import call, col, values


def test_case_and_trim() -> None:
    assert values("UCASE", col(STRING, "aBc", None)) == ["ABC", None]
    assert values("LCASE", col(STRING, "aBc")) == ["abc"]
    assert values("TRIM", col(STRING, " \t x y \n", None)) == ["x y", None]
    assert values("LTRIM", col(STRING, "  x ")) == ["x "]
    assert values("RTRIM", col(STRING, "  x ")) == ["  x"]


def test_initcap() -> None:
    out = values("INITCAP", col(STRING, "the  quick BROWN fox", " lead", "", None))
    assert out == ["The  Quick Brown Fox", "Lead", "", None]


def test_len_counts_utf16_units() -> None:
    assert values("LEN", col(STRING, "abc", "a😀", "", None)) == [3, 3, 0, None]
    assert values("LEN", col(BYTES, b"\x00\x01", None)) == [2, None]


def test_concat_and_concat_ws() -> None:
    assert values("CONCAT", col(STRING, "a", None, None), col(STRING, "b", "c", None)) == [
        "ab",
        "c",
        "",
    ]
    assert values("CONCAT", col(BYTES, b"a"), col(BYTES, b"b")) == [b"ab"]
    out = values(
        "CONCAT_WS",
        col(STRING, "-", None, ", "),
        col(STRING, "a", "a", None),
        col(STRING, "b", "b", "c"),
    )
    assert out == ["a-b", None, "c"]
    with pytest.raises(FunctionTypeError):
        lookup("CONCAT").resolve([STRING, BYTES])  # type: ignore[union-attr]


def test_concat_ws_of_values_all_null_is_empty_not_a_shorter_column() -> None:
    # Arrow drops such rows under null_handling="skip": the query's batch lost a row
    out = values(
        "CONCAT_WS",
        col(STRING, "-", "-", None),
        col(STRING, None, "a", None),
        col(STRING, None, None, None),
    )
    assert out == ["", "a", None]
    out = values(
        "CONCAT_WS", col(BYTES, b"a", b"a"), col(BYTES, b"b", None), col(BYTES, None, None)
    )
    assert out == [b"b", b""]


def test_substring() -> None:
    s = col(STRING, "some_string", "another", "short", None)
    assert values("SUBSTRING", s, col(INTEGER, 6, 6, 6, 6)) == ["string", "er", "", None]
    assert values("SUBSTRING", col(STRING, "stream"), col(INTEGER, 1), col(INTEGER, 4)) == ["stre"]
    assert values(
        "SUBSTRING", col(STRING, "stream", "ab"), col(INTEGER, -3, -5), col(INTEGER, 2, 1)
    ) == [
        "ea",
        "a",
    ]
    assert values("SUBSTRING", col(STRING, "abc"), col(INTEGER, None)) == [None]
    assert values("SUBSTRING", col(BYTES, b"hello"), col(INTEGER, 2), col(INTEGER, 2)) == [b"el"]
    fn = lookup("SUBSTRING")
    assert fn is not None
    with pytest.raises(
        FunctionTypeError, match=r"SUBSTRING takes \(STRING, INTEGER.*not \(BIGINT\)"
    ):
        fn.resolve([BIGINT])


def test_instr() -> None:
    s = "CORPORATE FLOOR"
    cases = [((), 2), ((3,), 5), ((3, 2), 14), ((-3,), 5), ((-3, 2), 2)]
    for extra, want in cases:
        cols = [col(STRING, s), col(STRING, "OR")] + [col(INTEGER, v) for v in extra]
        assert values("INSTR", *cols) == [want]
    assert values("INSTR", col(STRING, s, None), col(STRING, "MISSING", "x")) == [0, 0]


def test_pad() -> None:
    lp = values(
        "LPAD",
        col(STRING, "Foo", "Foo", "", "x", None),
        col(INTEGER, 7, 2, 2, -1, 3),
        col(STRING, "Bar", "Bar", "Bar", "y", "z"),
    )
    assert lp == ["BarBFoo", "Fo", "Ba", None, None]
    assert values("RPAD", col(STRING, "Foo"), col(INTEGER, 7), col(STRING, "Bar")) == ["FooBarB"]
    assert values("RPAD", col(STRING, "Foo"), col(INTEGER, 7), col(STRING, "")) == [None]
    assert values("LPAD", col(BYTES, b"\x01"), col(INTEGER, 3), col(BYTES, b"\x00")) == [
        b"\x00\x00\x01"
    ]


def test_replace() -> None:
    assert values(
        "REPLACE", col(STRING, "aXbX", None), col(STRING, "X", "X"), col(STRING, "yy", "y")
    ) == [
        "ayybyy",
        None,
    ]
    assert values("REPLACE", col(STRING, "ab"), col(STRING, ""), col(STRING, "-")) == ["-a-b-"]


def test_split() -> None:
    out = values("SPLIT", col(STRING, "a,b,,", ",x", None), col(STRING, ",", ",", ","))
    assert out == [["a", "b", "", ""], ["", "x"], None]
    assert values("SPLIT", col(STRING, "abc", ""), col(STRING, "", "")) == [["a", "b", "c"], [""]]
    assert lookup("SPLIT").resolve([BYTES, BYTES]) == array(BYTES)  # type: ignore[union-attr]
    assert values("SPLIT", col(BYTES, b"a|b"), col(BYTES, b"|")) == [[b"a", b"b"]]


def test_split_to_map() -> None:
    out = values(
        "SPLIT_TO_MAP",
        col(STRING, "a=1;b=2;;c;a=3", "x"),
        col(STRING, ";", ";"),
        col(STRING, "=", ";"),
    )
    assert out == [[("a", "3"), ("b", "2")], None]
    assert lookup("SPLIT_TO_MAP").resolve([STRING] * 3) == map_(STRING, STRING)  # type: ignore[union-attr]


def test_regexp_functions() -> None:
    assert values(
        "REGEXP_EXTRACT", col(STRING, "(.*) (.*)"), col(STRING, "hello there"), col(INTEGER, 2)
    ) == ["there"]
    assert values("REGEXP_EXTRACT", col(STRING, "x(y)"), col(STRING, "abc"), col(INTEGER, 5)) == [
        None
    ]
    out = values(
        "REGEXP_EXTRACT_ALL",
        col(STRING, r"(\w+) (\w+)"),
        col(STRING, "hello there nice day"),
        col(INTEGER, 2),
    )
    assert out == [["there", "day"]]
    assert values(
        "REGEXP_REPLACE", col(STRING, "a1b22"), col(STRING, r"(\d+)"), col(STRING, "<$1>")
    ) == ["a<1>b<22>"]
    out = values(
        "REGEXP_SPLIT_TO_ARRAY", col(STRING, "a1b22c", "abc", "xa"), col(STRING, r"\d+", "", "a")
    )
    assert out == [["a", "b", "c"], ["a", "b", "c"], ["x", ""]]


def test_bad_regex_is_row_error() -> None:
    out, ctx = call(
        "REGEXP_REPLACE", col(STRING, "a", None), col(STRING, "(", "("), col(STRING, "x", "x")
    )
    assert out == [None, None]
    assert len(ctx.errors) == 1
    assert ctx.errors[0][0] == 0
    assert "REGEXP_REPLACE" in ctx.errors[0][1]


def test_masks() -> None:
    s = col(STRING, "My Test $123")
    assert values("MASK", s) == ["Xx-Xxxx--nnn"]
    masks = [col(STRING, "*"), col(STRING, None), col(STRING, "1"), col(STRING, None)]
    assert values("MASK", s, *masks) == ["*y *est $111"]
    four = col(INTEGER, 4)
    assert values("MASK_KEEP_LEFT", s, four) == ["My Txxx--nnn"]
    assert values("MASK_KEEP_RIGHT", s, four) == ["Xx-Xxxx-$123"]
    assert values("MASK_LEFT", s, four) == ["Xx-Xest $123"]
    assert values("MASK_RIGHT", s, four) == ["My Test -nnn"]
    out, ctx = call("MASK_LEFT", s, col(INTEGER, -1))
    assert out == [None]
    assert len(ctx.errors) == 1


def test_chr_elt_field() -> None:
    assert values("CHR", col(INTEGER, 75, 22909, -1, None)) == ["K", "好", None, None]
    assert values("CHR", col(STRING, "\\u004b", "\\ud83d\\ude00", "x")) == ["K", "😀", None]
    e = values(
        "ELT",
        col(INTEGER, 1, 3, 0, None),
        col(STRING, "a", "a", "a", "a"),
        col(STRING, "b", "b", "b", "b"),
    )
    assert e == ["a", None, None, None]
    f = values(
        "FIELD",
        col(STRING, "b", "z", None),
        col(STRING, "a", "a", "a"),
        col(STRING, "b", "b", None),
    )
    assert f == [2, 0, 0]
