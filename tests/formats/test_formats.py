"""Tests of the serialization formats: both directions, coercions, tombstones, errors, checks."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal

import msgspec
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hispeed.formats import Column, FormatError, get_format
from hispeed.sql import types as T
from hispeed.sql.javatext import java_double as java_double_text


def rows(values: list[bytes | str | None]) -> pa.Array:
    return pa.array([v.encode() if isinstance(v, str) else v for v in values], pa.binary())


def decode(fmt: str, values: list[bytes | str | None], columns: list[Column], **props: object):
    return get_format(fmt, props or None).decode(rows(values), columns)


# -- JSON -------------------------------------------------------------------------------------

ALL_JSON = [
    Column("B", T.BOOLEAN),
    Column("I", T.INTEGER),
    Column("L", T.BIGINT),
    Column("D", T.DOUBLE),
    Column("S", T.STRING),
    Column("DEC", T.decimal(4, 2)),
    Column("BY", T.BYTES),
    Column("TS", T.TIMESTAMP),
    Column("DA", T.DATE),
    Column("TI", T.TIME),
    Column("A", T.array(T.STRING)),
    Column("M", T.map_(T.STRING, T.INTEGER)),
    Column("ST", T.struct([("F", T.DOUBLE), ("G", T.array(T.INTEGER))])),
]


def test_json_every_type_both_ways() -> None:
    record = {
        "b": True, "i": 7, "l": 10827272222, "d": 1.5, "s": "hi", "dec": 10.1,
        "by": "AAE=", "ts": 1700000000123, "da": 19000, "ti": 3600000,
        "a": ["x", None], "m": {"k": 1, "z": None}, "st": {"f": 2.5, "g": [1]},
    }  # fmt: skip
    fmt = get_format("JSON")
    result = fmt.decode(rows([msgspec.json.encode(record)]), ALL_JSON)
    assert result.errors == []
    got = result.batch.to_pylist()[0]
    assert got["DEC"] == Decimal("10.10")
    assert got["BY"] == b"\x00\x01"
    assert got["TS"] == dt.datetime(2023, 11, 14, 22, 13, 20, 123000)
    assert got["DA"] == dt.date(2022, 1, 8)
    assert got["TI"] == dt.time(1, 0)
    assert got["M"] == [("k", 1), ("z", None)]
    assert got["ST"] == {"F": 2.5, "G": [1]}
    out = msgspec.json.decode(fmt.encode(result.batch, ALL_JSON)[0].as_py())
    assert out == {
        "B": True, "I": 7, "L": 10827272222, "D": 1.5, "S": "hi", "DEC": 10.1,
        "BY": "AAE=", "TS": 1700000000123, "DA": 19000, "TI": 3600000,
        "A": ["x", None], "M": {"k": 1, "z": None}, "ST": {"F": 2.5, "G": [1]},
    }  # fmt: skip
    assert b'"DEC":10.10' in fmt.encode(result.batch, ALL_JSON)[0].as_py()


def test_json_field_names_match_exactly_then_upper_cased() -> None:
    cols = [Column("ID", T.INTEGER), Column("name", T.STRING), Column("@TS", T.BIGINT)]
    result = decode(
        "JSON",
        ['{"id": 1, "name": "a", "@ts": 4}', '{"Id": 2, "NAME": "b", "extra": 1}', "{}"],
        cols,
    )
    assert result.batch.to_pylist() == [
        {"ID": 1, "name": "a", "@TS": 4},
        {"ID": 2, "name": None, "@TS": None},  # quoted lower-case `name` matches only itself
        {"ID": None, "name": None, "@TS": None},
    ]


def test_json_mixed_field_spellings_across_records() -> None:
    cols = [Column("ID", T.INTEGER), Column("V", T.STRING)]
    result = decode("JSON", ['{"id": 1, "v": "a"}', '{"ID": 2, "x": 0}', '{"iD": 3}'], cols)
    assert result.batch.column("ID").to_pylist() == [1, 2, 3]
    assert result.batch.column("V").to_pylist() == ["a", None, None]


def test_json_exact_name_wins_over_upper_cased_one() -> None:
    cols = [Column("ID", T.INTEGER)]
    result = decode("JSON", ['{"ID": 1, "id": 9}', '{"id": 2}'], cols)
    assert result.batch.column("ID").to_pylist() == [1, 2]


def test_json_tombstones_and_null_literal() -> None:
    cols = [Column("A", T.INTEGER), Column("B", T.STRING)]
    result = decode("JSON", [None, "null", ' {"a": 1} \n', '{"a": null}'], cols)
    assert result.null_rows.tolist() == [True, True, False, False]
    assert result.errors == []
    assert result.batch.column("A").to_pylist() == [None, None, 1, None]
    assert result.valid_rows.tolist() == [False, False, True, True]


def test_json_bad_records_are_row_errors() -> None:
    cols = [Column("A", T.INTEGER), Column("B", T.BOOLEAN)]
    result = decode(
        "JSON",
        ['{"a": 1, "b": true}', "{not json", "7", '{"a": "x"}', '{"b": "true"}', '{"a": 2}'],
        cols,
    )
    assert [i for i, _ in result.errors] == [1, 2, 3, 4]
    reasons = dict(result.errors)
    assert "requiredType: STRUCT" in reasons[2]
    assert "Can't coerce string to type. targetType: INTEGER, path: $.A" in reasons[3]
    assert "sourceType: TextNode, requiredType: BOOLEAN" in reasons[4]
    assert result.batch.column("A").to_pylist() == [1, None, None, None, None, 2]
    assert not result.null_rows.any()


def test_json_records_that_only_parse_when_joined_are_errors() -> None:
    cols = [Column("A", T.array(T.INTEGER))]
    result = decode("JSON", ["[1", "2]", "[3]"], cols, WRAP_SINGLE_VALUE=False)
    assert [i for i, _ in result.errors] == [0, 1]
    assert result.batch.column("A").to_pylist() == [None, None, [3]]


@pytest.mark.parametrize(
    ("column", "value", "expected"),
    [
        (T.STRING, "10", "10"),
        (T.STRING, "1.50", "1.50"),
        (T.STRING, "true", "true"),
        (T.STRING, '{"a": [1, 2.0]}', '{"a":[1,2.0]}'),
        (T.STRING, '[1, "b", null]', "[1, b, null]"),
        (T.INTEGER, '"10"', 10),
        (T.INTEGER, "1.9", 1),
        (T.INTEGER, "4294967297", 1),
        (T.BIGINT, '"-5"', -5),
        (T.DOUBLE, "3", 3.0),
        (T.DOUBLE, '"1.5"', 1.5),
        (T.decimal(4, 2), '"1.5"', Decimal("1.50")),
        (T.decimal(33, 16), "12345678987654321.2345678987654321", None),
        (T.TIMESTAMP, '"5"', dt.datetime(1970, 1, 1, 0, 0, 0, 5000)),
        (T.array(T.STRING), "[1, 2, 3]", ["1", "2", "3"]),
        (T.array(T.DOUBLE), "[1, 2.5]", [1.0, 2.5]),
    ],
)
def test_json_coercions(column: T.SqlType, value: str, expected: object) -> None:
    result = decode("JSON", [value], [Column("V", column)], WRAP_SINGLE_VALUE=False)
    assert result.errors == []
    got = result.batch.column("V")[0].as_py()
    if expected is None:  # exact digits survive: no float rounding on the way
        assert got == Decimal("12345678987654321.2345678987654321")
    else:
        assert got == expected


@pytest.mark.parametrize(
    ("column", "value"),
    [
        (T.BOOLEAN, "1"),
        (T.DOUBLE, "true"),
        (T.INTEGER, '"1.5"'),
        (T.decimal(4, 2), "10.123"),
        (T.decimal(4, 2), "100"),
        (T.TIME, "86400001"),
        (T.BYTES, '"not base64!"'),
        (T.array(T.INTEGER), '{"a": 1}'),
        (T.map_(T.STRING, T.INTEGER), "[1]"),
    ],
)
def test_json_coercion_failures(column: T.SqlType, value: str) -> None:
    result = decode("JSON", [value, "null"], [Column("V", column)], WRAP_SINGLE_VALUE=False)
    assert [i for i, _ in result.errors] == [0]
    assert result.null_rows.tolist() == [False, True]


def test_json_unwrapped_single_values_and_keys() -> None:
    value = get_format("JSON", {"wrap_single_value": "false"})
    col = [Column("V", T.BIGINT)]
    result = value.decode(rows(["10827272222", "null", None]), col)
    assert result.batch.column("V").to_pylist() == [10827272222, None, None]
    assert result.null_rows.tolist() == [False, True, True]
    assert value.encode(result.batch, col).to_pylist() == [b"10827272222", None, None]
    key = get_format("JSON", is_key=True)
    assert key.decode(rows(['"Hey"']), [Column("K", T.STRING)]).batch.to_pylist() == [{"K": "Hey"}]
    multi = [Column("K1", T.STRING), Column("K2", T.INTEGER)]
    got = key.decode(rows(['{"k1": "a", "K2": 1}']), multi).batch.to_pylist()
    assert got == [{"K1": "a", "K2": 1}]
    assert key.encode(pa.table({"K1": ["a"], "K2": [1]}), multi).to_pylist() == [
        b'{"K1":"a","K2":1}'
    ]


def test_json_wrapped_single_value_and_struct_unwrapped() -> None:
    wrapped = get_format("JSON")
    col = [Column("FOO", T.BOOLEAN)]
    batch = pa.table({"FOO": [True, None]})
    assert wrapped.encode(batch, col).to_pylist() == [b'{"FOO":true}', b'{"FOO":null}']
    unwrapped = get_format("JSON", {"WRAP_SINGLE_VALUE": False})
    assert unwrapped.encode(batch, col).to_pylist() == [b"true", None]
    scol = [Column("V", T.struct([("A", T.DOUBLE)]))]
    result = unwrapped.decode(rows(['{"a": 45.67}']), scol)
    assert unwrapped.encode(result.batch, scol).to_pylist() == [b'{"A":45.67}']


def test_json_encode_null_rows_and_empty_columns() -> None:
    fmt = get_format("JSON")
    cols = [Column("A", T.INTEGER)]
    out = fmt.encode(
        pa.table({"A": [1, 2]}),
        cols,
        null_rows=pa.array([False, True]).to_numpy(zero_copy_only=False),
    )
    assert out.to_pylist() == [b'{"A":1}', None]
    assert fmt.encode(pa.table({"A": [1]}), []).to_pylist() == [b"{}"]


def test_json_doubles_keep_their_point() -> None:
    fmt = get_format("JSON", {"WRAP_SINGLE_VALUE": False})
    out = fmt.encode(pa.table({"V": [1.0, 1234.589, 1e20]}), [Column("V", T.DOUBLE)])
    assert out.to_pylist()[:2] == [b"1.0", b"1234.589"]
    assert msgspec.json.decode(out[2].as_py()) == 1e20


def test_json_doubles_are_written_as_java_writes_them() -> None:
    # ksqlDB's JSON (Jackson) writes a DOUBLE with Double.toString: past 10^7 and below 10^-3
    # as d.dddE±n, which a reader keeping decimals as BigDecimal sees with another scale
    fmt = get_format("JSON", {"WRAP_SINGLE_VALUE": False})
    values = [1e12, -2.5e20, 1e-4, 12345678.9, 0.001, 9999999.0, 0.0, None]
    out = fmt.encode(pa.table({"V": values}), [Column("V", T.DOUBLE)]).to_pylist()
    assert out == [
        b"1.0E12",
        b"-2.5E20",
        b"1.0E-4",
        b"1.23456789E7",
        b"0.001",
        b"9999999.0",
        b"0.0",
        None,
    ]
    nested = [Column("V", T.array(T.DOUBLE))]
    assert fmt.encode(pa.table({"V": [[1e12, 0.5]]}), nested).to_pylist() == [b"[1.0E12,0.5]"]


def test_json_text_escaping_and_sliced_columns() -> None:
    fmt = get_format("JSON", {"WRAP_SINGLE_VALUE": False})
    texts = pa.array(['say "hi"', "back\\slash", "tab\there", "plain", "ünï", None])
    for start in range(len(texts)):
        part = texts.slice(start)
        out = fmt.encode(pa.table({"V": part}), [Column("V", T.STRING)]).to_pylist()
        decoded = [msgspec.json.decode(o) if o is not None else None for o in out]
        assert decoded == part.to_pylist()
    plain = fmt.encode(pa.table({"V": texts.slice(3, 2)}), [Column("V", T.STRING)])
    assert plain.to_pylist() == [b'"plain"', '"ünï"'.encode()]


def test_json_decimals_keep_their_scale() -> None:
    fmt = get_format("JSON", {"WRAP_SINGLE_VALUE": False})
    values = [Decimal("0.000"), Decimal("-0.005"), Decimal("1000.000"), None]
    out = fmt.encode(
        pa.table({"V": pa.array(values, pa.decimal128(10, 3))}), [Column("V", T.decimal(10, 3))]
    )
    assert out.to_pylist() == [b"0.000", b"-0.005", b"1000.000", None]


json_values = st.fixed_dictionaries(
    {
        "ID": st.none() | st.integers(-(2**63), 2**63 - 1),
        "I": st.none() | st.integers(-(2**31), 2**31 - 1),
        "NAME": st.none() | st.text(),
        "X": st.none() | st.floats(allow_nan=False, allow_infinity=False),
        "OK": st.none() | st.booleans(),
        "DEC": st.none() | st.decimals(min_value=-999, max_value=999, places=2),
        "RAW": st.none() | st.binary(max_size=8),
        "TAGS": st.none() | st.lists(st.none() | st.text(max_size=5), max_size=3),
        "M": st.none() | st.dictionaries(st.text(max_size=3), st.none() | st.integers(0, 9)),
    }
)
JSON_COLS = [
    Column("ID", T.BIGINT),
    Column("I", T.INTEGER),
    Column("NAME", T.STRING),
    Column("X", T.DOUBLE),
    Column("OK", T.BOOLEAN),
    Column("DEC", T.decimal(5, 2)),
    Column("RAW", T.BYTES),
    Column("TAGS", T.array(T.STRING)),
    Column("M", T.map_(T.STRING, T.INTEGER)),
]


@settings(max_examples=60, deadline=None)
@given(st.lists(json_values, min_size=1, max_size=5))
def test_json_round_trip(records: list[dict[str, object]]) -> None:
    schema = pa.schema([pa.field(c.name, c.type.to_arrow()) for c in JSON_COLS])
    batch = pa.Table.from_pylist(records, schema=schema)
    fmt = get_format("JSON")
    result = fmt.decode(fmt.encode(batch, JSON_COLS), JSON_COLS)
    assert result.errors == []
    assert result.batch.to_pylist() == batch.to_pylist()


# -- DELIMITED --------------------------------------------------------------------------------

ALL_DELIMITED = [
    Column("B", T.BOOLEAN),
    Column("I", T.INTEGER),
    Column("L", T.BIGINT),
    Column("D", T.DOUBLE),
    Column("S", T.STRING),
    Column("DEC", T.decimal(33, 16)),
    Column("BY", T.BYTES),
    Column("TS", T.TIMESTAMP),
    Column("DA", T.DATE),
    Column("TI", T.TIME),
]


def test_delimited_every_type_both_ways() -> None:
    text = "TRUE,1,10000000000,10.1,a b,.12,AAE=,5,3,7"
    fmt = get_format("DELIMITED")
    result = fmt.decode(rows([text]), ALL_DELIMITED)
    assert result.errors == []
    assert result.batch.to_pylist() == [
        {
            "B": True, "I": 1, "L": 10000000000, "D": 10.1, "S": "a b",
            "DEC": Decimal("0.1200000000000000"), "BY": b"\x00\x01",
            "TS": dt.datetime(1970, 1, 1, 0, 0, 0, 5000), "DA": dt.date(1970, 1, 4),
            "TI": dt.time(0, 0, 0, 7000),
        }
    ]  # fmt: skip
    assert fmt.encode(result.batch, ALL_DELIMITED).to_pylist() == [
        b"true,1,10000000000,10.1,a b,0.1200000000000000,AAE=,5,3,7"
    ]


def test_delimited_quotes_nulls_and_errors() -> None:
    cols = [Column("A", T.INTEGER), Column("B", T.STRING), Column("C", T.BOOLEAN)]
    result = decode(
        "DELIMITED",
        ['"2","a,""b""",false', ",,", None, "x,y,true", "1,2", "", '"22",z,yes'],
        cols,
    )
    assert result.batch.to_pylist()[:2] == [
        {"A": 2, "B": 'a,"b"', "C": False},
        {"A": None, "B": None, "C": None},
    ]
    assert result.null_rows.tolist() == [False, False, True, False, False, False, False]
    assert [i for i, _ in result.errors] == [3, 4, 5]
    assert result.batch.to_pylist()[6] == {"A": 22, "B": "z", "C": False}


