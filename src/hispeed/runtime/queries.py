"""Push queries: rows as they happen (pull queries are in runtime/pull.py).

A push query that filters and projects a stream attaches to a `SourceFeed`
(`runtime/feeds.py`): one reader of the stream's topic per starting position, shared by every
push query on it. A push query that aggregates, joins, explodes or reads a table runs as a
transient task of its own, which the runtime manager runs beside the persistent ones.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

from hispeed.catalog import Source
from hispeed.errors import HispeedError
from hispeed.jupyter import show_live
from hispeed.ops.decode import split_window
from hispeed.plan.model import QueryPlan
from hispeed.runtime.feeds import SourceFeed, Subscriber, shareable
from hispeed.runtime.manager import QueryManager
from hispeed.runtime.task import QueryTask

_transient = itertools.count()


class Tombstone(dict[str, Any]):
    """A row a push query over a table hands on for a deleted key: the key's columns (and
    window), null elsewhere, as ksqlDB sends a tombstone."""


class PushQuery:
    """Rows of a push query as they happen; iterate it, or `async for` it. Close it when done.

    A push query that filters and projects a stream shares its source's reader (a
    `SourceFeed`). Any other runs as a transient query that writes its changes to a private
    topic this object reads, so a push query may aggregate, window and join like a persistent
    one.
    """

    def __init__(
        self,
        runtime: QueryManager,
        plan: QueryPlan,
        *,
        from_beginning: bool | None,
        query_id: str | None = None,
        deletions: bool = True,
    ) -> None:
        """`query_id`: the id to go by (ksqlDB's SCALABLE_PUSH_QUERY_<uuid> for a scalable
        push query, plan/scalable.py); without it, transient_<SOURCE>_<n> as ksqlDB names
        a transient query. `deletions`: whether a table's deleted keys are handed on (as
        `Tombstone` rows; a scalable push query does not, and they count for no LIMIT)."""
        self.deletions = deletions
        self.runtime = runtime
        self.context = context = runtime.context
        self.plan = plan
        self.limit = plan.limit
        self.delivered = 0
        self.closed = False
        self.columns = [c.name for c in plan.outputs]
        self.feed: SourceFeed | None = None
        self.subscriber: Subscriber | None = None
        #: the keys (with their windows) of the table rows sent so far
        self._sent_keys: set[bytes | None] = set()
        if shareable(plan):
            # as ksqlDB: from now on unless asked to start from the beginning
            with context.lock:
                self.feed, self.subscriber = runtime.feeds.attach(plan, bool(from_beginning))
            self.id = query_id or f"transient_{plan.source.name}_{next(_transient)}"
            return
        self._start_task(from_beginning, query_id)

    def _start_task(self, from_beginning: bool | None, query_id: str | None) -> None:
        context, plan = self.context, self.plan
        log, properties = context.log, context.properties
        n = next(_transient)
        self.id = query_id or f"transient_{plan.source.name}_{n}"
        topic = f"_hispeed_transient_{n}_{id(self):x}"
        self.sink = Source(
            name=f"_TRANSIENT_{n}",
            kind=plan.sink_kind,
            key_columns=plan.key_columns,
            value_columns=plan.value_columns,
            topic=topic,
            key_format="JSON",
            value_format="JSON",
            window=plan.window_info,
        )
        partitions = len(log.describe_topic(plan.source.topic).partitions)
        log.create_topic(topic, partitions)
        # as ksqlDB: a push query starts from now on unless asked to start from the beginning
        reset = "earliest" if from_beginning else "latest"
        with context.lock:
            saved = properties.get("auto.offset.reset")
            properties["auto.offset.reset"] = reset
            try:
                self.task = QueryTask(context, self.id, plan, self.sink, tables_from_beginning=True)
            finally:
                if saved is None:
                    properties.pop("auto.offset.reset", None)
                else:
                    properties["auto.offset.reset"] = saved
            self.runtime.tasks[self.id] = self.task
        self.runtime.wake()
        self.consumer = log.consumer(topic, auto_offset_reset="earliest")

    def show(self, *, rows: int = 20, seconds: float = 10.0) -> list[dict[str, Any]]:
        """In Jupyter: show the query's latest `rows` rows in the cell's output, updated in
        place as they arrive, until its LIMIT or `seconds` s; returns the rows received."""
        return show_live(self.poll, self.columns, rows=rows, seconds=seconds, limit=self.limit)

    def _ipython_display_(self) -> None:
        # a notebook displaying the query (`display(q)`, or `q` last in a cell) watches it
        self.show()

    def poll(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """The rows that arrived within `timeout` seconds (maybe none)."""
        if self.closed:
            return []
        deadline = time.monotonic() + timeout
        while True:
            if not self.runtime.running:
                self.runtime.drain(max_rounds=1)
            failure = self.runtime.failed.get(self.id)
            if failure is not None:
                # its subscriber is the one to tell: a push query is not retried behind it
                self.close()
                raise HispeedError(f"push query {self.id} failed: {failure.message}")
            rows = self._read(max(0.0, min(0.05, deadline - time.monotonic())))
            if rows or time.monotonic() >= deadline:
                return self._limit(rows)

    def _read(self, wait: float) -> list[dict[str, Any]]:
        if self.feed is not None:
            return self._read_feed(self.feed, wait)
        out = []
        window = self.sink.window
        for item in self.consumer.poll(wait):
            key_bytes = item.batch.column("key")
            raw_keys = key_bytes.to_pylist()
            starts: list[Any] = [None] * len(key_bytes)
            ends: list[Any] = [None] * len(key_bytes)
            if window is not None:
                key_bytes, start_arr, end_arr = split_window(key_bytes, window.kind, window.size_ms)
                starts, ends = start_arr.to_pylist(), end_arr.to_pylist()
            keys = key_bytes.to_pylist()
            values = item.batch.column("value").to_pylist()
            for raw, k, v, ws, we in zip(raw_keys, keys, values, starts, ends, strict=True):
                if v is None and (self.sink.kind != "TABLE" or not self.deletions):
                    continue
                if self.sink.kind == "TABLE":
                    # as ksqlDB: a deletion only for a row this query has sent (a WHERE that
                    # a row never matched deletes nothing the subscriber saw)
                    if v is None:
                        if raw not in self._sent_keys:
                            continue
                        self._sent_keys.discard(raw)
                    else:
                        self._sent_keys.add(raw)
                row: dict[str, Any] = {"WINDOWSTART": ws, "WINDOWEND": we}
                key = json.loads(k) if k else None
                if len(self.plan.key) == 1 and not isinstance(key, dict):
                    row[self.plan.key[0].name] = key
                elif isinstance(key, dict):
                    row.update(key)
                # a table's deleted row arrives as its key with null values, as in ksqlDB
                row.update(json.loads(v) if v is not None else {})
                kind = Tombstone if v is None else dict
                out.append(kind((c, row.get(c)) for c in self.columns))
        return out

    def _read_feed(self, feed: SourceFeed, wait: float) -> list[dict[str, Any]]:
        subscriber = self.subscriber
        assert subscriber is not None
        for attempt in range(2):
            with self.context.lock:
                feed.pump(0)
                rows, subscriber.rows = subscriber.rows, []
            if rows or attempt or wait <= 0:
                return rows
            self.context.log.wait(wait)
        return []

    def _limit(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if self.limit is not None:
            rows = rows[: max(self.limit - self.delivered, 0)]
            self.delivered += len(rows)
            if self.delivered >= self.limit:
                self.close()
        return rows

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while not self.closed:
            yield from self.poll(1.0)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[dict[str, Any]]:
        while not self.closed:
            for row in await asyncio.to_thread(self.poll, 0.5):
                yield row

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        log = self.context.log
        with self.context.lock:
            if self.feed is not None:
                assert self.subscriber is not None
                self.runtime.feeds.detach(self.feed, self.subscriber)
                return
            self.runtime.tasks.pop(self.id, None)
            self.runtime.failed.pop(self.id, None)
            self.runtime.failures.pop(self.id, None)
            self.task.close()
            self.consumer.close()
            for topic in (self.sink.topic, self.task.changelog_topic):
                if topic in log.list_topics(internal=True):
                    log.delete_topic(topic)

    def __enter__(self) -> PushQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
