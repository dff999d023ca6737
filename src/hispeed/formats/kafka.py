"""The KAFKA format: one column in Kafka's own primitive serializations.

INTEGER is 4 bytes big-endian two's complement, BIGINT 8 bytes, DOUBLE an 8-byte big-endian
IEEE-754 double, STRING UTF-8 text and BYTES the raw bytes (Kafka's Integer/Long/Double/
String/ByteBuffer serdes). The value is never wrapped. Numbers decode with numpy over the
batch's byte buffer; a record of the wrong length is an error for its row only.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.formats.base import (
    PLAIN_TYPES,
    Column,
    DecodeResult,
    Format,
    apply_null_rows,
    binary_chunk,
    columns_of,
    columns_text,
    make_batch,
    null_batch,
    null_mask,
    register_format,
)

#: SQL type -> (byte width, big-endian numpy dtype, Kafka deserializer's name for messages)
_FIXED: dict[str, tuple[int, str, str]] = {
    "INTEGER": (4, ">i4", "IntegerDeserializer"),
    "BIGINT": (8, ">i8", "LongDeserializer"),
    "DOUBLE": (8, ">f8", "Deserializer"),
}
_SUPPORTED = (*_FIXED, "STRING", "BYTES")
#: SQL type -> the struct code of one value in Kafka's serialization (for `row_encoder`)
_PACK = {"INTEGER": ">i", "BIGINT": ">q", "DOUBLE": ">d"}


@register_format
class KafkaFormat(Format):
    """A single INTEGER, BIGINT, DOUBLE, STRING or BYTES column, as Kafka's serdes write it."""

    name = "KAFKA"
    supports_unwrap = True

    def decode(self, data: pa.Array, columns: Sequence[Column]) -> DecodeResult:
        data = binary_chunk(data)
        n = len(data)
        nulls = null_mask(data)
        if not columns:
            return DecodeResult(null_batch((), n), [], nulls)
        column = columns[0]
        kind = column.type.name
        errors: list[tuple[int, str]] = []
        if kind in _FIXED:
            arr, errors = _decode_fixed(data, nulls, *_FIXED[kind])
        elif kind == "STRING":
            arr, errors = _decode_text(data)
        elif kind == "BYTES":
            arr = data
        else:
            self.check_columns(columns)
            raise AssertionError(kind)
        return DecodeResult(make_batch(columns, [arr], n), errors, nulls)

    def encode(
        self,
        batch: pa.RecordBatch | pa.Table,
        columns: Sequence[Column],
        *,
        null_rows: npt.NDArray[np.bool_] | None = None,
    ) -> pa.Array:
        if not columns:
            return pa.nulls(batch.num_rows, type=pa.binary())
        self.check_columns(columns)
        arr = columns_of(batch, columns)[0]
        kind = columns[0].type.name
        if kind in _FIXED:
            width, dtype, _ = _FIXED[kind]
            values = arr.fill_null(0).to_numpy(zero_copy_only=False).astype(dtype)
            n = len(arr)
            offsets = np.arange(0, (n + 1) * width, width, dtype=np.int32)
            out = pa.Array.from_buffers(
                pa.binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(values.tobytes())]
            )
            if arr.null_count:
                out = pc.if_else(arr.is_null(), pa.nulls(n, pa.binary()), out)
        else:
            out = arr.cast(pa.binary())
        return apply_null_rows(out, null_rows)

    def row_encoder(
        self, columns: Sequence[Column]
    ) -> Callable[[Sequence[Any]], bytes | None] | None:
        if not columns:
            return lambda row: None
        kind = columns[0].type.name
        if len(columns) != 1 or kind not in PLAIN_TYPES or kind == "BOOLEAN":
            return None
        pack = str.encode if kind == "STRING" else struct.Struct(_PACK[kind]).pack

        def one(row: Sequence[Any]) -> bytes | None:
            v = row[0]
            return None if v is None else pack(v)

        return one

    def _unsupported(self, columns: Sequence[Column], *, is_key: bool) -> str | None:
        if len(columns) > 1:
            return (
                "The 'KAFKA' format only supports a single field. "
                f"Got: {columns_text(columns, is_key=is_key)}"
            )
        for c in columns:
            if c.type.name not in _SUPPORTED:
                return f"The 'KAFKA' format does not support type '{c.type.name}'"
        return None


def _offsets(data: pa.BinaryArray) -> npt.NDArray[np.int32]:
    buf = data.buffers()[1]
    assert buf is not None
    return np.frombuffer(buf, dtype=np.int32)[data.offset : data.offset + len(data) + 1]


def _decode_fixed(
    data: pa.BinaryArray, nulls: npt.NDArray[np.bool_], width: int, dtype: str, serde: str
) -> tuple[pa.Array, list[tuple[int, str]]]:
    """Fixed-width big-endian numbers: gather every good record's bytes in one numpy step."""
    n = len(data)
    native = np.dtype(dtype).newbyteorder("=")
    offsets = _offsets(data)
    good = (np.diff(offsets) == width) & ~nulls
    out = np.zeros(n, dtype=native)
    if good.any():
        raw = data.buffers()[2]
        assert raw is not None
        buf = np.frombuffer(raw, dtype=np.uint8)
        starts = offsets[:-1][good].astype(np.int64)
        gathered = buf[starts[:, None] + np.arange(width)]
        out[good] = np.ascontiguousarray(gathered).view(dtype).reshape(-1)
    bad = np.flatnonzero(~good & ~nulls)
    errors = [(int(i), f"Size of data received by {serde} is not {width}") for i in bad]
    arrow_type = pa.from_numpy_dtype(native)
    return pa.array(out, type=arrow_type, mask=~good), errors


def _decode_text(data: pa.BinaryArray) -> tuple[pa.Array, list[tuple[int, str]]]:
    """UTF-8 text; malformed bytes become U+FFFD, as Java's decoder does (never an error)."""
    try:
        return data.cast(pa.string()), []
    except pa.ArrowInvalid:
        texts = [None if b is None else b.decode("utf-8", "replace") for b in data.to_pylist()]
        return pa.array(texts, type=pa.string()), []
