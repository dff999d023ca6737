"""Consumer groups of the embedded log: a coordinator in the process, and its consumers."""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Protocol

import pyarrow as pa

from hispeed.errors import LogError
from hispeed.log.base import (
    Consumer,
    PolledBatch,
    TopicInfo,
    TopicPartition,
    check_reset,
    parse_topics,
)


class GroupLog(Protocol):
    """What the embedded consumers and their coordinator need of their log (`EmbeddedLog` is
    one): its topics and partitions, reads, committed offsets, the group coordinator, and the
    append signal a poll waits on (`AppendSignal`)."""

    coordinator: GroupCoordinator

    def list_topics(self, *, internal: bool = False) -> list[str]: ...

    def describe_topic(self, name: str) -> TopicInfo: ...

    def offsets(self, topic: str, partition: int) -> tuple[int, int]: ...

    def read(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int | None = None,
        max_bytes: int | None = None,
    ) -> list[pa.RecordBatch]: ...

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None: ...

    def committed_offsets(
        self, group: str, topic: str | None = None
    ) -> dict[TopicPartition, int]: ...

    @property
    def appends(self) -> int: ...

    def wait_for_append(self, seen: int, timeout: float) -> bool: ...


class GroupCoordinator:
    """Members of each group and the partitions each owns (Kafka's range assignment).

    Any join, leave or topic change starts a new generation; consumers pick up their new
    assignment at their next poll.
    """

    def __init__(self, log: GroupLog) -> None:
        self._log = log
        self._lock = threading.Lock()
        self._members: dict[str, dict[str, EmbeddedConsumer]] = {}
        self._assignments: dict[str, dict[str, list[TopicPartition]]] = {}
        self._generations: dict[str, int] = {}

    def join(self, group: str, consumer: EmbeddedConsumer) -> None:
        with self._lock:
            self._members.setdefault(group, {})[consumer.member_id] = consumer
            self._rebalance(group)

    def leave(self, group: str, consumer: EmbeddedConsumer) -> None:
        with self._lock:
            members = self._members.get(group, {})
            members.pop(consumer.member_id, None)
            if members:
                self._rebalance(group)
            else:
                self._members.pop(group, None)
                self._assignments.pop(group, None)

    def topics_changed(self) -> None:
        with self._lock:
            for group in self._members:
                self._rebalance(group)

    def assignment(self, group: str, member_id: str) -> tuple[int, list[TopicPartition]]:
        with self._lock:
            gen = self._generations.get(group, 0)
            return gen, list(self._assignments.get(group, {}).get(member_id, []))

    def groups(self) -> list[str]:
        with self._lock:
            return list(self._members)

    def members(self, group: str) -> list[str]:
        with self._lock:
            return sorted(self._members.get(group, {}))

    def close(self) -> None:
        with self._lock:
            self._members.clear()
            self._assignments.clear()

    def _rebalance(self, group: str) -> None:
        members = self._members[group]
        subscribed: dict[str, list[str]] = {}
        for member_id in sorted(members):
            for topic in members[member_id].subscribed_topics():
                subscribed.setdefault(topic, []).append(member_id)
        assignment: dict[str, list[TopicPartition]] = {m: [] for m in members}
        for topic, owners in sorted(subscribed.items()):
            try:
                count = len(self._log.describe_topic(topic).partitions)
            except LogError:
                continue
            per, extra = divmod(count, len(owners))
            start = 0
            for i, member_id in enumerate(owners):
                n = per + (1 if i < extra else 0)
                assignment[member_id] += [TopicPartition(topic, p) for p in range(start, start + n)]
                start += n
        self._assignments[group] = assignment
        self._generations[group] = self._generations.get(group, 0) + 1


