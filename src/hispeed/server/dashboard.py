"""The dashboard: a page of live panels over the engine, its assets, and `GET /api/overview`.

`/`               the page (`static/index.html`); plain HTML, CSS and JavaScript modules with
                  uPlot vendored in `static/vendor/`, so nothing is built or fetched at run time
`/static/...`     the page's assets
`/api/overview`   what the page polls every 2 s: streams, tables, topics, the running queries
                  (persistent and push) with their throughput, lag and errors, and the last
                  records of the processing log
`/demo`           the course's scenarios live (`static/demo.html`): the Sense HAT devices with
                  their charts, speed gauge, joystick toasts and LED matrix; fraud alerts; VIP
                  actions; the leaderboard
`/api/led`        the pictures and colours of a device's LED (`hispeed.demo.device.Led`), so
                  that the page's virtual matrix draws exactly what a device shows
`/api/redis/top`  `?pattern=leaderboard:*&n=10`: the newest sorted set whose key matches (the
                  largest suffix after the pattern's fixed prefix, numerically when it is a
                  number) and its top `n` members, read from the server's Redis

The page talks to the server's own endpoints for everything else: `/ksql` for statements,
`/query-stream` for pull queries, `/ws/query` for push queries and `/ws/topics` for topic tails.
"""

from __future__ import annotations

import re
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

from hispeed.catalog import Source
from hispeed.config import Settings
from hispeed.demo.device import COLORS, Led
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.resp.client import RedisConnection, RedisURL, ReplyError, text
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.server.metrics import Metrics
from hispeed.server.statements import error_body
from hispeed.server.streaming import QueryRegistry
from hispeed.version import __version__

STATIC_DIR = Path(__file__).parent / "static"

#: processing-log records the overview carries (the newest)
PROCESSING_LOG_RECORDS = 50
#: seconds of samples a query's throughput is averaged over
THROUGHPUT_WINDOW_S = 10.0
#: the joystick's directions, each a picture on the LED
LED_DIRECTIONS = ("up", "down", "left", "right", "middle")
#: members `/api/redis/top` returns at most
MAX_TOP_MEMBERS = 1000
#: seconds `/api/redis/top` waits for Redis
REDIS_TIMEOUT_S = 2.0


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
        with engine.lock:
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
                | {"error": q.error}
            )
        for session in push.sessions() if push is not None else []:
            query_id = session.header.query_id
            found = stats.get(query_id)
            state = found["state"] if found else "RUNNING"
            row = _query_row(query_id, "push", session.sql, state, None, found)
            row["error"] = found["error"] if found else None
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


def led_pictures() -> dict[str, Any]:
    """The LED's pictures (8 rows of "X" lit and "." dark a direction) and colours (RGB),
    taken from the devices' own `Led`, for the page to draw what a device shows."""
    pictures = {}
    for direction in LED_DIRECTIONS:
        led = Led()
        led.show(direction, "white")
        lit = ["X" if p != (0, 0, 0) else "." for p in led.pixels]
        pictures[direction] = ["".join(lit[r * 8 : r * 8 + 8]) for r in range(8)]
    return {"pictures": pictures, "colors": {name: list(rgb) for name, rgb in COLORS.items()}}


class RedisUnavailableError(HispeedError):
    """The server has no Redis, or its Redis cannot be reached."""


