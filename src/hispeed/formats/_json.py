"""The JSON format, with ksqlDB's field matching and type coercions.

Reading: a record is a JSON object whose fields map to columns by name: the exact name first,
then a field whose upper-cased name equals the column's (so `{"id": 1}` fills column ID, while
a quoted lower-case column matches only itself). Missing fields are NULL, extra fields are
ignored, and the `null` literal is a tombstone. A single column written unwrapped (keys, or
WRAP_SINGLE_VALUE=false) is the whole JSON value. Values are coerced as ksqlDB's
KsqlJsonDeserializer does: numbers and booleans into STRING give their text, numeric text into
numbers parses, fractional numbers into INT/BIGINT truncate, DECIMAL must fit without rounding.

Decoding is batched. A batch of flat objects sharing one layout (the usual machine-written JSON)
is decoded by numpy without a Python object per value (`_flat_json.py`). Otherwise every record
is parsed by one msgspec call over the joined bytes, fields are picked per column, and each
column is built by one `pa.array` call; only a column whose values need coercing goes value by
value, and only a batch with unparsable records is parsed record by record.

Writing: an object with the column names as written (or the bare value when unwrapped), with
DECIMAL as a number with its scale, TIMESTAMP as epoch millis, DATE as epoch days, TIME as
millis of the day and BYTES as base64. Rows are encoded in one msgspec call.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation, localcontext
from itertools import repeat
from operator import attrgetter
from typing import Any

import msgspec
import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.formats._flat_json import decode_flat
from hispeed.formats.base import (
    PLAIN_TYPES,
    Column,
    DecodeResult,
    Format,
    apply_null_rows,
    binary_chunk,
    columns_of,
    make_batch,
    null_mask,
    null_out,
    register_format,
)
from hispeed.sql.javatext import java_double
from hispeed.sql.types import STRING, SqlType

_DECODER = msgspec.json.Decoder()
_EXACT_DECODER = msgspec.json.Decoder(float_hook=Decimal)
_RAW_LIST_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
_ENCODER = msgspec.json.Encoder(decimal_format="number")

_MISSING: Any = object()
_BAD: Any = object()
_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")
_DOUBLE_TEXT = re.compile(
    r"[+-]?(?:NaN|Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)[fFdD]?\Z"
)
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_JSON_WS = " \t\n\r"
_RANGES = {"INTEGER": 32, "BIGINT": 64}
_DAY_MS = 86_400_000
#: types whose column `pa.array` builds with ksqlDB's semantics when it accepts the values
_FAST_TOP = {"BOOLEAN", "INTEGER", "BIGINT", "DOUBLE", "STRING", "TIMESTAMP", "DATE", "TIME"}
_FAST_NESTED = {"BOOLEAN", "INTEGER", "BIGINT", "STRING", "TIMESTAMP", "DATE", "DECIMAL"}


class _CoercionError(Exception):
    """A value that cannot become the column's type; the message is ksqlDB's wording."""


class _NeedExact(Exception):  # noqa: N818 - a signal, not an error
    """A float met a DECIMAL or STRING target: the record must be re-read with exact numbers."""


@register_format
class JsonFormat(Format):
    """ksqlDB's JSON format (schemaless; JSON_SR is not handled here)."""

    name = "JSON"
    supports_wrap = True
    supports_unwrap = True

    def unwrapped(self, columns: Sequence[Column]) -> bool:
        """Whether a record is the bare value of a single column rather than an object."""
        if len(columns) != 1:
            return False
        return self.is_key or self.wrap_single_value is False

    def decode(self, data: pa.Array, columns: Sequence[Column]) -> DecodeResult:
        data = binary_chunk(data)
        n = len(data)
        wrapped = not self.unwrapped(columns)
        flat = decode_flat(data, columns) if wrapped else None
        if flat is not None:  # flat objects of one layout: decoded by numpy
            return DecodeResult(make_batch(columns, flat, n), [], np.zeros(n, np.bool_))
        nulls = null_mask(data)
        values, picked, errors, null_rows = _parse(data, nulls, columns if wrapped else None)
        error_rows: dict[int, str] = dict(errors)
        raw_cache: list[bytes | None] = []

        def raw(i: int) -> bytes:
            if not raw_cache:
                raw_cache.extend(data.to_pylist())
            b = raw_cache[i]
            assert b is not None
            return b

        arrays: list[pa.Array] = []
        if self.unwrapped(columns):
            column = columns[0]
            vals = [None if v is _BAD else v for v in values]
            arr, col_errors = _column(
                vals, column.type, "$", lambda i: _EXACT_DECODER.decode(raw(i))
            )
            arrays.append(arr)
            for i, reason in col_errors:
                error_rows.setdefault(i, reason)
        else:
            if picked is None:
                objects = _objects(values, columns, error_rows)
                keys: set[str] = set().union(*objects) if objects else set()
                picked = [_pick(objects, c.name, keys) for c in columns]
            for column, vals in zip(columns, picked, strict=True):
                name = column.name

                def exact(i: int, name: str = name) -> object:
                    v = _EXACT_DECODER.decode(raw(i))
                    return _field(v, name) if isinstance(v, dict) else None

                arr, col_errors = _column(vals, column.type, f"$.{name}", exact)
                arrays.append(arr)
                for i, reason in col_errors:
                    error_rows.setdefault(i, reason)

        if error_rows:
            arrays, bad = null_out(arrays, error_rows, n)
            null_rows &= ~bad
        batch = make_batch(columns, arrays, n)
        return DecodeResult(batch, sorted(error_rows.items()), null_rows)

    def encode(
        self,
        batch: pa.RecordBatch | pa.Table,
        columns: Sequence[Column],
        *,
        null_rows: npt.NDArray[np.bool_] | None = None,
    ) -> pa.Array:
        n = batch.num_rows
        arrays = columns_of(batch, columns)
        if self.unwrapped(columns):
            out = _json_texts(arrays[0])
        else:
            pieces: list[pa.Array | pa.Scalar] = []
            fixed = b"{"  # the text between two values: keys, separators, quotes
            for j, (c, arr) in enumerate(zip(columns, arrays, strict=True)):
                fixed += (b"," if j else b"") + _ENCODER.encode(c.name) + b":"
                if _plain_text(arr):
                    # its quotes go into the text around it: one join for the whole record
                    pieces += [pa.scalar(fixed + b'"', pa.binary()), arr.cast(pa.binary())]
                    fixed = b'"'
                else:
                    pieces += [pa.scalar(fixed, pa.binary()), _json_texts(arr).fill_null(b"null")]
                    fixed = b""
            pieces += [pa.scalar(fixed + b"}", pa.binary()), pa.scalar(b"", pa.binary())]
            out = pc.binary_join_element_wise(*pieces)
            if not isinstance(out, pa.Array):
                out = pa.array([out.as_py()] * n, pa.binary())
        return apply_null_rows(out, null_rows)

    def row_encoder(
        self, columns: Sequence[Column]
    ) -> Callable[[Sequence[Any]], bytes | None] | None:
        if not all(c.type.name in PLAIN_TYPES for c in columns):
            return None
        # msgspec writes a plain value as `_json_texts` does (Arrow's quoting of text with
        # nothing to escape is msgspec's too), and an object as `encode` joins it
        doubles = [c.type.name == "DOUBLE" for c in columns]
        if self.unwrapped(columns):
            double = doubles[0]

            def bare(row: Sequence[Any]) -> bytes | None:
                v = row[0]
                if v is None:
                    return None
                return _ENCODER.encode(_finite_or_text(v) if double else v)

            return bare
        names = [c.name for c in columns]
        if not any(doubles):
            return lambda row: _ENCODER.encode(dict(zip(names, row, strict=True)))

        def wrapped(row: Sequence[Any]) -> bytes:
            return _ENCODER.encode(
                {
                    # (a double msgspec writes as Java does goes as it is)
                    n: v
                    if not d or v is None or v == 0 or 1e-3 <= abs(v) < 1e7
                    else _finite_or_text(v)
                    for n, v, d in zip(names, row, doubles, strict=True)
                }
            )

        return wrapped

    def _unsupported(self, columns: Sequence[Column], *, is_key: bool) -> str | None:
        for c in columns:
            if _map_with_non_string_key(c.type):
                return "JSON only supports MAP types with STRING keys"
        return None