def test_delimited_write_quoting_follows_commons_csv() -> None:
    fmt = get_format("DELIMITED")
    cols = [Column("A", T.STRING), Column("B", T.STRING), Column("C", T.STRING)]
    table = pa.table(
        {
            "A": ["-5", None, '" + x', " \t w \t", "!"],
            "B": ["a,b", "x", "with", "#", "ok"],
            "C": ["end ", None, "", "\t wit", "a\nb"],
        }
    )
    assert fmt.encode(table, cols).to_pylist() == [
        b'"-5","a,b","end "',
        b",x,",
        b'""" + x",with,',
        b'" \t w \t","#","\t wit"',
        b'"!",ok,"a\nb"',
    ]
    one = fmt.encode(pa.table({"A": [""]}), [Column("A", T.STRING)])
    assert one.to_pylist() == [b'""']


def test_delimited_decimal_and_double_text() -> None:
    fmt = get_format("DELIMITED")
    col = [Column("V", T.decimal(33, 16))]
    result = fmt.decode(rows(["-12345.12", '"-12345.12"', "0"]), col)
    assert fmt.encode(result.batch, col).to_pylist() == [
        b'"-12345.1200000000000000"',
        b'"-12345.1200000000000000"',
        b"0.0000000000000000",
    ]
    assert [java_double_text(x) for x in (1.0, 532.8738323, 5e-324, 1.7976931348623157e308)] == [
        "1.0",
        "532.8738323",
        "4.9E-324",
        "1.7976931348623157E308",
    ]
    assert [java_double_text(x) for x in (1e7, 0.001, 0.0001, -0.0, 2e23)] == [
        "1.0E7",
        "0.001",
        "1.0E-4",
        "-0.0",
        "2.0E23",
    ]


