"""A persistent query's task: read a batch of its source, compute, commit it all at once.

Every poll ends in one log transaction holding the outputs, the processing-log entries, the
changed aggregation state (a changelog topic) and the input offsets, so a crash at any point
resumes from the last commit and emits nothing twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Source
from hispeed.gc_pause import gc_paused
from hispeed.log.base import PolledBatch, TopicPartition, Transaction
from hispeed.log.murmur2 import partitions_for_keys
from hispeed.ops.aggregate import Aggregator
from hispeed.ops.base import OperatorContext, Outputs, positive_setting
from hispeed.ops.decode import SourceDecoder
from hispeed.ops.emit import SinkEncoder
from hispeed.ops.join import JoinRuntime
from hispeed.ops.join_nonkey import max_rows_limit
from hispeed.ops.lag import KINDS as LAG_KINDS
from hispeed.ops.lag import Lag
from hispeed.ops.over_table import ranking_operator
from hispeed.ops.project import Project
from hispeed.ops.session_rows import KIND as SESSION_KIND
from hispeed.ops.session_rows import SEQUENCE as SESSION_SEQUENCE
from hispeed.ops.session_rows import SessionRows
from hispeed.ops.stateful import StatefulProcessor
from hispeed.ops.watermark import Idleness, idle_timeout, uses_watermark
from hispeed.plan.model import QueryPlan, field_name
from hispeed.plan.temporal import retention
from hispeed.runtime.ordering import InputQueues, log_times
from hispeed.sql.windows import ENDS_IN_KEY
from hispeed.state.changelog import changelog_batch, changelog_topic, restore
from hispeed.state.stores import Restorable

if TYPE_CHECKING:
    from hispeed.runtime.context import QueryContext

log = logging.getLogger(__name__)

PROCESSING_LOG = "hispeed_processing_log"
#: (smallest, largest) records a query's poll takes: the smallest while it keeps up with its
#: input, doubling up to the largest while it works through a backlog (`QueryTask.poll`)
POLL_RECORDS = (10_000, 80_000)
#: the engine property that sets the largest (the setting `query_max_poll_records`)
MAX_POLL_RECORDS = "query.max.poll.records"


def query_group(query_id: str) -> str:
    """The consumer group whose committed offsets are a query's input positions."""
    return f"_hispeed_query_{query_id}"


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
        self.join: JoinRuntime | None = None
        topics = [self.source.topic]
        #: how long a temporal join keeps superseded versions (plan/temporal.py)
        self.temporal_retention_ms = retention({**context.properties, **(properties or {})})
        #: how many rows of one table with one join value a non-key join holds
        self.nonkey_max_rows = max_rows_limit({**context.properties, **(properties or {})})
        #: a window table function's watermark: which input partitions hold it back
        #: (ops/watermark.py); None for a query without one
        self.idle: Idleness | None = None
        if uses_watermark(plan):
            settings = {**context.properties, **(properties or {})}
            self.idle = Idleness(idle_timeout(settings))
        if plan.join is not None:
            self.join = JoinRuntime(
                plan,
                query_id,
                context.schema_registry,
                self.temporal_retention_ms,
                self.nonkey_max_rows,
                self.idle,
            )
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
            registry=context.schema_registry,
            clock=context.clock,
        )
        if unit is None:
            self.consumer.assignment()  # fix the starting positions now, not at the first poll
        #: a join's inputs are processed in timestamp order (runtime/ordering.py): what was
        #: polled and must wait, the partitions it reads, and which of them have more to come
        #: (a unit of a query split across workers is given the last two by its task)
        self.queues: InputQueues | None = None
        self.inputs: Callable[[], list[TopicPartition]] = lambda: []
        self.behind: Callable[[TopicPartition], bool] = lambda tp: False
        if self.join is not None:
            self.queues = InputQueues(self._rank, self._times)
        if (self.join is not None or self.idle is not None) and unit is None:
            self.inputs = self.consumer.assignment
            self.behind = self.consumer.behind
        if self.join is not None and tables_from_beginning:
            for topic in self.join.looked_up_tables():
                for tp in self.consumer.assignment():
                    if tp.topic == topic:
                        self.consumer.seek(tp, self.log.offsets(topic, tp.partition)[0])
        #: the emit operator: the query's output columns encoded into the sink's records
        self.emitter = SinkEncoder(query_id, plan, sink, context.schema_registry)
        self._sink_partitions: int | None = None  # known once a windowed sink is written
        self.records_in = 0
        #: what the next poll takes at most (adaptive: see `poll`), and its largest
        given = {**context.properties, **(properties or {})}.get(MAX_POLL_RECORDS)
        self.max_poll_records = positive_setting(MAX_POLL_RECORDS, given, POLL_RECORDS[1])
        self.poll_records = min(POLL_RECORDS[0], self.max_poll_records)
        self.records_out = 0
        self.errors = 0
        self.stream_time: dict[int, int] = {}
        self.aggregator: Aggregator | None = None
        #: the stream API's `.process`: a Python function with state of its own
        self.processor = self._processor()
        self.project = Project(plan, sink, self.emitter, self.join, self.processor)
        if plan.aggregation is not None:
            self.aggregator = self._aggregator()
        #: ROW_NUMBER's Top-N and deduplication (ops/topn.py)
        #: the engine's and the query's properties, for the ranking step's bound
        self.ranking_properties = {**context.properties, **(properties or {})}
        self.topn = (
            ranking_operator(plan, self.emitter, self.ranking_properties)
            if plan.ranking is not None
            else None
        )
        #: LAG(...) OVER columns, filled before the select list (ops/lag.py)
        self.lag = Lag(plan) if plan.lags else None
        #: SESSION's rows, held until their session closes (ops/session_rows.py)
        self.sessions = SessionRows(plan) if plan.session_rows is not None else None
        if self.stateful:
            if unit is None:
                self.log.create_topic(
                    self.changelog_topic, 1, {"cleanup.policy": "compact"}, exist_ok=True
                )
            self._restore()

    def _processor(self) -> StatefulProcessor | None:
        stage = self.plan.python
        return StatefulProcessor(self.plan) if stage and stage.kind == "PROCESS" else None

    def _aggregator(self) -> Aggregator:
        return Aggregator(self.plan, self.context.properties, self.emitter)

    def _rank(self, tp: TopicPartition) -> tuple[bool, int, int]:
        """Which partition goes first on equal timestamps: a table that streams look up (a
        stream record sees a change of its own time), then the sides as the query names
        them, then the partition numbers."""
        assert self.join is not None
        sides = self.join.topics.get(tp.topic, [len(self.join.decoders)])
        return (tp.topic not in self.join.looked_up_tables(), min(sides), tp.partition)

    def _times(self, item: PolledBatch) -> np.ndarray:
        """The times a join orders a batch's records by: its source's TIMESTAMP column's where
        it has one (as Kafka Streams' timestamp extractor), else the log's."""
        times = log_times(item)
        assert self.join is not None
        sides = self.join.topics.get(item.partition.topic)
        if not sides:
            return times
        decoder = self.join.decoders[sides[0]]
        if not decoder.source.timestamp:
            return times
        # rows it cannot read are dropped later anyway; the frame is kept for then
        frame, _ = self.join.decoding.decode(sides[0], item, [])
        offsets = np.asarray(item.batch.column("offset").to_numpy(zero_copy_only=False))
        read = frame.column(field_name(decoder.label, "ROWOFFSET")).to_numpy()
        times = times.copy()
        times[np.searchsorted(offsets, read)] = frame.column(
            field_name(decoder.label, "ROWTIME")
        ).to_numpy(zero_copy_only=False)
        return times

    @property
    def stateful(self) -> bool:
        parts = (self.aggregator, self.join, self.processor, self.topn, self.lag, self.sessions)
        return any(x is not None for x in parts)

    # -- state ------------------------------------------------------------------------------

    def _restore(self) -> None:
        stores: dict[str | None, Restorable] = {}
        if self.join is not None:
            stores["J"] = self.join
        if self.aggregator is not None:
            stores[None] = self.aggregator
        if self.processor is not None:
            stores[None] = self.processor
        if self.topn is not None:
            stores[None] = self.topn
        if self.lag is not None:
            for kind in LAG_KINDS:
                stores[kind] = self.lag
        if self.sessions is not None:
            stores[SESSION_KIND] = stores[SESSION_SEQUENCE] = self.sessions
        self.stream_time = restore(self.log, self.changelog_topic, self.unit or 0, stores)

    # -- running ----------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> int:
        """Process what the source has (up to max_records; None: the adaptive size, see
        `POLL_RECORDS`); returns the records read."""
        limit = self.poll_records if max_records is None else max_records
        polled = self.consumer.poll(timeout, max_records=limit)
        if max_records is None:
            # A full poll means a backlog: take more next time, so that each batch's fixed
            # costs (the transaction, the changelog's delta and chunks) are spread over more
            # records; a poll that is not full (caught up) goes back to the smallest size.
            got = sum(i.batch.num_rows for i in polled)
            high = self.max_poll_records
            self.poll_records = min(limit * 2, high) if got >= limit else min(POLL_RECORDS[0], high)
        waiting = self.queues.firsts() if self.queues is not None else {}
        if not polled and not waiting:
            if self.processor is not None and self.processor.has_processing_timers():
                self._fire_timers()
            return 0
        firsts: dict[TopicPartition, int] = dict(waiting)
        for item in polled:
            first = item.batch.column(0)[0].as_py()
            firsts[item.partition] = min(first, firsts.get(item.partition, first))
        try:
            # records read count as progress even when they wait for another input's
            read = int(sum(i.batch.num_rows for i in polled))
            return max(self._process_polled(polled), read)
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
        if self.queues is not None:
            self.queues.clear()  # read again from the log
        if self.aggregator is not None:
            self.aggregator = self._aggregator()
        if self.join is not None:
            self.join = JoinRuntime(
                self.plan,
                self.id,
                self.context.schema_registry,
                self.temporal_retention_ms,
                self.nonkey_max_rows,
                self.idle,
            )
        if self.processor is not None:
            self.processor = self._processor()
        if self.topn is not None:
            self.topn = ranking_operator(self.plan, self.emitter, self.ranking_properties)
        if self.lag is not None:
            self.lag = Lag(self.plan)
        if self.sessions is not None:
            self.sessions = SessionRows(self.plan)
        self.project = Project(self.plan, self.sink, self.emitter, self.join, self.processor)
        if self.stateful:
            self._restore()

    @gc_paused  # a batch's objects, and the changelog's and outputs' records made of them
    def _process_polled(self, polled: list[PolledBatch]) -> int:
        out, positions, n = self.run(polled)
        if positions or out.errors:
            self.commit(out, positions)
        return n

    @gc_paused
    def run(self, polled: list[PolledBatch]) -> tuple[Outputs, dict[TopicPartition, int], int]:
        """Compute a poll's batches: the outputs and state changes to commit, the positions
        to commit with them, and how many records were read.

        The cyclic garbage collector is paused meanwhile (gc_pause.py), for every
        operator: decoding, a join's runs and the changes they make are many small objects
        too, and a full collection walks all of a stateful query's live state (in Nexmark
        q4, its join and its aggregation over a table, 15-40% of the CPU time). Here as well
        as around `_process_polled`: Kafka mode's units (runtime/distributed.py) call this
        directly."""
        out = Outputs()
        positions: dict[TopicPartition, int] = {}
        n = 0
        if self.idle is not None:
            self._watch(polled)
        if self.queues is None:
            items = _merge_by_partition(polled)
        else:
            self.queues.add(polled)
            items = self.queues.take(self.inputs(), self.behind)
        for run in self._runs(items):
            for item in run:
                n += item.batch.num_rows
                last = item.batch.column(0)[item.batch.num_rows - 1].as_py()
                positions[item.partition] = last + 1
            self.process(run[0], out, run)
        if self.join is not None and items:
            self.join.checkpoint(out.changelog)
        if self.processor is not None:
            self.processor.checkpoint(out.changelog)
        if self.topn is not None:
            self.topn.checkpoint(out.changelog)
        if self.lag is not None:
            self.lag.checkpoint(out.changelog)
        if self.sessions is not None:
            self.sessions.checkpoint(out.changelog)
        self.records_in += n
        return out, positions, n

    def _watch(self, polled: list[PolledBatch]) -> None:
        """Tell the watermark's idleness which input partitions read or have records waiting
        (a join's are keyed by topic and partition, one input's by partition)."""
        assert self.idle is not None
        key: Callable[[TopicPartition], Any] = (
            (lambda tp: tp) if self.join is not None else (lambda tp: tp.partition)
        )
        inputs = self.inputs()
        active = {key(i.partition) for i in polled if i.batch.num_rows}
        active.update(key(tp) for tp in inputs if self.behind(tp))
        self.idle.watch([key(tp) for tp in inputs], active.__contains__)

    def _fire_timers(self) -> None:
        """Between batches: the `.process` function's processing-time timers that are due,
        their outputs and state changes committed as a batch's are."""
        assert self.processor is not None
        out = Outputs()
        item = PolledBatch(TopicPartition(self.source.topic, 0), pa.record_batch({}))
        mapped = self.processor.idle(OperatorContext(self.id, item, out, self.stream_time))
        if mapped is None:
            return
        if len(mapped.timestamps):
            self.emitter.emit(mapped.keys, mapped.values, mapped.timestamps, mapped.deleted, out)
        self.processor.checkpoint(out.changelog)
        self.commit(out, {})

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
            txn.append(
                self.changelog_topic, changelog_batch(out.changelog), partition=self.unit or 0
            )

    def _append_windowed(self, txn: Transaction, batch: pa.RecordBatch) -> None:
        """A windowed key goes to the partition of its plain key (murmur2 of the key without
        the window's bytes), as Kafka Streams' WindowedStreamPartitioner puts ksqlDB's."""
        if self._sink_partitions is None:
            self._sink_partitions = len(self.log.describe_topic(self.sink.topic).partitions)
        if self._sink_partitions == 1:
            txn.append(self.sink.topic, batch, partition=0)
            return
        assert self.sink.window is not None
        suffix = 16 if self.sink.window.kind in ENDS_IN_KEY else 8
        plain = pc.binary_slice(batch.column("key"), 0, -suffix)
        target = partitions_for_keys(plain, self._sink_partitions)
        for p in np.unique(target).tolist():
            txn.append(self.sink.topic, batch.filter(pa.array(target == p)), partition=p)

    def close(self) -> None:
        if self.unit is None:
            self.consumer.close()

    # -- decoding ---------------------------------------------------------------------------

    def decode(self, item: PolledBatch, out: Outputs) -> tuple[pa.RecordBatch, np.ndarray]:
        if self.join is not None:
            return self.join.process(item, out)
        return self.decoder.decode(item, out.errors)

    def _runs(self, items: list[PolledBatch]) -> list[list[PolledBatch]]:
        """The slices to process together: a join that takes several at once
        (ops/join_lookup.py) gets each run of consecutive slices of one partition number
        (a stream time each), anything else one slice at a time."""
        if self.join is None or self.join.runs is None:
            return [[item] for item in items]
        runs: list[list[PolledBatch]] = []
        for item in items:
            if runs and runs[-1][0].partition.partition == item.partition.partition:
                runs[-1].append(item)
            else:
                runs.append([item])
        return runs

    # -- processing -------------------------------------------------------------------------

    def process(
        self, item: PolledBatch, out: Outputs, run: list[PolledBatch] | None = None
    ) -> None:
        """Run a polled batch (or a join's `run` of consecutive slices, `item` the first)
        through the query's operators: decode (and join), then the aggregation or
        filter-and-project, then emit; the outputs go to `out`."""
        if run and self.join is not None and self.join.runs is not None:
            frame, tombstones = self.join.process_run(run, out)
        else:
            frame, tombstones = self.decode(item, out)
        if frame.num_rows == 0:
            return
        if run and self.join is not None:
            # the joined rows are the stream's: errors name its first slice of the run
            tables = self.join.looked_up_tables()
            item = next((i for i in run if i.partition.topic not in tables), item)
        context = OperatorContext(self.id, item, out, self.stream_time, self.idle)
        if self.aggregator is not None:
            # stream time advances record by record inside the aggregation
            self.aggregator.process(frame, tombstones, context)
            return
        if self.sessions is not None:
            # SESSION's rows, once their session closes (then ranked or projected)
            frame, tombstones = self.sessions.process(frame, tombstones, context)
            if frame.num_rows == 0:
                return
        if self.topn is not None:
            self.topn.process(frame, tombstones, context)
            return
        if self.lag is not None:
            frame, tombstones = self.lag.process(frame, tombstones, context)
        self.project.process(frame, tombstones, context)


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


__all__ = ["PROCESSING_LOG", "QueryTask", "query_group"]
