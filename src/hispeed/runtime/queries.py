"""Push queries: rows as they happen (pull queries are in runtime/pull.py)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

from hispeed.catalog import Source
from hispeed.plan.planner import QueryPlan
from hispeed.runtime.decode import _split_window
from hispeed.runtime.task import QueryTask

if TYPE_CHECKING:
    from hispeed.engine import Engine

_transient = itertools.count()


class PushQuery:
    """Rows of a push query as they happen; iterate it, or `async for` it. Close it when done.

    A transient query writes its changes to a private topic that this object reads, so a
    push query may filter, project, aggregate and window like a persistent one.
    """

    def __init__(self, engine: Engine, plan: QueryPlan, *, from_beginning: bool | None) -> None:
        self.engine = engine
        self.plan = plan
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
                self.task = QueryTask(engine, self.id, plan, self.sink, tables_from_beginning=True)
            finally:
                if saved is None:
                    engine.properties.pop("auto.offset.reset", None)
                else:
                    engine.properties["auto.offset.reset"] = saved
            engine.tasks[self.id] = self.task
        self.consumer = engine.log.consumer(topic, auto_offset_reset="earliest")
        self.limit = plan.limit
        self.delivered = 0
        self.closed = False
        self._buffer: list[dict[str, Any]] = []
        self.columns = [c.name for c in plan.outputs]

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
        out = []
        window = self.sink.window
        for item in self.consumer.poll(wait):
            key_bytes = item.batch.column("key")
            starts: list[Any] = [None] * len(key_bytes)
            ends: list[Any] = [None] * len(key_bytes)
            if window is not None:
                key_bytes, start_arr, end_arr = _split_window(
                    key_bytes, window.kind, window.size_ms
                )
                starts, ends = start_arr.to_pylist(), end_arr.to_pylist()
            keys = key_bytes.to_pylist()
            values = item.batch.column("value").to_pylist()
            for k, v, ws, we in zip(keys, values, starts, ends, strict=True):
                if v is None:
                    continue
                row: dict[str, Any] = {"WINDOWSTART": ws, "WINDOWEND": we}
                key = json.loads(k) if k is not None else None
                if len(self.plan.key) == 1 and not isinstance(key, dict):
                    row[self.plan.key[0].name] = key
                elif isinstance(key, dict):
                    row.update(key)
                row.update(json.loads(v))
                out.append({c: row.get(c) for c in self.columns})
        return out

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