def test_delimited_custom_delimiters() -> None:
    cols = [Column("A", T.BIGINT), Column("B", T.STRING)]
    for option, sep in (("TAB", "\t"), ("SPACE", " "), ("|", "|")):
        fmt = get_format("DELIMITED", {"VALUE_DELIMITER": option})
        result = fmt.decode(rows([f"0{sep}zero"]), cols)
        assert result.batch.to_pylist() == [{"A": 0, "B": "zero"}]
        assert fmt.encode(result.batch, cols).to_pylist() == [f"0{sep}zero".encode()]
    key = get_format("DELIMITED", {"KEY_DELIMITER": ";", "VALUE_DELIMITER": "-"}, is_key=True)
    got = key.decode(rows(["foo,bar;baz"]), [Column("K1", T.STRING), Column("K2", T.STRING)])
    assert got.batch.to_pylist() == [{"K1": "foo,bar", "K2": "baz"}]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "<~>",
            "Invalid delimiter value: '<~>'. Delimiter must be a single character or TAB,SPACE",
        ),
        ("", "Delimiter cannot be empty"),
        (" ", "Delimiter cannot be empty"),
        ("\t", "Delimiter cannot be empty"),
    ],
)
def test_delimited_bad_delimiters(value: str, message: str) -> None:
    with pytest.raises(FormatError, match="Configuration VALUE_DELIMITER is invalid") as e:
        get_format("DELIMITED", {"value_delimiter": value})
    assert message in str(e.value)


