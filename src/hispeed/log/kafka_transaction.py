"""Transactions of the Kafka backend: a Kafka transaction of a transactional producer kept per
owner (a query, a connector), whose input offsets go in with `send_offsets_to_transaction` and
the group metadata of the owner's consumer (so a worker that lost its partitions is fenced);
and, for processing.guarantee at_least_once, appends then offsets, not atomic together.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Mapping
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from hispeed.errors import LogError, LogUnavailableError, TransactionError
from hispeed.log.base import AppendResult, TopicPartition, Transaction
from hispeed.log.kafka_client import ck, kafka_error

log = logging.getLogger(__name__)

#: seconds a transactional call may run past its own timeout before it is given up (librdkafka
#: answers within its timeout, except where it ignores it: see the module's notes)
OVERRUN_GRACE = 5.0
#: librdkafka's errors of a broker out of reach: the caller may try again later
_AWAY = frozenset({"_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT", "_MSG_TIMED_OUT"})


class TransactionLog(Protocol):
    """What a transaction needs of its Kafka log (`KafkaLog` is one)."""

    timeout: float
    transaction_timeout_ms: int
    #: per group, the partitions whose committed offsets a read has seen
    shown_offsets: dict[str, set[TopicPartition]]

    def client_config(self, **extra: Any) -> dict[str, Any]: ...

    def logical(self, name: str) -> str | None: ...

    def kafka_partition(self, tp: TopicPartition, offset: int | None = None) -> Any: ...

    def route(
        self, topic: str, records: Any, partition: int | None
    ) -> tuple[pa.RecordBatch, np.ndarray]: ...

    def produce(
        self,
        producer: Any,
        topic: str,
        batch: pa.RecordBatch,
        target: np.ndarray,
        acks: Acks,
        *,
        bulk: bool = False,
    ) -> None: ...

    def group_metadata(self, group: str) -> Any: ...

    def offsets(self, topic: str, partition: int) -> tuple[int, int]: ...

    def committed_offsets(
        self, group: str, topic: str | None = None
    ) -> dict[TopicPartition, int]: ...

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> AppendResult: ...

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None: ...

    def notify_append(self) -> None: ...


class Acks:
    """Delivery reports of one append (one topic). An idempotent producer delivers each
    partition's records in the order they were produced, and reports them in that order: each
    partition's offsets, as they arrive, belong to its rows in order (no callback per row)."""

    def __init__(self, target: np.ndarray) -> None:
        self.target = target
        #: deliveries to come (a transaction's bulk append reports only each partition's
        #: first and last record, and never reads this)
        self.pending = len(target)
        self.errors: list[str] = []
        self.by_partition: dict[tuple[str, int], list[int]] = {}

    def done(self, err: Any, msg: Any) -> None:
        self.pending -= 1
        if err is not None:
            self.errors.append(kafka_error(err))
            return
        key = (msg.topic(), msg.partition())
        offsets = self.by_partition.get(key)
        if offsets is None:
            self.by_partition[key] = [msg.offset()]
        else:
            offsets.append(msg.offset())

    @property
    def offsets(self) -> np.ndarray:
        """Each row's offset, in the batch's order (-1 where it was not written)."""
        out = np.full(len(self.target), -1, np.int64)
        for (_, partition), offsets in self.by_partition.items():
            rows = np.flatnonzero(self.target == partition)
            if len(rows) == len(offsets):
                out[rows] = offsets
        return out

    @property
    def ranges(self) -> dict[tuple[str, int], tuple[int, int]]:
        return {key: (min(o), max(o) + 1) for key, o in self.by_partition.items()}


class OverrunError(Exception):
    """A call that did not return within its deadline (it goes on, on its own thread)."""


class _Call:
    """One call handed to a `Caller`, and its outcome."""

    def __init__(self, fn: Any, args: tuple[Any, ...]) -> None:
        self.fn = fn
        self.args = args
        self.finished = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.value = self.fn(*self.args)
        except BaseException as e:  # handed to the waiting thread, which raises it
            self.error = e
        finally:
            self.finished.set()