def _map_with_non_string_key(t: SqlType) -> bool:
    if t.name == "MAP" and t.key is not None and t.key.name != "STRING":
        return True
    nested = [t.element, t.key, *(ft for _, ft in t.fields)]
    return any(x is not None and _map_with_non_string_key(x) for x in nested)


# -- parsing ----------------------------------------------------------------------------------


def _parse(
    data: pa.BinaryArray, nulls: npt.NDArray[np.bool_], columns: Sequence[Column] | None
) -> tuple[list[Any], list[list[Any]] | None, list[tuple[int, str]], npt.NDArray[np.bool_]]:
    """Parse every record: (values, picked, errors, tombstones).

    `values` holds each record's JSON value (None for tombstones, `_BAD` for unparsable
    records). When `columns` is given and every record is an object with the same field names,
    `picked` holds each column's values instead and `values` is empty.
    """
    n = len(data)
    if n == 0 or nulls.all():
        return [None] * n, None, [], nulls
    buf = _joined(data)
    if buf is None:
        stripped = _strip(data)
        if stripped is not None:
            buf = _joined(stripped)
            data = stripped
    if buf is not None:
        literal = pc.equal(data, pa.scalar(b"null", pa.binary())).fill_null(True)
        tombstones = nulls | literal.to_numpy(zero_copy_only=False)
        if columns and not tombstones.all():  # a struct needs one record to take names from
            picked = _struct_pick(buf, data, tombstones, columns)
            if picked is not None:
                return [], picked, [], tombstones
        try:
            return _DECODER.decode(buf), None, [], tombstones
        except msgspec.DecodeError:  # well-formed but not decodable (1e400): record by record
            pass
    values: list[Any] = []
    errors: list[tuple[int, str]] = []
    for i, b in enumerate(data.to_pylist()):
        if b is None:
            values.append(None)
            continue
        try:
            values.append(_DECODER.decode(b))
        except (msgspec.DecodeError, UnicodeDecodeError) as e:
            values.append(_BAD)
            errors.append((i, f"Failed to parse JSON: {e}"))
    return values, None, errors, np.array([v is None for v in values], dtype=np.bool_)