def test_delimited_numbers_parse_like_java() -> None:
    cols = [Column("I", T.INTEGER), Column("D", T.DOUBLE)]
    result = decode("DELIMITED", ["+1, 2.5 ", "2147483648,1", "1,NaN", "1,1e3d", "1,inf"], cols)
    assert [i for i, _ in result.errors] == [1, 4]
    values = result.batch.to_pylist()
    assert values[0] == {"I": 1, "D": 2.5}
    assert values[3] == {"I": 1, "D": 1000.0}


# -- KAFKA ------------------------------------------------------------------------------------


def test_kafka_numbers_both_ways() -> None:
    fmt = get_format("KAFKA")
    cases = [
        (T.INTEGER, ">i", [2, -1, None]),
        (T.BIGINT, ">q", [10000000000, -3, None]),
        (T.DOUBLE, ">d", [2.2, -0.5, None]),
    ]
    for sql, code, values in cases:
        col = [Column("V", sql)]
        raw = [None if v is None else struct.pack(code, v) for v in values]
        result = fmt.decode(rows(raw), col)
        assert result.batch.column("V").to_pylist() == values
        assert result.null_rows.tolist() == [False, False, True]
        assert fmt.encode(result.batch, col).to_pylist() == raw


def test_kafka_wrong_lengths_are_row_errors() -> None:
    result = decode("KAFKA", [b"\x00\x00\x00\x01", b"\x01", b"", b"\x00\x00\x00\x02"],
                    [Column("V", T.INTEGER)])  # fmt: skip
    assert result.errors == [
        (1, "Size of data received by IntegerDeserializer is not 4"),
        (2, "Size of data received by IntegerDeserializer is not 4"),
    ]
    assert result.batch.column("V").to_pylist() == [1, None, None, 2]


