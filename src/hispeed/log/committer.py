"""Group commit: many small appends from many callers written as one append per partition.

Ingestion receives records one at a time (an HTTP request, a WebSocket or MQTT message, an
`insert` call), each wanting to know where its records landed. Appending each on its own costs
a frame, a write and (under `fsync=always`) an fsync per record. `GroupCommitter` gathers the
appends that arrive within a short linger (`log_linger_ms`, as Kafka's producer `linger.ms`)
and appends them together: one frame per partition, one write, the fsync policy applied once
per group. Each caller is then told its own records' partitions and offsets, in its own order.

Callers reach it through the log (`Log.append_async` from asyncio code, `Log.append_future`
from threads); `Log.append` stays the direct, unbatched path.

What a group keeps, compared with the same appends made one by one: each caller's records
stay together and in order, callers are ordered by arrival, and every partition receives
its records in that order. A group's null-keyed records go to one partition together (as
Kafka's sticky partitioner sends a batch), where one-by-one appends would take turns.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

import pyarrow as pa

from hispeed.errors import InvalidRecordError, LogError
from hispeed.log.records import AppendResult, to_append_batch

log = logging.getLogger(__name__)

#: the most records one group appends (more wait for the next group)
DEFAULT_MAX_RECORDS = 65_536


class Appender(Protocol):
    """What the committer appends through: a log's direct `append`."""

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> AppendResult:
        """Append now; returns where each record landed."""
        ...


@dataclass(slots=True)
class _Request:
    topic: str
    partition: int | None
    records: list[Any] | pa.RecordBatch
    rows: int
    future: Future[AppendResult] | asyncio.Future[AppendResult]
    loop: asyncio.AbstractEventLoop | None  # set for an asyncio caller's future


def _normalize(records: Any) -> tuple[list[Any] | pa.RecordBatch, int]:
    """What a caller gave, as a list of Python records or one Arrow batch, and its rows."""
    if isinstance(records, pa.RecordBatch | pa.Table):
        batch = to_append_batch(records)
        return batch, batch.num_rows
    if not isinstance(records, list):
        records = list(records)
    return records, len(records)


