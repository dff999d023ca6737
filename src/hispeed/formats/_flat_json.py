"""Decode a batch of flat JSON objects that all share one layout, with numpy, into columns.

Machine-written JSON records usually have the same fields in the same order, with numbers and
text that need no escaping: `{"AUCTION":12,"CHANNEL":"Google",...}`. For such a batch the
position of every field follows from the positions of its quotes, so the whole batch is
decoded without a Python object per value: integers are parsed from their digits, text is cut
out of the records' bytes.

`decode_flat` takes a batch only when every record matches the first record's layout exactly:
no whitespace, the same keys in the same order (each the exact name of a declared column, or
the name of one when upper-cased, `auction` for AUCTION, as ksqlDB matches fields; a key of no
column, which ksqlDB ignores, is read and left out if it holds an integer or a string), each value
of the same kind (an integer for a BIGINT or INTEGER column that holds it, a string for a
STRING column, with the C version a number for a DOUBLE column), strings without backslashes or
control characters and in valid UTF-8. Such a record is valid JSON whose values are exactly
what the general decoder (`_json.py`) makes of it, so both give the same columns. For anything
else it returns None and the general decoder runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from hispeed.formats.base import Column
from hispeed.sql import types as T

_QUOTE, _COLON, _COMMA, _OPEN, _CLOSE = (ord(c) for c in '":,{}')
_BACKSLASH, _MINUS, _ZERO = ord("\\"), ord("-"), ord("0")
_INT_BITS = {"BIGINT": 64, "INTEGER": 32}
#: digits of the longest integer parsed (longer ones, rare, go to the general decoder)
_MAX_DIGITS = 16
_PAD = 16  # bytes before the data that 8-byte reads may touch
_ASCII_ZEROS = np.uint64(0x3030303030303030)
#: for n = 0 to 8: the n most significant bytes of a little-endian 8-byte word
_HIGH_BYTES = np.array([((1 << 64) - 1) ^ ((1 << (8 * (8 - n))) - 1) for n in range(9)], np.uint64)

IntArray = np.ndarray[Any, Any]


def decode_flat(data: pa.BinaryArray, columns: Sequence[Column]) -> list[pa.Array] | None:
    """One array per column if every record matches the first one's layout, else None."""
    n = len(data)
    if n == 0 or data.null_count or not columns:
        return None
    native = _extension()
    doubles = native is not None and hasattr(native, "KIND_DOUBLE")
    kinds = (*_INT_BITS, "STRING", "DOUBLE") if doubles else (*_INT_BITS, "STRING")
    if any(c.type.name not in kinds for c in columns):
        return None
    buffers = data.buffers()
    if buffers[2] is None:
        return None
    offsets32 = np.frombuffer(buffers[1], np.int32, n + 1, 4 * data.offset)
    raw = np.frombuffer(buffers[2], np.uint8)
    layout = _layout(bytes(raw[offsets32[0] : offsets32[1]]), columns)
    if not layout:
        return None
    if native is not None:
        values = _decode_native(native, offsets32, buffers[2], layout, columns)
    else:
        values = _decode_numpy(offsets32, buffers[2], layout, columns)
    if values is None:
        return None
    return [values[c.name] if c.name in values else pa.nulls(n, c.type.to_arrow()) for c in columns]


#: a field of the layout: its key as the records spell it, the column it fills, its kind
Field = tuple[str, str, type]
#: the prefix of the layout's name for a field that fills no column (no column's name can
#: start with a NUL)
_IGNORED = "\x00ignored:"
#: how a field of no column holding an integer is read (any JSON integer that fits 64 bits)
_IGNORED_INT = Column("\x00ignored", T.BIGINT)


@functools.cache
def _extension() -> Any:
    """The C version of this module (`_flatjson.c`), or None: not built, or switched off with
    HISPEED_NATIVE=0."""
    if os.environ.get("HISPEED_NATIVE", "1") == "0":
        return None
    try:
        from hispeed.formats import _flatjson  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _flatjson