def _joined(data: pa.BinaryArray) -> bytes | None:
    """All records as one JSON array "[r0,r1,...]", or None if that cannot be trusted.

    It is trusted only when the records are UTF-8 and it parses into exactly one element per
    record with each element exactly as long as its record; a record that is not valid JSON
    on its own (say `[1` followed by `2]`) fails that check, and the batch is parsed record
    by record.
    """
    n = len(data)
    try:  # skipping over values, msgspec does not check that text is UTF-8
        data.cast(pa.string())
    except pa.ArrowInvalid:
        return None
    filled = data.fill_null(b"null")
    lists = pa.ListArray.from_arrays(pa.array([0, n], pa.int32()), filled)
    joined = pc.binary_join(lists, pa.scalar(b",", pa.binary()))[0]
    buf: bytes = b"[" + joined.as_py() + b"]"
    try:
        raws = _RAW_LIST_DECODER.decode(buf)
    except msgspec.DecodeError:
        return None
    if len(raws) != n:
        return None
    lengths = pc.binary_length(filled).to_numpy(zero_copy_only=False)
    if not np.array_equal(np.fromiter(map(len, raws), dtype=np.int64, count=n), lengths):
        return None
    return buf


@functools.lru_cache(maxsize=256)
def _row_decoder(keys: tuple[str, ...]) -> tuple[msgspec.json.Decoder[Any], Any]:
    """A decoder of lists of objects with exactly (a subset of) these fields, and an empty row."""
    row = msgspec.defstruct(
        "Row",
        [(f"f{j}", Any, None) for j in range(len(keys))],
        rename={f"f{j}": k for j, k in enumerate(keys)},
        forbid_unknown_fields=True,
        gc=False,  # decoded JSON holds no reference cycles
    )
    return msgspec.json.Decoder(list[row | None]), row()  # type: ignore[valid-type]


