"""The decoders of flat JSON objects (formats/_flat_json.py: numpy, and its C twin
_flatjson.c) against the general one.

`JsonFormat.decode` tries `decode_flat` first; with it switched off, the general decoder runs.
On random batches, mostly of one layout and sometimes with records that break it in the ways
JSON can (spaces, escapes, other spellings and orders of fields, other kinds of values, numbers
JSON or ksqlDB read differently, bad bytes), both must give the same columns, errors and
tombstones.
"""

from __future__ import annotations

import contextlib
import os
import struct
from collections.abc import Iterator
from typing import Any

import msgspec
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hispeed.formats import Column, _flat_json, _json, get_format
from hispeed.formats._flat_json import decode_flat
from hispeed.sql import types as T

COLUMNS = [
    Column("A", T.BIGINT),
    Column("I", T.INTEGER),
    Column("S", T.STRING),
    Column("tx", T.STRING),
    Column("N", T.BIGINT),  # in no record: all NULL
]
KEYS = ["A", "I", "S", "tx"]
#: fields of no column (ksqlDB ignores them): an integer one and a text one
UNKNOWN_KEYS = ["X", "Y"]
TEXT_KEYS = ("S", "tx", "Y")

#: mostly integers of up to 16 digits (read eight at a time), sometimes longer ones
ints64 = st.one_of(st.integers(-(10**16) + 1, 10**16 - 1), st.integers(-(2**63), 2**63 - 1))
ints32 = st.integers(-(2**31), 2**31 - 1)
texts = st.text(st.sampled_from([*'ab é€😀 {}[]:,"\\\n\t/', "\u2028", "\x7f"]), max_size=8)
#: number texts JSON or ksqlDB read in some special way
odd_numbers = st.sampled_from(
    ["-0", "007", "1.0", "1e3", "-", "+1", "2147483648", "-2147483649", "9" * 19, "9" * 25]
)


@st.composite
def value_text(draw: st.DrawFn, key: str) -> bytes:
    """A field's value as JSON text: usually of its column's kind, sometimes not."""
    kind = draw(st.sampled_from(["plain"] * 8 + ["null", "odd", "other"]))
    text = key in TEXT_KEYS
    if kind == "null":
        return b"null"
    if kind == "odd":
        return draw(odd_numbers).encode() if not text else b'"\\u00e9\\ud800"'
    if kind == "other":
        other: Any = draw(st.sampled_from([True, 1.5, [1], {"x": 1}, "7", 7]))
        return msgspec.json.encode(other)
    if text:
        return msgspec.json.encode(draw(texts))
    return str(draw(ints32 if key == "I" else ints64)).encode()


@st.composite
def record(draw: st.DrawFn, layout: list[str], plain: bool) -> bytes | None:
    keys = layout
    if not plain:
        shape = draw(st.sampled_from(["same"] * 4 + ["order", "case", "extra", "dup", "raw"]))
        if shape == "order":
            keys = draw(st.permutations(layout))
        elif shape == "case":
            keys = [k.lower() if k.isupper() else k.upper() for k in layout]
        elif shape == "extra":
            keys = [*layout, "X"]
        elif shape == "dup" and layout:
            keys = [*layout, layout[0]]
        elif shape == "raw":
            return draw(
                st.sampled_from(
                    [
                        None,
                        b"",
                        b"null",
                        b"[1]",
                        b"{",
                        b"{}",
                        b'{"A":1} ',
                        b'{"A":1}x',
                        b'{"S":"\xff"}',
                    ]
                )
            )
    fields = [
        b'"' + k.encode() + b'":' + (draw(value_text(k)) if not plain else plain_value(draw, k))
        for k in keys
    ]
    separator = b", " if not plain and draw(st.booleans()) else b","
    return b"{" + separator.join(fields) + b"}"


def plain_value(draw: st.DrawFn, key: str) -> bytes:
    if key in TEXT_KEYS:
        return msgspec.json.encode(draw(texts))
    return str(draw(ints32 if key == "I" else ints64)).encode()


