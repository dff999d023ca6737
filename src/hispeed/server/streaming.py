"""Queries over the wire: pull and push queries, and PRINT, as streams of encoded rows.

A `QuerySession` opens a query once and yields its header and rows as Python values; the
endpoints (`/query`, `/query-stream`, the WebSocket, gRPC) each encode them their own way.
Push queries stay registered until they end or `/close-query` closes them.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import itertools
import threading
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.plan.query import plan_query
from hispeed.plan.scalable import is_scalable_push, scalable_rows_only
from hispeed.runtime.pull import prepare
from hispeed.runtime.queries import PushQuery, Tombstone
from hispeed.server.statements import sql_too_long
from hispeed.sql import ast
from hispeed.sql.parser import parse_iter
from hispeed.statements.info import print_interval

_ids = itertools.count(1)


def json_value(v: Any) -> Any:
    """A value as ksqlDB's REST API writes it: bytes base64, dates and times as text,
    NaN and the infinities as strings; decimals stay numbers (see `encode`)."""
    if isinstance(v, bytes):
        return base64.b64encode(v).decode()
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}"
    if isinstance(v, dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list):
        return [json_value(x) for x in v]
    if isinstance(v, dict):
        return {k: json_value(x) for k, x in v.items()}
    if isinstance(v, float) and (v != v or v in (float("inf"), float("-inf"))):
        return "NaN" if v != v else ("Infinity" if v > 0 else "-Infinity")
    return v


_encoder = msgspec.json.Encoder(decimal_format="number")


def encode(value: Any) -> bytes:
    """JSON bytes of a value already passed through `json_value`."""
    return _encoder.encode(value)


@dataclass
class Header:
    query_id: str
    names: list[str]
    types: list[str]
    key_names: set[str] = field(default_factory=set)

    def schema(self) -> str:
        """ksqlDB's header schema text: "`ID` STRING KEY, `X` DOUBLE"."""
        return ", ".join(
            f"`{n}` {t}" + (" KEY" if n in self.key_names else "")
            for n, t in zip(self.names, self.types, strict=True)
        )

    def stream_header(self) -> dict[str, Any]:
        """The header line of `/query-stream`."""
        return {"queryId": self.query_id, "columnNames": self.names, "columnTypes": self.types}


def query_header(session: QuerySession) -> dict[str, Any]:
    """The header entry of a `/query` answer: the query's id and its schema text."""
    return {"queryId": session.header.query_id, "schema": session.header.schema()}


def final_message(session: QuerySession) -> str | None:
    """The `finalMessage` that ends a `/query` answer, as ksqlDB's QueryStreamWriter writes
    it: "Limit Reached" once a LIMIT is met, "Query Completed" when a pull query over a
    stream has read to the stream's end (a pull query over a table ends without one)."""
    if session.limit_reached:
        return "Limit Reached"
    if session.completed:
        return "Query Completed"
    return None


class TombstoneRow(list[Any]):
    """A row of a push query over a table that says its key was deleted: the key's columns,
    null elsewhere (ksqlDB's StreamedRow.tombstone)."""


def row_entry(row: list[Any]) -> dict[str, Any]:
    """A row of a `/query` answer: `{"row": {"columns": [...]}}`, with `"tombstone": true`
    for a deletion (StreamedRow.DataRow)."""
    if isinstance(row, TombstoneRow):
        return {"row": {"columns": list(row), "tombstone": True}}
    return {"row": {"columns": row}}


class TooManyQueriesError(HispeedError):
    """A client has as many push queries open as the server allows one client (a 429)."""


#: rows of a pull query encoded and sent at a time, so its answer is streamed, not built whole
PULL_CHUNK_ROWS = 1000


class QueryRegistry:
    """The running push queries, by id, so `/close-query` can end one; at most
    `max_per_client` (None: any number) open at once for one client."""

    def __init__(self, max_per_client: int | None = None) -> None:
        self._sessions: dict[str, QuerySession] = {}
        self._lock = threading.Lock()
        self.max_per_client = max_per_client

    def add(self, session: QuerySession) -> None:
        """Register a push query; TooManyQueriesError when its client has its fill."""
        with self._lock:
            if self.max_per_client is not None and session.client is not None:
                open_ = sum(1 for s in self._sessions.values() if s.client == session.client)
                if open_ >= self.max_per_client:
                    raise TooManyQueriesError(
                        f"this client ({session.client}) has {open_} push queries open, the "
                        f"most the server allows one client (max_push_queries_per_client): "
                        "close one first (POST /close-query, or close its connection)"
                    )
            self._sessions[session.header.query_id] = session

    def remove(self, session: QuerySession) -> None:
        with self._lock:
            self._sessions.pop(session.header.query_id, None)

    def close(self, query_id: str) -> bool:
        """End a push query: its stream of rows stops and closes it."""
        with self._lock:
            session = self._sessions.pop(query_id, None)
        if session is None:
            return False
        session.cancel()
        return True

    def sessions(self) -> list[QuerySession]:
        """The push queries being served now."""
        with self._lock:
            return list(self._sessions.values())

    def close_all(self) -> None:
        with self._lock:
            sessions = list(self._sessions.values())
            self._sessions.clear()
        for s in sessions:
            s.cancel()

    def __len__(self) -> int:
        return len(self._sessions)


