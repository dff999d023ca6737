"""A persistent query's task: read a batch of its source, compute, commit it all at once.

Every poll ends in one log transaction holding the outputs, the processing-log entries, the
changed aggregation state (a changelog topic) and the input offsets, so a crash at any point
resumes from the last commit and emits nothing twice.
"""

from __future__ import annotations

import logging
import pickle
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Source
from hispeed.errors import HispeedError
from hispeed.formats.base import Format, get_format
from hispeed.functions.registry import EvalContext
from hispeed.log.base import HEADERS_TYPE, PolledBatch, TopicPartition, Transaction
from hispeed.log.murmur2 import partitions_for_keys
from hispeed.plan.model import QueryPlan, field_name
from hispeed.runtime.decode import SourceDecoder, frame_headers

if TYPE_CHECKING:
    from hispeed.runtime.context import QueryContext

log = logging.getLogger(__name__)

PROCESSING_LOG = "hispeed_processing_log"
_STREAM_TIME = b"\x00stream-time"


@dataclass
class Outputs:
    keys: list[Any] = field(default_factory=list)  # pa arrays of key bytes
    values: list[Any] = field(default_factory=list)
    timestamps: list[Any] = field(default_factory=list)
    #: the headers of each part's records (HEADERS_TYPE), None for a part without any
    headers: list[Any] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    changelog: dict[bytes, bytes | None] = field(default_factory=dict)

    def add(
        self,
        keys: pa.Array,
        values: pa.Array,
        timestamps: pa.Array,
        headers: pa.Array | None = None,
    ) -> None:
        if len(keys):
            self.keys.append(keys)
            self.values.append(values)
            self.timestamps.append(timestamps)
            self.headers.append(headers)

    def record_batch(self) -> pa.RecordBatch:
        """The outputs as one batch to append: key, value, timestamp and, if any output has
        them, headers."""
        columns = {
            "key": pa.concat_arrays(self.keys),
            "value": pa.concat_arrays(self.values),
            "timestamp": pa.concat_arrays(self.timestamps),
        }
        if any(h is not None for h in self.headers):
            columns["headers"] = pa.concat_arrays(
                [
                    h if h is not None else pa.nulls(len(k), HEADERS_TYPE)
                    for h, k in zip(self.headers, self.keys, strict=True)
                ]
            )
        return pa.record_batch(columns)


def window_suffix(starts: Sequence[int], ends: Sequence[int] | None) -> list[bytes]:
    """Kafka Streams' windowed key layout: 8-byte big-endian start (and end, for sessions)."""
    if ends is None:
        return [struct.pack(">q", s) for s in starts]
    return [struct.pack(">qq", s, e) for s, e in zip(starts, ends, strict=True)]


def query_group(query_id: str) -> str:
    """The consumer group whose committed offsets are a query's input positions."""
    return f"_hispeed_query_{query_id}"


def changelog_topic(query_id: str) -> str:
    """The compacted topic that holds a query's state."""
    return f"_hispeed_{query_id}_changelog"