@st.composite
def batches(draw: st.DrawFn) -> list[bytes | None]:
    layout = draw(st.lists(st.sampled_from(KEYS + UNKNOWN_KEYS), unique=True, max_size=5))
    plain = draw(st.booleans())  # one layout throughout, values of the columns' kinds
    values = draw(st.lists(record(layout, plain or draw(st.booleans())), min_size=1, max_size=12))
    if draw(st.booleans()):
        # every record's keys spelled in lower case, as most producers write them: they
        # fill the upper-case columns (no text value holds an upper-case letter)
        values = [v and v.replace(b'"A":', b'"a":').replace(b'"I":', b'"i":') for v in values]
    return values


IMPLEMENTATIONS = ["native", "numpy"]


@contextlib.contextmanager
def implementation(name: str) -> Iterator[None]:
    """decode_flat with its C part (`_flatjson`) or with numpy only."""
    built = _flat_json._extension()
    assert built is not None, "hispeed.formats._flatjson is not built (pip install -e .)"
    saved = _flat_json._extension
    _flat_json._extension = (lambda: built) if name == "native" else (lambda: None)  # type: ignore[assignment]
    try:
        yield
    finally:
        _flat_json._extension = saved  # type: ignore[assignment]


def decode_both(values: list[bytes | None]) -> tuple[Any, Any, bool]:
    data = pa.array(values, pa.binary())
    fmt = get_format("JSON")
    fast = fmt.decode(data, COLUMNS)
    saved = _json.decode_flat
    _json.decode_flat = lambda data, columns: None  # type: ignore[assignment]
    try:
        general = fmt.decode(data, COLUMNS)
    finally:
        _json.decode_flat = saved
    return fast, general, decode_flat(data, COLUMNS) is not None