class GroupCommitter:
    """Gathers appends for `linger_ms` and writes each topic's (and partition's) as one.

    One background thread does the appending; `append_future` and `append_async` queue a
    request and return at once. `close()` writes what is queued and stops the thread.
    """

    def __init__(
        self,
        log_: Appender,
        linger_ms: float = 2.0,
        *,
        max_records: int = DEFAULT_MAX_RECORDS,
    ) -> None:
        if linger_ms < 0:
            raise LogError(f"the linger cannot be negative ({linger_ms} ms)")
        self._log = log_
        self.linger_s = linger_ms / 1000
        self.max_records = max_records
        self._cond = threading.Condition(threading.Lock())
        self._queue: list[_Request] = []
        self._queued_rows = 0
        self._first_at = 0.0
        self._closing = False
        #: groups written and requests served (what tests and benchmarks look at)
        self.groups = 0
        self.requests = 0
        self._thread = threading.Thread(target=self._run, name="hispeed-group-commit", daemon=True)
        self._thread.start()

    # -- callers --------------------------------------------------------------------------

    def append_future(
        self, topic: str, records: Any, *, partition: int | None = None
    ) -> Future[AppendResult]:
        """Queue records for the next group; the future gives where they landed.

        `records` takes what `Log.append` takes (Records, dicts, (key, value) pairs, an Arrow
        batch or table). The future fails with the error the append raised: records of one
        caller that the log refuses (say, no key for a compacted topic) fail that caller only.
        """
        future: Future[AppendResult] = Future()
        self._queue_request(topic, records, partition, future, None)
        return future

    async def append_async(
        self, topic: str, records: Any, *, partition: int | None = None
    ) -> AppendResult:
        """Queue records for the next group and wait, without blocking the event loop, until
        they are appended; returns where they landed (as `append_future`)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[AppendResult] = loop.create_future()
        self._queue_request(topic, records, partition, future, loop)
        return await future

    def _queue_request(
        self,
        topic: str,
        records: Any,
        partition: int | None,
        future: Future[AppendResult] | asyncio.Future[AppendResult],
        loop: asyncio.AbstractEventLoop | None,
    ) -> None:
        normalized, rows = _normalize(records)
        request = _Request(topic, partition, normalized, rows, future, loop)
        with self._cond:
            if self._closing:
                raise LogError("the log is closed")
            if not self._queue:
                self._first_at = time.monotonic()
                self._cond.notify()  # the thread waits for a first request
            self._queue.append(request)
            self._queued_rows += rows
            if self._queued_rows >= self.max_records:
                self._cond.notify()  # a full group goes without waiting out the linger

    def close(self) -> None:
        """Write what is queued, then stop; later appends raise `LogError`."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    # -- the committing thread ------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing, and nothing left
                deadline = self._first_at + self.linger_s
                while not self._closing and self._queued_rows < self.max_records:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                taken, self._queue, self._queued_rows = self._queue, [], 0
            try:
                self._commit(taken)
            except BaseException as e:  # never leave a caller waiting
                log.exception("group commit failed")
                _finish([(r, None, e) for r in taken])

    def _commit(self, requests: list[_Request]) -> None:
        by_target: dict[tuple[str, int | None], list[_Request]] = {}
        for r in requests:
            by_target.setdefault((r.topic, r.partition), []).append(r)
        done: list[tuple[_Request, AppendResult | None, BaseException | None]] = []
        for (topic, partition), group in by_target.items():
            done += self._append_group(topic, partition, group)
        self.groups += 1
        self.requests += len(requests)
        _finish(done)

    def _append_group(
        self, topic: str, partition: int | None, group: list[_Request]
    ) -> list[tuple[_Request, AppendResult | None, BaseException | None]]:
        try:
            result = self._log.append(topic, self._merge(group), partition=partition)
        except InvalidRecordError as e:
            if len(group) == 1:
                return [(group[0], None, e)]
            # refused before anything was written: one by one, only the culprit fails
            return [self._append_one(r) for r in group]
        except Exception as e:
            return [(r, None, e) for r in group]
        out: list[tuple[_Request, AppendResult | None, BaseException | None]] = []
        at = 0
        for r in group:
            piece = AppendResult(
                result.partitions[at : at + r.rows], result.offsets[at : at + r.rows]
            )
            out.append((r, piece, None))
            at += r.rows
        return out

    def _append_one(
        self, r: _Request
    ) -> tuple[_Request, AppendResult | None, BaseException | None]:
        try:
            return r, self._log.append(r.topic, r.records, partition=r.partition), None
        except Exception as e:
            return r, None, e

    def _merge(self, group: list[_Request]) -> list[Any] | pa.RecordBatch:
        """The group's records as one list (Python records) or one batch (any Arrow)."""
        if len(group) == 1:
            return group[0].records
        if all(isinstance(r.records, list) for r in group):
            return list(itertools.chain.from_iterable(r.records for r in group))
        batches = [
            r.records if isinstance(r.records, pa.RecordBatch) else to_append_batch(r.records)
            for r in group
        ]
        return pa.concat_batches(batches)


def _finish(done: list[tuple[_Request, AppendResult | None, BaseException | None]]) -> None:
    """Hand each caller its result: threads' futures at once, each event loop's in one call."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any, Any]]] = {}
    for r, result, error in done:
        if r.loop is None:
            fut: Any = r.future
            if error is not None:
                fut.set_exception(error)
            else:
                fut.set_result(result)
        else:
            by_loop.setdefault(r.loop, []).append((r.future, result, error))
    for loop, items in by_loop.items():
        # a closed loop raises RuntimeError: nobody waits there any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_resolve, items)


def _resolve(items: list[tuple[asyncio.Future[AppendResult], Any, Any]]) -> None:
    for fut, result, error in items:
        if fut.done():  # its caller was cancelled
            continue
        if error is not None:
            fut.set_exception(error)
        else:
            fut.set_result(result)
