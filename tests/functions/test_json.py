import datetime as dt
from decimal import Decimal

from hispeed.sql.types import (
    BOOLEAN,
    BYTES,
    DATE,
    DOUBLE,
    INTEGER,
    STRING,
    TIME,
    TIMESTAMP,
    array,
    decimal,
    map_,
    struct,
)
from tests.functions.util import call, col, values


def test_extractjsonfield() -> None:
    doc = '{"log": {"cloud": "gcp", "instance": 4, "arr": [1, 2.50, {"a": null}]}, "@type": "UDF"}'
    paths = [
        "$.log.cloud",
        "$.log.instance",
        "$.log.arr[1]",
        "$.log.arr[2]",
        "$.missing",
        "$['@type']",
        "$.log.arr[-1]",
        "$.log",
    ]
    out = values("EXTRACTJSONFIELD", col(STRING, *[doc] * len(paths)), col(STRING, *paths))
    assert out == [
        "gcp",
        "4",
        "2.50",
        '{"a":null}',
        None,
        "UDF",
        None,
        '{"cloud":"gcp","instance":4,"arr":[1,2.50,{"a":null}]}',
    ]
    out, ctx = call("EXTRACTJSONFIELD", col(STRING, "{bad", None), col(STRING, "$.a", "$.a"))
    assert out == [None, None]
    assert [r for r, _ in ctx.errors] == [0]


def test_is_json_and_lengths() -> None:
    texts = col(STRING, "[1, 2, 3]", "{}", "1", '"abc"', "null", "", "abc", None)
    assert values("IS_JSON_STRING", texts) == [True, True, True, True, True, False, False, False]
    out, ctx = call("JSON_ARRAY_LENGTH", col(STRING, "[1, [1, [2]], 3]", "[]", "{}", None, "abc"))
    assert out == [3, 0, None, None, None]
    assert [r for r, _ in ctx.errors] == [4]


def test_keys_records_items() -> None:
    doc = '{"a": "abc", "b": { "c": "a" }, "d": 1}'
    assert values("JSON_KEYS", col(STRING, doc, "[]", None)) == [["a", "b", "d"], None, None]
    out = values("JSON_RECORDS", col(STRING, doc, "{}"))
    assert out == [[("a", "abc"), ("b", '{"c":"a"}'), ("d", "1")], []]
    assert values("JSON_ITEMS", col(STRING, '[{"a": 1}, 2, "x"]')) == [['{"a":1}', "2", '"x"']]


def test_json_concat() -> None:
    cases = [
        (('{"a": 1}', '{"b": 2}'), '{"a":1,"b":2}'),
        (('{"a": {"5": 6}}', '{"a": {"3": 4}}'), '{"a":{"3":4}}'),
        (("[1, [2]]", "[[[3]], [[[4]]]]"), "[1,[2],[[3]],[[[4]]]]"),
        (("null", "null"), "[null,null]"),
        (("[1, 2]", '{"a": 1}'), '[1,2,{"a":1}]'),
        (("1", "2"), "[1,2]"),
        (("abc", "[1]"), None),
        ((None, "[1]"), None),
    ]
    for (a, b), want in cases:
        assert values("JSON_CONCAT", col(STRING, a), col(STRING, b)) == [want]


def test_json_array_contains() -> None:
    arr = col(STRING, "[1, 2, 3]", "[1, 2, 3]", '["a", [2]]', "{}", None)
    assert values("JSON_ARRAY_CONTAINS", arr, col(INTEGER, 3, 5, 2, 1, 1)) == [
        True,
        False,
        False,
        False,
        False,
    ]
    assert values("JSON_ARRAY_CONTAINS", col(STRING, "[1.5]"), col(DOUBLE, 1.5)) == [True]
    assert values("JSON_ARRAY_CONTAINS", col(STRING, "[true]"), col(BOOLEAN, True)) == [True]


def test_to_json_string() -> None:
    assert values("TO_JSON_STRING", col(INTEGER, 1, None)) == ["1", "null"]
    assert values("TO_JSON_STRING", col(STRING, "abc")) == ['"abc"']
    assert values("TO_JSON_STRING", col(DOUBLE, 123.456, 1e10)) == ["123.456", "1.0E10"]
    assert values("TO_JSON_STRING", col(BYTES, b"!")) == ['"IQ=="']
    assert values("TO_JSON_STRING", col(decimal(4, 2), Decimal("1.50"))) == ["1.50"]
    assert values("TO_JSON_STRING", col(TIME, dt.time(16, 43, 40), dt.time(13, 25))) == [
        '"16:43:40"',
        '"13:25"',
    ]
    assert values("TO_JSON_STRING", col(DATE, dt.date(2021, 10, 11))) == ['"2021-10-11"']
    ts = dt.datetime(2021, 6, 30, 12, 18, 39, 446000)
    assert values("TO_JSON_STRING", col(TIMESTAMP, ts)) == ['"2021-06-30T12:18:39.446"']
    s = struct([("NAME", STRING), ("ID", INTEGER)])
    assert values("TO_JSON_STRING", col(s, {"NAME": "A", "ID": 1})) == ['{"ID":1,"NAME":"A"}']
    m = map_(STRING, array(INTEGER))
    assert values("TO_JSON_STRING", col(m, [("d", [1]), ("c", None)])) == ['{"c":null,"d":[1]}']