@settings(
    max_examples=int(os.environ.get("HISPEED_HYPOTHESIS_EXAMPLES", "50")) * 4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@given(values=batches())
@example(values=[None, b"null"])  # every record a tombstone: no record to take names from
def test_flat_decoding_matches_the_general_decoder(impl: str, values: list[bytes | None]) -> None:
    with implementation(impl):
        fast, general, _ = decode_both(values)
    assert fast.batch.to_pylist() == general.batch.to_pylist()
    assert fast.batch.schema == general.batch.schema
    assert fast.errors == general.errors
    assert fast.null_rows.tolist() == general.null_rows.tolist()


@pytest.mark.parametrize(
    ("values", "taken"),
    [
        ([b'{"A":12,"S":"x y","I":-3}', b'{"A":-0,"S":"","I":0}'], True),
        ([b'{"A":-9999999999999999}', b'{"A":100000000}', b'{"A":12345678}'], True),
        ([b'{"A":12345678901234567}'], False),  # 17 digits: the general decoder
        ([b'{"tx":"\xc3\xa9\xe2\x82\xac"}'], True),
        ([b'{"A":12}', b'{"A":12.0}'], False),  # ksqlDB truncates: the general decoder
        ([b'{"I":2147483648}'], False),  # ksqlDB wraps it
        ([b'{"A":1}', b'{"a":1}'], False),  # matched by its upper-cased name
        ([b'{"a":1,"s":"x","i":2}', b'{"a":-5,"s":"","i":0}'], True),  # lower-case keys
        ([b'{"a":1,"S":"x","tx":"y"}'], True),
        ([b'{"a":1,"A":2}'], False),  # two keys for one column: the exact one wins
        ([b'{"TX":"y"}'], True),  # no column is TX (the column is tx): ignored
        ([b'{"A":1}', b'{"A":1,"X":2}'], False),  # an extra field
        # a field of no column (a table's key repeated in its value) is read and ignored
        ([b'{"id":7,"A":1,"tx":"a"}', b'{"id":-8,"A":2,"tx":"b"}'], True),
        ([b'{"A":1,"X":"x y","I":2}', b'{"A":3,"X":"","I":4}'], True),
        ([b'{"X":1,"A":1}', b'{"X":"1","A":2}'], False),  # its kind changes
        ([b'{"X":1.5,"A":1}'], False),  # a fraction
        ([b'{"X":null,"A":1}'], False),
        ([b'{"X":[1],"A":1}'], False),
        ([b'{"X":12345678901234567,"A":1}'], False),  # 17 digits
        ([b'{"X":"a\\"b","A":1}'], False),  # an escape
        ([b'{"S":"a\\"b"}'], False),  # an escape
        ([b'{"A":1}', None], False),  # a tombstone
        ([b'{"S":"\xff"}'], False),  # not UTF-8: a row error
        ([b'{"A":1,"S":"x"}', b'{"A":1,"S":"x\x01"}'], False),  # a control character
        ([b'{"A":1}', b'{"A":1 }'], False),  # a space
        ([b'{"A":1}', b'{"A":01}'], False),  # a leading zero
        ([b'{"A":1}', b'{"A":1}x'], False),  # something after the object
        ([b'{"A":1,"I":2}', b'{"A":1,"I":-}'], False),  # a sign without digits
    ],
)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
def test_which_batches_are_flat(impl: str, values: list[bytes | None], taken: bool) -> None:
    with implementation(impl):
        fast, general, flat = decode_both(values)
    assert flat == taken
    assert fast.batch.to_pylist() == general.batch.to_pylist()
    assert fast.errors == general.errors


@pytest.mark.parametrize("impl", IMPLEMENTATIONS)
@pytest.mark.parametrize(
    "values", [[b'{"a":1}', b'{"a":2}'], [b'{"A":1}'], [b'{"a":1,"A":2}'], [b'{"A":1,"a":2}']]
)
def test_a_key_of_two_columns_fills_both(impl: str, values: list[bytes | None]) -> None:
    """With columns `a` and A, a key "a" fills both (the exact name, and the upper-cased one
    where no key "A" is): both decoders agree."""
    columns = [Column("a", T.BIGINT), Column("A", T.BIGINT)]
    data = pa.array(values, pa.binary())
    with implementation(impl):
        fast = get_format("JSON").decode(data, columns)
        flat = decode_flat(data, columns)
    saved = _json.decode_flat
    _json.decode_flat = lambda data, columns: None  # type: ignore[assignment]
    try:
        general = get_format("JSON").decode(data, columns)
    finally:
        _json.decode_flat = saved
    assert fast.batch.to_pylist() == general.batch.to_pylist()
    if values == [b'{"A":1}']:  # only the exact column's key: flat
        assert flat is not None


# -- DOUBLE columns (the C version only) -------------------------------------------------------

DOUBLE_COLUMNS = [Column("D", T.DOUBLE), Column("A", T.BIGINT)]
#: number texts at the edges of JSON's grammar, of exactness and of the double's range
odd_doubles = st.sampled_from(
    [
        "-0", "-0.0", "0.0", "1.", ".5", "+1", "-", "1e", "1E+2", "1e-2", "0.1e-5", "00.5",
        "01", "1e400", "-1e400", "1e-400", "NaN", "Infinity", "123456789012345",
        "1234567890123456", "12345678901234567", "9" * 25, "1.0000000000000002",
        "0." + "3" * 70, "2.2250738585072011e-308", "4.9e-324", "1.7976931348623157e308",
        "true", '"1.5"', "null",
    ]
)  # fmt: skip


@st.composite
def double_text(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["float"] * 4 + ["short"] * 4 + ["int", "odd"]))
    if kind == "short":  # few digits, as machines write readings: the exact fast path
        whole = draw(st.integers(-(10**8), 10**8))
        fraction = draw(st.text("0123456789", min_size=1, max_size=9))
        exponent = draw(st.sampled_from(["", "e5", "E-3", "e+22", "e-22", "e-23", "e23"]))
        return f"{whole}.{fraction}{exponent}".encode()
    if kind == "float":
        v = draw(st.floats(allow_nan=False, allow_infinity=False))
        return (repr(v) if draw(st.booleans()) else f"{v:.17g}").encode()
    if kind == "int":
        return str(draw(ints64)).encode()
    return draw(odd_doubles).encode()


