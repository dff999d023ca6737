"""Records as a caller appends them and as the log stores them: the Arrow schemas, `Record`,
`AppendResult`, and `to_append_batch`, which normalizes what a caller appends."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.errors import InvalidRecordError

HEADERS_TYPE = pa.list_(pa.struct([("key", pa.string()), ("value", pa.binary())]))
#: what a read returns
RECORD_SCHEMA = pa.schema(
    [
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("timestamp", pa.int64(), nullable=False),
        pa.field("key", pa.binary()),
        pa.field("value", pa.binary()),
        pa.field("headers", HEADERS_TYPE),
    ]
)
#: what an append stores (the log gives the offsets)
APPEND_SCHEMA = pa.schema(list(RECORD_SCHEMA)[1:])


@dataclass(frozen=True, slots=True)
class Record:
    """One record to append. Strings are encoded as UTF-8; a None value is a tombstone."""

    value: bytes | str | None
    key: bytes | str | None = None
    timestamp: int | None = None
    headers: Sequence[tuple[str, bytes | str]] = ()


@dataclass(frozen=True)
class AppendResult:
    """Where each appended record landed, in input order."""

    partitions: npt.NDArray[np.int32]
    offsets: npt.NDArray[np.int64]

    def __len__(self) -> int:
        return len(self.offsets)

    def pairs(self) -> list[tuple[int, int]]:
        return list(zip(self.partitions.tolist(), self.offsets.tolist(), strict=True))


def _as_bytes(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bytearray | memoryview):
        return bytes(value)
    raise InvalidRecordError(f"record keys and values are bytes or str, not {type(value).__name__}")


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def to_append_batch(records: Any, now: int | None = None) -> pa.RecordBatch:
    """Normalize what a caller appends into a batch of APPEND_SCHEMA.

    Accepts a pyarrow RecordBatch or Table (a `value` column; optional `key`, `timestamp`,
    `headers`) or an iterable of `Record`s, dicts with those names, or (key, value) pairs.
    Missing timestamps become the current time.
    """
    if isinstance(records, pa.Table):
        batches = records.to_batches()
        if not batches:
            return _from_arrow(pa.RecordBatch.from_pylist([], schema=records.schema), now)
        records = batches[0] if len(batches) == 1 else pa.concat_batches(batches)
    if isinstance(records, pa.RecordBatch):
        return _from_arrow(records, now)
    return _from_python(records, now)


def _from_arrow(batch: pa.RecordBatch, now: int | None) -> pa.RecordBatch:
    names = batch.schema.names
    if "value" not in names:
        raise InvalidRecordError(f"an appended batch needs a 'value' column; it has {names}")
    n = batch.num_rows

    def column(name: str, typ: pa.DataType) -> pa.Array:
        if name not in names:
            return pa.nulls(n, typ)
        col = batch.column(name)
        if col.type == typ:
            return col
        try:
            return col.cast(typ)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise InvalidRecordError(
                f"column {name!r} of type {col.type} cannot be stored as {typ}"
            ) from None

    ts = column("timestamp", pa.int64())
    if ts.null_count:
        ts = pc.fill_null(ts, now if now is not None else now_ms())
    return pa.RecordBatch.from_arrays(
        [
            ts,
            column("key", pa.binary()),
            column("value", pa.binary()),
            column("headers", HEADERS_TYPE),
        ],
        schema=APPEND_SCHEMA,
    )


def _from_python(records: Iterable[Any], now: int | None) -> pa.RecordBatch:
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    stamps: list[int] = []
    headers: list[list[dict[str, Any]] | None] = []
    stamp_now = now if now is not None else now_ms()
    h: Any
    for i, rec in enumerate(records):
        if isinstance(rec, Record):
            k, v, t, h = rec.key, rec.value, rec.timestamp, rec.headers
        elif isinstance(rec, dict):
            k, v, t, h = rec.get("key"), rec.get("value"), rec.get("timestamp"), rec.get("headers")
        elif isinstance(rec, tuple) and len(rec) == 2:
            (k, v), t, h = rec, None, None
        else:
            raise InvalidRecordError(
                f"record {i}: expected a Record, a dict or a (key, value) pair, "
                f"not {type(rec).__name__}"
            )
        keys.append(_as_bytes(k))
        values.append(_as_bytes(v))
        stamps.append(stamp_now if t is None else int(t))
        headers.append([{"key": hk, "value": _as_bytes(hv)} for hk, hv in h] if h else None)
    return pa.RecordBatch.from_arrays(
        [
            pa.array(stamps, pa.int64()),
            pa.array(keys, pa.binary()),
            pa.array(values, pa.binary()),
            # all null (as nearly always): a null array is built in a fraction of the time
            # converting a list of Nones takes, a cost paid per append of the server's groups
            pa.array(headers, HEADERS_TYPE)
            if any(h is not None for h in headers)
            else pa.nulls(len(headers), HEADERS_TYPE),
        ],
        schema=APPEND_SCHEMA,
    )
