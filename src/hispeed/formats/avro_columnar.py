"""Avro records of flat schemas decoded a column at a time with numpy (AVRO's fast path).

A batch of records written with one flat record schema (each field a primitive, or a
null-or-primitive union, as ksqlDB and most producers write rows) is read field by field
across all records at once: every record has a cursor into the batch's bytes; a field's
zig-zag varints, union branches, doubles and length-prefixed strings are read for all
cursors with a handful of numpy operations, and each column is built from the results
without a Python object per value. Anything else (nested types, other unions, a record
whose bytes do not end where its last field does) returns None, and the caller reads the
batch record by record with fastavro, which reports each bad record.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute

from hispeed.formats.base import Column

_PRIMITIVES = {"boolean", "int", "long", "float", "double", "string", "bytes"}
#: (Avro type, logical type) -> the SQL types whose columns it can fill as it is
_FILLS = {
    ("boolean", None): {"BOOLEAN"},
    ("int", None): {"INTEGER", "BIGINT"},
    ("long", None): {"BIGINT"},
    ("float", None): {"DOUBLE"},
    ("double", None): {"DOUBLE"},
    ("string", None): {"STRING"},
    ("bytes", None): {"BYTES"},
    ("int", "date"): {"DATE"},
    ("int", "time-millis"): {"TIME"},
    ("long", "timestamp-millis"): {"TIMESTAMP"},
}
#: zero bytes after the batch: a cursor is checked against its record's end after every
#: field, so no read (a union branch, then up to 10 bytes of a value) goes past them
_PAD = 32


def flat_fields(schema: Any) -> list[tuple[str, str, str | None, int | None]] | None:
    """The fields of a flat record schema as (name, Avro type, logical type, index of the
    null branch or None), or None when the schema is not flat."""
    if not isinstance(schema, dict) or schema.get("type") != "record":
        return None
    out = []
    for f in schema.get("fields", []):
        t = f["type"]
        null_branch = None
        if isinstance(t, list):
            if len(t) != 2 or "null" not in t:
                return None
            null_branch = t.index("null")
            t = t[1 - null_branch]
        logical = None
        if isinstance(t, dict):
            logical = t.get("logicalType")
            t = t.get("type")
        if t not in _PRIMITIVES or (t, logical) not in _FILLS:
            if t not in _PRIMITIVES or logical == "decimal":
                return None
            logical = None  # an unknown logical type reads as its base type, as Avro's
        out.append((f["name"], str(t), logical, null_branch))
    return out


def plan_columns(
    fields: list[tuple[str, str, str | None, int | None]], columns: Sequence[Column]
) -> list[int | None] | None:
    """Which field fills each column (None: none does, the column is NULL), matched as
    ksqlDB matches them (the name, else the name in upper case); None when some column's
    type cannot take its field's values as they are."""
    by_name = {f[0]: i for i, f in enumerate(fields)}
    plan: list[int | None] = []
    for c in columns:
        i = by_name.get(c.name)
        if i is None:
            i = next((j for j, f in enumerate(fields) if f[0].upper() == c.name), None)
        if i is not None and c.type.name not in _FILLS.get((fields[i][1], fields[i][2]), set()):
            return None
        plan.append(i)
    return plan