@st.composite
def double_batches(draw: st.DrawFn) -> list[bytes | None]:
    n = draw(st.integers(1, 10))
    return [
        b'{"D":' + draw(double_text()) + b',"A":' + str(draw(ints32)).encode() + b"}"
        for _ in range(n)
    ]


def bits(batch: pa.RecordBatch) -> list[bytes | None]:
    """The DOUBLE column's values bit for bit."""
    return [None if v is None else struct.pack("<d", v) for v in batch.column(0).to_pylist()]


def decode_doubles(values: list[bytes | None]) -> tuple[Any, Any, bool]:
    data = pa.array(values, pa.binary())
    fmt = get_format("JSON")
    fast = fmt.decode(data, DOUBLE_COLUMNS)
    saved = _json.decode_flat
    _json.decode_flat = lambda data, columns: None  # type: ignore[assignment]
    try:
        general = fmt.decode(data, DOUBLE_COLUMNS)
    finally:
        _json.decode_flat = saved
    return fast, general, decode_flat(data, DOUBLE_COLUMNS) is not None


@settings(
    max_examples=int(os.environ.get("HISPEED_HYPOTHESIS_EXAMPLES", "50")) * 4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(values=double_batches())
def test_flat_doubles_match_the_general_decoder(values: list[bytes | None]) -> None:
    with implementation("native"):
        fast, general, _ = decode_doubles(values)
    assert bits(fast.batch) == bits(general.batch)  # -0.0 is not 0.0
    assert fast.batch.to_pylist() == general.batch.to_pylist()
    assert fast.batch.schema == general.batch.schema
    assert fast.errors == general.errors


@pytest.mark.parametrize(
    ("values", "taken"),
    [
        ([b'{"D":1.5,"A":1}', b'{"D":-0.25,"A":2}', b'{"D":7,"A":3}'], True),
        ([b'{"D":1e-7,"A":1}', b'{"D":1.7976931348623157e308,"A":2}'], True),
        ([b'{"D":5,"A":1}', b'{"D":0.1,"A":2}'], True),  # an integer first: any number
        ([b'{"D":-0,"A":1}', b'{"D":-0.0,"A":2}', b'{"D":-0e5,"A":2}'], True),  # 0, -0.0, -0.0
        ([b'{"D":0.000123,"A":1}', b'{"D":123456789012345e-22,"A":2}'], True),
        ([b'{"D":1.5e-30,"A":1}', b'{"D":0.1234567890123456789,"A":2}'], True),
        ([b'{"D":1.5,"A":1}', b'{"D":1e400,"A":2}'], False),  # not finite
        ([b'{"D":1.5,"A":1}', b'{"D":12345678901234567,"A":2}'], False),  # inexact
        ([b'{"D":1.5,"A":1}', b'{"D":1.,"A":2}'], False),  # not JSON
        ([b'{"D":1.5,"A":1}', b'{"D":"1.5","A":2}'], False),  # text: coerced
        ([b'{"D":1.5,"A":1}', b'{"D":true,"A":2}'], False),  # a boolean: an error
    ],
)
def test_which_double_batches_are_flat(values: list[bytes | None], taken: bool) -> None:
    with implementation("native"):
        fast, general, flat = decode_doubles(values)
    # (a C build from before DOUBLE, until `pip install -e .` rebuilds it, takes none)
    assert flat == (taken and hasattr(_flat_json._extension(), "KIND_DOUBLE"))
    assert bits(fast.batch) == bits(general.batch)
    assert fast.batch.to_pylist() == general.batch.to_pylist()
    assert fast.errors == general.errors


def test_without_the_c_version_doubles_go_to_the_general_decoder() -> None:
    with implementation("numpy"):
        assert decode_doubles([b'{"D":1.5,"A":1}'])[2] is False