def _decode_native(
    native: Any,
    offsets32: np.ndarray,
    data: pa.Buffer,
    layout: list[Field],
    columns: Sequence[Column],
) -> dict[str, pa.Array] | None:
    """The layout's columns by `_flatjson` (C): one pass over each record."""
    n = len(offsets32) - 1
    types = {c.name: c.type.name for c in columns}
    kinds = [  # a field of no column holding an integer is read as a BIGINT
        2
        if kind is str
        else 3
        if kind is float
        else 1
        if _INT_BITS[types.get(name, "BIGINT")] == 32
        else 0
        for _, name, kind in layout
    ]
    keys = [b'"' + key.encode() + b'":' for key, _, _ in layout]
    decoded = native.decode(offsets32, data, keys, kinds)
    if decoded is None:
        return None
    values: dict[str, pa.Array] = {}
    for (_, name, _), kind, got in zip(layout, kinds, decoded, strict=True):
        if kind == 2:
            offsets, text = got
            array = pa.Array.from_buffers(
                pa.string(), n, [None, pa.py_buffer(offsets), pa.py_buffer(text)]
            )
            try:
                array.validate(full=True)  # UTF-8
            except pa.ArrowInvalid:
                return None
        else:
            arrow_type = pa.int32() if kind == 1 else pa.float64() if kind == 3 else pa.int64()
            array = pa.Array.from_buffers(arrow_type, n, [None, pa.py_buffer(got)])
        values[name] = array
    return values


def _decode_numpy(
    offsets32: np.ndarray,
    data: pa.Buffer,
    layout: list[Field],
    columns: Sequence[Column],
) -> dict[str, pa.Array] | None:
    """The layout's columns by numpy: every record's quotes found at once, each field's
    spelling and values checked and read for all records together."""
    n = len(offsets32) - 1
    offsets = offsets32.astype(np.int64)
    raw = np.frombuffer(data, np.uint8)
    starts, ends = offsets[:-1], offsets[1:]
    if ((ends - starts) < 2).any():
        return None
    body = raw[offsets[0] : offsets[-1]]
    if body.min() < 0x20 or (body == _BACKSLASH).any():
        return None  # whitespace, control characters or escapes: not this layout
    width = sum(4 if kind is str else 2 for _, _, kind in layout)
    quotes = np.flatnonzero(body == _QUOTE) + offsets[0]
    if len(quotes) != width * n:
        return None
    # each record's quotes, if each has `width` of them: at[k] holds every record's k-th
    at = np.ascontiguousarray(quotes.reshape(n, width).T)
    if not ((at[0] == starts + 1).all() and (at[-1] < ends).all()):
        return None
    if (raw[starts] != _OPEN).any() or (raw[ends - 1] != _CLOSE).any():
        return None
    windows = _windows(raw)
    values: dict[str, pa.Array] = {}
    q = 0
    for j, (key, name, kind) in enumerate(layout):
        last = j == len(layout) - 1
        key_open = at[q]
        # the fixed text from the key's opening quote: "KEY": then the value's quote, if text
        fixed = b'"' + key.encode() + b'":' + (b'"' if kind is str else b"")
        if not (at[q + 1] == key_open + len(fixed) - (3 if kind is str else 2)).all():
            return None
        if not _spelled(windows, key_open, fixed):
            return None
        q += 2
        if kind is str:
            value_close = at[q + 1]
            q += 2
            after = value_close + 1  # the comma, or the closing brace
            array = _text(data, key_open + len(fixed), value_close)
        else:
            after = ends - 1 if last else at[q] - 1
            column = next((c for c in columns if c.name == name), _IGNORED_INT)
            array = _integers(windows, raw, key_open + len(fixed), after, column)
        if array is None:
            return None
        if last:
            if not (after == ends - 1).all():
                return None
        elif not ((at[q] == after + 1).all() and (raw[after] == _COMMA).all()):
            return None
        values[name] = array
    return values


def _layout(record: bytes, columns: Sequence[Column]) -> list[Field] | None:
    """The first record's fields and the kind of each value, if it can be the batch's layout.

    A key fills the column of its exact name, else the column its upper-cased spelling names
    (ksqlDB's lookup, `_json._field`: `{"auction":1}` fills AUCTION); a layout with two keys
    for one column (`"a"` and `"A"`), or a key filling two columns, is left to the general
    decoder, which picks between them.
    """
    try:
        fields = msgspec.json.decode(record)
    except (msgspec.DecodeError, UnicodeDecodeError):
        return None
    if type(fields) is not dict:
        return None
    types = {c.name: c.type.name for c in columns}
    layout: list[Field] = []
    for key, value in fields.items():
        name = key if key in types else key.upper()
        if name != key.upper() and key.upper() in types:
            return None  # "a" fills both a column `a` and a column A: the general decoder
        target = types.get(name)
        kind = type(value)
        if target is None and kind in (int, str):
            # a field of no column (a table's key repeated in its value, say), which the
            # general decoder ignores: read as what it holds and left out of the columns
            layout.append((key, _IGNORED + key, kind))
            continue
        if target == "DOUBLE" and kind in (int, float):
            layout.append((key, name, float))  # any JSON number (only the C version gets here)
            continue
        if target is None or (kind is str) != (target == "STRING") or kind not in (int, str):
            return None  # another field, a value needing coercion, NULL or another kind
        layout.append((key, name, kind))
    if len({name for _, name, _ in layout}) != len(layout):
        return None
    return layout