def test_kafka_sliced_input() -> None:
    data = rows([struct.pack(">q", i) for i in range(10)]).slice(3, 4)
    result = get_format("KAFKA").decode(data, [Column("V", T.BIGINT)])
    assert result.batch.column("V").to_pylist() == [3, 4, 5, 6]


def test_kafka_text_and_bytes() -> None:
    fmt = get_format("KAFKA")
    result = fmt.decode(rows([b"bar", b"\xff", b"", None]), [Column("S", T.STRING)])
    assert result.batch.column("S").to_pylist() == ["bar", "\ufffd", "", None]
    assert result.null_rows.tolist() == [False, False, False, True]
    raw = fmt.decode(rows([b"\x00\xff", None]), [Column("B", T.BYTES)])
    assert raw.batch.column("B").to_pylist() == [b"\x00\xff", None]
    assert fmt.encode(raw.batch, [Column("B", T.BYTES)]).to_pylist() == [b"\x00\xff", None]
    strings = pa.table({"S": ["héllo"]})
    assert fmt.encode(strings, [Column("S", T.STRING)]).to_pylist() == ["héllo".encode()]


# -- NONE -------------------------------------------------------------------------------------


def test_none_format() -> None:
    fmt = get_format("none", is_key=True)
    result = fmt.decode(rows([b"ignored", None, b"x"]), [])
    assert result.batch.num_rows == 3
    assert result.batch.num_columns == 0
    assert result.null_rows.tolist() == [False, True, False]
    assert fmt.encode(pa.table({"A": [1, 2]}), []).to_pylist() == [None, None]
    with pytest.raises(FormatError, match=r"only be used when no columns are defined. "
                       r"Got: \[`K` STRING KEY\]"):  # fmt: skip
        fmt.check_columns([Column("K", T.STRING)])


