"""Push queries: rows as they happen (pull queries are in runtime/pull.py).

A push query that filters and projects a stream attaches to a `SourceFeed`: one reader of
the stream's topic per starting position, which decodes each batch once and hands it to every
subscriber attached, so a thousand dashboards on one stream read its topic once. A push query
that aggregates, joins, explodes or reads a table runs as a transient task of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Source
from hispeed.functions.registry import EvalContext
from hispeed.log.base import Consumer
from hispeed.plan.model import QueryPlan, field_name
from hispeed.runtime.decode import SourceDecoder, _split_window
from hispeed.runtime.task import QueryTask

if TYPE_CHECKING:
    from hispeed.engine import Engine

_transient = itertools.count()


class SourceFeed:
    """One reader of a stream's topic, shared by the push queries that start where it is.

    Each batch is decoded once; every subscriber filters and projects the same frame.
    """

    def __init__(self, engine: Engine, source: Source, from_beginning: bool) -> None:
        self.engine = engine
        self.source = source
        self.from_beginning = from_beginning
        self.decoder = SourceDecoder(source, "", "push")
        reset = "earliest" if from_beginning else "latest"
        self.consumer: Consumer = engine.log.consumer(source.topic, auto_offset_reset=reset)
        self.subscribers: list[_Subscriber] = []
        #: nothing read yet: a new subscriber from the beginning may still share this feed
        self.fresh = True
        if not from_beginning:
            self.consumer.poll(0)  # "latest" means now: fix the position before any record

    def pump(self, wait: float) -> None:
        """Read what arrived (waiting up to `wait` s) and hand it to every subscriber."""
        items = self.consumer.poll(wait)
        for item in items:
            self.fresh = False
            frame, _ = self.decoder.decode(item, [])
            if frame.num_rows:
                for subscriber in list(self.subscribers):
                    subscriber.feed(frame)

    def detach(self, subscriber: _Subscriber) -> None:
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)
        if not self.subscribers:
            self.consumer.close()
            feeds = _FEEDS.get(self.engine, {})
            for k, feed in list(feeds.items()):
                if feed is self:
                    del feeds[k]


class _Subscriber:
    """A stateless push query's filter and projection over a shared feed's frames."""

    def __init__(self, plan: QueryPlan) -> None:
        self.plan = plan
        self.rows: list[dict[str, Any]] = []

    def feed(self, frame: pa.RecordBatch) -> None:
        plan = self.plan
        frame = frame.rename_columns([field_name(plan.label, n[1:]) for n in frame.schema.names])
        ctx = EvalContext()
        if plan.where is not None:
            frame = frame.filter(pc.fill_null(plan.where(frame, ctx), False))
        if frame.num_rows:
            arrays = [c.expr(frame, ctx) for c in plan.outputs]
            table = pa.Table.from_arrays(arrays, names=[c.name for c in plan.outputs])
            self.rows += table.to_pylist(maps_as_pydicts="strict")


_FEEDS: weakref.WeakKeyDictionary[Engine, dict[tuple[str, bool], SourceFeed]] = (
    weakref.WeakKeyDictionary()
)


def _shareable(plan: QueryPlan) -> bool:
    return (
        plan.source.kind == "STREAM"
        and plan.aggregation is None
        and plan.join is None
        and not plan.table_functions
        and not plan.repartition
    )


def _attach(
    engine: Engine, plan: QueryPlan, from_beginning: bool
) -> tuple[SourceFeed, _Subscriber]:
    feeds = _FEEDS.setdefault(engine, {})
    key = (plan.source.name, from_beginning)
    feed = feeds.get(key)
    # a feed from the beginning that has read something is past where a newcomer starts
    if feed is None or feed.source is not plan.source or (from_beginning and not feed.fresh):
        feed = SourceFeed(engine, plan.source, from_beginning)
        feeds[key] = feed
    subscriber = _Subscriber(plan)
    feed.subscribers.append(subscriber)
    return feed, subscriber


class PushQuery:
    """Rows of a push query as they happen; iterate it, or `async for` it. Close it when done.

    A push query that filters and projects a stream shares its source's reader (a
    `SourceFeed`). Any other runs as a transient query that writes its changes to a private
    topic this object reads, so a push query may aggregate, window and join like a persistent
    one.
    """

    def __init__(self, engine: Engine, plan: QueryPlan, *, from_beginning: bool | None) -> None:
        self.engine = engine
        self.plan = plan
        self.limit = plan.limit
        self.delivered = 0
        self.closed = False
        self.columns = [c.name for c in plan.outputs]
        self.feed: SourceFeed | None = None
        #: the keys (with their windows) of the table rows sent so far
        self._sent_keys: set[bytes | None] = set()
        if _shareable(plan):
            # as ksqlDB: from now on unless asked to start from the beginning
            with engine._lock:
                self.feed, self.subscriber = _attach(engine, plan, bool(from_beginning))
            self.id = f"push_{plan.source.name}_{next(_transient)}"
            return
        self._start_task(from_beginning)

    def _start_task(self, from_beginning: bool | None) -> None:
        engine, plan = self.engine, self.plan
        n = next(_transient)
        self.id = f"transient_{plan.source.name}_{n}"
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
        partitions = len(engine.log.describe_topic(plan.source.topic).partitions)
        engine.log.create_topic(topic, partitions)
        # as ksqlDB: a push query starts from now on unless asked to start from the beginning
        reset = "earliest" if from_beginning else "latest"
        with engine._lock:
            saved = engine.properties.get("auto.offset.reset")
            engine.properties["auto.offset.reset"] = reset
            try:
                self.task = QueryTask(
                    engine.context, self.id, plan, self.sink, tables_from_beginning=True
                )
            finally:
                if saved is None:
                    engine.properties.pop("auto.offset.reset", None)
                else:
                    engine.properties["auto.offset.reset"] = saved
            engine.tasks[self.id] = self.task
        self.consumer = engine.log.consumer(topic, auto_offset_reset="earliest")

    def poll(self, timeout: float = 1.0) -> list[dict[str, Any]]:
        """The rows that arrived within `timeout` seconds (maybe none)."""
        if self.closed:
            return []
        deadline = time.monotonic() + timeout
        while True:
            if self.engine._thread is None:
                self.engine.drain(max_rounds=1)
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
                key_bytes, start_arr, end_arr = _split_window(
                    key_bytes, window.kind, window.size_ms
                )
                starts, ends = start_arr.to_pylist(), end_arr.to_pylist()
            keys = key_bytes.to_pylist()
            values = item.batch.column("value").to_pylist()
            for raw, k, v, ws, we in zip(raw_keys, keys, values, starts, ends, strict=True):
                if v is None and self.sink.kind != "TABLE":
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
                out.append({c: row.get(c) for c in self.columns})
        return out

    def _read_feed(self, feed: SourceFeed, wait: float) -> list[dict[str, Any]]:
        for attempt in range(2):
            with self.engine._lock:
                feed.pump(0)
                rows, self.subscriber.rows = self.subscriber.rows, []
            if rows or attempt or wait <= 0:
                return rows
            self.engine.log.wait(wait)
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
        with self.engine._lock:
            if self.feed is not None:
                self.feed.detach(self.subscriber)
                return
            self.engine.tasks.pop(self.id, None)
            self.task.close()
            self.consumer.close()
            for topic in (self.sink.topic, self.task.changelog_topic):
                if topic in self.engine.log.list_topics(internal=True):
                    self.engine.log.delete_topic(topic)

    def __enter__(self) -> PushQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