def _windows(raw: np.ndarray) -> np.ndarray:
    """Every 8 bytes of `raw` as a little-endian integer: `[p + _PAD]` holds raw[p : p + 8]
    (zeros beyond either end)."""
    padded = np.concatenate((np.zeros(_PAD, np.uint8), raw, np.zeros(8, np.uint8)))
    return np.ndarray((len(raw) + _PAD,), "<u8", padded.data, 0, (1,))


def _spelled(windows: np.ndarray, at: IntArray, text: bytes) -> bool:
    """Whether every position in `at` starts `text`, compared 8 bytes at a time."""
    padded = text + b"\0" * (-len(text) % 8)
    for k in range(0, len(text), 8):
        chunk = int.from_bytes(padded[k : k + 8], "little")
        width = min(8, len(text) - k)
        mask = (1 << (8 * width)) - 1
        if not ((windows[at + (k + _PAD)] & np.uint64(mask)) == np.uint64(chunk & mask)).all():
            return False
    return True


def _digits(windows: np.ndarray, stops: IntArray, counts: IntArray) -> IntArray | None:
    """The numbers written by the `counts[i]` (0 to 8) bytes before `stops[i]`, or None if
    one of those is not a digit. Eight digits are read as one integer and combined in pairs,
    then fours, then eights (three multiplications), the other bytes taken as leading zeros."""
    word = windows[stops + (_PAD - 8)]
    keep = _HIGH_BYTES[counts]
    word = (word & keep) | (_ASCII_ZEROS & ~keep)
    nibbles = np.uint64(0xF0F0F0F0F0F0F0F0)
    carried = (word + np.uint64(0x0606060606060606)) & nibbles  # a low nibble over 9 carries
    if not (((word & nibbles) == _ASCII_ZEROS) & (carried == _ASCII_ZEROS)).all():
        return None
    word = ((word & np.uint64(0x0F0F0F0F0F0F0F0F)) * np.uint64(2561)) >> np.uint64(8)
    word = ((word & np.uint64(0x00FF00FF00FF00FF)) * np.uint64(6553601)) >> np.uint64(16)
    word = ((word & np.uint64(0x0000FFFF0000FFFF)) * np.uint64(42949672960001)) >> np.uint64(32)
    out: IntArray = word.astype(np.int64)
    return out


def _slices(buffer: pa.Buffer, starts: IntArray, stops: IntArray) -> pa.BinaryArray:
    """The bytes buffer[starts[i]:stops[i]] (in increasing, disjoint ranges) as one array."""
    n = len(starts)
    bounds = np.empty(2 * n, np.int32)
    bounds[0::2] = starts
    bounds[1::2] = stops
    # the ranges and the gaps between them, all views of the buffer; then the ranges only
    views = pa.Array.from_buffers(pa.binary(), 2 * n - 1, [None, pa.py_buffer(bounds), buffer])
    return views.take(pa.array(np.arange(0, 2 * n, 2)))


def _integers(
    windows: np.ndarray, raw: np.ndarray, starts: IntArray, stops: IntArray, column: Column
) -> pa.Array | None:
    """The JSON integers raw[starts[i]:stops[i]] in the column's type, or None if one is not
    such an integer (a fraction, an exponent, a leading zero) or does not fit the type."""
    negative = raw[starts] == _MINUS
    first = starts + negative
    digits = stops - first
    if (digits < 1).any() or (digits > _MAX_DIGITS).any():
        return None
    if ((raw[first] == _ZERO) & (digits > 1)).any():
        return None
    total = _digits(windows, stops, np.minimum(digits, 8))
    if total is not None and int(digits.max()) > 8:
        high = _digits(windows, stops - 8, np.clip(digits - 8, 0, 8))
        total = None if high is None else high * 100_000_000 + total
    if total is None:
        return None
    total = np.where(negative, -total, total)
    if _INT_BITS[column.type.name] == 32:
        if (total < -(2**31)).any() or (total >= 2**31).any():
            return None  # ksqlDB wraps these: the general decoder does it
        return pa.array(total.astype(np.int32), pa.int32())
    return pa.array(total, pa.int64())


def _text(buffer: pa.Buffer, starts: IntArray, stops: IntArray) -> pa.Array | None:
    """The bytes buffer[starts[i]:stops[i]] as a string array, or None if not valid UTF-8."""
    try:
        return _slices(buffer, starts, stops).cast(pa.string())
    except pa.ArrowInvalid:
        return None


__all__ = ["decode_flat"]