class Caller:
    """Runs one client's blocking calls, one at a time, on a daemon thread of its own, so a
    call that never returns holds that thread and not its caller's (a daemon thread does not
    keep the process from ending, nor does its call)."""

    def __init__(self, name: str) -> None:
        self._calls: queue.SimpleQueue[_Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (call := self._calls.get()) is not None:
            call.run()

    def call(self, deadline: float, fn: Any, *args: Any) -> Any:
        """`fn(*args)` on the thread; raises OverrunError if it has not returned in `deadline` s."""
        call = _Call(fn, args)
        self._calls.put(call)
        if not call.finished.wait(deadline):
            raise OverrunError
        if call.error is not None:
            raise call.error
        return call.value

    def retire(self, last: Any = None) -> None:
        """End the thread after the calls handed to it, and `last()` (if given): at once if it
        is idle, else when its call returns (never, if it never does)."""
        if last is not None:
            self._calls.put(_Call(last, ()))
        self._calls.put(None)

    def join(self, timeout: float) -> bool:
        """Wait up to `timeout` s for the thread to end; whether it has."""
        self._thread.join(timeout)
        return not self._thread.is_alive()


class TxnProducer:
    """One owner's transactional producer; one transaction at a time. Its blocking calls run
    on its `Caller`'s thread, given up after the log's timeout and `OVERRUN_GRACE`."""

    def __init__(self, log_: TransactionLog, transactional_id: str) -> None:
        self.log = log_
        self.transactional_id = transactional_id
        self.lock = threading.Lock()
        #: fenced, failed for good, or given up: the owner's next transaction makes another
        self.fatal = False
        self._retired = False
        self.caller = Caller(f"hispeed-txn-{transactional_id}")
        self.producer = ck.Producer(
            log_.client_config(
                **{
                    "client.id": "hispeed",
                    "allow.auto.create.topics": False,
                    "transactional.id": transactional_id,
                    "transaction.timeout.ms": log_.transaction_timeout_ms,
                    "enable.idempotence": True,
                    "acks": "all",
                    "linger.ms": 2,
                    "batch.num.messages": 10_000,
                    "queue.buffering.max.messages": 1_000_000,
                }
            )
        )
        try:
            # also fences a producer of the same id given up before, and ends its transaction
            self.call(self.producer.init_transactions, log_.timeout)
        except OverrunError:
            self.abandon()
            raise LogUnavailableError(
                f"Kafka did not start transactions for {transactional_id!r} within "
                f"{self.deadline:.0f} s (the broker away?)"
            ) from None
        except ck.KafkaException as e:
            self.abandon()
            err = e.args[0]
            text = f"Kafka refused transactions for {transactional_id!r}: {kafka_error(err)}"
            if away(err):
                raise LogUnavailableError(text) from None
            raise TransactionError(text) from None

    @property
    def deadline(self) -> float:
        """Seconds a blocking call is given: the log's timeout, and a grace."""
        return self.log.timeout + OVERRUN_GRACE

    def call(self, fn: Any, *args: Any) -> Any:
        """`fn(*args)` on the producer's thread; OverrunError after `deadline` s."""
        return self.caller.call(self.deadline, fn, *args)

    def abandon(self) -> None:
        """Use this producer no more: it is closed on its thread once its call (if one is under
        way) returns. Another with the same transactional.id fences it."""
        self.fatal = True
        if not self._retired:
            self._retired = True
            self.caller.retire(self._close)

    def _close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort: the broker may be gone
            if self.producer.flush(1.0):
                self.producer.purge()  # the broker away: else close() waits for them
            self.producer.close()

    def close(self) -> None:
        """Close the producer (waiting a moment for a call under way: not for one that hangs)."""
        self.abandon()
        if not self.caller.join(2.0):
            log.warning(
                "Kafka producer %r left to close by itself: a call of it does not return",
                self.transactional_id,
            )


def away(err: Any) -> bool:
    """Whether a KafkaError says the broker is out of reach now (retriable)."""
    retriable = getattr(err, "retriable", None)
    return bool(retriable is not None and retriable()) or getattr(err, "name", str)() in _AWAY


class KafkaTransaction(Transaction):
    def __init__(self, log_: TransactionLog, producer: TxnProducer) -> None:
        self.log = log_
        self.owner = producer
        self.producer = producer.producer
        self.acks: list[Acks] = []
        self.sent: dict[str, set[TopicPartition]] = {}  # the offsets' partitions, by group
        self.begun = False
        self.done = False
        self.state = "open"  # then committed, aborted or failed
        producer.lock.acquire()

    def _check(self) -> None:
        if self.done:
            raise TransactionError(f"this transaction is already {self.state}")

    def _begin(self) -> None:
        self._check()
        if not self.begun:
            self._call(self.producer.begin_transaction)
            self.begun = True

    def _call(self, fn: Any, *args: Any) -> Any:
        """A blocking call of the producer. Whatever fails in a way that leaves the
        transaction's outcome unknown (a call given up, a commit that timed out) gives the
        producer up: the next one's start settles that outcome (see the module's notes)."""
        try:
            return self.owner.call(fn, *args)
        except OverrunError:
            self._give_up()
            name = getattr(fn, "__name__", "a transactional call")
            raise LogUnavailableError(
                f"Kafka did not answer {name} within {self.owner.deadline:.0f} s (the broker "
                "away or restarting?): the transaction is given up and its batch will be "
                "processed again from the last commit"
            ) from None
        except ck.KafkaException as e:
            err = e.args[0]
            if err.fatal():
                self._give_up()
                raise TransactionError(
                    f"this worker's transactions were fenced or failed for good "
                    f"({kafka_error(err)}): another worker has taken its partitions over"
                ) from None
            if getattr(err, "txn_requires_abort", lambda: False)():
                self.abort()
            else:
                self._give_up()
            text = f"Kafka transaction failed: {kafka_error(err)}"
            if away(err):
                raise LogUnavailableError(text) from None
            raise TransactionError(text) from None

    def _give_up(self) -> None:
        self.owner.abandon()
        self._release("failed")

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> None:
        self._check()
        batch, target = self.log.route(topic, records, partition)
        if batch.num_rows == 0:
            return
        self._begin()
        acks = Acks(target)
        self.acks.append(acks)
        try:
            self.log.produce(self.producer, topic, batch, target, acks, bulk=True)
        except TransactionError:
            self.abort()  # part of the batch is in: none of the transaction may commit
            raise

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        self._begin()
        parts = [self.log.kafka_partition(tp, o) for tp, o in offsets.items()]
        metadata = self.log.group_metadata(group)
        self._call(self.producer.send_offsets_to_transaction, parts, metadata, self.log.timeout)
        self.sent.setdefault(group, set()).update(offsets)

    def commit(self) -> dict[TopicPartition, tuple[int, int]]:
        self._check()
        if self.begun:
            self._call(self.producer.commit_transaction, self.log.timeout)
        self._release("committed")
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for acks in self.acks:
            if acks.errors:
                raise TransactionError(f"Kafka refused records: {acks.errors[0]}")
            for (topic, p), (first, end) in acks.ranges.items():
                name = self.log.logical(topic) or topic
                tp = TopicPartition(name, p)
                have = ranges.get(tp, (first, end))
                ranges[tp] = (min(have[0], first), max(have[1], end))
        self._await_visible(ranges)
        if self.acks:
            self.log.notify_append()
        return ranges

    def _await_visible(self, ranges: Mapping[TopicPartition, tuple[int, int]]) -> None:
        """Kafka confirms a commit before it writes the commit markers that make the records
        readable (read_committed): wait for each partition's last stable offset to pass them,
        so that a read after commit() sees them, as on the embedded log. A transaction left
        open by another writer holds that offset back until it ends, at most its timeout.
        The group offsets likewise: a group that has no others yet shows them a moment later."""
        deadline = time.monotonic() + self.log.transaction_timeout_ms / 1000 + 1
        for tp, (_, end) in ranges.items():
            while self.log.offsets(*tp)[1] < end and time.monotonic() < deadline:
                time.sleep(0.001)
        for group, partitions in self.sent.items():
            shown = self.log.shown_offsets.setdefault(group, set())
            if partitions <= shown:
                continue  # shown before: a read now waits while the broker says "unstable"
            with contextlib.suppress(LogError):  # committed all the same: only slow to show
                while time.monotonic() < deadline:
                    shown |= set(self.log.committed_offsets(group)) & partitions
                    if partitions <= shown:
                        break
                    time.sleep(0.001)

    def abort(self) -> None:
        if self.done:
            return
        try:
            if self.begun:
                self.owner.call(self.producer.abort_transaction, self.log.timeout)
        except OverrunError:
            self.owner.abandon()  # the next producer's start aborts the transaction
        except ck.KafkaException as e:
            # the transaction is in an unknown state: the next producer's start settles it
            self.owner.abandon()
            if not e.args[0].fatal():
                log.warning("Kafka transaction not aborted: %s", kafka_error(e.args[0]))
        finally:
            self._release("aborted")

    def _release(self, state: str) -> None:
        if not self.done:
            self.done = True
            self.state = state
            self.owner.lock.release()


class AtLeastOnce(Transaction):
    """processing.guarantee = at_least_once: the appends, acknowledged, then the offsets."""

    def __init__(self, log_: TransactionLog) -> None:
        self.log = log_
        self.appends: list[tuple[str, Any, int | None]] = []
        self.offsets: list[tuple[str, Mapping[TopicPartition, int]]] = []

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> None:
        self.appends.append((topic, records, partition))

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self.offsets.append((group, dict(offsets)))

    def commit(self) -> dict[TopicPartition, tuple[int, int]]:
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for topic, records, partition in self.appends:
            result = self.log.append(topic, records, partition=partition)
            for p, o in result.pairs():
                tp = TopicPartition(topic, p)
                first, end = ranges.get(tp, (o, o + 1))
                ranges[tp] = (min(first, o), max(end, o + 1))
        for group, offsets in self.offsets:
            self.log.commit_offsets(group, offsets)
        return ranges

    def abort(self) -> None:
        self.appends.clear()
        self.offsets.clear()
