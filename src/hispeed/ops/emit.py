"""The emit operator: key and value columns encoded into the sink's records.

The last operator of every persistent query: the select list's key and value columns become
the sink's key and value bytes in its formats, stamped with the row time (or the sink's
`timestamp` column), windowed keys laid out as Kafka Streams lays them out, deletions as null
values. EMIT CHANGES and EMIT FINAL differ before this (the aggregation decides which changes
it hands on); what reaches the sink is encoded here.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Source
from hispeed.formats.base import FormatContext, get_format
from hispeed.ops.base import Outputs
from hispeed.ops.timestamps import parse_timestamps
from hispeed.plan.model import QueryPlan
from hispeed.registry import SchemaRegistry
from hispeed.sql.windows import ENDS_IN_KEY


def window_suffix(starts: Sequence[int], ends: Sequence[int] | None) -> list[bytes]:
    """Kafka Streams' windowed key layout, as its TimeWindowedSerializer and
    SessionWindowedSerializer write it: after the key, a time window's start as an 8-byte
    big-endian integer; a session's END, then its start (SessionKeySchema.toBinary)."""
    if ends is None:
        return [struct.pack(">q", s) for s in starts]
    return [struct.pack(">qq", e, s) for s, e in zip(starts, ends, strict=True)]


class SinkEncoder:
    """Encodes a query's output columns into records of its sink."""

    def __init__(
        self,
        query_id: str,
        plan: QueryPlan,
        sink: Source,
        registry: SchemaRegistry | None = None,
    ) -> None:
        """`registry`: where the schema-registry formats register the sink's schemas."""
        self.query_id = query_id
        self.plan = plan
        self.sink = sink
        context = FormatContext(registry, sink.topic)
        self.key_format = get_format(
            sink.key_format, sink.key_properties, is_key=True, context=context
        )
        self.value_format = get_format(sink.value_format, sink.value_properties, context=context)

    def emit(
        self,
        keys: list[pa.Array],
        values: list[pa.Array],
        timestamps: pa.Array,
        deleted: np.ndarray,
        out: Outputs,
        window: tuple[pa.Array, pa.Array] | None = None,
        headers: pa.Array | None = None,
    ) -> None:
        """Encode key and value columns into records of the sink. `headers`: each record's
        headers, those of the input record that caused it (None: none has any)."""
        plan = self.plan
        key_cols = plan.key_columns
        value_cols = plan.value_columns
        if self.sink.timestamp is not None:
            # the sink's `timestamp` column stamps its records
            keys, values, timestamps, deleted, window, headers = self._sink_times(
                keys, values, timestamps, deleted, window, out, headers
            )
        n = len(timestamps)
        key_batch = (
            pa.RecordBatch.from_arrays(keys, names=[c.name for c in key_cols]) if key_cols else None
        )
        if key_batch is not None:
            # a key passed on whose columns are all NULL (a record without a key) is no key
            # at all, in every format, as in ksqlDB; PARTITION BY makes its key of the columns,
            # and so does a ranking's PARTITION BY: SQL ranks the NULL partition as any other
            made = plan.repartition or plan.ranking is not None
            empty = np.logical_and.reduce(
                [np.asarray(k.is_null().to_numpy(zero_copy_only=False), bool) for k in keys]
            ) & (not made)
            key_bytes = self.key_format.encode(
                key_batch, key_cols, null_rows=empty if empty.any() else None
            )
            if plan.ranking is not None and key_bytes.null_count and self.sink.key_format == "JSON":
                # a Top-N keyed by one PARTITION BY column (rn = 1, the rank left out) writes
                # the NULL partition's key as JSON's null, which reads back as the NULL key
                # column, where no key at all would be no row of the table (the KAFKA format
                # has no null to write)
                key_bytes = key_bytes.fill_null(b"null")
        else:
            key_bytes = pa.nulls(n, pa.binary())
        if window is not None:
            starts = window[0].to_pylist()
            ends = (
                window[1].to_pylist()
                if self.sink.window and self.sink.window.kind in ENDS_IN_KEY
                else None
            )
            suffix = window_suffix(starts, ends)
            key_bytes = pa.array(
                [(k or b"") + s for k, s in zip(key_bytes.to_pylist(), suffix, strict=True)],
                pa.binary(),
            )
        if value_cols:
            value_batch = pa.RecordBatch.from_arrays(values, names=[c.name for c in value_cols])
        else:
            value_batch = pa.RecordBatch.from_pydict({})
            value_batch = pa.RecordBatch.from_struct_array(pa.array([{}] * n, type=pa.struct([])))
        value_bytes = self.value_format.encode(
            value_batch, value_cols, null_rows=deleted if deleted.any() else None
        )
        out.add(key_bytes, value_bytes, pc.cast(timestamps, pa.int64()), headers)

    def emit_windowed(
        self,
        keys: list[pa.Array],
        values: list[pa.Array],
        stamps: pa.Array,
        deleted: np.ndarray,
        out: Outputs,
        window: tuple[pa.Array, pa.Array] | None,
        headers: pa.Array | None = None,
    ) -> None:
        """`emit`, with the window appended to the keys by Arrow instead of per row."""
        before = len(out.keys)
        self.emit(keys, values, stamps, deleted, out, headers=headers)
        if window is None or len(out.keys) == before:
            return
        sink_window = self.sink.window
        ends = window[1] if sink_window is not None and sink_window.kind in ENDS_IN_KEY else None
        out.keys[-1] = with_window_suffix(out.keys[-1], window[0], ends)

    def _sink_times(
        self,
        keys: list[pa.Array],
        values: list[pa.Array],
        timestamps: pa.Array,
        deleted: np.ndarray,
        window: tuple[pa.Array, pa.Array] | None,
        out: Outputs,
        headers: pa.Array | None = None,
    ) -> tuple[
        list[pa.Array],
        list[pa.Array],
        pa.Array,
        np.ndarray,
        tuple[pa.Array, pa.Array] | None,
        pa.Array | None,
    ]:
        """Timestamps from the sink's `timestamp` column; a row without a valid one (NULL or
        before 1970) is not written and goes to the processing log."""
        columns = [*self.plan.key_columns, *self.plan.value_columns]
        at = next(
            (i for i, c in enumerate(columns) if c.name == self.sink.timestamp),
            None,
        )
        if at is None:
            return keys, values, timestamps, deleted, window, headers
        column = columns[at]
        arr = (keys + values)[at]
        stamps = _record_times(arr, column.type.name, self.sink.timestamp_format)
        good = pc.fill_null(pc.greater_equal(stamps, 0), False)
        good = pc.or_(good, pa.array(deleted))  # a deletion keeps its own time
        stamps = pc.if_else(pa.array(deleted), pc.cast(timestamps, pa.int64()), stamps)
        if not pc.all(good).as_py():
            for _ in range(len(good) - pc.sum(good).as_py()):
                out.errors.append(
                    {
                        "type": "RECORD_PROCESSING_ERROR",
                        "query": self.query_id,
                        "message": f"timestamp column {column.name} has no valid value",
                    }
                )
            keys = [k.filter(good) for k in keys]
            values = [v.filter(good) for v in values]
            stamps = stamps.filter(good)
            keep = np.asarray(good.to_numpy(zero_copy_only=False), bool)
            deleted = deleted[keep]
            if window is not None:
                window = (window[0].filter(good), window[1].filter(good))
            if headers is not None:
                headers = headers.filter(good)
        return keys, values, stamps, deleted, window, headers


def _record_times(arr: pa.Array, type_name: str, pattern: str | None) -> pa.Array:
    """Epoch ms from a BIGINT, TIMESTAMP or formatted STRING column (NULL where unreadable)."""
    if type_name == "BIGINT":
        return arr
    if type_name == "TIMESTAMP":
        return arr.cast(pa.int64())
    return parse_timestamps(arr, pattern)


def with_window_suffix(keys: pa.Array, starts: pa.Array, ends: pa.Array | None) -> pa.Array:
    """Kafka Streams' windowed key layout: each key, then its window's start as an 8-byte
    big-endian integer (a session's end, then its start), as `window_suffix` builds it."""
    parts = [starts] if ends is None else [ends, starts]
    n = len(keys)
    columns = [np.asarray(p.to_numpy(zero_copy_only=False), np.int64) for p in parts]
    raw = np.stack(columns, axis=1).astype(">i8")
    width = 8 * len(parts)
    suffix = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(width), n, [None, pa.py_buffer(raw.tobytes())]
    ).cast(pa.binary())
    joined = pc.binary_join_element_wise(keys.fill_null(b""), suffix, b"")
    return joined.cast(pa.binary())
