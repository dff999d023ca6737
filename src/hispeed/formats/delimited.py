"""The DELIMITED format: one line of CSV per record, as ksqlDB writes it with Commons CSV.

Reading: fields split on the delimiter (',' by default; VALUE_DELIMITER / KEY_DELIMITER give one
character or TAB / SPACE), double-quoted fields may hold the delimiter and "" for a quote, an
empty field is NULL, and the field count must equal the column count. BOOLEAN is true when the
text is "true" in any case; numbers parse as Java does; DECIMAL must fit without rounding;
BYTES is base64; TIMESTAMP, DATE and TIME are epoch millis, epoch days and millis of the day.
ARRAY, MAP and STRUCT columns are refused.

Writing quotes a field the way Commons CSV 1.4's MINIMAL mode does (the rule ksqlDB's outputs
show): always when it holds the delimiter, a quote, CR or LF, or ends in whitespace; the first
field also when it is empty or does not start with a letter or digit, the others when they
start with a character up to '#'. NULL is an empty field. DOUBLE is written like Java's
Double.toString and DECIMAL in plain notation at its scale.

Both directions work on whole Arrow columns; only text that needs Java's exact parsing rules
(or CSV quoting on read) is handled value by value.
"""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.formats._json import _CoercionError, _java_double, fit_decimal
from hispeed.formats.base import (
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
from hispeed.sql.types import SqlType

_INT_TEXT = re.compile(r"[+-]?[0-9]+\Z")
_INT_RE2 = r"^[0-9]+$"
_DECIMAL_TEXT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?\Z")
_BITS = {"INTEGER": 32, "BIGINT": 64, "DATE": 32, "TIMESTAMP": 64, "TIME": 64}
_SUPPORTED = {
    "BOOLEAN", "INTEGER", "BIGINT", "DOUBLE", "STRING", "BYTES", "DECIMAL",
    "TIMESTAMP", "DATE", "TIME",
}  # fmt: skip
_DAY_MS = 86_400_000


@register_format
class DelimitedFormat(Format):
    """Delimiter-separated text (CSV by default); primitive columns only."""

    name = "DELIMITED"
    supports_unwrap = True
    takes_delimiter = True

    def __init__(
        self, *, is_key: bool = False, wrap_single_value: bool | None = None, delimiter: str = ","
    ) -> None:
        super().__init__(is_key=is_key, wrap_single_value=wrap_single_value)
        if len(delimiter) != 1:
            raise ValueError("the delimiter must be one character")
        self.delimiter = delimiter

    @classmethod
    def configured(
        cls, *, is_key: bool, wrap_single_value: bool | None, delimiter: str
    ) -> DelimitedFormat:
        return cls(is_key=is_key, wrap_single_value=wrap_single_value, delimiter=delimiter)

    def decode(self, data: pa.Array, columns: Sequence[Column]) -> DecodeResult:
        data = binary_chunk(data)
        n = len(data)
        nulls = null_mask(data)
        errors: dict[int, str] = {}
        fields = self._split(data, nulls, len(columns), errors)
        arrays: list[pa.Array] = []
        for column, texts in zip(columns, fields, strict=True):
            arr, col_errors = _parse_column(texts, column.type)
            arrays.append(arr)
            for i, reason in col_errors:
                errors.setdefault(i, reason)
        arrays, _ = null_out(arrays, errors, n)
        return DecodeResult(make_batch(columns, arrays, n), sorted(errors.items()), nulls)

    def _split(
        self, data: pa.BinaryArray, nulls: npt.NDArray[np.bool_], count: int, errors: dict[int, str]
    ) -> list[pa.Array]:
        """Each column's field text (null for NULL fields and for rows in error)."""
        n = len(data)
        try:
            text = data.cast(pa.string())
        except pa.ArrowInvalid:
            text = pa.array(
                [None if b is None else b.decode("utf-8", "replace") for b in data.to_pylist()],
                type=pa.string(),
            )
        if n == 0:
            return [pa.array([], pa.string()) for _ in range(count)]
        quoted = pc.any(pc.match_substring_regex(text, '["\\r\\n]')).as_py()
        if not quoted:
            parts = pc.split_pattern(text, self.delimiter)
            empty = pc.equal(pc.binary_length(text), 0).fill_null(False)
        else:
            parts, empty = self._split_csv(text, errors)
        lengths = pc.list_value_length(parts).to_numpy(zero_copy_only=False)
        empty_np = empty.to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(empty_np & ~nulls):
            errors.setdefault(int(i), "No fields in record")
        wrong = np.flatnonzero((lengths != count) & ~nulls & ~empty_np)
        for i in wrong:
            if int(i) in errors:  # a record csv refused has no field count
                continue
            errors.setdefault(
                int(i),
                "Column count mismatch on deserialization. "
                f"expected: {count}, got: {int(lengths[i])}",
            )
        if errors:
            bad = np.zeros(n, dtype=np.bool_)
            bad[list(errors)] = True
            parts = pc.if_else(pa.array(bad), pa.nulls(n, parts.type), parts)
        out = []
        for j in range(count):
            field = pc.list_element(parts, j)
            out.append(pc.if_else(pc.equal(field, ""), pa.nulls(n, pa.string()), field))
        return out

    def _split_csv(self, text: pa.Array, errors: dict[int, str]) -> tuple[pa.Array, pa.Array]:
        """Split with CSV quoting, record by record (the first non-empty line of each)."""
        rows: list[list[str] | None] = []
        empty: list[bool] = []
        for i, s in enumerate(text.to_pylist()):
            record: list[str] | None = None
            if s is not None:
                try:
                    reader = csv.reader(
                        io.StringIO(s), delimiter=self.delimiter, quotechar='"', strict=True
                    )
                    record = next((f for f in reader if f), None)
                except csv.Error as e:
                    errors[i] = f"Error deserializing delimited: {e}"
                    rows.append(None)
                    empty.append(False)
                    continue
            rows.append(None if s is None else (record or []))
            empty.append(s is not None and record is None)
        return pa.array(rows, type=pa.list_(pa.string())), pa.array(empty)

    def encode(
        self,
        batch: pa.RecordBatch | pa.Table,
        columns: Sequence[Column],
        *,
        null_rows: npt.NDArray[np.bool_] | None = None,
    ) -> pa.Array:
        self.check_columns(columns)
        n = batch.num_rows
        if not columns:
            return apply_null_rows(pa.array([b""] * n, pa.binary()), null_rows)
        texts = [
            self._quote(_format_column(arr, c.type), first=(j == 0))
            for j, (arr, c) in enumerate(zip(columns_of(batch, columns), columns, strict=True))
        ]
        line = pc.binary_join_element_wise(
            *texts, self.delimiter, null_handling="replace", null_replacement=""
        )
        # a lone NULL column is written '""' as Commons CSV quotes an empty first field, not
        # as empty bytes, which readers take for no record (a tombstone is a null value)
        line = pc.if_else(pc.equal(line, ""), pa.scalar('""'), line)
        return apply_null_rows(line.cast(pa.binary()), null_rows)

    def _quote(self, texts: pa.Array, *, first: bool) -> pa.Array:
        """Quote as Commons CSV 1.4's MINIMAL mode does (see the module docstring)."""
        d = f"\\x{{{ord(self.delimiter):x}}}"
        anywhere = f'.*[\\r\\n"{d}]|.*[\\x00-\\x20]$'
        start = "$|[^0-9A-Za-z]" if first else "[\\x00-\\x23]"
        need = pc.match_substring_regex(texts, f"(?s)^(?:{start}|{anywhere})")
        escaped = pc.replace_substring(texts, '"', '""')
        quoted = pc.binary_join_element_wise('"', escaped, '"', "")
        return pc.if_else(need.fill_null(False), quoted, texts)

    def _unsupported(self, columns: Sequence[Column], *, is_key: bool) -> str | None:
        for c in columns:
            if c.type.name not in _SUPPORTED:
                return (
                    f"The 'DELIMITED' format does not support type '{c.type.name}', "
                    f"column: `{c.name}`"
                )
        return None


# -- reading ----------------------------------------------------------------------------------


def _parse_column(texts: pa.Array, t: SqlType) -> tuple[pa.Array, list[tuple[int, str]]]:
    """Typed values from field text; text that does not parse is an error for its row."""
    kind = t.name
    target = t.to_arrow()
    if kind == "STRING":
        return texts, []
    if kind == "BOOLEAN":
        return pc.equal(pc.utf8_lower(texts), "true"), []
    if kind in _BITS:
        signless = pc.utf8_ltrim(texts, characters="-")
        if pc.all(pc.match_substring_regex(signless, _INT_RE2)).as_py() is not False:
            try:
                ints = pc.cast(texts, pa.int32() if _BITS[kind] == 32 else pa.int64())
                if kind != "TIME":
                    return ints.cast(target), []
                if _time_ok(ints):
                    return ints.cast(pa.int32()).cast(target), []
            except pa.ArrowInvalid:
                pass
        return _per_value(texts, t, lambda s: _parse_int(s, kind))
    if kind == "DOUBLE":
        return _per_value(texts, t, _parse_double)
    if kind == "DECIMAL":
        return _per_value(texts, t, lambda s: _parse_decimal(s, t))
    if kind == "BYTES":
        return _per_value(texts, t, _parse_base64)
    raise AssertionError(kind)


def _time_ok(ints: pa.Array) -> bool:
    if ints.null_count == len(ints):
        return True
    return bool(pc.min(ints).as_py() >= 0 and pc.max(ints).as_py() <= _DAY_MS)


def _per_value(
    texts: pa.Array, t: SqlType, parse: Callable[[str], Any]
) -> tuple[pa.Array, list[tuple[int, str]]]:
    out: list[Any] = []
    errors: list[tuple[int, str]] = []
    for i, s in enumerate(texts.to_pylist()):
        if s is None:
            out.append(None)
            continue
        try:
            out.append(parse(s))
        except _CoercionError as e:
            out.append(None)
            errors.append((i, str(e)))
    return pa.array(out, type=t.to_arrow()), errors


def _parse_int(s: str, kind: str) -> int:
    bits = _BITS[kind]
    if _INT_TEXT.match(s):
        i = int(s)
        if -(1 << (bits - 1)) <= i < (1 << (bits - 1)):
            if kind == "TIME" and not 0 <= i <= _DAY_MS:
                raise _CoercionError(
                    "Time values must use number of milliseconds greater than 0 and less than "
                    f"{_DAY_MS}."
                )
            return i
    raise _CoercionError(f'For input string: "{s}" ({kind})')


def _parse_double(s: str) -> float:
    d = _java_double(s)
    if d is None:
        raise _CoercionError(f'For input string: "{s}" (DOUBLE)')
    return d


def _parse_decimal(s: str, t: SqlType) -> Decimal:
    if not _DECIMAL_TEXT.match(s):
        raise _CoercionError(f"Invalid DECIMAL text: '{s}'")
    return fit_decimal(Decimal(s), t)


def _parse_base64(s: str) -> bytes:
    try:
        return base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError):
        raise _CoercionError(f"Value is not a valid Base64 encoded string: {s}") from None


# -- writing ----------------------------------------------------------------------------------


def _format_column(arr: pa.Array, t: SqlType) -> pa.Array:
    """Each value's text as ksqlDB's delimited serializer writes it (null stays null)."""
    kind = t.name
    if kind in ("BOOLEAN", "INTEGER", "BIGINT", "STRING"):
        return arr.cast(pa.string())
    if kind == "TIMESTAMP":
        return arr.cast(pa.int64()).cast(pa.string())
    if kind in ("DATE", "TIME"):
        return arr.cast(pa.int32()).cast(pa.string())
    values = arr.to_pylist()
    if kind == "DOUBLE":
        return pa.array([None if v is None else java_double(v) for v in values], pa.string())
    if kind == "DECIMAL":
        return pa.array([None if v is None else f"{v:f}" for v in values], pa.string())
    if kind == "BYTES":
        return pa.array(
            [None if v is None else base64.b64encode(v).decode() for v in values], pa.string()
        )
    raise AssertionError(kind)