def _struct_pick(
    buf: bytes, data: pa.BinaryArray, tombstones: npt.NDArray[np.bool_], columns: Sequence[Column]
) -> list[list[Any]] | None:
    """Each column's values, decoding into a fixed row struct: faster than dicts, and valid
    when every record has the field names of the first one (else None, for the dict path)."""
    first = int(np.argmin(tombstones))
    try:
        sample = _DECODER.decode(data[first].as_py())
    except msgspec.DecodeError:  # well-formed but not decodable (1e400)
        return None
    if type(sample) is not dict:
        return None
    keys = tuple(sample)
    fields: list[int | None] = []
    for c in columns:
        others = [j for j, k in enumerate(keys) if k != c.name and k.upper() == c.name]
        if c.name in sample:
            if others:  # a record may lack the exact field but hold the other: dict path
                return None
            fields.append(keys.index(c.name))
            continue
        if len(others) > 1:
            return None
        fields.append(others[0] if others else None)
    decoder, empty = _row_decoder(keys)
    try:
        rows = decoder.decode(buf)
    except msgspec.ValidationError:
        return None
    if tombstones.any():
        rows = [empty if r is None else r for r in rows]
    n = len(rows)
    return [[None] * n if j is None else list(map(attrgetter(f"f{j}"), rows)) for j in fields]


def _strip(data: pa.BinaryArray) -> pa.BinaryArray | None:
    """The records without surrounding JSON whitespace (None if not all valid UTF-8)."""
    try:
        text = data.cast(pa.string())
    except pa.ArrowInvalid:
        return None
    return pc.utf8_trim(text, characters=_JSON_WS).cast(pa.binary())


def _objects(
    values: list[Any], columns: Sequence[Column], errors: dict[int, str]
) -> list[dict[str, Any]]:
    """Each record as a dict ({} for tombstones and errors); a non-object is a row error."""
    if set(map(type, values)) == {dict}:
        return values
    empty: dict[str, Any] = {}
    out: list[dict[str, Any]] = []
    required = "STRUCT<" + ", ".join(f"`{c.name}` {c.type}" for c in columns) + ">"
    for i, v in enumerate(values):
        if type(v) is dict:
            out.append(v)
            continue
        if v is not None and v is not _BAD:
            errors.setdefault(i, _conversion_message(v, required) + ", path: $")
        out.append(empty)
    return out


def _pick(objects: list[dict[str, Any]], name: str, keys: set[str]) -> list[Any]:
    """A column's value from every record: the exact field, else one whose upper case matches."""
    exact = name in keys
    others = [k for k in keys if k != name and k.upper() == name]
    if not others:
        if not exact:
            return [None] * len(objects)
        return list(map(dict.get, objects, repeat(name)))
    if not exact and len(others) == 1:
        return list(map(dict.get, objects, repeat(others[0])))
    return [_field(d, name) for d in objects]


def _field(d: dict[str, Any], name: str) -> Any:
    """ksqlDB's field lookup: the exact name, else a field whose upper-cased name is `name`."""
    v = d.get(name, _MISSING)
    if v is not _MISSING:
        return v
    for k, fv in d.items():
        if k.upper() == name:
            v = fv  # like ksqlDB's upper-cased map, the last such field wins
    return None if v is _MISSING else v


# -- coercion ---------------------------------------------------------------------------------


def _fast_ok(t: SqlType, top: bool = True) -> bool:
    if t.name in ("ARRAY", "MAP"):
        assert t.element is not None
        return _fast_ok(t.element, top=False)
    return t.name in (_FAST_TOP if top else _FAST_NESTED)