# -- checks and options -----------------------------------------------------------------------


MAP_KEYS = (
    "Map keys, including types that contain maps, are not supported as they may lead to "
    "unexpected behavior due to inconsistent serialization. Key column name: `K`. "
    "Column type: MAP<INTEGER, DOUBLE>."
)
REFUSALS = [
    ("KAFKA", False, [Column("V", T.BOOLEAN)], "format does not support type 'BOOLEAN'"),
    (
        "KAFKA",
        True,
        [Column("K", T.decimal(21, 19))],
        "format: KAFKA\nschema: Persistence{columns=[`K` DECIMAL(21, 19) KEY], features=[]}\n"
        "reason: The 'KAFKA' format does not support type 'DECIMAL'",
    ),
    ("KAFKA", False, [Column("V", T.array(T.INTEGER))], "format does not support type 'ARRAY'"),
    (
        "KAFKA",
        False,
        [Column("V0", T.INTEGER), Column("V1", T.STRING)],
        "The 'KAFKA' format only supports a single field. Got: [`V0` INTEGER, `V1` STRING]",
    ),
    (
        "DELIMITED",
        True,
        [Column("K", T.array(T.DOUBLE))],
        "Key format does not support schema.\nformat: DELIMITED\nschema: Persistence{columns="
        "[`K` ARRAY<DOUBLE> KEY], features=[]}\nreason: The 'DELIMITED' format does not support "
        "type 'ARRAY', column: `K`",
    ),
    (
        "DELIMITED",
        False,
        [Column("FOO", T.struct([("F1", T.DOUBLE)]))],
        "The 'DELIMITED' format does not support type 'STRUCT'",
    ),
    (
        "JSON",
        False,
        [Column("M", T.map_(T.INTEGER, T.DOUBLE))],
        "JSON only supports MAP types with STRING keys",
    ),
    ("JSON", True, [Column("K", T.map_(T.INTEGER, T.DOUBLE))], MAP_KEYS),
    ("KAFKA", True, [Column("K", T.map_(T.INTEGER, T.DOUBLE))], MAP_KEYS),
    (
        "NONE",
        False,
        [Column("FOO", T.INTEGER)],
        "The 'NONE' format can only be used when no columns are defined. Got: [`FOO` INTEGER]",
    ),
]


