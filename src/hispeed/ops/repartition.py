"""GROUP BY other columns than a stream's key, on a shared log: repartition, then aggregate.

Kafka Streams (and so ksqlDB) splits such a query in two sub-topologies joined by an internal
topic, `..._query_<ID>-Aggregate-GroupBy-repartition`, with as many partitions as the source:
the first reads the source by partition and writes each record to the partition of its new
key; the second aggregates the repartition topic partition by partition, so every group's
records meet in one place. hispeed does the same (runtime/distributed.py runs both stages,
one transaction per poll):

- `GroupByRouter` is the first stage. It decodes a source batch, drops what WHERE drops and
  the rows whose grouping key is NULL (to the processing log, as ksqlDB does), and routes each
  remaining record to a partition by murmur2 of its grouping values (as JSON). The record goes
  as it came: its value, timestamp (the event time windows need) and headers; its key carries
  where it came from (so the second stage still sees ROWPARTITION and ROWOFFSET as the
  source's), the source key, and the grouping values, computed once (a grouping expression
  need not give the same value twice).
- `RepartitionedDecoder` is the second stage's decoder: it decodes the record as the source's,
  with the source's partition and offset and the grouping values as hidden columns, which
  the second stage's plan (`aggregating_plan`) groups by.

Only streams are repartitioned: a table aggregation needs the old row of a key taken back
where it was counted (Kafka Streams sends old and new values through its repartition topic),
and stays in one place.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.expr.scope import Compiled
from hispeed.formats.base import Column, Format, get_format
from hispeed.functions.registry import EvalContext
from hispeed.log.base import PolledBatch
from hispeed.log.murmur2 import partitions_for_keys
from hispeed.ops.decode import SourceDecoder
from hispeed.plan.model import QueryPlan, field_name
from hispeed.registry import SchemaRegistry

#: how a repartitioned record's key begins: 1 if the source record had a key (else 0), its
#: partition, its offset and its key's length, big-endian; the source key and the grouping
#: values (JSON) follow
_ORIGIN = np.dtype(
    [("has_key", "u1"), ("partition", ">i4"), ("offset", ">i8"), ("key_length", ">i4")]
)
_PREFIX = _ORIGIN.itemsize
#: the grouping values' format in a repartitioned record
_GROUPS: Format = get_format("JSON")


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


def _group_columns(plan: QueryPlan) -> list[Column]:
    assert plan.aggregation is not None
    return [Column(f"G{i}", c.type) for i, c in enumerate(plan.aggregation.group_columns)]


def _carried(label: str, index: int) -> str:
    """The hidden frame column of the `index`th grouping value the first stage computed."""
    return field_name(label, f"\x00group{index}")


def aggregating_plan(plan: QueryPlan) -> QueryPlan:
    """The second stage's plan: the query's, grouping by the values the first stage computed
    (a frame of `RepartitionedDecoder`'s) instead of computing them again."""
    agg = plan.aggregation
    assert agg is not None

    def reader(index: int) -> Any:
        name = _carried(plan.label, index)
        return lambda frame, ctx: frame.column(name)

    exprs = [Compiled(g.type, reader(i)) for i, g in enumerate(agg.group_exprs)]
    return dataclasses.replace(plan, aggregation=dataclasses.replace(agg, group_exprs=exprs))


@dataclass
class Routed:
    """A source batch's records, each with the repartition topic's partition it goes to."""

    batch: pa.RecordBatch  # key (prefixed with the origin), value, timestamp, headers
    partitions: np.ndarray


class GroupByRouter:
    """The first stage: a source batch's records routed to the partitions of their groups."""

    def __init__(
        self,
        plan: QueryPlan,
        query_id: str,
        partitions: int,
        registry: SchemaRegistry | None = None,
    ) -> None:
        assert plan.aggregation is not None
        self.plan = plan
        self.id = query_id
        self.partitions = partitions
        self.group_columns = _group_columns(plan)
        # what the aggregation would drop, dropped here: null values, undecodable records
        self.decoder = SourceDecoder(
            plan.source, plan.label, query_id, keep_tombstones=False, registry=registry
        )

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
        values = _GROUPS.encode(
            pa.RecordBatch.from_arrays(groups, names=[c.name for c in self.group_columns]),
            self.group_columns,
        )
        origin = np.empty(len(rows), _ORIGIN)
        origin["has_key"] = np.asarray(keys.is_valid().to_numpy(zero_copy_only=False), np.uint8)
        origin["partition"] = item.partition.partition
        origin["offset"] = np.asarray(offsets.to_numpy(zero_copy_only=False), np.int64)
        keys = keys.fill_null(b"")
        origin["key_length"] = np.asarray(
            pc.binary_length(keys).to_numpy(zero_copy_only=False), np.int32
        )
        prefix = pa.FixedSizeBinaryArray.from_buffers(
            pa.binary(_PREFIX), len(rows), [None, pa.py_buffer(origin.tobytes())]
        ).cast(pa.binary())
        key = pc.binary_join_element_wise(prefix, keys, values, b"")
        out = pa.record_batch(
            {
                "key": key,
                "value": taken.column("value"),
                "timestamp": taken.column("timestamp"),
                "headers": taken.column("headers"),
            }
        )
        return Routed(out, partitions_for_keys(values, self.partitions))

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


def _slices(data: pa.Array, starts: np.ndarray, stops: np.ndarray) -> pa.Array:
    """Bytes `starts[i]` to `stops[i]` of each value of a binary array without nulls."""
    n = len(data)
    offsets = np.frombuffer(data.buffers()[1], np.int32, count=n + 1, offset=data.offset * 4)
    body = data.buffers()[2]
    raw = np.frombuffer(body, np.uint8) if body is not None else np.zeros(0, np.uint8)
    lengths = (stops - starts).astype(np.int64)
    ends = np.cumsum(lengths)
    begins = ends - lengths
    # the index in `raw` of every byte taken
    taken = np.repeat(offsets[:-1].astype(np.int64) + starts - begins, lengths) + np.arange(
        int(ends[-1]) if n else 0
    )
    new_offsets = np.concatenate([[0], ends]).astype(np.int32)
    return pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(new_offsets), pa.py_buffer(raw[taken].tobytes())]
    )


class RepartitionedDecoder(SourceDecoder):
    """Decodes the repartition topic's records as the source's, with the source's
    ROWPARTITION and ROWOFFSET, and the grouping values the first stage computed."""

    def __init__(
        self, plan: QueryPlan, query_id: str, registry: SchemaRegistry | None = None
    ) -> None:
        super().__init__(
            plan.source, plan.label, query_id, keep_tombstones=False, registry=registry
        )
        self.group_columns = _group_columns(plan)

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
        ends = _PREFIX + origin["key_length"].astype(np.int64)
        lengths = np.asarray(pc.binary_length(keys).to_numpy(zero_copy_only=False), np.int64)
        plain = _slices(keys, np.full(n, _PREFIX, np.int64), ends)
        groups = _GROUPS.decode(_slices(keys, ends, lengths), self.group_columns).batch
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
        taken = pa.array(rows)
        for i, column in enumerate(groups.columns):
            frame = frame.append_column(_carried(label, i), column.take(taken))
        return frame, tombstones
