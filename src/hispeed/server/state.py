"""What the server's parts share, below the app that wires them: the `ServerState` every
endpoint reads (the engine, push queries, command statuses, metrics) and `append_batch`, the
one path by which HTTP, WebSocket, MQTT and gRPC ingestion write records to a topic.

`hispeed.server.app` imports this module and the protocol modules (ws, mqtt, grpc_service,
dashboard, metrics); they import this module, never the app.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from starlette.concurrency import run_in_threadpool

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import InvalidRecordError, UnknownTopicError
from hispeed.log import AppendResult, TopicPartition
from hispeed.log.base import Log
from hispeed.log.embedded import EmbeddedLog
from hispeed.log.murmur2 import partitions_for_keys
from hispeed.server.ingest import IngestError
from hispeed.server.metrics import Metrics
from hispeed.server.streaming import QueryRegistry

log = logging.getLogger(__name__)


class ServerState:
    """What every endpoint shares: the engine, the running queries, the command statuses."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.queries = QueryRegistry(settings.max_push_queries_per_client)
        self.commands: dict[str, dict[str, Any]] = {}
        self.metrics = Metrics(engine)
        self.started = time.time()
        self.extra_stats: dict[str, Callable[[], dict[str, Any]]] = {}
        self.ingest = Ingestor(engine.log, settings)


#: told the outcome of a handed request: its records' places, or the error that refused them
Done = Callable[[list[dict[str, int]] | None, BaseException | None], None]
#: a `hand` call waiting for its group: its records, whom to tell, and what to run once the
#: group's callers are told
_Submitted = tuple[list[tuple[bytes | None, bytes | None]], Done, Callable[[], None] | None]


def _fail_all(group: list[_Submitted], error: BaseException) -> None:
    """Tell each caller of a group that `error` refused its records."""
    _tell(group, [(None, error)] * len(group))


def _tell(
    group: list[_Submitted],
    outcomes: list[tuple[list[dict[str, int]] | None, BaseException | None]],
) -> None:
    """Each caller of a group its outcome, in order; then each distinct `after` once."""
    afters: dict[Callable[[], None], None] = {}
    for (_, done, after), (places, error) in zip(group, outcomes, strict=True):
        try:
            done(places, error)
        except Exception:  # one caller's failure must not keep the others waiting
            log.exception("an ingestion callback failed")
        if after is not None:
            afters[after] = None
    for after in afters:
        try:
            after()
        except Exception:
            log.exception("an ingestion callback failed")