def _column(
    vals: list[Any], t: SqlType, path: str, exact: Callable[[int], object]
) -> tuple[pa.Array, list[tuple[int, str]]]:
    """Build one column; a value that cannot be coerced is an error for its row."""
    target = t.to_arrow()
    if _fast_ok(t):
        try:
            arr = pa.array(vals, type=target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
            pass
        else:
            if _fast_result_ok(arr, vals, t):
                return arr, []
    out: list[Any] = []
    errors: list[tuple[int, str]] = []
    for i, v in enumerate(vals):
        if v is None:
            out.append(None)
            continue
        try:
            try:
                out.append(_coerce(v, t, path, False))
            except _NeedExact:
                out.append(_coerce(exact(i), t, path, True))
        except _CoercionError as e:
            out.append(None)
            errors.append((i, str(e)))
    return pa.array(out, type=target), errors


def _fast_result_ok(arr: pa.Array, vals: list[Any], t: SqlType) -> bool:
    """Reject what `pa.array` accepts but ksqlDB does not (booleans as numbers, bad TIMEs)."""
    if t.name == "DOUBLE":
        return bool not in set(map(type, vals))
    if t.name == "TIME" and arr.null_count < len(arr):
        ms = arr.cast(pa.int32())
        lo, hi = pc.min(ms).as_py(), pc.max(ms).as_py()
        return bool(lo >= 0 and hi <= _DAY_MS)
    return True


def _node(v: object) -> str:
    """The Jackson node class ksqlDB names in its conversion messages."""
    if isinstance(v, bool):
        return "BooleanNode"
    if isinstance(v, int):
        if -(2**31) <= v < 2**31:
            return "IntNode"
        return "LongNode" if -(2**63) <= v < 2**63 else "BigIntegerNode"
    if isinstance(v, (float, Decimal)):
        return "DecimalNode"
    if isinstance(v, str):
        return "TextNode"
    if isinstance(v, list):
        return "ArrayNode"
    return "ObjectNode"


def _conversion_message(v: object, required: str) -> str:
    return f"Can't convert type. sourceType: {_node(v)}, requiredType: {required}"


def _fail(v: object, t: SqlType, path: str) -> _CoercionError:
    return _CoercionError(f"{_conversion_message(v, str(t))}, path: {path}")


def _wrap(i: int, bits: int) -> int:
    """Java's narrowing of an integer to `bits` bits (two's complement wrap-around)."""
    half = 1 << (bits - 1)
    return ((i + half) % (1 << bits)) - half


def _coerce(v: Any, t: SqlType, path: str, exact: bool) -> Any:
    """One non-null JSON value as a value of `t` that `pa.array` accepts, or `_CoercionError`."""
    if v is None:
        return None
    kind = t.name
    cls = v.__class__
    if kind == "BOOLEAN":
        if cls is bool:
            return v
        raise _fail(v, t, path)
    if kind in _RANGES:
        bits = _RANGES[kind]
        if cls is bool:
            raise _fail(v, t, path)
        if cls is int:
            return _wrap(v, bits)
        if cls is float or cls is Decimal:
            return _wrap(int(v), bits)
        if cls is str:
            if _INT_TEXT.match(v):
                i = int(v)
                if -(1 << (bits - 1)) <= i < (1 << (bits - 1)):
                    return i
            raise _CoercionError(f"Can't coerce string to type. targetType: {kind}, path: {path}")
        raise _fail(v, t, path)
    if kind == "DOUBLE":
        if cls is float or cls is int or cls is Decimal:
            try:
                return float(v)
            except OverflowError:
                return math.copysign(math.inf, v)
        if cls is str:
            d = _java_double(v)
            if d is None:
                raise _CoercionError(
                    f"Can't coerce string to type. targetType: DOUBLE, path: {path}"
                )
            return d
        raise _fail(v, t, path)
    if kind == "STRING":
        return _to_text(v, path, exact)
    if kind == "DECIMAL":
        if cls is float:
            raise _NeedExact
        if cls is int or cls is Decimal:
            return fit_decimal(Decimal(v), t, path)
        if cls is str:
            if not _DECIMAL_TEXT.match(v):
                raise _CoercionError(f"Invalid DECIMAL text: '{v}', path: {path}")
            return fit_decimal(Decimal(v), t, path)
        raise _fail(v, t, path)
    if kind == "BYTES":
        if cls is str:
            try:
                return base64.b64decode(v, validate=True)
            except (binascii.Error, ValueError):
                raise _CoercionError(
                    f"Value is not a valid Base64 encoded string: {v}, path: {path}"
                ) from None
        raise _fail(v, t, path)
    if kind in ("TIMESTAMP", "TIME", "DATE"):
        if cls is int:
            i = v
        elif cls is float or cls is Decimal or (cls is str and _INT_TEXT.match(v)):
            i = int(v)
        elif cls is str:
            raise _CoercionError(f"Can't coerce string to type. targetType: {kind}, path: {path}")
        else:
            raise _fail(v, t, path)
        return _temporal(i, kind, path)
    if kind == "ARRAY":
        if cls is not list:
            raise _fail(v, t, path)
        element = t.element
        assert element is not None
        return [_coerce(e, element, f"{path}[{j}]", exact) for j, e in enumerate(v)]
    if kind == "MAP":
        if cls is not dict:
            raise _fail(v, t, path)
        element = t.element
        assert element is not None
        return {k: _coerce(e, element, f"{path}.{k}.value", exact) for k, e in v.items()}
    if kind == "STRUCT":
        if cls is not dict:
            raise _fail(v, t, path)
        return {
            name: _coerce(_field(v, name), ft, f"{path}.{name}", exact) for name, ft in t.fields
        }
    raise _CoercionError(f"Type is not supported: {kind}, path: {path}")


def _temporal(i: int, kind: str, path: str) -> int:
    if kind == "TIME":
        if not 0 <= i <= _DAY_MS:
            raise _CoercionError(
                "Time values must use number of milliseconds greater than 0 and less than "
                f"{_DAY_MS}., path: {path}"
            )
    elif kind == "DATE":
        if not -(2**31) <= i < 2**31:
            raise _CoercionError(f"DATE out of range: {i} days, path: {path}")
    elif not -(2**63) <= i < 2**63:
        raise _CoercionError(f"TIMESTAMP out of range: {i}, path: {path}")
    return i


def _has_float(v: Any) -> bool:
    if v.__class__ is float:
        return True
    if v.__class__ is list:
        return any(_has_float(e) for e in v)
    if v.__class__ is dict:
        return any(_has_float(e) for e in v.values())
    return False


def _to_text(v: Any, path: str, exact: bool) -> str:
    """ksqlDB's STRING coercion: text as is, scalars as their JSON text, objects as JSON."""
    cls = v.__class__
    if cls is str:
        return str(v)
    if cls is bool:
        return "true" if v else "false"
    if cls is int:
        return str(v)
    if cls is Decimal:
        return str(v)
    if cls is float or (not exact and _has_float(v)):
        raise _NeedExact
    if cls is dict:
        return _ENCODER.encode(v).decode()
    if cls is list:
        parts = ["null" if e is None else _to_text(e, path, exact) for e in v]
        return "[" + ", ".join(parts) + "]"
    raise _fail(v, STRING, path)


def _java_double(text: str) -> float | None:
    """Java's Double.parseDouble (surrounding whitespace allowed; no hex), or None."""
    s = text.strip("".join(chr(c) for c in range(33)))
    if not _DOUBLE_TEXT.match(s):
        return None
    s = s.rstrip("fFdD")
    if s.lstrip("+-") == "Infinity":
        return -math.inf if s.startswith("-") else math.inf
    return float(s)


def fit_decimal(d: Decimal, t: SqlType, path: str = "$") -> Decimal:
    """`d` at DECIMAL(p, s)'s scale; `_CoercionError` if that needs rounding or overflows."""
    assert t.precision is not None and t.scale is not None
    p, s = t.precision, t.scale
    if not d.is_finite():
        raise _CoercionError(f"Cannot fit decimal '{d}' into DECIMAL({p}, {s}), path: {path}")
    digits = p - s
    if abs(d) >= Decimal(10) ** digits:
        raise _CoercionError(
            f"Numeric field overflow: A field with precision {p} and scale {s} must round to an "
            f"absolute value less than 10^{digits}. Got {d:f}, path: {path}"
        )
    with localcontext() as ctx:
        ctx.prec = 100
        try:
            q = d.quantize(Decimal(1).scaleb(-s))
        except InvalidOperation:
            q = None
    if q is None or q != d:
        tup = d.as_tuple()
        exp = tup.exponent if isinstance(tup.exponent, int) else 0
        raise _CoercionError(
            f"Cannot fit decimal '{d:f}' into DECIMAL({p}, {s}) without rounding. "
            f"(Requires {len(tup.digits)},{-exp}), path: {path}"
        )
    return q


# -- encoding ---------------------------------------------------------------------------------


def _json_ready(t: pa.DataType) -> pa.DataType:
    """The Arrow type whose Python values msgspec writes as ksqlDB does (temporals as numbers)."""
    if pa.types.is_timestamp(t):
        return pa.int64()
    if pa.types.is_date(t) or pa.types.is_time(t):
        return pa.int32() if t.bit_width == 32 else pa.int64()
    if pa.types.is_map(t):
        return pa.map_(_json_ready(t.key_type), _json_ready(t.item_type))
    if pa.types.is_list(t):
        return pa.list_(_json_ready(t.value_type))
    if pa.types.is_struct(t):
        return pa.struct([pa.field(f.name, _json_ready(f.type)) for f in t])
    return t


def _has_floats(t: pa.DataType) -> bool:
    if pa.types.is_floating(t):
        return True
    if pa.types.is_map(t):
        return _has_floats(t.key_type) or _has_floats(t.item_type)
    if pa.types.is_list(t):
        return _has_floats(t.value_type)
    if pa.types.is_struct(t):
        return any(_has_floats(f.type) for f in t)
    return False


def _finite_or_text(v: Any) -> Any:
    """Doubles as Jackson writes them: NaN and infinities as the strings "NaN", "Infinity",
    "-Infinity"; the others as Java's Double.toString ("1.0E12", "1.0E-4", "0.5")."""
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Infinity" if v > 0 else "-Infinity"
        if v == 0 or 1e-3 <= abs(v) < 1e7:
            return v  # msgspec's shortest text is Java's there
        return msgspec.Raw(java_double(v).encode())
    if isinstance(v, list):
        return [_finite_or_text(x) for x in v]
    if isinstance(v, dict):
        return {k: _finite_or_text(x) for k, x in v.items()}
    return v


def _lines_to_array(buf: bytes, n: int) -> pa.BinaryArray:
    """One binary value per line of newline-terminated JSON (msgspec never emits raw newlines)."""
    raw = np.frombuffer(buf, dtype=np.uint8)
    newlines = np.flatnonzero(raw == 10)
    assert len(newlines) == n
    ends = newlines - np.arange(n)
    offsets = np.concatenate(([0], ends)).astype(np.int32)
    data = raw[raw != 10]
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data.tobytes())]
    )


