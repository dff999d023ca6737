"""The consumer of the Kafka backend: reads topics `read_committed`, alone or in a consumer
group, through the native fetcher where it is built and through message objects elsewhere."""

from __future__ import annotations

import re
import threading
import time
import uuid
import weakref
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from hispeed.errors import LogError
from hispeed.log._native import NativeFetcher
from hispeed.log._native import extension as native_extension
from hispeed.log.base import Consumer, PolledBatch, TopicPartition, check_reset, parse_topics
from hispeed.log.kafka_client import ZERO_TIMESTAMP_HEADER, ck, fetch_batches, kafka_error, log

#: the longest wait for records of the native fetcher, between services of the consumer queue
_NATIVE_WAIT = 0.1


class ConsumerLog(Protocol):
    """What a consumer needs of its Kafka log (`KafkaLog` is one)."""

    prefix: str
    timeout: float
    #: the log's live consumers: a rebalance waits for every member of a group to poll
    consumers: weakref.WeakSet[KafkaConsumer]

    def physical(self, name: str) -> str: ...

    def logical(self, name: str) -> str | None: ...

    def kafka_partition(self, tp: TopicPartition, offset: int | None = None) -> Any: ...

    def partition_count(self, name: str) -> int: ...

    def consumer_config(self, group: str, reset: str = "earliest") -> dict[str, Any]: ...

    def list_topics(self, *, internal: bool = False) -> list[str]: ...

    def offsets(self, topic: str, partition: int) -> tuple[int, int]: ...