def _varints(
    buf: npt.NDArray[np.uint8], pos: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Zig-zag varints at each cursor: their values and their lengths in bytes. Each round
    reads one more byte of only the varints not ended yet."""
    n = len(pos)
    first = buf[pos]
    value = (first & 0x7F).astype(np.uint64)
    length = np.ones(n, np.int64)
    rows = np.nonzero(first & 0x80)[0]
    for i in range(1, 10):
        if not len(rows):
            break
        b = buf[pos[rows] + i]
        value[rows] |= (b & 0x7F).astype(np.uint64) << np.uint64(7 * i)
        length[rows] = i + 1
        rows = rows[(b & 0x80) != 0]
    if len(rows):
        length[rows] = -(10**9)  # longer than any varint: the record is rejected
    decoded = (value >> np.uint64(1)).astype(np.int64) ^ -((value & np.uint64(1)).astype(np.int64))
    return decoded, length


def decode_flat(
    payloads: pa.BinaryArray,
    fields: list[tuple[str, str, str | None, int | None]],
    plan: list[int | None],
    columns: Sequence[Column],
    *,
    skip: int = 0,
) -> list[pa.Array] | None:
    """One array per column from `payloads` (none null; each read from its `skip`th byte,
    past the framing), or None when some record is not what the flat schema says (the
    caller then reads record by record)."""
    n = len(payloads)
    raw_offsets = payloads.buffers()[1]
    assert raw_offsets is not None
    offsets = np.frombuffer(raw_offsets, np.int32)[payloads.offset : payloads.offset + n + 1]
    data = payloads.buffers()[2]
    native = _extension()
    if native is not None and n and data is not None:
        return _decode_native(native, offsets, data, fields, plan, columns, skip)
    body = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    base = int(offsets[0])
    buf = np.concatenate([body[base : int(offsets[-1])], np.zeros(_PAD, np.uint8)])
    pos = (offsets[:-1] - base).astype(np.int64) + skip
    end = (offsets[1:] - base).astype(np.int64)
    wanted = {i for i in plan if i is not None}
    built: dict[int, pa.Array] = {}
    for i, (_, avro_type, logical, null_branch) in enumerate(fields):
        valid = np.ones(n, bool)
        if null_branch is not None:
            branch, size = _varints(buf, pos)
            if ((branch != 0) & (branch != 1)).any():
                return None
            pos += size
            valid = branch != null_branch
        array = _read(buf, pos, valid, avro_type, i in wanted)
        if array is None:
            return None
        if i in wanted:
            try:
                built[i] = _typed(array, avro_type, logical, valid)
            except pa.ArrowInvalid:  # text that is not UTF-8: read record by record
                return None
        if (pos > end).any():
            return None
    if (pos != end).any():
        return None
    return _columns_of(built, plan, columns, n)


@functools.cache
def _extension() -> Any:
    """The C version of `decode_flat` (`_flatavro.c`), or None: not built, or switched off
    with HISPEED_NATIVE=0."""
    if os.environ.get("HISPEED_NATIVE", "1") == "0":
        return None
    try:
        from hispeed.formats import _flatavro  # type: ignore[attr-defined]
    except ImportError:
        return None
    return _flatavro


#: the C decoder's kind of each Avro type
_KINDS = {"boolean": 0, "int": 1, "long": 2, "float": 3, "double": 4, "string": 5, "bytes": 5}
_DTYPES = {0: np.uint8, 1: np.int32, 2: np.int64, 3: np.float32, 4: np.float64}


def _decode_native(
    native: Any,
    offsets: npt.NDArray[np.int32],
    data: pa.Buffer,
    fields: list[tuple[str, str, str | None, int | None]],
    plan: list[int | None],
    columns: Sequence[Column],
    skip: int,
) -> list[pa.Array] | None:
    """`decode_flat` by `_flatavro` (C): one pass over each record."""
    n = len(offsets) - 1
    wanted = {i for i in plan if i is not None}
    decoded = native.decode(
        np.ascontiguousarray(offsets),
        data,
        skip,
        [_KINDS[f[1]] for f in fields],
        [-1 if f[3] is None else f[3] for f in fields],
        [i in wanted for i in range(len(fields))],
    )
    if decoded is None:
        return None
    built: dict[int, pa.Array] = {}
    for i in wanted:
        raw, valid_bytes, text = decoded[i]
        avro_type, logical = fields[i][1], fields[i][2]
        valid = np.frombuffer(valid_bytes, np.bool_)
        values: Any
        if text is not None:
            values = pa.Array.from_buffers(
                pa.binary(), n, [None, pa.py_buffer(raw), pa.py_buffer(text)]
            )
        else:
            values = np.frombuffer(raw, _DTYPES[_KINDS[avro_type]])
            if avro_type == "boolean":
                values = values != 0
        try:
            built[i] = _typed(values, avro_type, logical, valid)
        except pa.ArrowInvalid:  # text that is not UTF-8: read record by record
            return None
    return _columns_of(built, plan, columns, n)


def _columns_of(
    built: dict[int, pa.Array], plan: list[int | None], columns: Sequence[Column], n: int
) -> list[pa.Array]:
    out = []
    for c, field in zip(columns, plan, strict=True):
        if field is None:
            out.append(pa.nulls(n, c.type.to_arrow()))
            continue
        array = built[field]
        target = c.type.to_arrow()
        out.append(array if array.type.equals(target) else array.cast(target))
    return out


def _read(
    buf: npt.NDArray[np.uint8],
    pos: npt.NDArray[np.int64],
    valid: npt.NDArray[np.bool_],
    avro_type: str,
    keep: bool,
) -> Any:
    """The values of one field at the valid cursors (moved past them); for strings and
    bytes (offsets, values) of an Arrow array over all rows."""
    limit = len(buf) - 1
    if avro_type == "boolean":
        values = buf[pos] != 0
        pos += valid
        return values
    if avro_type in ("int", "long"):
        values, size = _varints(buf, pos)
        pos += np.where(valid, size, 0)
        return values
    if avro_type in ("float", "double"):
        width = 4 if avro_type == "float" else 8
        idx = pos[:, None] + np.arange(width)
        raw = np.ascontiguousarray(buf[idx])
        values = raw.view("<f4" if width == 4 else "<f8").reshape(-1)
        pos += np.where(valid, width, 0)
        return values
    lengths, size = _varints(buf, pos)
    lengths = np.where(valid, lengths, 0)
    if (lengths < 0).any():
        return None
    starts = pos + np.where(valid, size, 0)
    pos[:] = starts + lengths
    if not keep:
        return (None, None)
    if int(pos.max(initial=0)) > limit:
        return None
    # the values lie in the batch in order, apart: as an Arrow array over the whole batch
    # whose values are, in turn, what lies before a value and the value itself, the
    # values are every second one, which one `take` copies out in C++
    bounds = np.empty(2 * len(pos) + 1, np.int32)
    bounds[0] = 0
    bounds[1::2] = starts
    bounds[2::2] = pos
    whole = pa.Array.from_buffers(
        pa.binary(), 2 * len(pos), [None, pa.py_buffer(bounds), pa.py_buffer(buf)]
    )
    return whole.take(pa.array(np.arange(1, 2 * len(pos), 2)))


def _typed(
    values: Any, avro_type: str, logical: str | None, valid: npt.NDArray[np.bool_]
) -> pa.Array:
    mask = None if valid.all() else ~valid
    if avro_type in ("string", "bytes"):
        taken: pa.Array = values
        validity = None if mask is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
        kind = pa.string() if avro_type == "string" else pa.binary()
        array = pa.Array.from_buffers(kind, len(taken), [validity, *taken.buffers()[1:]])
        if avro_type == "string":
            array.validate(full=True)  # Avro strings are UTF-8: anything else is refused
        return array
    if avro_type == "boolean":
        return pa.array(values, pa.bool_(), mask=mask)
    if avro_type == "float":
        return pa.array(values.astype(np.float64), pa.float64(), mask=mask)
    if avro_type == "double":
        return pa.array(values, pa.float64(), mask=mask)
    if logical == "date":
        return pa.array(values.astype(np.int32), pa.int32(), mask=mask).view(pa.date32())
    if logical == "time-millis":
        return pa.array(values.astype(np.int32), pa.int32(), mask=mask).view(pa.time32("ms"))
    if logical == "timestamp-millis":
        return pa.array(values, pa.int64(), mask=mask).view(pa.timestamp("ms"))
    if avro_type == "int":
        return pa.array(values.astype(np.int32), pa.int32(), mask=mask)
    return pa.array(values, pa.int64(), mask=mask)


def _parts(matrix: npt.NDArray[np.uint8], counts: npt.NDArray[np.int64]) -> pa.Array:
    """A binary array whose row i is the first counts[i] bytes of matrix row i."""
    n, width = matrix.shape
    offsets = np.zeros(n + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    keep = np.arange(width) < counts[:, None]
    values = np.ascontiguousarray(matrix[keep])
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(values)]
    )


def _varint_bytes(values: npt.NDArray[np.int64], present: npt.NDArray[np.bool_]) -> pa.Array:
    """Each value as a zig-zag varint (no bytes where not `present`)."""
    u = ((values << 1) ^ (values >> 63)).view(np.uint64)
    matrix = np.empty((len(u), 10), np.uint8)
    counts = np.ones(len(u), np.int64)
    for j in range(10):
        rest = u >> np.uint64(7 * (j + 1))
        more = rest != 0
        matrix[:, j] = ((u >> np.uint64(7 * j)) & np.uint64(0x7F)).astype(np.uint8) | (
            more.astype(np.uint8) << 7
        )
        if j:
            counts += (u >> np.uint64(7 * j)) != 0
    return _parts(matrix, np.where(present, counts, 0))


def encode_flat(
    fields: list[tuple[str, str, str | None, int | None]],
    plan: list[int | None],
    arrays: Sequence[pa.Array],
    head: bytes,
) -> pa.Array | None:
    """Records of a flat schema, framed with `head`, from one array per column (`plan`:
    which field each column fills); None when a required field would be null (the caller
    writes record by record, which says so)."""
    n = len(arrays[0]) if arrays else 0
    by_field = {f: i for i, f in enumerate(plan) if f is not None}
    parts: list[pa.Array] = []
    for f, (_, avro_type, _, null_branch) in enumerate(fields):
        column = by_field.get(f)
        array = arrays[column] if column is not None else pa.nulls(n)
        present = np.asarray(array.is_valid())
        if null_branch is None:
            if not present.all():
                return None
        else:
            branch = np.where(present, 1 - null_branch, null_branch).astype(np.uint8) * 2
            parts.append(_parts(branch.reshape(n, 1), np.ones(n, np.int64)))
        if column is None:
            continue
        if avro_type in ("int", "long"):
            if pa.types.is_date32(array.type) or pa.types.is_time32(array.type):
                array = array.view(pa.int32())  # days, or ms of the day, as Avro has them
            elif pa.types.is_timestamp(array.type):
                array = array.view(pa.int64())  # ms since the epoch
            ints = array.cast(pa.int64()) if array.type != pa.int64() else array
            values = np.asarray(ints.fill_null(0)).astype(np.int64)
            parts.append(_varint_bytes(values, present))
        elif avro_type in ("float", "double"):
            dtype = "<f4" if avro_type == "float" else "<f8"
            floats = np.asarray(array.cast(pa.float64()).fill_null(0.0)).astype(dtype)
            matrix = floats.view(np.uint8).reshape(n, -1)
            parts.append(_parts(matrix, np.where(present, matrix.shape[1], 0)))
        elif avro_type == "boolean":
            flags = np.asarray(array.fill_null(False)).astype(np.uint8).reshape(n, 1)
            parts.append(_parts(flags, present.astype(np.int64)))
        else:
            raw = array.cast(pa.binary()).fill_null(b"")
            lengths = np.asarray(pa.compute.binary_length(raw)).astype(np.int64)
            parts.append(_varint_bytes(lengths, present))
            parts.append(raw)
    if not parts:
        return pa.array([head] * n, pa.binary())
    joined: pa.Array = pa.compute.binary_join_element_wise(
        pa.scalar(head, pa.binary()), *parts, pa.scalar(b"", pa.binary())
    )
    return joined