@pytest.mark.parametrize(("fmt", "is_key", "columns", "message"), REFUSALS)
def test_check_columns_refusals(
    fmt: str, is_key: bool, columns: list[Column], message: str
) -> None:
    with pytest.raises(FormatError) as e:
        get_format(fmt, is_key=is_key).check_columns(columns)
    assert message in str(e.value)


def test_check_columns_accepts_what_formats_carry() -> None:
    get_format("KAFKA").check_columns([Column("V", T.BYTES)])
    get_format("DELIMITED").check_columns(ALL_DELIMITED)
    get_format("JSON").check_columns(ALL_JSON)
    get_format("NONE").check_columns([])


def test_format_options() -> None:
    with pytest.raises(FormatError, match="Unknown format: FOO"):
        get_format("FOO")
    with pytest.raises(FormatError, match=r"JSON does not support the following configs"):
        get_format("JSON", {"value_delimiter": "|"})
    for name in ("KAFKA", "DELIMITED"):
        message = f"Format '{name}' does not support 'WRAP_SINGLE_VALUE' set to 'true'."
        with pytest.raises(FormatError, match=message):
            get_format(name, {"WRAP_SINGLE_VALUE": True})
    get_format("DELIMITED", {"WRAP_SINGLE_VALUE": "false"})
    fmt = get_format("JSON", {"WRAP_SINGLE_VALUE": False})
    with pytest.raises(FormatError, match="'WRAP_SINGLE_VALUE' is only valid for single-field"):
        fmt.check_columns([Column("A", T.STRING), Column("B", T.STRING)])
    with pytest.raises(FormatError, match="WRAP_SINGLE_VALUE must be true or false"):
        get_format("JSON", {"WRAP_SINGLE_VALUE": "maybe"})
    # options of the other side are ignored
    get_format("JSON", {"KEY_DELIMITER": ";", "KAFKA_TOPIC": "t"})


def test_empty_batches() -> None:
    for name, cols in (
        ("JSON", [Column("A", T.INTEGER)]),
        ("DELIMITED", [Column("A", T.INTEGER)]),
        ("KAFKA", [Column("A", T.INTEGER)]),
        ("NONE", []),
    ):
        fmt = get_format(name)
        result = fmt.decode(pa.array([], pa.binary()), cols)
        assert result.batch.num_rows == 0
        assert result.errors == []


