"""GROUP BY other columns than a stream's key, on a shared log: repartition, then aggregate.

Kafka Streams (and so ksqlDB) splits such a query in two sub-topologies joined by an internal
topic, `..._query_<ID>-Aggregate-GroupBy-repartition`, with as many partitions as the source:
the first reads the source by partition and writes each record to the partition of its new
key; the second aggregates the repartition topic partition by partition, so every group's
records meet in one place. hispeed does the same (runtime/distributed.py runs both stages,
one transaction per poll):

- `GroupByRouter` is the first stage. It decodes a source batch, drops what WHERE drops and
  the rows whose grouping key is NULL (to the processing log, as ksqlDB does), and routes each
  remaining record to a partition by murmur2 of its grouping values. The record goes as it
  came: its key, value, timestamp (the event time windows need) and headers; its key is
  prefixed with where it came from, so the second stage still sees ROWPARTITION and ROWOFFSET
  as the source's.
- `RepartitionedDecoder` is the second stage's decoder: it takes that prefix off, decodes the
  record as the source's, and puts the source's partition and offset back.

Only streams are repartitioned: a table aggregation needs the old row of a key taken back
where it was counted (Kafka Streams sends old and new values through its repartition topic),
and stays in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext
from hispeed.log._murmur2 import partitions_for_keys
from hispeed.log.base import PolledBatch
from hispeed.plan.planner import QueryPlan, field_name
from hispeed.runtime.decode import SourceDecoder

#: what the first stage puts before a record's key: 1 if it had a key (else 0), the source
#: partition (4 bytes) and offset (8 bytes), big-endian
_ORIGIN = np.dtype([("has_key", "u1"), ("partition", ">i4"), ("offset", ">i8")])
_PREFIX = _ORIGIN.itemsize


def repartition_topic(query_id: str) -> str:
    """The internal topic between a query's two stages (ksqlDB's name for it)."""
    return f"_hispeed_{query_id}_Aggregate-GroupBy-repartition"


def repartitions(plan: QueryPlan) -> bool:
    """Whether a query aggregates a stream by other columns than its key, and so needs its
    records repartitioned by the grouping key before they can be aggregated by partition."""
    return (
        plan.aggregation is not None
        and plan.join is None
        and plan.source.kind == "STREAM"
        and plan.source.window is None
    )


@dataclass
class Routed:
    """A source batch's records, each with the repartition topic's partition it goes to."""

    batch: pa.RecordBatch  # key (prefixed with the origin), value, timestamp, headers
    partitions: np.ndarray


class GroupByRouter:
    """The first stage: a source batch's records routed to the partitions of their groups."""

    def __init__(self, plan: QueryPlan, query_id: str, partitions: int) -> None:
        assert plan.aggregation is not None
        self.plan = plan
        self.id = query_id
        self.partitions = partitions
        # what the aggregation would drop, dropped here: null values, undecodable records
        self.decoder = SourceDecoder(plan.source, plan.label, query_id, keep_tombstones=False)

    def route(self, item: PolledBatch, errors: list[dict[str, Any]]) -> Routed | None:
        """The records of `item` to write to the repartition topic (None: none), with what
        could not be computed added to `errors` (processing-log entries)."""
        plan = self.plan
        assert plan.aggregation is not None
        frame, _ = self.decoder.decode(item, errors)
        ctx = EvalContext()
        if frame.num_rows and plan.where is not None:
            where = pc.fill_null(plan.where(frame, ctx), False)
            self._report(ctx, item, frame, errors)
            frame = frame.filter(where)
            ctx = EvalContext()
        if frame.num_rows == 0:
            return None
        groups = [g(frame, ctx) for g in plan.aggregation.group_exprs]
        failed = {row for row, _ in ctx.errors}
        self._report(ctx, item, frame, errors)
        keep = np.ones(frame.num_rows, bool)
        offsets = frame.column(field_name(plan.label, "ROWOFFSET"))
        for index, g in enumerate(groups):
            if not g.null_count:
                continue
            null = np.asarray(g.is_null().to_numpy(zero_copy_only=False), bool)
            for row in np.flatnonzero(null & keep).tolist():
                if row not in failed:  # an error computing it is reported already
                    errors.append(
                        self._entry(
                            item,
                            offsets[row].as_py(),
                            f"Group-by column with index {index} resolved to null. "
                            "The source row will be excluded from the table.",
                        )
                    )
            keep &= ~null
        if not keep.all():
            mask = pa.array(keep)
            frame = frame.filter(mask)
            groups = [g.filter(mask) for g in groups]
            offsets = offsets.filter(mask)
        if frame.num_rows == 0:
            return None
        batch = item.batch
        rows = np.searchsorted(
            np.asarray(batch.column("offset").to_numpy(zero_copy_only=False)),
            np.asarray(offsets.to_numpy(zero_copy_only=False)),
        )
        taken = batch.take(pa.array(rows))
        keys = taken.column("key")
        origin = np.empty(len(rows), _ORIGIN)
        origin["has_key"] = np.asarray(keys.is_valid().to_numpy(zero_copy_only=False), np.uint8)
        origin["partition"] = item.partition.partition
        origin["offset"] = np.asarray(offsets.to_numpy(zero_copy_only=False), np.int64)
        prefix = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(_PREFIX), len(rows), [None, pa.py_buffer(origin.tobytes())]
        ).cast(pa.binary())
        key = pc.binary_join_element_wise(prefix, keys.fill_null(b""), b"")
        out = pa.record_batch(
            {
                "key": key,
                "value": taken.column("value"),
                "timestamp": taken.column("timestamp"),
                "headers": taken.column("headers"),
            }
        )
        return Routed(out, partitions_for_keys(_routing_key(groups), self.partitions))

    def _report(
        self,
        ctx: EvalContext,
        item: PolledBatch,
        frame: pa.RecordBatch,
        errors: list[dict[str, Any]],
    ) -> None:
        offsets = frame.column(field_name(self.plan.label, "ROWOFFSET"))
        for row, message in ctx.errors:
            errors.append(self._entry(item, offsets[row].as_py(), message))

    def _entry(self, item: PolledBatch, offset: int | None, message: str) -> dict[str, Any]:
        return {
            "type": "RECORD_PROCESSING_ERROR",
            "query": self.id,
            "message": message,
            "topic": item.partition.topic,
            "partition": item.partition.partition,
            "offset": offset,
        }


