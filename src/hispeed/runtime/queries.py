"""Pull queries (the current rows, now) and push queries (rows as they happen)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Source
from hispeed.errors import HispeedError
from hispeed.functions.registry import EvalContext
from hispeed.log.base import PolledBatch, TopicPartition
from hispeed.plan.planner import QueryPlan, field_name
from hispeed.runtime.decode import SourceDecoder, _split_window
from hispeed.runtime.task import QueryTask

if TYPE_CHECKING:
    from hispeed.engine import Engine

_transient = itertools.count()


def pull(engine: Engine, plan: QueryPlan) -> list[dict[str, Any]]:
    """Rows of a pull query: a table's current row per key, or everything a stream holds."""
    if plan.join is not None:
        raise HispeedError(
            "Pull queries don't support JOIN clauses: create a table with CREATE TABLE ... AS "
            "SELECT ... JOIN, then query the table"
        )
    if plan.aggregation is not None:
        raise HispeedError(
            "Pull queries don't support GROUP BY or aggregate functions: create a table with "
            "CREATE TABLE ... AS SELECT ... GROUP BY, then query the table"
        )
    source = plan.source
    decoder = SourceDecoder(source, plan.label, "pull")
    frames: list[pa.RecordBatch] = []
    deleted: list[np.ndarray] = []
    log = engine.log
    for p in range(len(log.describe_topic(source.topic).partitions)):
        start, end = log.offsets(source.topic, p)
        if end <= start:
            continue
        for batch in log.read(source.topic, p, start):
            frame, tombstones = decoder.decode(
                PolledBatch(TopicPartition(source.topic, p), batch), []
            )
            frames.append(frame)
            deleted.append(tombstones)
    if not frames:
        return []
    frame = (
        pa.Table.from_batches(frames).combine_chunks().to_batches()[0]
        if len(frames) > 1
        else frames[0]
    )
    gone = np.concatenate(deleted)
    if source.kind == "TABLE":
        keys = [field_name(plan.label, c.name) for c in source.key_columns]
        if source.window is not None:
            keys += [field_name(plan.label, "WINDOWSTART")]
        latest: dict[Any, int] = {}
        columns = [frame.column(k).to_pylist() for k in keys]
        for i, key in enumerate(zip(*columns, strict=True)):
            latest[_hashable(key)] = i
        # rows in key order, as a table's store iterates them
        ordered = sorted(
            ((k, i) for k, i in latest.items() if not gone[i]), key=lambda ki: _sort_key(ki[0])
        )
        rows = np.array([i for _, i in ordered], dtype=np.int64)
        frame = frame.take(pa.array(rows))
    ctx = EvalContext()
    if plan.where is not None:
        frame = frame.filter(pc.fill_null(plan.where(frame, ctx), False))
    names = [c.name for c in plan.outputs]
    arrays = [c.expr(frame, ctx) for c in plan.outputs]
    table = pa.Table.from_arrays(arrays, names=names)
    rows_out: list[dict[str, Any]] = table.to_pylist(maps_as_pydicts="strict")
    if plan.limit is not None:
        rows_out = rows_out[: plan.limit]
    return rows_out


def _sort_key(key: Any) -> Any:
    """An order for key tuples that tolerates NULLs and mixed types."""
    return tuple((v is None, str(type(v)), v if v is not None else 0) for v in key)


def _hashable(v: Any) -> Any:
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


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