class KafkaConsumer(Consumer):
    """Reads topics `read_committed`, alone (assigned every partition) or in a consumer group
    (subscribed: Kafka's range assignment shares the partitions among the members)."""

    def __init__(
        self,
        log_: ConsumerLog,
        topics: Sequence[str] | str,
        *,
        group: str | None,
        auto_offset_reset: str = "latest",
    ) -> None:
        check_reset(auto_offset_reset)
        self.log = log_
        self.group = group
        self.closed = False
        self._reset = auto_offset_reset
        self._pattern, self._names = parse_topics(topics)
        # "latest" means from now on: a topic a pattern finds later is read whole
        self._existing = set(log_.list_topics(internal=True)) if self._pattern else set()
        if self._pattern is None:
            for name in self._names:
                log_.partition_count(name)  # fails clearly for an unknown topic
        group_id = (
            log_.physical(group)
            if group
            else f"{log_.prefix}_hispeed_standalone_{uuid.uuid4().hex}"
        )
        config = log_.consumer_config(group_id, auto_offset_reset)
        if self._pattern is not None:  # a new topic of the pattern is found within 1 s, not 5 min
            config["topic.metadata.refresh.interval.ms"] = 1000
        self._c = ck.Consumer(config)
        #: records in bulk, without a message object each (None: through message objects)
        self._native = (
            NativeFetcher(self._c, ZERO_TIMESTAMP_HEADER)
            if native_extension() is not None
            else None
        )
        self._positions: dict[TopicPartition, int] = {}
        self._assigned: list[TopicPartition] = []
        #: fetched, not handed out yet (positions move as poll hands batches out)
        self._pending: list[PolledBatch] = []
        #: ends of partitions reached, applied to positions once their batches are handed out
        self._eof: dict[TopicPartition, int] = {}
        self._at_end: set[TopicPartition] = set()
        self._lock = threading.RLock()
        self._assigned_once = False
        self._last_refresh = 0.0
        #: called with the partitions gained and lost at each rebalance
        self.on_assign: list[Any] = []
        self.on_revoke: list[Any] = []
        if group is None:
            self._refresh_standalone()
        else:
            physical = (
                ["^" + re.escape(log_.prefix) + self._pattern.pattern[1:]]
                if self._pattern is not None
                else [log_.physical(n) for n in self._names]
            )
            self._c.subscribe(physical, on_assign=self._assigned_cb, on_revoke=self._revoked_cb)

    # -- assignment -------------------------------------------------------------------------

    def _topics_now(self) -> list[str]:
        if self._pattern is None:
            return list(self._names)
        return [t for t in self.log.list_topics() if self._pattern.match(t)]

    def _refresh_standalone(self) -> None:
        """Assign every partition of the topics (the pattern's, as they are now)."""
        self._last_refresh = time.monotonic()
        wanted = [
            TopicPartition(t, p)
            for t in self._topics_now()
            for p in range(self.log.partition_count(t))
        ]
        if wanted == self._assigned and self._assigned_once:
            return
        for tp in wanted:
            if tp not in self._positions:
                new_topic = self._pattern is not None and tp.topic not in self._existing
                self._positions[tp] = self._start(tp, new_topic)
        self._assigned = wanted
        self._assigned_once = True
        self._pending, self._eof = [], {}  # fetched again from the positions handed out
        self._assign(self._c, {tp: self._positions[tp] for tp in wanted})

    def _start(self, tp: TopicPartition, from_start: bool = False) -> int:
        start, end = self.log.offsets(*tp)
        return start if self._reset == "earliest" or from_start else end

    def _assigned_cb(self, consumer: Any, partitions: list[Any]) -> None:
        if self.closed:
            return
        tps = [
            TopicPartition(self.log.logical(p.topic) or p.topic, p.partition) for p in partitions
        ]
        committed: dict[TopicPartition, int] = {}
        if partitions:
            for p in consumer.committed(partitions, timeout=self.log.timeout):
                if p.offset >= 0:
                    committed[TopicPartition(self.log.logical(p.topic) or p.topic, p.partition)] = (
                        p.offset
                    )
        positions = {}
        for tp in tps:
            if tp in committed:
                positions[tp] = committed[tp]
            else:
                new_topic = self._pattern is not None and tp.topic not in self._existing
                positions[tp] = self._start(tp, new_topic)
        self._positions = positions
        self._assigned = tps
        self._at_end = set()
        self._assigned_once = True
        self._assign(consumer, {tp: positions[tp] for tp in tps})
        for listener in self.on_assign:
            listener(list(tps))

    def _assign(self, consumer: Any, positions: Mapping[TopicPartition, int]) -> None:
        """Fetch these partitions from these offsets (their records routed to the native
        fetcher first, when there is one: librdkafka leaves them where they were routed)."""
        parts = [self.log.kafka_partition(tp, offset) for tp, offset in positions.items()]
        if self._native is not None:
            self._native.forward((p.topic, p.partition) for p in parts)
        consumer.assign(parts)

    def _reassign(self) -> None:
        """Assign every partition again where it stands (what was fetched and not handed out
        is fetched again)."""
        self._pending, self._eof = [], {}
        self._assign(self._c, {tp: self._positions[tp] for tp in self._assigned})

    def _revoked_cb(self, consumer: Any, partitions: list[Any]) -> None:
        lost = list(self._assigned)
        for listener in self.on_revoke:
            listener(lost)
        self._pending = []
        self._eof = {}
        self._positions = {}
        self._assigned = []
        consumer.unassign()

    def _wait_for_assignment(self) -> None:
        """Poll until the group gives this member its partitions. A rebalance waits for every
        member to poll, so the group's other members in this process poll too."""
        deadline = time.monotonic() + self.log.timeout
        while not self._assigned_once and time.monotonic() < deadline:
            self._fetch(0.1, 10_000)
            for other in list(self.log.consumers):
                if other is not self and other.group == self.group and not other.closed:
                    other._drive()
        if not self._assigned_once:
            raise LogError(
                f"group {self.group!r} gave this consumer no partitions within "
                f"{self.log.timeout:.0f} s"
            )

    # -- reading ----------------------------------------------------------------------------

    def _drive(self) -> None:
        """Take part in a rebalance (callbacks run in polls), unless polling elsewhere now."""
        if self._lock.acquire(blocking=False):
            try:
                if not self.closed:
                    self._fetch(0, 10_000)
            finally:
                self._lock.release()

    def _fetch(self, timeout: float, max_records: int) -> None:
        """Fetch into the pending batches, waiting up to `timeout` s for the first message only
        (librdkafka's consume waits for all `max_records`, or the whole timeout)."""
        if self._native is None:
            batches, eof = fetch_batches(self._c, max_records, timeout, self.log.logical)
        else:
            # the consumer queue first: rebalances, errors and callbacks (and the records of
            # any partition not routed to the native fetcher); the wait is in slices, so a
            # rebalance is served within one
            batches, eof = fetch_batches(self._c, max_records, 0.0, self.log.logical)
            if not batches:
                try:
                    more, ends = self._native.fetch(
                        max_records, min(timeout, _NATIVE_WAIT), self.log.logical
                    )
                except Exception:
                    self._reassign()  # what librdkafka handed over is gone: fetch it again
                    raise
                batches, eof = more, eof + ends
        for tp, batch in batches:
            if tp in self._positions:  # else from before a rebalance that took it away
                self._pending.append(PolledBatch(tp, batch))
        for tp, offset in eof:
            if tp in self._positions:
                self._eof[tp] = offset

    def _hand_out(self, budget: int) -> list[PolledBatch]:
        """Up to `budget` records of the pending batches; positions move past what is handed
        out, and to a partition's end once nothing of it is pending."""
        out: list[PolledBatch] = []
        rest: list[PolledBatch] = []
        for polled in self._pending:
            tp, batch = polled.partition, polled.batch
            if budget <= 0:
                rest.append(polled)
                continue
            if batch.num_rows > budget:
                rest.append(PolledBatch(tp, batch.slice(budget)))
                batch = batch.slice(0, budget)
            out.append(PolledBatch(tp, batch))
            budget -= batch.num_rows
            self._positions[tp] = batch.column(0)[batch.num_rows - 1].as_py() + 1
            self._at_end.discard(tp)
        self._pending = rest
        waiting = {polled.partition for polled in rest}
        for tp in [tp for tp in self._eof if tp not in waiting]:
            offset = self._eof.pop(tp)
            if tp in self._positions:
                self._positions[tp] = max(self._positions[tp], offset)
                self._at_end.add(tp)
        return out

    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[PolledBatch]:
        self._check()
        budget = max_records if max_records is not None else 100_000
        with self._lock:
            stale = time.monotonic() - self._last_refresh > 1.0
            if self.group is None and self._pattern is not None and stale:
                self._refresh_standalone()
            deadline = time.monotonic() + timeout
            while True:
                if not self._pending:
                    try:
                        self._fetch(max(0.0, deadline - time.monotonic()), budget)
                    except ck.KafkaException as e:
                        raise LogError(
                            f"reading from Kafka failed: {kafka_error(e.args[0])}"
                        ) from None
                out = self._hand_out(budget)
                if out or time.monotonic() >= deadline:
                    return out

    def caught_up(self) -> bool:
        """Whether every assigned partition has been read to its last stable offset."""
        with self._lock:
            if self.group is not None and not self._assigned_once:
                return False
            for tp in self._assigned:
                if self._positions.get(tp, 0) < self.log.offsets(*tp)[1]:
                    return False
            return not self._pending

    def behind(self, tp: TopicPartition) -> bool:
        """Records of `tp` are fetched and not handed out, or the partition's end has not been
        seen since its last records were: then the broker says whether more are there (the
        answer is kept until records come again)."""
        with self._lock:
            if any(p.partition == tp for p in self._pending):
                return True
            if tp not in self._positions or tp in self._at_end:
                return False
            position = self._positions[tp]
        if position < self.log.offsets(*tp)[1]:
            return True
        with self._lock:
            if self._positions.get(tp) == position and not any(
                p.partition == tp for p in self._pending
            ):
                self._at_end.add(tp)
        return False

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check()
        if self.group is None:
            raise LogError("a consumer without a group has nowhere to commit offsets")
        chosen = dict(self._positions if offsets is None else offsets)
        try:
            self.commit_raw([self.log.kafka_partition(tp, o) for tp, o in chosen.items()])
        except ck.KafkaException as e:
            raise LogError(
                f"Kafka refused the offsets of group {self.group!r}: {kafka_error(e.args[0])}"
            ) from None

    def commit_raw(self, parts: list[Any]) -> None:
        with self._lock:
            self._c.commit(offsets=parts, asynchronous=False)

    def group_metadata(self) -> Any:
        return self._c.consumer_group_metadata()

    def assignment(self) -> list[TopicPartition]:
        self._check()
        with self._lock:
            if self.group is not None and not self._assigned_once:
                self._wait_for_assignment()
            return list(self._assigned)

    @property
    def assigned_once(self) -> bool:
        """Whether the group has given this consumer its partitions (maybe none) yet."""
        return self._assigned_once

    def current_assignment(self) -> list[TopicPartition]:
        """The partitions assigned now, without waiting for a first assignment."""
        with self._lock:
            return list(self._assigned)

    def position(self, tp: TopicPartition) -> int:
        self.assignment()
        try:
            return self._positions[tp]
        except KeyError:
            raise LogError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer") from None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.assignment()
        with self._lock:
            if tp not in self._positions:
                raise LogError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer")
            self._positions[tp] = offset
            self._at_end.discard(tp)
            self._eof.pop(tp, None)
            self._pending = [p for p in self._pending if p.partition != tp]
            try:
                self._c.seek(self.log.kafka_partition(tp, offset))
            except ck.KafkaException:
                self._reassign()  # not fetching yet

    def _check(self) -> None:
        if self.closed:
            raise LogError("this consumer is closed")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with self._lock:
                if self._native is not None:
                    # first: librdkafka's destroy (in the consumer's close) waits for its queues
                    self._native.close()
                try:
                    self._c.close()
                except Exception as e:  # leaving the group is best effort
                    log.debug("closing a Kafka consumer: %s", e)