class TopSortedSet:
    """The newest sorted set of a key pattern and its highest members, read from one Redis.

    "Newest" is the key with the largest suffix after the pattern's fixed prefix: a number
    when the suffix is one (`leaderboard:<hour start in ms>`), else compared as text, numbers
    first. Each call opens a connection of its own and closes it, so nothing outlives it."""

    def __init__(self, url: str, timeout: float = REDIS_TIMEOUT_S) -> None:
        self.url = RedisURL.parse(url, "the dashboard")
        self.timeout = timeout

    def read(self, pattern: str, n: int) -> dict[str, Any]:
        """`{"key": newest matching key or None, "members": [{"member", "score"}]}`, the
        members highest score first."""
        conn = RedisConnection(self.url, self.timeout, "the dashboard")
        try:
            key = self.newest(conn, pattern)
            if key is None:
                return {"key": None, "members": []}
            flat = conn.call("ZREVRANGE", key, "0", str(n - 1), "WITHSCORES")
            members = [
                {"member": text(flat[i]), "score": float(text(flat[i + 1]))}
                for i in range(0, len(flat), 2)
            ]
            return {"key": key, "members": members}
        except ReplyError as e:
            raise RedisUnavailableError(f"Redis at {self.url.display()} answered: {e}") from None
        except HispeedError as e:  # refused, reset, timed out
            raise RedisUnavailableError(str(e)) from None
        finally:
            conn.close()

    def newest(self, conn: RedisConnection, pattern: str) -> str | None:
        """The matching sorted set with the largest suffix, or None when none matches."""
        prefix = re.split(r"[*?\[\\]", pattern, maxsplit=1)[0]
        best: tuple[bool, int, str] | None = None
        found: str | None = None
        cursor = "0"
        while True:
            reply = conn.call("SCAN", cursor, "MATCH", pattern, "COUNT", "1000", "TYPE", "zset")
            cursor = text(reply[0])
            for raw in reply[1]:
                key = text(raw)
                suffix = key[len(prefix) :] if key.startswith(prefix) else key
                rank = (suffix.isdigit(), int(suffix) if suffix.isdigit() else 0, suffix)
                if best is None or rank > best:
                    best, found = rank, key
            if cursor == "0":
                return found


def _top_request(request: Request) -> tuple[str, int]:
    """(pattern, n) of a `/api/redis/top` request, or HispeedError saying what is wrong."""
    pattern = request.query_params.get("pattern", "")
    if not pattern:
        raise HispeedError("name the keys: /api/redis/top?pattern=leaderboard:*&n=10")
    raw = request.query_params.get("n", "10")
    try:
        n = int(raw)
    except ValueError:
        message = f"n must be a whole number from 1 to {MAX_TOP_MEMBERS}, not {raw!r}"
        raise HispeedError(message) from None
    if not 1 <= n <= MAX_TOP_MEMBERS:
        raise HispeedError(f"n must be from 1 to {MAX_TOP_MEMBERS}, not {n}")
    return pattern, n


def routes(engine: Engine, settings: Settings) -> list[BaseRoute]:
    """The dashboard's routes, for the server to mount beside its API."""
    overview = Overview(engine)
    index = STATIC_DIR / "index.html"
    demo = STATIC_DIR / "demo.html"
    led = led_pictures()

    async def page(request: Request) -> Response:
        # the page changes with the package: never let a browser keep an old one
        return FileResponse(index, headers={"cache-control": "no-cache"})

    async def demo_page(request: Request) -> Response:
        return FileResponse(demo, headers={"cache-control": "no-cache"})

    async def api_led(request: Request) -> Response:
        return JSONResponse(led)

    async def api_redis_top(request: Request) -> Response:
        try:
            pattern, n = _top_request(request)
        except HispeedError as e:
            return JSONResponse(error_body(str(e), 40000), status_code=400)
        url = engine.properties.get("redis.url")
        if not url:
            message = (
                "this server has no Redis: start it with redis_url set, or install "
                "redis-server (apt-get install redis-server) for the embedded one"
            )
            return JSONResponse(error_body(message, 50300), status_code=503)
        try:
            top = await run_in_threadpool(TopSortedSet(str(url)).read, pattern, n)
        except HispeedError as e:
            return JSONResponse(error_body(str(e), 50300), status_code=503)
        return JSONResponse(top, headers={"cache-control": "no-store"})

    async def api_overview(request: Request) -> Response:
        # the server's shared state, when the routes are mounted in its app
        state = getattr(request.app.state, "hispeed", None)
        push = getattr(state, "queries", None)
        document = await run_in_threadpool(overview.document, push)
        return JSONResponse(document, headers={"cache-control": "no-store"})

    return [
        Route("/", page, methods=["GET"]),
        Route("/demo", demo_page, methods=["GET"]),
        Route("/api/overview", api_overview, methods=["GET"]),
        Route("/api/led", api_led, methods=["GET"]),
        Route("/api/redis/top", api_redis_top, methods=["GET"]),
        Mount("/static", app=StaticFiles(directory=STATIC_DIR), name="static"),
    ]


__all__ = [
    "Overview",
    "RedisUnavailableError",
    "ThroughputTracker",
    "TopSortedSet",
    "led_pictures",
    "routes",
]
