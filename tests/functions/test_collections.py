from decimal import Decimal

import pytest

from hispeed.functions.registry import FunctionTypeError, lookup
from hispeed.sql.types import BIGINT, BOOLEAN, DOUBLE, INTEGER, STRING, array, decimal, map_, struct
from tests.functions.util import call, col, values

INTS = array(INTEGER)
STRS = array(STRING)


def test_array_length_contains() -> None:
    assert values("ARRAY_LENGTH", col(INTS, [1, 2], [], None)) == [2, 0, None]
    out = values("ARRAY_CONTAINS", col(INTS, [1, 2], [1, None], None), col(INTEGER, 2, None, 1))
    assert out == [True, True, False]


def test_set_operations() -> None:
    a = col(STRS, ["apple", "apple", None, "cherry"], None)
    assert values("ARRAY_DISTINCT", a) == [["apple", None, "cherry"], None]
    b = col(STRS, ["cherry"], ["x"])
    assert values("ARRAY_EXCEPT", a, b) == [["apple", None], None]
    assert values("ARRAY_INTERSECT", col(INTS, [1, 2, 3, 1, 2]), col(INTS, [2, 1])) == [[1, 2]]
    assert values("ARRAY_UNION", col(INTS, [1, 2, 3, 1, 2]), col(INTS, [4, 1])) == [[1, 2, 3, 4]]
    with pytest.raises(FunctionTypeError):
        lookup("ARRAY_UNION").resolve([INTS, STRS])  # type: ignore[union-attr]


def test_array_concat() -> None:
    out = values("ARRAY_CONCAT", col(INTS, [1], None, None), col(INTS, [2], [3], None))
    assert out == [[1, 2], [3], None]


def test_array_join() -> None:
    assert values("ARRAY_JOIN", col(INTS, [1, None, 3], None)) == ["1,null,3", None]
    assert values("ARRAY_JOIN", col(array(DOUBLE), [1.0, 1e10]), col(STRING, " ")) == ["1.0 1.0E10"]
    assert values("ARRAY_JOIN", col(array(BOOLEAN), [True, False]), col(STRING, None)) == [
        "truefalse"
    ]
    d = array(decimal(4, 2))
    assert values("ARRAY_JOIN", col(d, [Decimal("1.50")]), col(STRING, "#")) == ["1.50"]
    with pytest.raises(FunctionTypeError):
        lookup("ARRAY_JOIN").resolve([array(INTS)])  # type: ignore[union-attr]


def test_min_max_sort() -> None:
    assert values("ARRAY_MAX", col(INTS, [-1, 2, None, 0], [None], None)) == [2, None, None]
    assert values("ARRAY_MIN", col(STRS, ["Foo", "Bar", None, "baz"])) == ["Bar"]
    assert values("ARRAY_SORT", col(STRS, ["Foo", "Bar", None, "baz"])) == [
        ["Bar", "Foo", "baz", None]
    ]
    out = values("ARRAY_SORT", col(INTS, [1, None, 3], [1]), col(STRING, "desc", "sideways"))
    assert out == [[3, 1, None], None]


def test_array_remove() -> None:
    out = values(
        "ARRAY_REMOVE", col(INTS, [1, 2, 3, 2, 1], [1, None], None), col(INTEGER, 2, None, 1)
    )
    assert out == [[1, 3, 1], [1], None]


def test_slice() -> None:
    a = col(INTS, [1, 2, 3, 4], [1, 2, 3, 4], [1, 2], None)
    assert values("SLICE", a, col(INTEGER, 2, None, 1, 1), col(INTEGER, 3, 2, 5, 1)) == [
        [2, 3],
        [1, 2],
        None,
        None,
    ]


def test_generate_series() -> None:
    assert values("GENERATE_SERIES", col(INTEGER, 1, 3), col(INTEGER, 3, 1)) == [
        [1, 2, 3],
        [3, 2, 1],
    ]
    assert lookup("GENERATE_SERIES").resolve([BIGINT, INTEGER]) == array(BIGINT)  # type: ignore[union-attr]
    out = values("GENERATE_SERIES", col(BIGINT, 0), col(BIGINT, 9), col(INTEGER, 4))
    assert out == [[0, 4, 8]]
    out, ctx = call("GENERATE_SERIES", col(INTEGER, 1, 1), col(INTEGER, 5, 5), col(INTEGER, 0, -1))
    assert out == [None, None]
    assert [r for r, _ in ctx.errors] == [0, 1]


def test_maps() -> None:
    m = map_(STRING, INTEGER)
    data = col(m, [("apple", 10), ("banana", 20)], None, [])
    assert values("MAP_KEYS", data) == [["apple", "banana"], None, []]
    assert values("MAP_VALUES", data) == [[10, 20], None, []]
    out = values(
        "MAP_UNION", col(m, [("a", 1), ("b", 2)], None, None), col(m, [("a", 5)], [("c", 3)], None)
    )
    assert out == [[("a", 5), ("b", 2)], [("c", 3)], None]
    out = values("AS_MAP", col(STRS, ["a", "b"]), col(INTS, [1]))
    assert out == [[("a", 1), ("b", None)]]
    out, ctx = call("AS_MAP", col(STRS, [None]), col(INTS, [1]))
    assert out == [None]
    assert len(ctx.errors) == 1


def test_entries() -> None:
    m = map_(STRING, INTEGER)
    fn = lookup("ENTRIES")
    assert fn is not None
    assert fn.resolve([m, BOOLEAN]) == array(struct([("K", STRING), ("V", INTEGER)]))
    out = values("ENTRIES", col(m, [("b", 2), ("a", 1)], None), col(BOOLEAN, True, True))
    assert out == [[{"K": "a", "V": 1}, {"K": "b", "V": 2}], None]
