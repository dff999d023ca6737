"""A persistent query on a shared log (Kafka), its work split among the application's workers.

Every worker runs every query of the catalog; Kafka's consumer groups decide who does what,
as in Kafka Streams (DESIGN.md decision 9):

- A *partition-local* query (one that filters and projects, aggregates a stream by its
  key, or joins co-partitioned sources on their keys) is split by input partition.
  Partition p is a unit with state of its own, kept in partition p of the query's changelog
  topic. The query's consumer group shares the input partitions among the workers; a unit is
  made (and its state restored from the changelog) when its partition arrives, and forgotten
  when it goes.
- An aggregation of a stream by other columns than its key is *repartitioned*, as Kafka
  Streams does it (ops/repartition.py): the query's group reads both the source and the
  query's repartition topic (as many partitions as the source). A source partition's records
  are routed to the repartition topic's partitions by their grouping key; partition p of the
  repartition topic is a unit as above, aggregated with its state in partition p of the
  changelog. Both stages are split by partition among the workers.
- Any other stateful query (a table aggregation, a foreign-key join) needs every record in
  one place, so it is one unit: the worker the group gives the query's one-partition
  ownership topic runs it over every input partition. Another worker takes over when that
  one goes.

Either way a poll's outputs, the records routed to the repartition topic, the units' state
changes and the input offsets (the source's and the repartition topic's) commit in one Kafka
transaction whose offsets carry the group's metadata, so a worker that lost its partitions
(or was thought dead) cannot commit any more: nothing is lost or written twice. Routed
records are read (read_committed) once their transaction has committed, by whichever worker
has their partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import msgspec
import numpy as np
import pyarrow as pa

from hispeed.catalog import Source
from hispeed.errors import LogError
from hispeed.log.base import Consumer, PolledBatch, TopicPartition, Transaction
from hispeed.ops.base import Outputs
from hispeed.ops.repartition import (
    GroupByRouter,
    RepartitionedDecoder,
    Routed,
    aggregating_plan,
    repartition_topic,
    repartitions,
)
from hispeed.plan.model import QueryPlan
from hispeed.runtime.task import PROCESSING_LOG, QueryTask, query_group
from hispeed.state.changelog import changelog_topic

if TYPE_CHECKING:
    from hispeed.runtime.context import QueryContext

log = logging.getLogger(__name__)


def partition_local(plan: QueryPlan, partitions: Callable[[str], int]) -> bool:
    """Whether each input partition can be computed on its own: no state; an aggregation of
    a stream by exactly its key columns (records of one group share a partition); or a join
    of sources joined on their keys with as many partitions each (co-partitioned, as ksqlDB
    requires), whose partition p meets only partition p of the others. A ranking (Top-N,
    deduplication, OVER over a table) or LAG/LEAD/OVER over a stream keeps each PARTITION BY
    partition's rows together, which input partitions split: it runs in one place."""
    if plan.ranking is not None or plan.lags:
        return False
    join = plan.join
    if join is not None:
        counts = {partitions(side.source.topic) for side in join.sides}
        return (
            plan.aggregation is None
            and len(counts) == 1
            and all(step.copartitioned is not None and not step.foreign_key for step in join.steps)
        )
    agg = plan.aggregation
    if agg is None:
        return True
    keys = [c.name for c in plan.source.key_columns]
    return (
        plan.source.kind == "STREAM"
        and bool(keys)
        and agg.group_names == keys
        and plan.source.window is None
    )


def owner_topic(query_id: str) -> str:
    """The topic whose one partition the group hands to the worker that runs the query."""
    return f"_hispeed_{query_id}_owner"


