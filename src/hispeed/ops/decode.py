"""Records of a source's topic into a frame of typed columns, the input of every query."""

from __future__ import annotations

import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import PROCESSING_TIME, Source
from hispeed.formats.base import Column, Format, FormatContext, get_format
from hispeed.log.base import PolledBatch
from hispeed.ops.timestamps import parse_timestamps
from hispeed.plan.model import PSEUDO_COLUMNS, WINDOW_COLUMNS, field_name
from hispeed.registry import SchemaRegistry
from hispeed.sql.windows import ENDS_IN_KEY

#: the hidden frame column (after the label's dot) that carries each input record's headers
#: to the outputs it causes, as Kafka Streams forwards a record's headers; a name no SQL column
#: can have. A frame has it only when some record of its batch has headers.
HEADERS = "\x00headers"


def headers_field(label: str) -> str:
    """The name of the hidden headers column in a frame of `label`."""
    return field_name(label, HEADERS)


def frame_headers(frame: pa.RecordBatch, label: str) -> pa.Array | None:
    """A frame's hidden headers column, or None when none of its records has headers."""
    i = frame.schema.get_field_index(headers_field(label))
    return frame.column(i) if i >= 0 else None


def source_formats(source: Source, registry: SchemaRegistry | None) -> tuple[Format, Format]:
    """A source's key and value formats, bound to its topic and the engine's schema registry
    (which the schema-registry formats need)."""
    context = FormatContext(registry, source.topic)
    key = get_format(source.key_format, source.key_properties, is_key=True, context=context)
    value = get_format(source.value_format, source.value_properties, context=context)
    return key, value


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class SourceDecoder:
    """Decodes a source's records; rows that cannot be read go to `errors` and are dropped."""

    def __init__(
        self,
        source: Source,
        label: str,
        query_id: str,
        *,
        keep_tombstones: bool = False,
        registry: SchemaRegistry | None = None,
        clock: Callable[[], int] | None = None,
    ) -> None:
        """`registry`: where the schema-registry formats (AVRO, JSON_SR, PROTOBUF) find the
        schemas of the records' ids; `clock`: the processing time in epoch milliseconds
        (the wall clock by default)."""
        self.clock = clock or _wall_clock_ms
        self.source = source
        #: PARTITION BY passes a stream's null values on (their new key from null columns)
        self.keep_tombstones = keep_tombstones
        self.label = label
        self.id = query_id
        self.src_key_format, self.src_value_format = source_formats(source, registry)

    def error(
        self, errors: list[dict[str, Any]], item: PolledBatch, row: int, message: str
    ) -> None:
        offsets = item.batch.column(0)
        errors.append(
            {
                "type": "RECORD_PROCESSING_ERROR",
                "query": self.id,
                "message": message,
                "topic": item.partition.topic,
                "partition": item.partition.partition,
                "offset": offsets[row].as_py() if row < len(offsets) else None,
            }
        )

    def decode(
        self, item: PolledBatch, errors: list[dict[str, Any]]
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """The frame of a polled batch, and a mask of tombstone rows (tables).

        Rows that cannot be decoded go to the processing log and are dropped.
        """
        batch = item.batch
        src = self.source
        n = batch.num_rows
        label = self.label
        keep = np.ones(n, bool)
        key_bytes = batch.column("key")
        window_start = window_end = None
        if src.window is not None:
            key_bytes, window_start, window_end = split_window(
                key_bytes, src.window.kind, src.window.size_ms
            )
            # a record in a windowed source whose key holds no window (a null key, or one
            # too short) is the record's fault: it goes to the processing log, not the query
            assert window_start is not None
            for row in np.nonzero(~_valid(window_start))[0].tolist():
                keep[row] = False
                self.error(
                    errors,
                    item,
                    row,
                    "Error deserializing key: a windowed key needs its key and "
                    f"{16 if src.window.kind == 'SESSION' else 8} bytes of window; "
                    f"got {'a null key' if batch.column('key')[row].as_py() is None else 'fewer'}",
                )
        # a source without key columns ignores its keys' bytes, as ksqlDB's key serde for an
        # empty key schema does (a window aggregation grouped by the window alone writes the
        # window's bytes after an empty key, whatever its key format)
        key_result = self.src_key_format.decode(key_bytes, src.key_columns)
        for row, reason in key_result.errors if src.key_columns else []:
            keep[row] = False
            self.error(errors, item, row, f"Error deserializing key: {reason}")
        if src.kind == "TABLE" and src.key_columns and key_bytes.null_count:
            # a table's row is its key's: a record without one changes nothing
            keep &= np.asarray(key_bytes.is_valid().to_numpy(zero_copy_only=False), bool)
        value_result = self.src_value_format.decode(batch.column("value"), src.value_columns)
        for row, reason in value_result.errors:
            keep[row] = False
            self.error(errors, item, row, f"Error deserializing value: {reason}")
        tombstones = value_result.null_rows.copy()
        if src.kind == "STREAM" and not self.keep_tombstones:
            keep &= ~tombstones  # a stream has no deletes: null values are skipped
        arrays: list[pa.Array] = []
        names: list[str] = []
        for c in src.key_columns:
            arrays.append(key_result.batch.column(c.name))
            names.append(field_name(label, c.name))
        for c in src.value_columns:
            arrays.append(value_result.batch.column(c.name))
            names.append(field_name(label, c.name))
        for c, header_key in src.header_columns:
            arrays.append(_headers(batch.column("headers"), header_key, c))
            names.append(field_name(label, c.name))
        ts = batch.column("timestamp")
        if src.timestamp == PROCESSING_TIME:
            # the processing time: the wall clock as the batch is read, one reading for all
            # of its records (they are processed together)
            ts = pa.array(np.full(n, self.clock(), np.int64))
        elif src.timestamp:
            ts = self._extract_timestamp(
                value_result.batch, key_result.batch, item, errors, keep, tombstones
            )
            if tombstones.any():
                # a tombstone has no value, so no time column: it keeps the record's own time
                # (DELETE FROM's, or the producer's) and still deletes its key
                ts = pa.array(np.where(tombstones, batch.column("timestamp").to_numpy(), ts))
        pseudo = {
            "ROWTIME": ts,
            "ROWPARTITION": pa.array(np.full(n, item.partition.partition, np.int32)),
            "ROWOFFSET": batch.column("offset"),
        }
        for name in PSEUDO_COLUMNS:
            arrays.append(pseudo[name])
            names.append(field_name(label, name))
        if src.window is not None:
            assert window_start is not None and window_end is not None
            arrays += [window_start, window_end]
            names += [field_name(label, n_) for n_ in WINDOW_COLUMNS]
        headers = batch.column("headers")
        if headers.null_count < n:  # a batch without headers costs nothing more
            arrays.append(headers)
            names.append(headers_field(label))
        frame = pa.RecordBatch.from_arrays(arrays, names=names)
        if not keep.all():
            mask = pa.array(keep)
            frame = frame.filter(mask)
            tombstones = tombstones[keep]
        return frame, tombstones

    def _extract_timestamp(
        self,
        values: pa.RecordBatch,
        keys: pa.RecordBatch,
        item: PolledBatch,
        errors: list[dict[str, Any]],
        keep: np.ndarray,
        tombstones: np.ndarray,
    ) -> pa.Array:
        src = self.source
        assert src.timestamp is not None
        col = src.column(src.timestamp)
        assert col is not None
        arr = values.column(col.name) if col.name in values.schema.names else keys.column(col.name)
        if col.type.name == "BIGINT":
            result = arr
        elif col.type.name == "TIMESTAMP":
            result = arr.cast(pa.int64())
        else:
            result = parse_timestamps(arr, src.timestamp_format)
        # no time, or one before 1970, as ksqlDB: the record is dropped
        bad = np.asarray(
            pc.fill_null(pc.less(result, 0), True).to_numpy(zero_copy_only=False), bool
        )
        for row in np.nonzero(bad & keep & ~tombstones)[0]:
            keep[row] = False
            self.error(errors, item, int(row), f"timestamp column {col.name} has no valid value")
        return pc.fill_null(result, 0)


def _valid(array: pa.Array) -> np.ndarray:
    """Which values of `array` are not null, as a numpy mask."""
    return np.asarray(array.is_valid().to_numpy(zero_copy_only=False), bool)


def split_window(
    keys: pa.Array, kind: str, size_ms: int | None
) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Windowed key bytes -> (key bytes, window start, window end), in Kafka Streams' layout:
    a time window's key ends with its start (8 bytes, big-endian), a session's with its end and
    then its start (SessionKeySchema).

    hispeed until December 2026 wrote a session's start before its end. A session never ends
    before it starts, so a key whose first time is below its second is one of those and is read
    with its times swapped back (where both are equal the two layouts are the same bytes): tables
    written by an older hispeed still read right (docs/kafka.md, "Windowed keys")."""
    suffix = 16 if kind in ENDS_IN_KEY else 8
    raw = keys.to_pylist()
    plain: list[bytes | None] = []
    starts: list[int | None] = []
    ends: list[int | None] = []
    for k in raw:
        if k is None or len(k) < suffix:
            plain.append(k)
            starts.append(None)
            ends.append(None)
            continue
        plain.append(k[:-suffix])
        if suffix == 16:
            e, s = struct.unpack(">qq", k[-16:])
            if e < s:  # written by an older hispeed: start, then end
                s, e = e, s
        else:
            (s,) = struct.unpack(">q", k[-8:])
            e = s + (size_ms or 0)
        starts.append(s)
        ends.append(e)
    return (pa.array(plain, pa.binary()), pa.array(starts, pa.int64()), pa.array(ends, pa.int64()))


def _headers(headers: pa.Array, key: str, column: Column) -> pa.Array:
    rows = headers.to_pylist()
    if key == "":
        return pa.array(
            [[{"KEY": h["key"], "VALUE": h["value"]} for h in r] if r else [] for r in rows],
            column.type.to_arrow(),
        )
    out = []
    for r in rows:
        found = None
        for h in r or []:
            if h["key"] == key:
                found = h["value"]
        out.append(found)
    return pa.array(out, pa.binary())
