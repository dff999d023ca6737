import pytest

from hispeed.functions.registry import FunctionTypeError, lookup
from hispeed.sql.types import BIGINT, BYTES, DOUBLE, INTEGER, STRING, array
from tests.functions.util import call, col, values


def test_coalesce_ifnull() -> None:
    out = values("COALESCE", col(INTEGER, None, 1, None), col(BIGINT, 2, 3, None))
    assert out == [2, 1, None]
    arr = array(INTEGER)
    assert values("IFNULL", col(arr, None, [1]), col(arr, [10, 20], [2])) == [[10, 20], [1]]
    fn = lookup("COALESCE")
    assert fn is not None
    assert fn.handles_nulls
    with pytest.raises(FunctionTypeError):
        fn.resolve([])
    with pytest.raises(FunctionTypeError):
        fn.resolve([STRING, INTEGER])


def test_nullif() -> None:
    assert values("NULLIF", col(INTEGER, 10, 5, None), col(INTEGER, 10, 10, 10)) == [None, 5, None]
    arr = array(INTEGER)
    assert values("NULLIF", col(arr, [1, 2], [3]), col(arr, [1, 2], [1])) == [None, [3]]


def test_bytes_conversions() -> None:
    assert values("TO_BYTES", col(STRING, "IQ==", None), col(STRING, "base64", "hex")) == [
        b"!",
        None,
    ]
    assert values("TO_BYTES", col(STRING, "1aB2"), col(STRING, "hex")) == [b"\x1a\xb2"]
    assert values("FROM_BYTES", col(BYTES, b"\x1a\xb2"), col(STRING, "hex")) == ["1AB2"]
    assert values("FROM_BYTES", col(BYTES, b"!"), col(STRING, "base64")) == ["IQ=="]
    out, ctx = call("TO_BYTES", col(STRING, "abc"), col(STRING, "rot13"))
    assert out == [None]
    assert "unknown encoding" in ctx.errors[0][1]


def test_from_bytes_numbers() -> None:
    assert values("INT_FROM_BYTES", col(BYTES, b"\x00\x00\x07\xe5")) == [2021]
    le = col(STRING, "LITTLE_ENDIAN")
    assert values("BIGINT_FROM_BYTES", col(BYTES, bytes.fromhex("00f2052a01000000")), le) == [
        5000000000
    ]
    out = values("DOUBLE_FROM_BYTES", col(BYTES, bytes.fromhex("4080a6fd9bc9f582")))
    assert out == [pytest.approx(532.8738323)]
    out, ctx = call("INT_FROM_BYTES", col(BYTES, b"\x00"))
    assert out == [None]
    assert ctx.errors[0][0] == 0


def test_encode() -> None:
    assert values("ENCODE", col(STRING, "4b53514c"), col(STRING, "hex"), col(STRING, "utf8")) == [
        "KSQL"
    ]
    assert values("ENCODE", col(STRING, "KSQL"), col(STRING, "utf8"), col(STRING, "base64")) == [
        "S1NRTA=="
    ]
    assert values("ENCODE", col(STRING, "S1NRTA=="), col(STRING, "base64"), col(STRING, "hex")) == [
        "4b53514c"
    ]


def test_md5_uuid() -> None:
    assert values("MD5", col(STRING, "abc", None)) == ["900150983cd24fb0d6963f7d28e17f72", None]
    (u,) = values("UUID")
    assert len(u) == 36
    assert u[14] == "4"
    raw = bytes(range(16))
    assert values("UUID", col(BYTES, raw, b"x")) == ["00010203-0405-0607-0809-0a0b0c0d0e0f", None]


def test_url_functions() -> None:
    url = col(STRING, "http://test@confluent.io:8080/nested/pa%20th?a=1&b=x%20y#frag", None)
    assert values("URL_EXTRACT_HOST", url) == ["confluent.io", None]
    assert values("URL_EXTRACT_PORT", url) == [8080, None]
    assert values("URL_EXTRACT_PATH", url) == ["/nested/pa th", None]
    assert values("URL_EXTRACT_QUERY", url) == ["a=1&b=x y", None]
    assert values("URL_EXTRACT_FRAGMENT", url) == ["frag", None]
    assert values("URL_EXTRACT_PROTOCOL", col(STRING, "https://x.io", "www.confluent.io")) == [
        "https",
        None,
    ]
    assert values("URL_EXTRACT_PORT", col(STRING, "http://x.io")) == [None]
    p = values(
        "URL_EXTRACT_PARAMETER",
        col(STRING, "http://x.io/?one=a&two=b&three", "http://x.io/?one=a&three"),
        col(STRING, "two", "three"),
    )
    assert p == ["b", ""]
    out, ctx = call("URL_EXTRACT_HOST", col(STRING, "http://bad host/"))
    assert out == [None]
    assert "invalid syntax" in ctx.errors[0][1]


def test_url_encoding() -> None:
    assert values("URL_ENCODE_PARAM", col(STRING, "url encoded?&~")) == ["url+encoded%3F%26%7E"]
    assert values("URL_DECODE_PARAM", col(STRING, "%3Ffoo+%24bar", "nothing")) == [
        "?foo $bar",
        "nothing",
    ]


def test_geo_distance() -> None:
    args = [
        col(DOUBLE, 37.4439),
        col(DOUBLE, -122.1663),
        col(DOUBLE, 51.5257),
        col(DOUBLE, -0.1122),
    ]
    (km,) = values("GEO_DISTANCE", *args)
    assert km == pytest.approx(8634.6528, rel=1e-6)
    # ksqlDB's own output for these points (Java's scalar libm, in GeoDistance's order)
    ksql = [col(DOUBLE, 37.4439), col(DOUBLE, -122.1663), col(DOUBLE, 51.0), col(DOUBLE, 0.0)]
    assert values("GEO_DISTANCE", *ksql) == [8682.459061368269]
    (mi,) = values("GEO_DISTANCE", *args, col(STRING, "MI"))
    assert mi == pytest.approx(km * 3959 / 6371)
    out, ctx = call(
        "GEO_DISTANCE", col(DOUBLE, 91.0), col(DOUBLE, 0.0), col(DOUBLE, 0.0), col(DOUBLE, 0.0)
    )
    assert out == [None]
    assert ctx.errors[0][0] == 0
    # a BIGINT past 2**53 is widened to the nearest double, as Java does, then refused as a
    # coordinate (Arrow's safe cast raised and stopped the query)
    out, ctx = call(
        "GEO_DISTANCE", col(DOUBLE, 0.0), col(BIGINT, -(2**63)), col(DOUBLE, 0.0), col(DOUBLE, 0.0)
    )
    assert out == [None]
    assert "longitude" in ctx.errors[0][1]
    # an infinite coordinate is a row error, not a numpy warning that fails the batch
    inf = float("inf")
    out, ctx = call(
        "GEO_DISTANCE", col(DOUBLE, inf), col(DOUBLE, 0.0), col(DOUBLE, 0.0), col(DOUBLE, 0.0)
    )
    assert out == [None]
    assert ctx.errors[0][0] == 0
    out, ctx = call("GEO_DISTANCE", *args, col(STRING, "parsecs"))
    assert out == [None]
    assert "units" in ctx.errors[0][1]