def _needs_escaping(arr: pa.StringArray) -> bool:
    """Whether any text holds a byte JSON must escape: a quote, a backslash or a control byte.

    One pass of numpy over the array's UTF-8 bytes (bytes of multi-byte characters are all
    0x80 or above, so none is mistaken for one of these)."""
    offsets = np.frombuffer(arr.buffers()[1], np.int32, len(arr) + 1, arr.offset * 4)
    data = arr.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return False
    raw = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
    return bool(raw.min() < 0x20 or (raw == ord('"')).any() or (raw == ord("\\")).any())


def _plain_text(arr: pa.Array) -> bool:
    """Whether a column is text with no NULL and nothing to escape: its JSON is each value
    between quotes."""
    return (
        pa.types.is_string(arr.type)
        and len(arr) > 0
        and not arr.null_count
        and not _needs_escaping(arr)
    )


def _json_texts(arr: pa.Array) -> pa.BinaryArray:
    """Each value's JSON text (null where the value is null): Arrow casts for integers,
    booleans and DECIMALs, one msgspec call for everything else."""
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t):
        # Arrow writes DECIMALs as Java's BigDecimal.toString does ("1.500", "-1E-8")
        return pc.cast(arr, pa.string()).cast(pa.binary())
    if pa.types.is_string(t) and len(arr) and not _needs_escaping(arr):
        # most text needs no escaping: quote it with Arrow, and escape the rest with msgspec
        quoted = pc.binary_join_element_wise('"', arr, '"', "")
        return quoted.cast(pa.binary())
    values = arr.cast(_json_ready(t)).to_pylist(maps_as_pydicts="strict")
    if _has_floats(t):
        plain = pa.types.is_floating(t) and not _needs_java_text(arr)
        if not plain:
            values = [_finite_or_text(v) for v in values]
    out = _lines_to_array(_ENCODER.encode_lines(values), len(arr))
    if arr.null_count:
        out = pc.if_else(arr.is_null(), pa.nulls(len(arr), pa.binary()), out)
    return out


def _needs_java_text(arr: pa.Array) -> bool:
    """Whether a DOUBLE column holds a value msgspec writes otherwise than Java (and so
    ksqlDB's JSON serializer): not finite, or outside [1e-3, 1e7) where Java switches to
    its d.dddE±n form ("1.0E12", where msgspec writes "1000000000000.0")."""
    magnitude = pc.abs(arr)
    plain = pc.and_(
        pc.is_finite(arr),
        pc.or_(
            pc.equal(magnitude, 0.0),
            pc.and_(pc.greater_equal(magnitude, 1e-3), pc.less(magnitude, 1e7)),
        ),
    )
    return pc.all(plain).as_py() is False
