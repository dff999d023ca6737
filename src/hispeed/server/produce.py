"""`POST /topics/{t}`: JSON records into a topic, all or nothing, answered below Starlette's
routing when it can be (`FastProduce`), and the request-body reading and error answers the
rest of the server shares with it."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.types import Receive, Scope, Send

from hispeed.errors import HispeedError, SqlError, UnknownTopicError
from hispeed.server import ingest as bodies
from hispeed.server.ingest import IngestBatch, IngestError, parse_body
from hispeed.server.state import ServerState
from hispeed.server.statements import BAD_STATEMENT, error_body
from hispeed.server.streaming import encode

log = logging.getLogger(__name__)


class BodyTooLargeError(HispeedError):
    """A request body over the server's limit."""


class ClientGoneError(HispeedError):
    """The client went away before its request ended: its business, not a server failure."""


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refused (413) past `limit` bytes without reading the rest."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise BodyTooLargeError(f"the body is over {limit} bytes; send less at once")
    chunks = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BodyTooLargeError(f"the body is over {limit} bytes; send less at once")
            chunks.append(chunk)
    except ClientDisconnect:
        raise ClientGoneError(
            f"the client closed the connection after {size} bytes of the body"
        ) from None
    return b"".join(chunks)


def error_status(exc: HispeedError) -> tuple[int, bytes]:
    """The status and ksqlDB-shaped JSON body of a user's mistake."""
    if isinstance(exc, BodyTooLargeError):
        status, code = 413, None
    elif isinstance(exc, UnknownTopicError):
        status, code = 404, None
    else:  # a client gone meanwhile included: nobody reads it; it ends the exchange
        status, code = 400, BAD_STATEMENT if isinstance(exc, SqlError) else None
    return status, encode(error_body(str(exc), code or status * 100))


async def produce_records(
    state: ServerState,
    name: str,
    body: bytes,
    content_type: str,
    params: Mapping[str, str],
    began: float,
) -> tuple[int, bytes]:
    """POST /topics/{name}: the body's records appended all or nothing; (status, JSON)."""
    try:
        partition = _partition_param(params)
    except IngestError as e:
        return error_status(e)
    batch = parse_body(body, content_type, key_field=params.get("key_field"), key=params.get("key"))
    return await _append_records(state, name, batch, partition, began)


def _partition_param(params: Mapping[str, str]) -> int | None:
    partition = params.get("partition")
    try:
        return int(partition) if partition is not None else None
    except ValueError:
        raise IngestError(f"partition must be a number, not {partition!r}") from None


async def _append_records(
    state: ServerState, name: str, batch: IngestBatch, partition: int | None, began: float
) -> tuple[int, bytes]:
    result = await state.ingest.append(name, batch, partition)
    return _appended(state, name, result, began)


def _appended(
    state: ServerState, name: str, result: list[dict[str, int]], began: float
) -> tuple[int, bytes]:
    state.metrics.ingested(name, "http", len(result), time.perf_counter() - began)
    return 200, encode({"topic": name, "offsets": result})


def _answer_of(task: asyncio.Future[tuple[int, bytes]], what: str) -> tuple[int, bytes]:
    """A finished produce's (status, JSON), its error's included (as FastProduce answers)."""
    e = task.exception() if not task.cancelled() else HispeedError("the append was cancelled")
    return task.result() if e is None else _error_answer(e, what)


def _error_answer(e: BaseException, what: str) -> tuple[int, bytes]:
    """A failed produce's (status, JSON), as FastProduce answers: a user's mistake said as
    such, anything else a 500 that is logged."""
    if isinstance(e, HispeedError):
        return error_status(e)
    log.error("internal error serving %s", what, exc_info=e)
    return 500, encode(error_body(f"internal error: {type(e).__name__}: {e}", 50000))


class FastProduce:
    """ASGI: `POST /topics/{t}` answered before Starlette's routing, request and response
    objects (about a third of a one-record request's cost, measured), with the same handler
    as the route (`produce_records`) and the same answers, errors included."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.state: ServerState = app.state.hispeed

    def direct_gone(self, name: str, size: int) -> None:
        """A client that left mid-body, said as `FastProduce` says it."""
        gone = ClientGoneError(f"the client closed the connection after {size} bytes of the body")
        log.info("POST /topics/%s: %s", name, gone)

    def serve_direct(
        self,
        name: str,
        query: bytes,
        content_type: str,
        body: bytes,
        respond: Callable[[int, bytes], None],
    ) -> None:
        """`POST /topics/{name}` straight from the HTTP protocol (`hispeed.server.http`), no
        ASGI request, no task: a one-record body of a known topic is handed to the log now and
        answered from the Ingestor's callback; anything else takes `produce_records`' way. The
        same answers as the route, errors included."""
        began = time.perf_counter()
        state = self.state
        try:
            params = bodies.query_params(query)
            partition = _partition_param(params)
            key_field, key = params.get("key_field"), params.get("key")
            batch = bodies.parse_message(body, content_type, key_field, key)
        except HispeedError as e:
            respond(*error_status(e))
            return
        except Exception as e:
            log.exception("internal error serving POST /topics/%s", name)
            respond(500, encode(error_body(f"internal error: {type(e).__name__}: {e}", 50000)))
            return
        ingest = state.ingest
        what = f"POST /topics/{name}"
        if ingest.known(name) and ingest.is_direct(batch, partition):
            pairs = list(zip(batch.keys, batch.values, strict=True))

            def answer(places: list[dict[str, int]] | None, error: BaseException | None) -> None:
                appended = _appended(state, name, places, began) if places is not None else None
                respond(*(appended or _error_answer(error or HispeedError("no answer"), what)))

            ingest.hand(name, pairs, partition, answer)
            return
        task = asyncio.ensure_future(_append_records(state, name, batch, partition, began))
        task.add_done_callback(lambda t: respond(*_answer_of(t, what)))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or not path.startswith("/topics/")
            or "/" in path[8:]
            or len(path) == 8
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        content_type = "application/json"
        length = b""
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                length = value
        try:
            body = await _read_asgi_body(receive, length, self.state.settings.max_request_bytes)
            params = bodies.query_params(scope["query_string"])
            status, answer = await produce_records(
                self.state, path[8:], body, content_type, params, began
            )
        except HispeedError as e:
            status, answer = error_status(e)
            if isinstance(e, ClientGoneError):
                log.info("POST %s: %s", path, e)
        except Exception as e:
            log.exception("internal error serving POST %s", path)
            status = 500
            answer = encode(error_body(f"internal error: {type(e).__name__}: {e}", 50000))
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(answer)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})


async def _read_asgi_body(receive: Receive, length: bytes, limit: int) -> bytes:
    """As `read_body`, from ASGI messages: refused past `limit` without reading the rest."""
    if length.isdigit() and int(length) > limit:
        raise BodyTooLargeError(f"the body is over {limit} bytes; send less at once")
    chunks = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGoneError(
                f"the client closed the connection after {size} bytes of the body"
            )
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError(f"the body is over {limit} bytes; send less at once")
        chunks.append(chunk)
        if not message.get("more_body"):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


__all__ = [
    "BodyTooLargeError",
    "ClientGoneError",
    "FastProduce",
    "error_status",
    "produce_records",
    "read_body",
]