class QuerySession:
    """One pull query, push query or PRINT: its header, then its rows as lists of values."""

    def __init__(
        self,
        engine: Engine,
        sql: str,
        properties: dict[str, Any] | None = None,
        registry: QueryRegistry | None = None,
        *,
        settings: Settings | None = None,
        client: str | None = None,
    ) -> None:
        settings = settings or Settings()
        too_long = sql_too_long(sql, settings)
        if too_long:
            raise HispeedError(too_long)
        self.engine = engine
        self.sql = sql
        self.registry = registry
        #: records one poll of a PRINT reads at most (its memory, however large the topic)
        self._print_poll_records = settings.print_poll_records
        #: who asked (the client's address), for the registry's limit per client
        self.client = client
        self.properties = dict(properties or {})
        self.closed = False
        self.cancelled = False
        self.limit_reached = False
        #: a pull query over a stream that read to the stream's end ("Query Completed")
        self.completed = False
        self._stream_pull_limit: int | None = None
        self._stream_pull = False
        #: rows handed out so far
        self.delivered = 0
        self._push: Any = None
        self._pull_rows: list[dict[str, Any]] | None = None
        self._pull_at = 0  # the next pull row to hand out
        self._print: ast.Print | None = None
        self.is_pull = False
        with engine.lock:
            parsed = list(
                parse_iter(
                    sql,
                    engine.catalog.types,
                    max_identifier_length=settings.max_identifier_length,
                )
            )
            if len(parsed) != 1:
                raise HispeedError(
                    f"a query request takes one statement; this one has {len(parsed)}"
                )
            stmt = parsed[0].statement
            if isinstance(stmt, ast.Print):
                self._open_print(stmt)
                return
            if not isinstance(stmt, ast.QueryStatement):
                raise HispeedError("/query runs SELECT and PRINT; send other statements to /ksql")
            select = stmt.query
            if select.emit is None:
                self._open_pull(select)
            else:
                self._open_push(select)
                if registry is not None:
                    try:
                        registry.add(self)
                    except BaseException:
                        self.close()
                        raise

    def _open_pull(self, select: ast.Select) -> None:
        prepared = prepare(self.engine.runtime.views, select, self.properties)
        plan = prepared.plan
        keys: set[str] = set()
        if plan.source.kind == "TABLE":
            keys = {c.name for c in plan.source.key_columns}
            if plan.source.window is not None:
                keys |= {"WINDOWSTART", "WINDOWEND"}
        self.header = Header(
            f"query_{next(_ids)}",
            [c.name for c in plan.outputs],
            [str(c.type) for c in plan.outputs],
            {c.name for c in plan.outputs if c.name in keys},
        )
        self.is_pull = True
        self._pull_rows = prepared.run(self.engine.runtime.views)
        # a pull query over a stream runs, in ksqlDB, as a query that ends at the stream's end
        # or at its LIMIT, and says which (final_message); one over a table just ends
        self._stream_pull = plan.source.kind == "STREAM"
        self._stream_pull_limit = select.limit

    def _open_push(self, select: ast.Select) -> None:
        reset = str(
            self.properties.get(
                "auto.offset.reset",
                self.properties.get("ksql.streams.auto.offset.reset", "latest"),
            )
        ).lower()
        engine = self.engine
        scalable = is_scalable_push(select, engine.catalog, self.properties, engine.properties)
        if scalable:
            select = scalable_rows_only(select, engine.catalog)
        plan = plan_query(
            select, engine.catalog, engine.log, properties={**engine.properties, **self.properties}
        )
        push = PushQuery(
            engine.runtime,
            plan,
            from_beginning=reset == "earliest",
            query_id=f"SCALABLE_PUSH_QUERY_{uuid.uuid4()}" if scalable else None,
            # a scalable push query drops a table's deletions (ScalablePushConsumer.handleRow)
            deletions=not scalable,
        )
        self._push = push
        plan = push.plan
        self.header = Header(
            push.id, [c.name for c in plan.outputs], [str(c.type) for c in plan.outputs]
        )

    def _open_print(self, stmt: ast.Print) -> None:
        if stmt.topic not in self.engine.log.list_topics(internal=True):
            raise HispeedError(
                f"Could not find topic '{stmt.topic}', or the KSQL user does not have "
                "permissions to list the topic. Topic names are case-sensitive."
            )
        self._print_interval = print_interval(stmt)
        self._print = stmt
        self.header = Header(f"print_{next(_ids)}", ["record"], ["STRING"])
        self._consumer = self.engine.log.consumer(
            stmt.topic, auto_offset_reset="earliest" if stmt.from_beginning else "latest"
        )
        self._printed = 0
        #: records read so far (INTERVAL shows every n-th of them)
        self._print_read = 0

    @property
    def is_print(self) -> bool:
        return self._print is not None

    def poll(self, timeout: float) -> list[list[Any]]:
        """The next rows (maybe none within `timeout`); [] for ever once `done`."""
        if self.closed:
            return []
        if self._pull_rows is not None:
            at = self._pull_at
            rows = self._pull_rows[at : at + PULL_CHUNK_ROWS]
            self._pull_at = at + PULL_CHUNK_ROWS
            if self._pull_at >= len(self._pull_rows):
                if self._stream_pull:
                    limit = self._stream_pull_limit
                    if limit is not None and len(self._pull_rows) >= limit:
                        self.limit_reached = True
                    else:
                        self.completed = True
                self._pull_rows = None
                self.closed = True
            names = self.header.names
            return [[json_value(r.get(n)) for n in names] for r in rows]
        if self._print is not None:
            return self._poll_print(timeout)
        push = self._push
        got = push.poll(timeout)
        names = self.header.names
        out: list[list[Any]] = []
        for r in got:
            values = [json_value(r.get(n)) for n in names]
            out.append(TombstoneRow(values) if isinstance(r, Tombstone) else values)
        self.delivered += len(out)
        if push.closed:
            self.limit_reached = push.limit is not None and push.delivered >= push.limit
            self.close()
        return out

    def _poll_print(self, timeout: float) -> list[list[Any]]:
        """The next records of a PRINT, a bounded chunk at a time (what a poll holds in
        memory is the setting print_poll_records, however large the topic): every
        INTERVAL-th one, as ksqlDB's PrintPublisher, until its LIMIT."""
        assert self._print is not None
        limit, interval = self._print.limit, self._print_interval
        out: list[list[Any]] = []
        for item in self._consumer.poll(timeout, max_records=self._print_poll_records):
            for r in item.batch.to_pylist():
                shown = self._print_read % interval == 0
                self._print_read += 1
                if not shown:
                    continue
                out.append([_print_line(r, item.partition.partition)])
                self._printed += 1
                if limit is not None and self._printed >= limit:
                    self.limit_reached = True
                    self.close()
                    return out
        return out

    def cancel(self) -> None:
        """Ask `rows()` to end (from any thread); it closes the query on its way out."""
        self.cancelled = True

    async def rows(self, timeout: float = 0.25) -> AsyncIterator[list[list[Any]]]:
        """Batches of rows until the query ends; closes the query when the consumer stops."""
        try:
            while not self.closed and not self.cancelled:
                batch = await asyncio.to_thread(self.poll, timeout)
                if batch:
                    yield batch
        finally:
            self.close()

    def close(self) -> None:
        if self.closed and self._push is None and self._print is None:
            return
        self.closed = True
        if self._push is not None:
            push, self._push = self._push, None
            push.close()
            if self.registry is not None:
                self.registry.remove(self)
        if self._print is not None:
            self._print = None
            self._consumer.close()


def _print_line(record: dict[str, Any], partition: int) -> str:
    """A record as ksqlDB's PRINT shows it."""
    ts = dt.datetime.fromtimestamp(record["timestamp"] / 1000, tz=dt.UTC)
    key = record["key"].decode(errors="replace") if record["key"] is not None else "<null>"
    value = record["value"].decode(errors="replace") if record["value"] is not None else "<null>"
    return (
        f"rowtime: {ts.strftime('%Y/%m/%d %H:%M:%S.')}{ts.microsecond // 1000:03d} Z, "
        f"key: {key}, value: {value}, partition: {partition}"
    )


__all__ = [
    "Header",
    "QueryRegistry",
    "QuerySession",
    "TooManyQueriesError",
    "encode",
    "json_value",
]
