"""The dashboard: a page of live panels over the engine, its assets, and `GET /api/overview`.

`/`               the page (`static/index.html`); plain HTML, CSS and JavaScript modules with
                  uPlot vendored in `static/vendor/`, so nothing is built or fetched at run time
`/static/...`     the page's assets
`/api/overview`   what the page polls every 2 s: streams, tables, topics, the running queries
                  (persistent and push) with their throughput, lag and errors, and the last
                  records of the processing log

The page talks to the server's own endpoints for everything else: `/ksql` for statements,
`/query-stream` for pull queries, `/ws/query` for push queries and `/ws/topics` for topic tails.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hispeed import __version__
from hispeed.catalog import Source
from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.server.metrics import Metrics
from hispeed.server.streaming import QueryRegistry

STATIC_DIR = Path(__file__).parent / "static"

#: processing-log records the overview carries (the newest)
PROCESSING_LOG_RECORDS = 50
#: seconds of samples a query's throughput is averaged over
THROUGHPUT_WINDOW_S = 10.0


@dataclass(frozen=True)
class _Sample:
    at: float
    records_in: int
    records_out: int


class ThroughputTracker:
    """Records per second of each query, over a sliding window of the counts seen when asked.

    Each `rates` call is a sample; a query's rate is its count's change from the oldest sample
    still in the window to this one. A query's first sample has no rate yet (None)."""

    def __init__(self, window_s: float = THROUGHPUT_WINDOW_S) -> None:
        self.window_s = window_s
        self._samples: dict[str, deque[_Sample]] = {}
        self._lock = threading.Lock()

    def rates(
        self, counts: dict[str, tuple[int, int]], now: float | None = None
    ) -> dict[str, tuple[float | None, float | None]]:
        """(records in per s, records out per s) of each query in `counts` (id -> in, out);
        queries missing from `counts` are forgotten."""
        at = time.monotonic() if now is None else now
        out: dict[str, tuple[float | None, float | None]] = {}
        with self._lock:
            for gone in self._samples.keys() - counts.keys():
                del self._samples[gone]
            for query_id, (records_in, records_out) in counts.items():
                samples = self._samples.setdefault(query_id, deque())
                if samples and (records_in < samples[-1].records_in):
                    samples.clear()  # a query restarted under the same id
                samples.append(_Sample(at, records_in, records_out))
                # keep one sample at or before the window's start as the baseline
                while len(samples) > 2 and samples[1].at <= at - self.window_s:
                    samples.popleft()
                first = samples[0]
                elapsed = at - first.at
                if elapsed <= 0:
                    out[query_id] = (None, None)
                    continue
                out[query_id] = (
                    round((records_in - first.records_in) / elapsed, 2),
                    round((records_out - first.records_out) / elapsed, 2),
                )
        return out