class DistributedTask:
    """One worker's share of a persistent query on a shared log (see the module's notes)."""

    #: seconds between deletions of what the query has committed of its repartition topic
    purge_interval = 30.0

    def __init__(
        self,
        context: QueryContext,
        query_id: str,
        plan: QueryPlan,
        sink: Source,
        *,
        properties: Mapping[str, Any] | None = None,
    ) -> None:
        self.context = context
        self.log = context.log
        self.id = query_id
        self.plan = plan
        self.sink = sink
        self.properties = properties
        self.group = query_group(query_id)
        self.changelog_topic = changelog_topic(query_id)
        self.reset = context.offset_reset(properties)
        props = properties if properties is not None else context.properties
        #: ksqlDB's per-query setting (SET 'processing.guarantee'=...), else the log's
        chosen = props.get("processing.guarantee", props.get("ksql.streams.processing.guarantee"))
        self.guarantee = str(chosen).lower() if chosen is not None else None
        self.local = partition_local(
            plan, lambda topic: len(self.log.describe_topic(topic).partitions)
        )
        self.topics = (
            [s.source.topic for s in plan.join.sides]
            if plan.join is not None
            else [plan.source.topic]
        )
        self.units: dict[int, QueryTask] = {}
        self.records_out_before = 0
        self.errors_before = 0
        self.records_in_before = 0
        #: the first stage of a repartitioned aggregation (None: the query has no such stage)
        self.router: GroupByRouter | None = None
        self.repartition: str | None = None
        #: what the first stage has read from the source, and sent to the processing log
        self.routed_in = 0
        self.routed_errors = 0
        #: the repartition topic's offsets committed since its last purge, by partition
        self._purgeable: dict[int, int] = {}
        self._purged_at = time.monotonic()
        #: a poll failed: the next one first goes back to what the group committed
        self._resync = False
        stateful = (
            plan.aggregation is not None
            or plan.join is not None
            or plan.ranking is not None
            or bool(plan.lags)
        )
        if stateful:
            count = len(self.log.describe_topic(plan.source.topic).partitions)
            split = not self.local and repartitions(plan) and count > 1
            partitions = count if self.local or split else 1
            made = self.log.create_topic(
                self.changelog_topic, partitions, {"cleanup.policy": "compact"}, exist_ok=True
            )
            # a changelog of one partition is the state of the query run in one place (before
            # hispeed repartitioned): it goes on so, its state whole
            if split and len(made.partitions) == count:
                self._split(count)
        if self.reset == "latest":
            self._pin_start()
        self.owner: Consumer | None = None
        if self.local or self.router is not None:
            self.consumer: Consumer = self.log.consumer(
                self.topics, group=self.group, auto_offset_reset=self.reset
            )
            self._listen(self.consumer, self._lost_partitions)
        else:
            owner = owner_topic(query_id)
            self.log.create_topic(owner, 1, exist_ok=True)
            self.owner = self.log.consumer(owner, group=self.group)
            self._listen(self.owner, self._lost_ownership)
            # reads every input partition while this worker owns the query
            self.consumer = _OwnedReader(self)

    def _split(self, partitions: int) -> None:
        """Run the aggregation in two stages joined by a repartition topic of `partitions`."""
        topic = repartition_topic(self.id)
        # kept until read (Kafka Streams purges what its group has committed): a time limit
        # would delete records by their event times, which may be long past
        self.log.create_topic(
            topic, partitions, {"cleanup.policy": "delete", "retention.ms": -1}, exist_ok=True
        )
        self.repartition = topic
        self.router = GroupByRouter(self.plan, self.id, partitions, self.context.schema_registry)
        self.topics = [self.plan.source.topic, topic]

    def _pin_start(self) -> None:
        """`latest` means from when the query was made, not from when the group first hands
        its partitions out (a moment later, maybe after records have come): a new query's
        group starts at the ends of its inputs as they are now (and at the start of its
        repartition topic, whose every record is the query's)."""
        if self.log.committed_offsets(self.group):
            return  # the query has run before (a restart, or another worker runs it)
        ends = {
            TopicPartition(topic, p): self.log.offsets(topic, p)[
                0 if topic == self.repartition else 1
            ]
            for topic in self.topics
            for p in range(len(self.log.describe_topic(topic).partitions))
        }
        try:
            self.log.commit_offsets(self.group, ends)
        except LogError as e:  # another worker's group got there first: it has its offsets
            log.info("query %s: start offsets not pinned: %s", self.id, e)

    def _listen(self, consumer: Consumer, lost: Any) -> None:
        revoke = getattr(consumer, "on_revoke", None)
        if revoke is not None:
            revoke.append(lost)

    # -- units --------------------------------------------------------------------------------

    def _unit(self, number: int) -> QueryTask:
        unit = self.units.get(number)
        if unit is None:
            # a repartitioned aggregation groups by what its first stage computed
            plan = aggregating_plan(self.plan) if self.repartition is not None else self.plan
            unit = QueryTask(
                self.context, self.id, plan, self.sink, properties=self.properties, unit=number
            )
            if self.repartition is not None:
                unit.decoder = RepartitionedDecoder(
                    self.plan, self.id, self.context.schema_registry
                )
            # a join's unit orders its inputs by time (runtime/ordering.py): partition
            # `number` of each input, or every partition for a query run in one place
            if self.local:
                unit.inputs = lambda: [TopicPartition(t, number) for t in self.topics]
            else:
                unit.inputs = self.consumer.assignment
            unit.behind = self.consumer.behind
            self.units[number] = unit
        return unit

    def _lost_partitions(self, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            if self.repartition is None or tp.topic == self.repartition:
                self._forget(tp.partition)

    def _lost_ownership(self, partitions: list[TopicPartition]) -> None:
        if partitions:
            self._forget(0)
            assert isinstance(self.consumer, _OwnedReader)
            self.consumer.release()

    def _forget(self, number: int) -> None:
        unit = self.units.pop(number, None)
        if unit is not None:
            self.records_in_before += unit.records_in
            self.records_out_before += unit.records_out
            self.errors_before += unit.errors

    @property
    def records_in(self) -> int:
        """The source records this worker's share has read."""
        return self.routed_in if self.router is not None else self._units_in()

    @property
    def repartition_records_in(self) -> int:
        """The records this worker's share of a repartitioned aggregation has read from the
        repartition topic (its share of the aggregating; 0 for other queries)."""
        return self._units_in() if self.router is not None else 0

    def _units_in(self) -> int:
        return self.records_in_before + sum(u.records_in for u in self.units.values())

    @property
    def records_out(self) -> int:
        return self.records_out_before + sum(u.records_out for u in self.units.values())

    @property
    def errors(self) -> int:
        return self.routed_errors + self.errors_before + sum(u.errors for u in self.units.values())

    # -- running ------------------------------------------------------------------------------

    def poll(self, timeout: float = 0.0, max_records: int = 50_000) -> int:
        """Process what the inputs have, up to `max_records` (a poll takes what has arrived:
        a few records when idle; under load, larger batches spread each transaction's fixed
        cost and coalesce more updates of a key)."""
        if self._resync:
            self._resynchronize()
        polled = self.consumer.poll(timeout, max_records=max_records)
        by_unit: dict[int, list[PolledBatch]] = {}
        firsts: dict[TopicPartition, int] = {}
        for number, unit in self.units.items():
            waiting = unit.queues.firsts() if unit.queues is not None else {}
            if waiting:  # records that waited for another input's: maybe their turn now
                by_unit[number] = []
                firsts.update(waiting)
        if not polled and not by_unit:
            return 0
        sources: list[PolledBatch] = []  # a repartitioned aggregation's first stage's
        for item in polled:
            if self.router is not None and item.partition.topic != self.repartition:
                sources.append(item)
            else:
                number = item.partition.partition if self.local or self.router else 0
                by_unit.setdefault(number, []).append(item)
            first = item.batch.column(0)[0].as_py()
            firsts[item.partition] = min(first, firsts.get(item.partition, first))
        try:
            # records read count as progress even when they wait for another input's
            read = int(sum(item.batch.num_rows for item in polled))
            return max(self._process(by_unit, sources), read)
        except Exception:
            for tp, offset in firsts.items():
                self.consumer.seek(tp, offset)
            # the units' state, and the offsets if the transaction's outcome was unknown,
            # are put back by the next poll (the broker may be away now)
            self._resync = True
            raise

    def _resynchronize(self) -> None:
        """After a failed poll: the query's producer made ready (a new one, if the failed
        transaction's was given up: its start settles that transaction), then the consumer
        put back at the group's committed offsets and every unit's state restored. Raises
        (and is tried again by the next poll) while the broker is away."""
        self._transaction().abort()  # nothing begun: only makes the producer, and frees it
        committed = self.log.committed_offsets(self.group)
        for tp in self.consumer.assignment():
            if tp in committed:
                self.consumer.seek(tp, committed[tp])
        for unit in self.units.values():
            unit.reset_state()
        self._resync = False

    def _process(self, by_unit: dict[int, list[PolledBatch]], sources: list[PolledBatch]) -> int:
        results: list[tuple[QueryTask, Outputs]] = []
        positions: dict[TopicPartition, int] = {}
        n = 0
        routed: list[Routed] = []
        errors: list[dict[str, Any]] = []
        if sources:
            assert self.router is not None
            for item in sources:
                batch = self.router.route(item, errors)
                if batch is not None:
                    routed.append(batch)
                positions[item.partition] = (
                    item.batch.column(0)[item.batch.num_rows - 1].as_py() + 1
                )
                n += item.batch.num_rows
        for number, items in by_unit.items():
            unit = self._unit(number)
            out, unit_positions, count = unit.run(items)
            results.append((unit, out))
            positions.update(unit_positions)
            n += count
        if not positions and not routed and not errors:
            return n  # every record read waits for another input's
        txn = self._transaction()
        try:
            self._write_routed(txn, routed, errors)
            for unit, out in results:
                unit.write(txn, out)
            txn.commit_offsets(self.group, positions)
        except BaseException:
            txn.abort()
            raise
        txn.commit()
        if sources:
            self.routed_in += sum(item.batch.num_rows for item in sources)
            self.routed_errors += len(errors)
        if self.repartition is not None:
            self._purge(positions)
        return n

    def _purge(self, committed: Mapping[TopicPartition, int]) -> None:
        """Now and then, delete what the query has committed of its repartition topic (no
        worker reads it again), as Kafka Streams purges its repartition topics."""
        for tp, offset in committed.items():
            if tp.topic == self.repartition:
                self._purgeable[tp.partition] = offset
        now = time.monotonic()
        if not self._purgeable or now - self._purged_at < self.purge_interval:
            return
        assert self.repartition is not None
        self._purged_at = now
        try:
            self.log.delete_records(self.repartition, self._purgeable)
        except LogError as e:  # kept a while longer: the next purge takes it
            log.warning("query %s: could not purge %s: %s", self.id, self.repartition, e)
        self._purgeable = {}

    def _write_routed(
        self, txn: Transaction, routed: list[Routed], errors: list[dict[str, Any]]
    ) -> None:
        """Put the first stage's records in `txn`, each in its partition of the repartition
        topic (a source partition's records in their order), and its processing-log entries."""
        if routed:
            assert self.repartition is not None
            batch = (
                routed[0].batch
                if len(routed) == 1
                else pa.concat_batches([r.batch for r in routed])
            )
            target = np.concatenate([r.partitions for r in routed])
            for p in np.unique(target).tolist():
                txn.append(self.repartition, batch.filter(pa.array(target == p)), partition=p)
        if errors:
            txn.append(PROCESSING_LOG, [(None, msgspec.json.encode(e)) for e in errors])

    def _transaction(self) -> Transaction:
        from hispeed.log.kafka import KafkaLog

        if self.guarantee is not None and isinstance(self.log, KafkaLog):
            return self.log.transaction(owner=self.id, guarantee=self.guarantee)
        return self.log.transaction(owner=self.id)

    def close(self) -> None:
        self.consumer.close()
        if self.owner is not None:
            self.owner.close()


class _OwnedReader(Consumer):
    """The input of a query that runs in one place: every partition of its topics, read from
    the query group's committed offsets while this worker holds the ownership partition."""

    def __init__(self, task: DistributedTask) -> None:
        self.task = task
        self.reader: Consumer | None = None

    def _owned(self) -> bool:
        owner = self.task.owner
        assert owner is not None
        owner.poll(0)  # drives the group: heartbeats, and the rebalance that may hand it over
        return bool(owner.current_assignment())

    def _open(self) -> Consumer:
        if self.reader is None:
            task = self.task
            reader = task.log.consumer(task.topics, auto_offset_reset=task.reset)
            committed = task.log.committed_offsets(task.group)
            for tp in reader.assignment():
                if tp in committed:
                    reader.seek(tp, committed[tp])
            self.reader = reader
        return self.reader

    def behind(self, tp: TopicPartition) -> bool:
        return self.reader is not None and self.reader.behind(tp)

    def release(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None

    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[PolledBatch]:
        if not self._owned():
            self.release()
            return []
        return self._open().poll(timeout, max_records)

    def caught_up(self) -> bool:
        if not self._owned():
            # another worker's to read, once the group has said who owns the query
            assert self.task.owner is not None
            return self.task.owner.assigned_once
        return self._open().caught_up()

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self.task.log.commit_offsets(self.task.group, dict(offsets or {}))

    def assignment(self) -> list[TopicPartition]:
        return self._open().assignment() if self._owned() else []

    def position(self, tp: TopicPartition) -> int:
        return self._open().position(tp)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._open().seek(tp, offset)

    def close(self) -> None:
        self.release()