class EmbeddedConsumer(Consumer):
    """Polls Arrow batches from its share of the partitions of the topics it subscribes to."""

    def __init__(
        self,
        log: GroupLog,
        topics: Sequence[str] | str,
        *,
        group: str | None,
        auto_offset_reset: str = "latest",
    ) -> None:
        check_reset(auto_offset_reset)
        self._log = log
        self.group = group
        self.member_id = f"{group or 'standalone'}-{uuid.uuid4().hex[:12]}"
        self._reset = auto_offset_reset
        self._pattern, self._names = parse_topics(topics)
        # "latest" means from now on: a topic a pattern finds later is read whole
        self._existing = set(log.list_topics(internal=True)) if self._pattern else set()
        if self._pattern is None:
            for name in self._names:
                log.describe_topic(name)  # fails clearly for an unknown topic
        self._positions: dict[TopicPartition, int] = {}
        self._assigned: list[TopicPartition] = []
        self._generation = -1
        self._turn = itertools.count()
        self._closed = False
        if group is not None:
            log.coordinator.join(group, self)

    def subscribed_topics(self) -> list[str]:
        if self._pattern is None:
            return list(self._names)
        return [t for t in self._log.list_topics() if self._pattern.match(t)]

    def _refresh(self) -> None:
        if self.group is not None:
            gen, assigned = self._log.coordinator.assignment(self.group, self.member_id)
            if gen == self._generation:
                return
            self._generation = gen
        else:
            assigned = [
                TopicPartition(t, p.partition)
                for t in self.subscribed_topics()
                for p in self._log.describe_topic(t).partitions
            ]
        committed = self._log.committed_offsets(self.group) if self.group is not None else {}
        positions = {}
        for tp in assigned:
            if tp in self._positions:
                positions[tp] = self._positions[tp]
            elif tp in committed:
                positions[tp] = committed[tp]
            else:
                start, end = self._log.offsets(*tp)
                new_topic = self._pattern is not None and tp.topic not in self._existing
                positions[tp] = start if self._reset == "earliest" or new_topic else end
        self._positions = positions
        self._assigned = assigned

    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[PolledBatch]:
        self._check()
        budget_total = max_records if max_records is not None else 100_000
        deadline = time.monotonic() + timeout
        while True:
            seen = self._log.appends
            self._refresh()
            out: list[PolledBatch] = []
            budget = budget_total
            if self._assigned:
                first = next(self._turn) % len(self._assigned)
                rotated = self._assigned[first:] + self._assigned[:first]
                for tp in rotated:
                    if budget <= 0:
                        break
                    budget -= self._poll_partition(tp, budget, out)
            remaining = deadline - time.monotonic()
            if out or remaining <= 0:
                return out
            if not self._log.wait_for_append(seen, remaining):
                return []  # the log is closed

    def _poll_partition(self, tp: TopicPartition, budget: int, out: list[PolledBatch]) -> int:
        start, end = self._log.offsets(*tp)
        pos = self._positions[tp]
        if pos < start or pos > end:  # out of range: reset as Kafka does
            pos = start if self._reset == "earliest" else end
        if pos >= end:
            self._positions[tp] = pos
            return 0
        got = 0
        for batch in self._log.read(tp.topic, tp.partition, pos, max_records=budget):
            out.append(PolledBatch(tp, batch))
            got += batch.num_rows
            pos = batch.column(0)[batch.num_rows - 1].as_py() + 1
        self._positions[tp] = pos
        return got

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check()
        if self.group is None:
            raise LogError("a consumer without a group has nowhere to commit offsets")
        self._log.commit_offsets(self.group, dict(self._positions if offsets is None else offsets))

    def caught_up(self) -> bool:
        self._refresh()
        return all(self._positions[tp] >= self._log.offsets(*tp)[1] for tp in self._assigned)

    def behind(self, tp: TopicPartition) -> bool:
        self._refresh()
        position = self._positions.get(tp)
        return position is not None and position < self._log.offsets(*tp)[1]

    def assignment(self) -> list[TopicPartition]:
        self._check()
        self._refresh()
        return list(self._assigned)

    def position(self, tp: TopicPartition) -> int:
        self._refresh()
        try:
            return self._positions[tp]
        except KeyError:
            raise LogError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer") from None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._refresh()
        if tp not in self._positions:
            raise LogError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer")
        self._positions[tp] = offset

    def _check(self) -> None:
        if self._closed:
            raise LogError("this consumer is closed")

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            if self.group is not None:
                self._log.coordinator.leave(self.group, self)