class QueryTask:
    """Runs one persistent query's plan against the log."""

    def __init__(
        self,
        context: QueryContext,
        query_id: str,
        plan: QueryPlan,
        sink: Source,
        *,
        tables_from_beginning: bool = False,
        properties: Mapping[str, Any] | None = None,
        unit: int | None = None,
    ) -> None:
        """`tables_from_beginning`: a new query reads the tables a stream joins from their
        first record whatever `auto.offset.reset` says (a push query starting now still
        sees the tables' current rows). `properties`: the statement's own (the engine's
        with the request's overrides), else the engine's. `unit`: this task is one unit of
        a query split across workers (runtime/distributed.py), which reads and commits for
        it; its state is partition `unit` of the changelog."""
        self.context = context
        self.log = context.log
        self.id = query_id
        self.plan = plan
        self.sink = sink
        self.source = plan.source
        self.group = query_group(query_id)
        self.changelog_topic = changelog_topic(query_id)
        reset = context.offset_reset(properties)
        self.join = None
        topics = [self.source.topic]
        if plan.join is not None:
            from hispeed.runtime.join import JoinRuntime

            self.join = JoinRuntime(plan, query_id)
            topics = list(self.join.topics)
        self.unit = unit
        if unit is None:
            self.consumer = self.log.consumer(topics, group=self.group, auto_offset_reset=reset)
        self.decoder = SourceDecoder(
            # a stream's null values pass a projection on as null values, as in ksqlDB
            self.source,
            plan.label,
            query_id,
            keep_tombstones=plan.aggregation is None,
        )
        if unit is None:
            self.consumer.assignment()  # fix the starting positions now, not at the first poll
        if self.join is not None and tables_from_beginning:
            for topic in self.join.looked_up_tables():
                for tp in self.consumer.assignment():
                    if tp.topic == topic:
                        self.consumer.seek(tp, self.log.offsets(topic, tp.partition)[0])
        self.sink_key_format = get_format(sink.key_format, sink.key_properties, is_key=True)
        self.sink_value_format = get_format(sink.value_format, sink.value_properties)
        self._sink_partitions: int | None = None  # known once a windowed sink is written
        self.records_in = 0
        self.records_out = 0
        self.errors = 0
        self.stream_time: dict[int, int] = {}
        self.aggregator = None
        if plan.aggregation is not None:
            from hispeed.runtime.aggregate import Aggregator

            self.aggregator = Aggregator(self)
        if self.stateful:
            if unit is None:
                self.log.create_topic(
                    self.changelog_topic, 1, {"cleanup.policy": "compact"}, exist_ok=True
                )
            self._restore()

    @property
    def stateful(self) -> bool:
        return self.aggregator is not None or self.join is not None

    # -- state ------------------------------------------------------------------------------

    def _restore(self) -> None:
        part = self.unit or 0
        start, end = self.log.offsets(self.changelog_topic, part)
        latest: dict[bytes, bytes | None] = {}
        for batch in self.log.read(self.changelog_topic, part, start) if end > start else []:
            for k, v in zip(
                batch.column("key").to_pylist(), batch.column("value").to_pylist(), strict=True
            ):
                latest[k] = v
        for k, v in latest.items():
            if v is None:
                continue
            if k == _STREAM_TIME:
                self.stream_time = pickle.loads(v)
                continue
            name = pickle.loads(k)
            if name[0] == "J" and self.join is not None:
                self.join.restore(name, pickle.loads(v))
            elif self.aggregator is not None:
                self.aggregator.restore(name, pickle.loads(v))

    # -- running ----------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, max_records: int = 10_000) -> int:
        """Process what the source has (up to max_records); returns the records read."""
        polled = self.consumer.poll(timeout, max_records=max_records)
        if not polled:
            return 0
        firsts: dict[TopicPartition, int] = {}
        for item in polled:
            first = item.batch.column(0)[0].as_py()
            firsts[item.partition] = min(first, firsts.get(item.partition, first))
        try:
            return self._process_polled(polled)
        except Exception:
            self._rewind(firsts)
            raise

    def _rewind(self, firsts: dict[TopicPartition, int]) -> None:
        """After a batch failed part-way (a lookup whose server is away): read it again from
        where it began, with the state as the changelog last committed it, so that nothing
        is skipped and nothing counted twice."""
        for tp, offset in firsts.items():
            self.consumer.seek(tp, offset)
        self.reset_state()

    def reset_state(self) -> None:
        """Forget the state in memory and restore it as the changelog last committed it."""
        self.stream_time = {}
        if self.aggregator is not None:
            from hispeed.runtime.aggregate import Aggregator

            self.aggregator = Aggregator(self)
        if self.join is not None:
            from hispeed.runtime.join import JoinRuntime

            self.join = JoinRuntime(self.plan, self.id)
        if self.aggregator is not None or self.join is not None:
            self._restore()

    def _process_polled(self, polled: list[PolledBatch]) -> int:
        out, positions, n = self.run(polled)
        self.commit(out, positions)
        return n

    def run(self, polled: list[PolledBatch]) -> tuple[Outputs, dict[TopicPartition, int], int]:
        """Compute a poll's batches: the outputs and state changes to commit, the positions
        to commit with them, and how many records were read."""
        out = Outputs()
        positions: dict[TopicPartition, int] = {}
        n = 0
        items = _merge_by_partition(polled)
        if self.join is not None:
            # what streams look up goes first: a stream record sees the table rows that
            # arrived in the same poll
            tables = set(self.join.looked_up_tables())
            items.sort(key=lambda item: item.partition.topic not in tables)
        for item in items:
            n += item.batch.num_rows
            self.process(item, out)
            last = item.batch.column(0)[item.batch.num_rows - 1].as_py()
            positions[item.partition] = last + 1
        if self.join is not None:
            self.join.checkpoint(out.changelog)
        self.records_in += n
        return out, positions, n

    def commit(self, out: Outputs, positions: dict[TopicPartition, int]) -> None:
        txn = self.log.transaction(owner=self.id)
        try:
            self.write(txn, out)
            txn.commit_offsets(self.group, positions)
        except BaseException:
            txn.abort()
            raise
        txn.commit()

    def write(self, txn: Transaction, out: Outputs) -> None:
        """Put a batch's outputs, processing-log entries and state changes in `txn`."""
        if out.keys:
            batch = out.record_batch()
            if self.sink.window is not None:
                self._append_windowed(txn, batch)
            else:
                txn.append(self.sink.topic, batch)
            self.records_out += batch.num_rows
        if out.errors:
            self.errors += len(out.errors)
            txn.append(PROCESSING_LOG, [(None, msgspec.json.encode(e)) for e in out.errors])
        if out.changelog:
            txn.append(self.changelog_topic, list(out.changelog.items()), partition=self.unit or 0)

    def _append_windowed(self, txn: Transaction, batch: pa.RecordBatch) -> None:
        """A windowed key goes to the partition of its plain key (murmur2 of the key without
        the window's bytes), as Kafka Streams' WindowedStreamPartitioner puts ksqlDB's."""
        if self._sink_partitions is None:
            self._sink_partitions = len(self.log.describe_topic(self.sink.topic).partitions)
        if self._sink_partitions == 1:
            txn.append(self.sink.topic, batch, partition=0)
            return
        assert self.sink.window is not None
        suffix = 16 if self.sink.window.kind == "SESSION" else 8
        plain = pc.binary_slice(batch.column("key"), 0, -suffix)
        target = partitions_for_keys(plain, self._sink_partitions)
        for p in np.unique(target).tolist():
            txn.append(self.sink.topic, batch.filter(pa.array(target == p)), partition=p)

    def close(self) -> None:
        if self.unit is None:
            self.consumer.close()

    # -- decoding ---------------------------------------------------------------------------

    def error(self, out: Outputs, item: PolledBatch, row: int, message: str) -> None:
        self.decoder.error(out.errors, item, row, message)

    def decode(self, item: PolledBatch, out: Outputs) -> tuple[pa.RecordBatch, np.ndarray]:
        if self.join is not None:
            return self.join.process(item, out)
        return self.decoder.decode(item, out.errors)

    # -- processing -------------------------------------------------------------------------

    def process(self, item: PolledBatch, out: Outputs) -> None:
        frame, tombstones = self.decode(item, out)
        if frame.num_rows == 0:
            return
        part = item.partition.partition
        if self.aggregator is not None:
            # stream time advances record by record inside the aggregation
            self.aggregator.process(frame, tombstones, part, item, out)
            return
        self._stateless(frame, tombstones, item, out)

    def _stateless(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, item: PolledBatch, out: Outputs
    ) -> None:
        plan = self.plan
        ctx = EvalContext()
        deleted = pa.array(tombstones)
        if plan.where is not None:
            mask = pc.fill_null(plan.where(frame, ctx), False)
            if self.source.kind == "STREAM" and tombstones.any():
                mask = pc.and_(mask, pa.array(~tombstones))  # a null value matches nothing
            if self.source.kind == "TABLE" and self.join is not None:
                # a joined row that does not match deletes its key only if it was sent
                frame, deleted = self.join.filter_table(frame, mask, deleted)
            elif self.source.kind == "TABLE":
                # a table row that stops matching is deleted downstream
                deleted = pc.or_(deleted, pc.invert(mask))
            else:
                frame = frame.filter(mask)
                deleted = deleted.filter(mask)
        if frame.num_rows == 0:
            return
        if plan.table_functions:
            frame, deleted = _explode(plan, frame, deleted, ctx)
            if frame.num_rows == 0:
                self._report(ctx, item, out, frame)
                return
        keys = [c.expr(frame, ctx) for c in plan.key]
        values = [c.expr(frame, ctx) for c in plan.value]
        self._report(ctx, item, out, frame)
        ts = frame.column(field_name(plan.label, "ROWTIME"))
        self.emit(
            keys,
            values,
            ts,
            np.asarray(deleted),
            out,
            window=(
                frame.column(field_name(plan.label, "WINDOWSTART")),
                frame.column(field_name(plan.label, "WINDOWEND")),
            )
            if self.source.window is not None and self.sink.window is not None
            else None,
            headers=frame_headers(frame, plan.label),
        )

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
                        "query": self.id,
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

    def _report(
        self, ctx: EvalContext, item: PolledBatch, out: Outputs, frame: pa.RecordBatch
    ) -> None:
        offsets = frame.column(field_name(self.plan.label, "ROWOFFSET"))
        for row, message in ctx.errors:
            out.errors.append(
                {
                    "type": "RECORD_PROCESSING_ERROR",
                    "query": self.id,
                    "message": message,
                    "topic": item.partition.topic,
                    "partition": item.partition.partition,
                    "offset": offsets[row].as_py() if row < len(offsets) else None,
                }
            )

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
            # at all, in every format, as in ksqlDB; PARTITION BY makes its key of the columns
            empty = np.logical_and.reduce(
                [np.asarray(k.is_null().to_numpy(zero_copy_only=False), bool) for k in keys]
            ) & (not plan.repartition)
            key_bytes = self.sink_key_format.encode(
                key_batch, key_cols, null_rows=empty if empty.any() else None
            )
        else:
            key_bytes = pa.nulls(n, pa.binary())
        if window is not None:
            starts = window[0].to_pylist()
            ends = (
                window[1].to_pylist()
                if self.sink.window and self.sink.window.kind == "SESSION"
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
        value_bytes = self.sink_value_format.encode(
            value_batch, value_cols, null_rows=deleted if deleted.any() else None
        )
        out.add(key_bytes, value_bytes, pc.cast(timestamps, pa.int64()), headers)


def _record_times(arr: pa.Array, type_name: str, pattern: str | None) -> pa.Array:
    """Epoch ms from a BIGINT, TIMESTAMP or formatted STRING column (NULL where unreadable)."""
    if type_name == "BIGINT":
        return arr
    if type_name == "TIMESTAMP":
        return arr.cast(pa.int64())
    from hispeed.runtime.timestamps import parse_timestamps

    return parse_timestamps(arr, pattern)


def _explode(
    plan: QueryPlan, frame: pa.RecordBatch, deleted: pa.Array, ctx: EvalContext
) -> tuple[pa.RecordBatch, pa.Array]:
    """Each row as many times as its table functions give values (zipped: the longest wins,
    the others padded with NULL), with each function's values as a column `$tN`."""
    n = frame.num_rows
    outputs = []
    counts = np.zeros(n, np.int64)
    for call in plan.table_functions:
        args = [a(frame, ctx) for a in call.args]
        values, parents = call.function.evaluate(ctx, args, list(call.arg_types), call.type)
        per_row = np.bincount(parents, minlength=n).astype(np.int64)
        outputs.append((values, per_row))
        counts = np.maximum(counts, per_row)
    rows = np.repeat(np.arange(n), counts)
    # the position of each output row within its input row's run
    starts = np.cumsum(counts) - counts
    position = np.arange(len(rows)) - np.repeat(starts, counts)
    taken = pa.array(rows)
    arrays = [c.take(taken) for c in frame.columns]
    names = list(frame.schema.names)
    for call, (values, per_row) in zip(plan.table_functions, outputs, strict=True):
        first = np.cumsum(per_row) - per_row  # where each row's values start
        have = position < per_row[rows]
        index = pa.array(np.where(have, first[rows] + position, 0), mask=~have)
        arrays.append(values.take(index) if len(values) else pa.nulls(len(rows), values.type))
        names.append(call.field)
    return pa.RecordBatch.from_arrays(arrays, names=names), deleted.take(taken)


def _merge_by_partition(polled: list[PolledBatch]) -> list[PolledBatch]:
    """One batch per partition (in order), so a poll's records are processed together."""
    parts: dict[TopicPartition, list[pa.RecordBatch]] = {}
    for item in polled:
        parts.setdefault(item.partition, []).append(item.batch)
    return [
        PolledBatch(tp, batches[0] if len(batches) == 1 else pa.concat_batches(batches))
        for tp, batches in parts.items()
    ]


def now_ms() -> int:
    return time.time_ns() // 1_000_000


__all__ = ["PROCESSING_LOG", "Format", "HispeedError", "Outputs", "QueryTask"]
