"""The order in which a task with several inputs processes their records: by timestamp.

Kafka Streams (and so ksqlDB) buffers each input partition of a task and always processes
next the record at the head of the buffer whose head has the smallest timestamp
(`PartitionGroup.nextRecord`); within a partition records keep their offset order. When a
partition's buffer is empty but the partition has records not yet fetched, the task waits for
them (with `max.task.idle.ms` = 0, its default: it waits for records known to be there, not
for new ones to be produced). So a stream record joins the table as it was at the stream
record's time, whatever the order in which the two topics' backlogs were read.

`InputQueues` does the same a batch at a time: it keeps what was polled and not processed
yet, and hands out slices of it in that order, stopping where a partition that has more
records in the log runs out of buffered ones (the rest waits for the next poll). A record at
the head of its partition competes with the highest timestamp its partition has shown so far
(a record later in a partition can never go before an earlier one), which makes the whole
order one stable sort. Equal timestamps go by each partition's rank: the tables that streams
look up first (a stream record sees a table change of the same time), then the sides in the
order the query names them, then partition numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.log.base import PolledBatch, TopicPartition

#: a partition's rank among a task's inputs: the lower goes first on equal timestamps
Rank = Callable[[TopicPartition], tuple[Any, ...]]
#: the timestamps a task orders a batch's records by (the log's, or its TIMESTAMP column's)
Times = Callable[[PolledBatch], np.ndarray]


def log_times(item: PolledBatch) -> np.ndarray:
    """The records' timestamps as the log holds them."""
    return np.asarray(item.batch.column("timestamp").to_numpy(zero_copy_only=False), np.int64)


class InputQueues:
    """A task's polled and not yet processed records, per input partition (see the module)."""

    def __init__(self, rank: Rank, times: Times = log_times) -> None:
        self.rank = rank
        self.times = times
        self.pending: dict[TopicPartition, pa.RecordBatch] = {}

    def __len__(self) -> int:
        return sum(b.num_rows for b in self.pending.values())

    def add(self, polled: Iterable[PolledBatch]) -> None:
        """Queue polled batches after what each partition already holds."""
        parts: dict[TopicPartition, list[pa.RecordBatch]] = {}
        for tp, batch in self.pending.items():
            parts[tp] = [batch]
        for item in polled:
            if item.batch.num_rows:
                parts.setdefault(item.partition, []).append(item.batch)
        self.pending = {
            tp: batches[0] if len(batches) == 1 else pa.concat_batches(batches)
            for tp, batches in parts.items()
        }

    def firsts(self) -> dict[TopicPartition, int]:
        """The first queued offset of each partition (where to read again after a failure)."""
        return {tp: batch.column(0)[0].as_py() for tp, batch in self.pending.items()}

    def clear(self) -> None:
        self.pending = {}

    def take(
        self, inputs: Iterable[TopicPartition], behind: Callable[[TopicPartition], bool]
    ) -> list[PolledBatch]:
        """The queued records that can be processed now, as slices in processing order.

        `inputs`: every partition the task reads (one with nothing queued may still hold up
        the others); `behind(tp)`: whether tp has records in the log that are not queued yet.
        """
        tps = sorted(self.pending, key=self.rank)
        if not tps:
            return []
        waiting = [tp for tp in {*inputs, *tps} if behind(tp)]
        if any(tp not in self.pending for tp in waiting):
            return []  # a partition's next record is on its way: its time is not known yet
        counts = [self.pending[tp].num_rows for tp in tps]
        keys = np.concatenate(
            [np.maximum.accumulate(self.times(PolledBatch(tp, self.pending[tp]))) for tp in tps]
        )
        which = np.repeat(np.arange(len(tps)), counts)
        # the by-head merge as one stable sort: by the running maximum, then by rank
        order = np.lexsort((which, keys))
        limit = len(order)
        if waiting:
            where = np.empty(len(order), np.int64)
            where[order] = np.arange(len(order))
            ends = np.cumsum(counts) - 1
            # stop after the last queued record of a partition that has more to come
            limit = min(int(where[ends[tps.index(tp)]]) + 1 for tp in waiting)
        order = order[:limit]
        chosen = which[order]
        # runs of one partition's consecutive records, in order
        starts = np.flatnonzero(np.diff(chosen, prepend=-1))
        taken = [0] * len(tps)
        pieces: list[PolledBatch] = []
        bounds = [*starts.tolist(), len(chosen)]
        for a, b in pairwise(bounds):
            i = int(chosen[a])
            tp = tps[i]
            pieces.append(PolledBatch(tp, self.pending[tp].slice(taken[i], b - a)))
            taken[i] += b - a
        for i, tp in enumerate(tps):
            if taken[i] == counts[i]:
                del self.pending[tp]
            elif taken[i]:
                self.pending[tp] = self.pending[tp].slice(taken[i])
        return pieces


__all__ = ["InputQueues", "log_times"]