def _settle(future: asyncio.Future[list[dict[str, int]]]) -> Done:
    """A `Done` that settles `future` (unless its caller gave up on it)."""

    def done(places: list[dict[str, int]] | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(places)  # type: ignore[arg-type]

    return done


class Ingestor:
    """Where HTTP, WebSocket and MQTT ingestion hand their records to the log.

    A request whose records all go to one partition (one record; or a partition named) is
    handed over with `submit`: no thread hop, no topic lookup and no Arrow batch of its own per
    message. The requests of one pass of the event loop are appended together, one frame per
    partition, each acknowledged with its own offsets once the log has them. With the embedded
    log and fsync other than "always" that append runs on the event loop itself (a write to
    the page cache, tens of microseconds a group): measured on one core, waking the log's
    group-commit thread for each group and handing the results back cost about a quarter of
    the server's CPU per message. With fsync "always" (or Kafka) the groups go to the log's
    group committer (`append_async`), which waits `log_linger_ms` for more and fsyncs once
    per group on its own thread. Anything else (several records that may span partitions)
    goes through `append_batch` on a worker thread, in one log transaction, as before.

    A one-record request without a key goes to the partition the log picks for its group
    (Kafka's sticky partitioning), where the log picks for each request one by one.
    """

    def __init__(self, log_: Log, settings: Settings) -> None:
        self.log = log_
        self.settings = settings
        #: topics seen to exist: a deleted one is found out by its append, then created again
        self._known: set[str] = set()
        #: append on the event loop itself: a write to the page cache
        self.inline = isinstance(log_, EmbeddedLog) and log_.fsync_policy.mode != "always"
        self._ensuring: dict[str, asyncio.Future[None]] = {}
        #: what `submit` gathered in this pass of the event loop, per (topic, partition)
        self._gathering: dict[tuple[str, int | None], list[_Submitted]] = {}
        self._flush_scheduled = False
        self._writing: set[asyncio.Task[None]] = set()
        #: the log appended to on the event loop with no task, when `inline`
        self._embedded = log_ if self.inline and isinstance(log_, EmbeddedLog) else None

    def is_direct(self, batch: Any, partition: int | None) -> bool:
        """Whether `batch` goes to the log as one append (to one partition)."""
        n = len(batch.values)
        return (n == 1 and batch.partitions[0] is None) or (partition is not None and n > 0)

    async def append(
        self, name: str, batch: Any, partition: int | None = None
    ) -> list[dict[str, int]]:
        """Append an ingested batch (`IngestBatch`) all or nothing; each record's place."""
        if not self.is_direct(batch, partition):
            return await run_in_threadpool(
                append_batch, self.log, self.settings, name, batch, partition
            )
        if name not in self._known:
            await self._ensure(name)
        return await self.submit(name, list(zip(batch.keys, batch.values, strict=True)), partition)

    def submit(
        self, name: str, pairs: list[tuple[bytes | None, bytes | None]], partition: int | None
    ) -> asyncio.Future[list[dict[str, int]]]:
        """`hand`, with a future that gives each record's place once the log has it."""
        future: asyncio.Future[list[dict[str, int]]] = asyncio.get_running_loop().create_future()
        self.hand(name, pairs, partition, _settle(future))
        return future

    def hand(
        self,
        name: str,
        pairs: list[tuple[bytes | None, bytes | None]],
        partition: int | None,
        done: Done,
        after: Callable[[], None] | None = None,
    ) -> None:
        """Hand (key, value) records of a known topic over now, in the order of the calls;
        `done(places, None)` gets each record's place once the log has it (or `done(None,
        error)` what refused them), called on the event loop in the order of the calls; then
        `after()`, once for all the calls of a group that named it (a socket's answers
        written together).

        The requests of one pass of the event loop go to the log as one append per topic
        (and partition): one frame, and one hand-over between threads when there is one,
        for all of them, not one a message."""
        group = self._gathering.get((name, partition))
        if group is None:
            group = self._gathering[(name, partition)] = []
            if not self._flush_scheduled:
                self._flush_scheduled = True
                asyncio.get_running_loop().call_soon(self._flush)
        group.append((pairs, done, after))

    def _flush(self) -> None:
        self._flush_scheduled = False
        gathering, self._gathering = self._gathering, {}
        for (name, partition), group in gathering.items():
            embedded = self._embedded
            if (
                embedded is not None
                and name in self._known
                and self._write_now(embedded, name, partition, group)
            ):
                continue
            task = asyncio.ensure_future(self._write(name, partition, group))
            self._writing.add(task)  # held until done: the loop keeps only weak references
            task.add_done_callback(self._writing.discard)

    def _write_now(
        self, log_: EmbeddedLog, name: str, partition: int | None, group: list[_Submitted]
    ) -> bool:
        """`_write` on the event loop itself, with no task (a write to the page cache): False
        when the group needs `_write`'s way (the topic went missing, or one of several
        callers' records was refused: both found before anything was written)."""
        pairs = group[0][0] if len(group) == 1 else [p for ps, _, _ in group for p in ps]
        try:
            parts, offsets = log_.append_pairs(name, pairs, partition)
        except (UnknownTopicError, InvalidRecordError) as e:
            if isinstance(e, InvalidRecordError) and len(group) == 1:
                _fail_all(group, e)
                return True
            return False
        except Exception as e:
            _fail_all(group, e)
            return True
        _tell(group, _places_of(group, parts, offsets))
        return True

    async def _write(self, name: str, partition: int | None, group: list[_Submitted]) -> None:
        """One append for a gathered group; each caller told its own records' places."""
        pairs = group[0][0] if len(group) == 1 else [p for ps, _, _ in group for p in ps]
        try:
            result = await self.append_pairs(name, pairs, partition)
        except InvalidRecordError as e:
            if len(group) == 1:
                _fail_all(group, e)
                return
            # refused before anything was written: each on its own, only the culprit fails
            for one in group:
                await self._write(name, partition, [one])
            return
        except Exception as e:
            _fail_all(group, e)
            return
        _tell(group, _places_of(group, result.partitions.tolist(), result.offsets.tolist()))

    async def append_pairs(
        self, name: str, pairs: list[tuple[bytes | None, bytes | None]], partition: int | None
    ) -> AppendResult:
        """(key, value) records to one topic as one append, creating the topic when the
        settings allow; the log places them by key unless `partition` is given."""
        if name not in self._known:
            await self._ensure(name)
        try:
            return await self._append(name, pairs, partition)
        except UnknownTopicError:
            self._known.discard(name)  # deleted since: create it again, as a first append would
            await self._ensure(name)
            return await self._append(name, pairs, partition)

    async def _append(
        self, name: str, pairs: list[tuple[bytes | None, bytes | None]], partition: int | None
    ) -> AppendResult:
        if self.inline:
            return self.log.append(name, pairs, partition=partition)
        append_async = getattr(self.log, "append_async", None)
        if append_async is not None:
            result: AppendResult = await append_async(name, pairs, partition=partition)
            return result
        return await run_in_threadpool(
            functools.partial(self.log.append, name, pairs, partition=partition)
        )

    def known(self, name: str) -> bool:
        """Whether the topic is known to exist: an append to it goes straight to the log."""
        return name in self._known

    async def ensure(self, name: str) -> None:
        """Create the topic, or check that it exists (UnknownTopicError when it does not and
        may not be created). A caller that hands several appends over in an order that must
        hold (a WebSocket's messages) awaits this first: appends that each wait for it resume
        in an order the event loop picks."""
        await self._ensure(name)

    def _ensure(self, name: str) -> asyncio.Future[None]:
        """The topic's creation or check, shared by every append waiting for it."""
        pending = self._ensuring.get(name)
        if pending is None:
            pending = asyncio.ensure_future(
                run_in_threadpool(_ensure_topic, self.log, self.settings, name)
            )
            self._ensuring[name] = pending

            def done(f: asyncio.Future[None]) -> None:
                del self._ensuring[name]
                if not f.cancelled() and f.exception() is None:
                    self._known.add(name)

            pending.add_done_callback(done)
        return pending


def _places_of(
    group: list[_Submitted], parts: list[int], offsets: list[int]
) -> list[tuple[list[dict[str, int]] | None, BaseException | None]]:
    """Each caller's share of a group's places, in order."""
    out: list[tuple[list[dict[str, int]] | None, BaseException | None]] = []
    at = 0
    for ps, _, _ in group:
        n = len(ps)
        out.append(
            ([{"partition": parts[i], "offset": offsets[i]} for i in range(at, at + n)], None)
        )
        at += n
    return out


def _ensure_topic(log_: Log, settings: Settings, name: str) -> None:
    """The topic exists afterwards, or UnknownTopicError when it may not be created."""
    if name not in log_.list_topics(internal=True):
        if not settings.auto_create_topics:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        log_.create_topic(name, settings.default_partitions, exist_ok=True)


#: the partition a request's null-keyed records go to, taking turns from request to request
#: (as the log does for a batch): `next()` on a count is atomic under the GIL
_null_key_turn = itertools.count()


def append_batch(
    log_: Log, settings: Settings, name: str, batch: Any, partition: int | None
) -> list[dict[str, int]]:
    """Append an ingested batch to a topic, all or nothing, across a crash too; returns each
    record's place.

    A request whose records all go to one partition is one append (one frame of the log, which
    a crash either finishes or truncates). Records bound for several partitions go in one log
    transaction: a crash of the process (or of the machine under fsync `always`) leaves the
    whole request or none of it, never some partitions' share (issue 16, defect 8)."""
    _ensure_topic(log_, settings, name)
    n = len(batch.values)
    records = pa.record_batch(
        {"key": pa.array(batch.keys, pa.binary()), "value": pa.array(batch.values, pa.binary())}
    )
    if partition is not None or n == 0:
        return _places(log_.append(name, records, partition=partition))
    count = len(log_.describe_topic(name).partitions)
    if count == 1 and all(p is None for p in batch.partitions):
        return _places(log_.append(name, records, partition=0))
    target = _targets(name, records.column(0), batch.partitions, count)
    first = int(target[0])
    if (target == first).all():  # the fast path: one partition, one append
        return _places(log_.append(name, records, partition=first))
    # one transaction for every partition's share: it lands whole or not at all
    order = np.argsort(target, kind="stable")
    bounds = np.searchsorted(target[order], np.arange(count + 1))
    txn = log_.transaction()
    try:
        for part in range(count):
            rows = order[bounds[part] : bounds[part + 1]]
            if len(rows):
                txn.append(name, records.take(pa.array(rows)), partition=part)
    except BaseException:
        txn.abort()
        raise
    ranges = txn.commit()
    out: list[dict[str, int]] = [{} for _ in range(n)]
    for part in range(count):
        rows = order[bounds[part] : bounds[part + 1]]
        if len(rows):
            base = ranges[TopicPartition(name, part)][0]
            for j, i in enumerate(rows.tolist()):
                out[i] = {"partition": part, "offset": base + j}
    return out


def _targets(
    name: str, keys: pa.Array, chosen: list[int | None], count: int
) -> npt.NDArray[np.int32]:
    """Each record's partition: the one it names (REST Proxy), else the key's (murmur2, as
    the log and Kafka's clients place it), else one partition for all of the request's
    null-keyed records, taking turns from request to request."""
    target = partitions_for_keys(keys, count)
    if keys.null_count:
        target[target < 0] = next(_null_key_turn) % count
    for i, part in enumerate(chosen):
        if part is None:
            continue
        if part >= count:
            raise IngestError(f"records[{i}].partition {part} does not exist: {name!r} has {count}")
        target[i] = part
    return target


def _places(result: AppendResult) -> list[dict[str, int]]:
    return [{"partition": p, "offset": o} for p, o in result.pairs()]


__all__ = ["Ingestor", "ServerState", "append_batch"]