# -- row encoders: one row of plain Python values, as `encode` writes it ----------------------

PLAIN = [
    Column("S", T.STRING),
    Column("D", T.DOUBLE),
    Column("I", T.INTEGER),
    Column("L", T.BIGINT),
    Column("B", T.BOOLEAN),
]
PLAIN_VALUES = {
    "STRING": st.none() | st.text(),
    "DOUBLE": st.none() | st.floats(allow_nan=True, allow_infinity=True),
    "INTEGER": st.none() | st.integers(-(1 << 31), (1 << 31) - 1),
    "BIGINT": st.none() | st.integers(-(1 << 63), (1 << 63) - 1),
    "BOOLEAN": st.none() | st.booleans(),
}
EDGES = [
    ["plain", 0.5, 0, 0, True],
    ['"quoted" \\ back\nslash\t\x00', -0.0, -(1 << 31), -(1 << 63), False],
    ["unicode ✓ \u2028 é", 1e7, (1 << 31) - 1, (1 << 63) - 1, None],
    [None, 1e-4, None, None, None],
    ["", float("nan"), 1, 1, True],
    ["x", float("inf"), 2, 2, True],
    ["y", float("-inf"), 3, 3, True],
    ["z", 1.5e300, 4, 4, True],
    ["w", 9999999.999, 5, 5, True],
    ["v", None, 6, 6, False],
]


def encoded_by_batch(fmt: object, columns: list[Column], rows: list[list[object]]) -> list:
    batch = pa.RecordBatch.from_arrays(
        [pa.array([r[i] for r in rows], c.type.to_arrow()) for i, c in enumerate(columns)],
        names=[c.name for c in columns],
    )
    return fmt.encode(batch, columns).to_pylist()  # type: ignore[attr-defined]


@pytest.mark.parametrize("unwrap", [None, False, True])
def test_json_row_encoder_writes_what_encode_writes(unwrap: bool | None) -> None:
    cases = [(PLAIN, EDGES)] + [([c], [[r[i]] for r in EDGES]) for i, c in enumerate(PLAIN)]
    for is_key in (False, True):
        for columns, rows in cases:
            props = (
                {}
                if unwrap is None or is_key or len(columns) != 1
                else {"wrap_single_value": not unwrap}
            )
            fmt = get_format("JSON", props or None, is_key=is_key)
            row_encoder = fmt.row_encoder(columns)
            assert row_encoder is not None
            assert [row_encoder(r) for r in rows] == encoded_by_batch(fmt, columns, rows)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(*(PLAIN_VALUES[c.type.name] for c in PLAIN)), min_size=1, max_size=20))
def test_json_row_encoder_matches_encode_on_any_rows(rows: list[tuple[object, ...]]) -> None:
    fmt = get_format("JSON")
    encode_row = fmt.row_encoder(PLAIN)
    assert encode_row is not None
    as_lists = [list(r) for r in rows]
    assert [encode_row(r) for r in as_lists] == encoded_by_batch(fmt, PLAIN, as_lists)


def test_kafka_row_encoder_writes_what_encode_writes() -> None:
    for i, column in enumerate(c for c in PLAIN if c.type.name != "BOOLEAN"):
        fmt = get_format("KAFKA", is_key=True)
        rows = [[r[PLAIN.index(column)]] for r in EDGES]
        encode_row = fmt.row_encoder([column])
        assert encode_row is not None, i
        assert [encode_row(r) for r in rows] == encoded_by_batch(fmt, [column], rows)
    encode_none = get_format("KAFKA").row_encoder([])
    assert encode_none is not None
    assert encode_none([]) is None


def test_row_encoders_only_for_plain_types() -> None:
    assert get_format("JSON").row_encoder([Column("A", T.array(T.STRING))]) is None
    assert get_format("JSON").row_encoder([Column("T", T.TIMESTAMP)]) is None
    assert get_format("KAFKA").row_encoder([Column("B", T.BOOLEAN)]) is None
    assert get_format("DELIMITED").row_encoder([Column("S", T.STRING)]) is None