def _routing_key(groups: list[pa.Array]) -> pa.Array:
    """Bytes that are the same for every record of a group, in any worker process (two groups
    may share them: they only decide a partition)."""
    parts = []
    for g in groups:
        t = g.type
        if pa.types.is_binary(t) or pa.types.is_large_binary(t):
            parts.append(g.cast(pa.binary()))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            parts.append(g.cast(pa.string()).cast(pa.binary()))
        elif pa.types.is_nested(t):
            parts.append(pa.array([msgspec.json.encode(v) for v in g.to_pylist()], pa.binary()))
        else:
            parts.append(g.cast(pa.string()).cast(pa.binary()))
    if len(parts) == 1:
        return parts[0]
    return pc.binary_join_element_wise(*parts, b"\x00")


class RepartitionedDecoder(SourceDecoder):
    """Decodes the repartition topic's records as the source's, with the source's
    ROWPARTITION and ROWOFFSET (the first stage put them before each key)."""

    def decode(
        self, item: PolledBatch, errors: list[dict[str, Any]]
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        batch = item.batch
        n = batch.num_rows
        keys = batch.column("key")
        prefix = pc.binary_slice(keys, 0, _PREFIX).cast(pa.binary(_PREFIX))
        origin = np.frombuffer(
            prefix.buffers()[1], _ORIGIN, count=n, offset=prefix.offset * _PREFIX
        )
        has_key = origin["has_key"].astype(bool)
        longest = pc.max(pc.binary_length(keys)).as_py() or _PREFIX
        plain = pc.binary_slice(keys, _PREFIX, longest)
        if not has_key.all():
            plain = pc.if_else(pa.array(has_key), plain, pa.nulls(n, pa.binary()))
        index = batch.schema.get_field_index("key")
        frame, tombstones = super().decode(
            PolledBatch(item.partition, batch.set_column(index, "key", plain)), errors
        )
        # rows the decoder kept, by their offsets in the repartition topic
        label = self.label
        at = frame.schema.get_field_index(field_name(label, "ROWOFFSET"))
        rows = np.searchsorted(
            np.asarray(batch.column("offset").to_numpy(zero_copy_only=False)),
            np.asarray(frame.column(at).to_numpy(zero_copy_only=False)),
        )
        frame = frame.set_column(
            at,
            field_name(label, "ROWOFFSET"),
            pa.array(origin["offset"][rows].astype(np.int64)),
        )
        at = frame.schema.get_field_index(field_name(label, "ROWPARTITION"))
        frame = frame.set_column(
            at,
            field_name(label, "ROWPARTITION"),
            pa.array(origin["partition"][rows].astype(np.int32)),
        )
        return frame, tombstones
