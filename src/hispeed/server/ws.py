"""WebSockets: push queries, topic tails (patterns included) and produce.

`/ws/query`   the query comes as ksqlDB's `?request={"ksql": ..., "streamsProperties": ...}`
              or as the first message (the same JSON object, or the bare SQL text). Messages
              back: the header `{"queryId", "columnNames", "columnTypes"}`, then one JSON array
              a row (with `?batch=true`, one JSON array of the rows that arrived together, for
              clients that take thousands a second). An error is `{"@type": "generic_error",
              "error_code", "message"}` and ends the socket (1008: a bad query; 1011: a failure).
`/ws/topics`  `?topics=a,b` or `?pattern=^device.*` (a regular expression, new topics
              included), `&from=beginning|latest` (default latest): each record as
              `{"topic", "partition", "offset", "timestamp", "key", "value"}`, the value parsed
              as JSON when it is JSON.
`/ws/produce/{topic}`  each message is a JSON value, an array of values or NDJSON (as
              `POST /topics/{topic}`, with `?key_field=` or `?key=`); each is answered with
              `{"offsets": [...]}` or an error naming the bad record, which writes nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from hispeed.errors import HispeedError
from hispeed.log.base import Consumer
from hispeed.server.ingest import decode_json, parse_body, parse_message
from hispeed.server.state import ServerState
from hispeed.server.statements import BAD_STATEMENT, SERVER_ERROR, error_body
from hispeed.server.streaming import QuerySession, encode

Endpoint = Callable[[WebSocket], Awaitable[None]]

log = logging.getLogger(__name__)


async def _send_error(ws: WebSocket, message: str, code: int, close: int) -> None:
    # a client gone meanwhile is no error of the server's: nobody is left to tell
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        await ws.send_text(encode(error_body(message, code)).decode())
        await ws.close(code=close)


async def _until_closed(ws: WebSocket) -> None:
    """Returns when the client goes away (what it sends on a read-only socket is ignored)."""
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
    except (WebSocketDisconnect, RuntimeError):
        return


def query_endpoint(state: ServerState) -> Endpoint:
    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        request = ws.query_params.get("request")
        batched = ws.query_params.get("batch", "").lower() in ("1", "true", "yes")
        try:
            if request is None:
                request = _first_text(await ws.receive())
            text, props = _query_request(request)
        except WebSocketDisconnect:
            return
        except HispeedError as e:
            await _send_error(ws, str(e), BAD_STATEMENT, 1008)
            return
        client = ws.client.host if ws.client else None
        try:
            session = await run_in_threadpool(
                lambda: QuerySession(
                    state.engine,
                    text,
                    props,
                    state.queries,
                    settings=state.settings,
                    client=client,
                )
            )
        except HispeedError as e:
            await _send_error(ws, str(e), BAD_STATEMENT, 1008)
            return
        await ws.send_text(encode(session.header.stream_header()).decode())
        closed = asyncio.ensure_future(_until_closed(ws))
        closed.add_done_callback(lambda _: session.cancel())
        try:
            async for rows in session.rows():
                if batched:
                    await ws.send_text(encode(rows).decode())
                else:
                    for row in rows:
                        await ws.send_text(encode(row).decode())
                if closed.done():
                    return
            await ws.close(code=1000)
        except (WebSocketDisconnect, RuntimeError):
            return
        except Exception as e:
            await _send_error(ws, f"the query failed: {e}", SERVER_ERROR, 1011)
        finally:
            closed.cancel()
            session.close()

    return endpoint


def _first_text(message: Any) -> str:
    """The query a WebSocket's first message carries: text, or UTF-8 text in a binary frame."""
    if message["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(message.get("code", 1000))
    if message.get("text") is not None:
        return str(message["text"])
    try:
        return bytes(message.get("bytes") or b"").decode()
    except UnicodeDecodeError as e:
        raise HispeedError(
            f"the first message is binary and not UTF-8 text (byte {e.start}): send the query "
            'as a text message, SQL or {"ksql": "SELECT ... EMIT CHANGES;"}'
        ) from None


def _query_request(text: str) -> tuple[str, dict[str, Any]]:
    stripped = text.strip()
    if not stripped:
        raise HispeedError('the first message is empty: send "SELECT ... EMIT CHANGES;"')
    if not stripped.startswith("{"):
        return stripped, {}
    doc = decode_json(stripped, "the request")
    if not isinstance(doc, dict) or not isinstance(doc.get("ksql", doc.get("sql")), str):
        raise HispeedError('the request must be {"ksql": "SELECT ... EMIT CHANGES;"}')
    props = doc.get("streamsProperties", doc.get("properties"))
    props = {} if props is None else props  # [] or "" is a mistake to report, not "none"
    if not isinstance(props, dict):
        raise HispeedError("the properties must be a JSON object of names to values")
    sql = str(doc.get("ksql", doc.get("sql")))
    return sql, props


def topics_endpoint(state: ServerState) -> Endpoint:
    async def refuse(ws: WebSocket, message: str, code: int, close: int) -> None:
        await ws.accept()
        await _send_error(ws, message, code, close)

    async def endpoint(ws: WebSocket) -> None:
        # accepted only once the tail's start is fixed: "latest" means from when the client's
        # handshake completed, so a record produced after connect() returned is never missed
        params = ws.query_params
        pattern = params.get("pattern")
        names = [t for t in params.get("topics", "").split(",") if t]
        start = params.get("from", "latest")
        if start not in ("beginning", "latest"):
            message = f"from must be beginning or latest, not {start!r}"
            await refuse(ws, message, 40000, 1008)
            return
        if not pattern and not names:
            await refuse(ws, "name the topics: ?topics=a,b or ?pattern=^device.*", 40000, 1008)
            return
        subscription: str | list[str]
        if pattern:
            try:
                re.compile(pattern)
            except re.error as e:
                message = f"pattern {pattern!r} is not a regular expression: {e}"
                await refuse(ws, message, 40000, 1008)
                return
            subscription = pattern if pattern.startswith("^") else "^" + pattern
        else:
            subscription = names
        log_ = state.engine.log
        reset = "earliest" if start == "beginning" else "latest"

        def open_consumer() -> Consumer:
            consumer = log_.consumer(subscription, auto_offset_reset=reset)
            try:
                consumer.assignment()  # fixes the starting positions now, not at the first poll
            except BaseException:
                consumer.close()
                raise
            return consumer

        try:
            consumer = await run_in_threadpool(open_consumer)
        except HispeedError as e:
            await refuse(ws, str(e), 40400, 1008)
            return
        try:
            await ws.accept()
        except BaseException:
            consumer.close()
            raise
        closed = asyncio.ensure_future(_until_closed(ws))
        try:
            while not closed.done():
                polled = await run_in_threadpool(consumer.poll, 0.2)
                for item in polled:
                    tp = item.partition
                    for r in item.batch.to_pylist():
                        await ws.send_text(encode(_record(tp.topic, tp.partition, r)).decode())
        except (WebSocketDisconnect, RuntimeError):
            return
        except HispeedError as e:  # e.g. a corrupt segment: say which, then close (1011)
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                await ws.send_text(encode(error_body(str(e), e.code)).decode())
                await ws.close(code=1011, reason=_close_reason(e))
            return
        finally:
            closed.cancel()
            consumer.close()

    return endpoint


def _close_reason(e: Exception) -> str:
    """A close frame's reason: at most 123 bytes of UTF-8 (the message went before it)."""
    reason = str(e).encode()
    return reason[:120].decode(errors="ignore") + "..." if len(reason) > 123 else str(e)


def _record(topic: str, partition: int, r: dict[str, Any]) -> dict[str, Any]:
    return {
        "topic": topic,
        "partition": partition,
        "offset": r["offset"],
        "timestamp": r["timestamp"],
        "key": _text(r["key"], parse=False),
        "value": _text(r["value"], parse=True),
    }


def _text(raw: bytes | None, *, parse: bool) -> Any:
    if raw is None:
        return None
    if parse:
        with contextlib.suppress(msgspec.DecodeError):  # not JSON: sent as text
            return msgspec.json.decode(raw)
    return raw.decode(errors="replace")


#: answers waiting in a socket's write buffer past which a direct producer reads no more
WRITE_BUFFER_HIGH = 1 << 20


class _Answer:
    """A /ws/produce message's place in its socket's line of answers: its answer, once known."""

    __slots__ = ("began", "body", "producer")

    def __init__(self, producer: _DirectProducer, began: float, body: bytes | None = None):
        self.producer = producer
        self.began = began
        self.body = body

    def done(self, places: list[dict[str, int]] | None, error: BaseException | None) -> None:
        """The Ingestor's word on the message's records."""
        self.body = self.producer.answer(self.began, places, error)


class _DirectProducer:
    """`/ws/produce` on a `DirectSocket` (`hispeed.server.http`): each message parsed and
    handed to the log as the protocol reads it, in order; its answer written once the log has
    it, with the others ready at the same time, in one write. Reading pauses while
    `max_ws_produce_in_flight` messages wait for answers, while the topic is being created,
    and while the client leaves over a megabyte of answers unread."""

    def __init__(self, state: ServerState, topic: str, params: Any, direct: Any) -> None:
        self.state = state
        self.topic = topic
        self.key_field = params.get("key_field")
        self.key = params.get("key")
        self.direct = direct
        self.limit = state.settings.max_request_bytes
        self.in_flight = state.settings.max_ws_produce_in_flight
        #: a one-record answer, its partition and offset to fill in
        self.one_place = encode({"topic": topic, "offsets": []})[:-2].replace(b"%", b"%%") + (
            b'{"partition":%d,"offset":%d}]}'
        )
        self.pending: collections.deque[_Answer] = collections.deque()
        self.backlog: list[bytes] | None = None  # messages held while the topic is checked
        self.paused = False
        self.checking: asyncio.Task[None] | None = None
        self.waiting: asyncio.Task[None] | None = None

    def on_message(self, data: bytes) -> None:
        if self.backlog is not None:
            self.backlog.append(data)
            return
        began = time.perf_counter()
        if len(data) > self.limit:
            error = error_body(f"the message is over {self.limit} bytes", 41300)
            self._queue(_Answer(self, began, encode(error)))
            return
        try:
            batch = parse_message(data, "application/json", self.key_field, self.key)
        except HispeedError as e:
            self._queue(_Answer(self, began, encode(error_body(str(e), 40000))))
            return
        ingest = self.state.ingest
        if not ingest.known(self.topic):
            # hold this and later messages until the topic exists: they keep their order
            self.backlog = [data]
            self._pause()
            self.checking = asyncio.ensure_future(self._ensure_then_replay())
            return
        entry = _Answer(self, began)
        self._queue(entry)
        if ingest.is_direct(batch, None):
            pairs = list(zip(batch.keys, batch.values, strict=True))
            # answered in the Ingestor's group, this socket's answers written once after it
            ingest.hand(self.topic, pairs, None, entry.done, self.flush)
        else:
            appended = asyncio.ensure_future(ingest.append(self.topic, batch, None))
            appended.add_done_callback(lambda f: self._appended(entry, f))

    def _appended(self, entry: _Answer, future: asyncio.Future[Any]) -> None:
        if future.cancelled():
            entry.body = encode(error_body("the append was cancelled", SERVER_ERROR))
        else:
            error = future.exception()
            entry.done(None if error is not None else future.result(), error)
        self.flush()

    async def _ensure_then_replay(self) -> None:
        error: HispeedError | None = None
        try:
            await self.state.ingest.ensure(self.topic)
        except HispeedError as e:
            error = e
        backlog, self.backlog = self.backlog or [], None
        self.checking = None
        for data in backlog:
            if error is not None:
                self._queue(
                    _Answer(self, time.perf_counter(), encode(error_body(str(error), 40000)))
                )
            else:
                self.on_message(data)
        self._resume()

    def _queue(self, entry: _Answer) -> None:
        self.pending.append(entry)
        if entry.body is not None and len(self.pending) == 1:
            self.flush()
        if len(self.pending) >= self.in_flight:
            self._pause()

    def flush(self) -> None:
        """Write the answers ready at the head of the line, in order."""
        pending = self.pending
        if not pending or pending[0].body is None:
            return
        bodies = []
        while pending and (body := pending[0].body) is not None:
            pending.popleft()
            bodies.append(body)
        self.direct.send_texts(bodies)
        if self.direct.write_buffer_size() > WRITE_BUFFER_HIGH:
            self._pause()  # the client does not read its answers: stop reading its messages
        self._resume()

    def answer(
        self, began: float, places: list[dict[str, int]] | None, e: BaseException | None
    ) -> bytes:
        """A message's answer: its records' places, or what refused them."""
        if e is None and places is not None:
            self.state.metrics.ingested(
                self.topic, "websocket", len(places), time.perf_counter() - began
            )
            if len(places) == 1:  # the bytes `encode` gives, made without it
                place = places[0]
                return self.one_place % (place["partition"], place["offset"])
            return encode({"topic": self.topic, "offsets": places})
        if isinstance(e, HispeedError):
            return encode(error_body(str(e), 40000))
        log.error("appending a /ws/produce message to %r failed", self.topic, exc_info=e)
        return encode(error_body(f"the append failed: {e}", SERVER_ERROR))

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.direct.pause_reading()

    def _resume(self) -> None:
        if not self.paused or self.backlog is not None or len(self.pending) >= self.in_flight:
            return
        if self.direct.write_buffer_size() > WRITE_BUFFER_HIGH:
            if self.waiting is None:
                self.waiting = asyncio.ensure_future(self._resume_when_writable())
            return
        self.paused = False
        self.direct.resume_reading()

    async def _resume_when_writable(self) -> None:
        await self.direct.writable()
        self.waiting = None
        self._resume()


def produce_endpoint(state: ServerState) -> Endpoint:
    """Each message parsed and handed to the log as it arrives; its answer goes back once the
    log has it, in the order the messages came. A client may send the next message before the
    answer to the last: the messages in flight are appended together with other clients'."""

    async def endpoint(ws: WebSocket) -> None:
        await ws.accept()
        topic = ws.path_params["topic"]
        params = ws.query_params
        direct = ws.scope.get("extensions", {}).get("hispeed.direct")
        if direct is not None:
            # attached before this coroutine yields: no message can come in between
            direct.attach(_DirectProducer(state, topic, params, direct).on_message)
            with contextlib.suppress(WebSocketDisconnect, RuntimeError):
                while (await ws.receive())["type"] != "websocket.disconnect":
                    pass
            return
        key_field = params.get("key_field")
        key = params.get("key")
        limit = state.settings.max_request_bytes
        answers: asyncio.Queue[tuple[float, Awaitable[list[dict[str, int]]] | bytes] | None]
        answers = asyncio.Queue(state.settings.max_ws_produce_in_flight)
        replying = asyncio.ensure_future(_answer(ws, state, topic, answers))
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                began = time.perf_counter()
                data = message.get("bytes") or (message.get("text") or "").encode()
                if len(data) > limit:
                    error = error_body(f"the message is over {limit} bytes", 41300)
                    await answers.put((began, encode(error)))
                    continue
                try:
                    batch = parse_body(data, "application/json", key_field=key_field, key=key)
                    if not state.ingest.known(topic):
                        # before the append is handed over: appends that each waited for
                        # the topic could reach the log out of the messages' order
                        await state.ingest.ensure(topic)
                except HispeedError as e:
                    await answers.put((began, encode(error_body(str(e), 40000))))
                    continue
                # handed over now, in the messages' order; answered in that order
                append: Awaitable[list[dict[str, int]]]
                if state.ingest.is_direct(batch, None):
                    pairs = list(zip(batch.keys, batch.values, strict=True))
                    append = state.ingest.submit(topic, pairs, None)
                else:
                    append = asyncio.ensure_future(state.ingest.append(topic, batch, None))
                await answers.put((began, append))
                if replying.done():  # the client went away while answers were going out
                    return
        except (WebSocketDisconnect, RuntimeError):
            return
        finally:
            # the end marker may wait for room, unless the answering is over already
            if not replying.done():
                await answers.put(None)
            with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
                await replying

    return endpoint


async def _answer(
    ws: WebSocket,
    state: ServerState,
    topic: str,
    answers: asyncio.Queue[tuple[float, Awaitable[list[dict[str, int]]] | bytes] | None],
) -> None:
    """Sends each message's answer in order: its offsets once appended, or its error. When the
    client is gone the appends still finish (what the log has, it keeps); nobody is told."""
    gone = False
    while (item := await answers.get()) is not None:
        began, pending = item
        if isinstance(pending, bytes):
            body = pending
        else:
            try:
                offsets = await pending
            except HispeedError as e:
                body = encode(error_body(str(e), 40000))
            except Exception as e:  # the server's failure, said as such; the socket goes on
                log.exception("appending a /ws/produce message to %r failed", topic)
                body = encode(error_body(f"the append failed: {e}", SERVER_ERROR))
            else:
                state.metrics.ingested(
                    topic, "websocket", len(offsets), time.perf_counter() - began
                )
                body = encode({"topic": topic, "offsets": offsets})
        if gone:
            continue
        try:
            await ws.send_text(body.decode())
        except (WebSocketDisconnect, RuntimeError, OSError):
            gone = True


__all__ = ["produce_endpoint", "query_endpoint", "topics_endpoint"]