class Overview:
    """The `/api/overview` document, read off an engine (and the server's push queries)."""

    def __init__(
        self,
        engine: Engine,
        *,
        processing_log_records: int = PROCESSING_LOG_RECORDS,
        throughput: ThroughputTracker | None = None,
    ) -> None:
        self.engine = engine
        self.metrics = Metrics(engine)
        self.processing_log_records = processing_log_records
        self.throughput = throughput or ThroughputTracker()

    def document(self, push: QueryRegistry | None = None) -> dict[str, Any]:
        """Everything the page shows; `push` is the server's registry of push queries."""
        engine = self.engine
        with engine._lock:
            sources = sorted(engine.catalog.sources.values(), key=lambda s: s.name)
            persistent = list(engine.catalog.queries.values())
        topics = self.topics()
        records = {t["name"]: t["records"] for t in topics}
        return {
            "version": __version__,
            "time": int(time.time() * 1000),
            "streams": [_source(s, records) for s in sources if s.kind == "STREAM"],
            "tables": [_source(s, records) for s in sources if s.kind == "TABLE"],
            "topics": topics,
            "queries": self.queries(persistent, push),
            "connectors": self.connectors(),
            "processing_log": self.processing_log(),
        }

    def connectors(self) -> list[dict[str, Any]]:
        """Each connector's state, counts, lag (sinks) and last error."""
        connectors = self.engine.connectors
        out = []
        for row in connectors.rows():
            try:
                info = connectors.describe(row["name"])
            except HispeedError:  # dropped while we looked
                continue
            out.append(
                {
                    "name": info["name"],
                    "type": info["type"],
                    "class": info["className"],
                    "state": info["state"],
                    "records": info["records"],
                    "errors": info["errors"],
                    "lag": info.get("lag"),
                    "topics": info.get("topics", []),
                    "last_error": info.get("lastError"),
                }
            )
        return out

    def topics(self) -> list[dict[str, Any]]:
        log_ = self.engine.log
        out = []
        for name in log_.list_topics():
            try:
                info = log_.describe_topic(name)
            except HispeedError:  # deleted while we looked
                continue
            out.append(
                {
                    "name": name,
                    "partitions": len(info.partitions),
                    "records": sum(p.end_offset for p in info.partitions),
                    "internal": name.startswith("_"),
                }
            )
        return out

    def queries(self, persistent: list[Any], push: QueryRegistry | None) -> list[dict[str, Any]]:
        """Persistent queries, then push queries, each with its counts and rates."""
        stats = {s["id"]: s for s in self.metrics.query_stats()}
        rows: list[dict[str, Any]] = []
        for q in persistent:
            rows.append(
                _query_row(q.id, "persistent", q.statement, q.state, q.sink, stats.get(q.id))
            )
        for session in push.sessions() if push is not None else []:
            query_id = session.header.query_id
            row = _query_row(query_id, "push", session.sql, "RUNNING", None, stats.get(query_id))
            if query_id not in stats:  # a push query sharing its source's reader
                row["records_in"] = row["records_out"] = session.delivered
            rows.append(row)
        rates = self.throughput.rates({r["id"]: (r["records_in"], r["records_out"]) for r in rows})
        for r in rows:
            r["throughput_in"], r["throughput_out"] = rates[r["id"]]
        return rows

    def processing_log(self) -> list[dict[str, Any]]:
        """The newest processing-log records, oldest first, their values parsed as JSON."""
        log_ = self.engine.log
        n = self.processing_log_records
        if n <= 0 or PROCESSING_LOG not in log_.list_topics(internal=True):
            return []
        found: list[dict[str, Any]] = []
        for p in range(len(log_.describe_topic(PROCESSING_LOG).partitions)):
            start, end = log_.offsets(PROCESSING_LOG, p)
            for batch in log_.read(PROCESSING_LOG, p, max(start, end - n)):
                for r in batch.to_pylist():
                    found.append(
                        {
                            "timestamp": r["timestamp"],
                            "partition": p,
                            "offset": r["offset"],
                            "value": _parsed(r["value"]),
                        }
                    )
        found.sort(key=lambda r: (r["timestamp"], r["partition"], r["offset"]))
        return found[-n:]


def _source(source: Source, records: dict[str, int]) -> dict[str, Any]:
    return {
        "name": source.name,
        "topic": source.topic,
        "key_format": source.key_format,
        "value_format": source.value_format,
        "key_columns": [{"name": c.name, "type": str(c.type)} for c in source.key_columns],
        "value_columns": [{"name": c.name, "type": str(c.type)} for c in source.value_columns],
        "windowed": source.window is not None,
        "records": records.get(source.topic),
    }


def _query_row(
    query_id: str,
    kind: str,
    sql: str,
    state: str,
    sink: str | None,
    stats: dict[str, Any] | None,
) -> dict[str, Any]:
    return {
        "id": query_id,
        "kind": kind,
        "sql": sql,
        "state": state,
        "sink": sink,
        "records_in": stats["records_in"] if stats else 0,
        "records_out": stats["records_out"] if stats else 0,
        "errors": stats["errors"] if stats else 0,
        "lag": stats["lag"] if stats else None,
    }


def _parsed(raw: bytes | None) -> Any:
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return raw.decode(errors="replace")


def routes(engine: Engine, settings: Settings) -> list[BaseRoute]:
    """The dashboard's routes, for the server to mount beside its API."""
    overview = Overview(engine)
    index = STATIC_DIR / "index.html"

    async def page(request: Request) -> Response:
        # the page changes with the package: never let a browser keep an old one
        return FileResponse(index, headers={"cache-control": "no-cache"})

    async def api_overview(request: Request) -> Response:
        # the server's shared state, when the routes are mounted in its app
        state = getattr(request.app.state, "hispeed", None)
        push = getattr(state, "queries", None)
        document = await run_in_threadpool(overview.document, push)
        return JSONResponse(document, headers={"cache-control": "no-store"})

    return [
        Route("/", page, methods=["GET"]),
        Route("/api/overview", api_overview, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]


__all__ = ["Overview", "ThroughputTracker", "routes"]
