"""The HTTP server under the app: uvicorn (httptools, websockets' sans-I/O protocol with its C
speedups, uvloop when installed) for HTTP/1.1 and WebSockets, hypercorn for HTTP/2.

Why two: measured on one core with one-record messages, hypercorn (h11, wsproto: pure Python)
served about 3,600 HTTP requests and 12,000 WebSocket messages per CPU second with an app that
did nothing; uvicorn with httptools about 20,000 and 25,000. But ksqlDB's clients (the Java
client, jetblack-ksql-dbapi, ksql-python's `use_http2`) speak HTTP/2 with prior knowledge,
which uvicorn does not. So every connection starts in uvicorn's protocol, and one whose first
bytes are HTTP/2's connection preface is handed, with those bytes, to hypercorn's connection
handler on the same event loop: one port, one app, each protocol served by the library that
serves it fastest.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.types import ASGIApp
from websockets.protocol import State

from hispeed.server.wsframes import split_frames, text_frames

log = logging.getLogger(__name__)

#: the first bytes of an HTTP/2 connection with prior knowledge (RFC 9113, 3.4); no HTTP/1.x
#: request starts with "PRI"
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's loop when installed (about a third less CPU per request), else asyncio's."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


class _Http2Handoff:
    """Serves connections handed over from uvicorn with hypercorn's HTTP/2 connection handler."""

    def __init__(self, app: ASGIApp, max_frame: int) -> None:
        from hypercorn.config import Config
        from hypercorn.utils import wrap_app

        self.config = Config()
        self.config.accesslog = None
        self.config.errorlog = logging.getLogger("hypercorn.error")
        self.config.h2_max_inbound_frame_size = max_frame
        self.app = wrap_app(app, self.config.wsgi_max_body_size, "asgi")  # type: ignore[arg-type]
        self.tasks: set[asyncio.Task[None]] = set()
        self._context: Any = None

    def take(self, transport: asyncio.Transport, first: bytes) -> None:
        """Serve `transport` from now on; `first` is what was read from it so far."""
        from hypercorn.asyncio.tcp_server import TCPServer
        from hypercorn.asyncio.worker_context import WorkerContext

        if self._context is None:
            self._context = WorkerContext(None)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=2**16, loop=loop)
        protocol = asyncio.StreamReaderProtocol(reader, loop=loop)
        transport.set_protocol(protocol)
        protocol.connection_made(transport)
        reader.feed_data(first)
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        server = TCPServer(self.app, loop, self.config, self._context, {}, reader, writer)
        task = loop.create_task(server.run())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def close(self, timeout: float) -> None:
        """Wait up to `timeout` seconds for the HTTP/2 connections to end, then cancel them."""
        if self.tasks:
            _, pending = await asyncio.wait(set(self.tasks), timeout=timeout)
            for task in pending:
                task.cancel()


#: (the path after the prefix, the query string, the content type, the body, respond), where
#: respond(status, JSON body) answers once
PostHandler = Callable[[str, bytes, str, bytes, Callable[[int, bytes], None]], None]


@dataclass(frozen=True)
class DirectPost:
    """POSTs to `prefix` + one path segment served below ASGI by `handler`: keep-alive HTTP/1.1
    requests with a Content-Length up to `max_body` (anything else goes to the app)."""

    prefix: str
    handler: PostHandler
    max_body: int
    #: told (the path after the prefix, the bytes of the body read) of a client that left
    #: before its body was whole
    gone: Callable[[str, int], None]


class _NoNews:
    """What a handed `_DirectCycle` gives uvicorn as its `message_event`: news of the body
    is no longer read."""

    def set(self) -> None:
        pass


_NO_NEWS = _NoNews()


class _DirectCycle:
    """A request served by a `DirectPost` handler, kept where uvicorn keeps its request cycle
    (`protocol.cycle`, `protocol.pipeline`): uvicorn's own callbacks gather its body and order
    it among pipelined requests; its answer is written when the handler gives it and the
    requests before it are answered."""

    def __init__(self, protocol: Any, post: DirectPost, tail: str, query: bytes, ctype: str):
        self.protocol = protocol
        self.post = post
        self.tail = tail
        self.query = query
        self.content_type = ctype
        # what uvicorn's callbacks read and write on a cycle
        self.body = bytearray()
        self.more_body = True
        self.response_complete = False
        self.disconnected = False
        self.keep_alive = True
        # uvicorn says "news of the body" with message_event.set()
        self.message_event: _DirectCycle | _NoNews = self
        self.started = False
        self.handed = False

    def set(self) -> None:
        if self.handed:
            return
        if self.disconnected and self.more_body:
            self.handed = True
            self.message_event = _NO_NEWS
            self.post.gone(self.tail, len(self.body))
        elif self.started and not self.more_body:
            self.handed = True
            # no cycle through itself left behind: freed when answered, not by the collector
            self.message_event = _NO_NEWS
            body = bytes(self.body)
            self.post.handler(self.tail, self.query, self.content_type, body, self.respond)

    def start(self) -> None:
        """Its turn: the requests before it on the connection are answered."""
        self.started = True
        self.set()

    def respond(self, status: int, body: bytes) -> None:
        if self.response_complete:
            return
        self.response_complete = True
        protocol = self.protocol
        if self.disconnected or protocol.transport.is_closing():
            return
        head = _head(status, protocol.server_state.default_headers)
        length = b"content-length: %d\r\n" % len(body)
        if self.keep_alive:
            protocol.transport.write(b"".join((head, length, b"\r\n", body)))
        else:  # the server is shutting down
            protocol.transport.write(b"".join((head, length, b"connection: close\r\n\r\n", body)))
            protocol.transport.close()
        protocol.on_response_complete()


#: per status: the default headers it was made with (uvicorn makes a new list each second, for
#: the date) and the head up to the content length
_HEADS: dict[int, tuple[object, bytes]] = {}


def _head(status: int, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A direct answer's status line and headers before its content length: what uvicorn
    writes for the app's answers, made once a second, not once a request."""
    made = _HEADS.get(status)
    if made is not None and made[0] is default_headers:
        return made[1]
    from uvicorn.protocols.http.httptools_impl import STATUS_LINE

    content = [STATUS_LINE[status]]
    for name, value in default_headers:
        content += (name, b": ", value, b"\r\n")
    content.append(b"content-type: application/json\r\n")
    head = b"".join(content)
    _HEADS[status] = (default_headers, head)
    return head


def _front_protocol(handoff: _Http2Handoff, direct_post: DirectPost | None) -> type:
    """uvicorn's httptools protocol, which gives an HTTP/2 connection to hypercorn and serves
    `direct_post`'s requests below ASGI."""
    import httptools
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    prefix = direct_post.prefix.encode() if direct_post is not None else b""

    class FrontProtocol(HttpToolsProtocol):
        _first = True

        def on_headers_complete(self) -> None:
            cycle = self._direct_cycle()
            if cycle is None:
                super().on_headers_complete()
                return
            existing = self.cycle
            self.cycle = cycle  # type: ignore[assignment]
            if existing is None or existing.response_complete:
                cycle.start()
            else:  # pipelined: its turn comes as uvicorn's own requests' do
                self.flow.pause_reading()
                self.pipeline.appendleft((cycle, None))  # type: ignore[arg-type]

        def _direct_cycle(self) -> _DirectCycle | None:
            """A cycle of `direct_post`'s for this request, or None: the app serves it."""
            parser = self.parser
            if (
                direct_post is None
                or parser.get_method() != b"POST"
                or parser.get_http_version() != "1.1"
                or not parser.should_keep_alive()
                or parser.should_upgrade()
                or self.expect_100_continue
                or self.limit_concurrency is not None
                or self.root_path
            ):
                return None
            url = httptools.parse_url(self.url)
            path = url.path
            tail = path[len(prefix) :]
            if not path.startswith(prefix) or not tail or b"/" in tail or b"%" in tail:
                return None
            content_type = b"application/json"
            length = b""
            for name, value in self.headers:
                if name == b"content-type":
                    content_type = value
                elif name == b"content-length":
                    length = value
                elif name == b"transfer-encoding":
                    return None
            if not length.isdigit() or int(length) > direct_post.max_body:
                return None
            self.scope["method"] = "POST"  # as uvicorn's own callback leaves it
            return _DirectCycle(
                self,
                direct_post,
                tail.decode("latin-1"),
                url.query or b"",
                content_type.decode("latin-1"),
            )

        def _start_asgi_task(self, cycle: Any, app: Any) -> None:
            if isinstance(cycle, _DirectCycle):
                cycle.start()
            else:
                super()._start_asgi_task(cycle, app)

        def data_received(self, data: bytes) -> None:
            if self._first:
                self._first = False
                if data[:3] == H2_PREFACE[:3]:
                    # uvicorn forgets the connection; hypercorn owns it from here on
                    self.connections.discard(self)
                    self._unset_keepalive_if_required()
                    handoff.take(self.transport, data)
                    return
            super().data_received(data)

    return FrontProtocol


class DirectSocket:
    """What `/ws/produce` gets through the scope's "hispeed.direct" extension: the socket's
    messages straight from the protocol (no ASGI queue, no pause and resume of the socket per
    message, as uvicorn does to pace `receive()`), and answers written several at once."""

    def __init__(self, protocol: Any) -> None:
        self._protocol = protocol

    def attach(self, sink: Callable[[bytes], None]) -> None:
        """From now on each whole message (text or binary) goes to `sink` as bytes, in order;
        the ASGI `receive()` sees only the disconnect."""
        protocol = self._protocol
        protocol.hispeed_sink = sink
        protocol.hispeed_split = _at_frame_boundary(protocol)

    @property
    def closed(self) -> bool:
        protocol = self._protocol
        return bool(protocol.close_sent or protocol.transport.is_closing())

    def send_texts(self, bodies: list[bytes]) -> None:
        """Text messages (UTF-8 bytes), in order, in one write to the socket."""
        protocol = self._protocol
        transport = protocol.transport
        if protocol.close_sent or transport.is_closing():
            return
        if protocol.conn.state is not State.OPEN:  # closing: websockets refuses to send
            return
        transport.write(text_frames(bodies))

    def write_buffer_size(self) -> int:
        return int(self._protocol.transport.get_write_buffer_size())

    async def writable(self) -> None:
        """Returns once the socket takes writes again (uvicorn's flow control)."""
        await self._protocol.writable.wait()

    def pause_reading(self) -> None:
        if not self.closed:
            self._protocol.transport.pause_reading()

    def resume_reading(self) -> None:
        if not self.closed:
            self._protocol.transport.resume_reading()


def _at_frame_boundary(protocol: Any) -> bool:
    """Whether websockets' parser waits at the start of a frame with no bytes held: then
    frames can be split elsewhere from the next read on. Always so for a client that waits
    for the handshake's answer before it sends (RFC 6455, 4.1); otherwise websockets keeps
    parsing. Its parser waits for a frame in `StreamReader.at_eof` (`Protocol.parse`, under
    `ServerProtocol.parse`)."""
    conn = protocol.conn
    # with permessage-deflate negotiated a frame with RSV1 clear is sent as it is: split
    # here; a compressed one (RSV1 set) stops the splitting, and websockets inflates it
    if conn.state is not State.OPEN or protocol.frames:
        return False
    if conn.reader.buffer or conn.reader.eof or conn.current_size is not None:
        return False
    waiting = conn.parser
    while getattr(waiting, "gi_yieldfrom", None) is not None:  # the generator it waits in
        waiting = waiting.gi_yieldfrom
    return getattr(getattr(waiting, "gi_code", None), "co_name", None) == "at_eof"


def _ws_protocol() -> type:
    """uvicorn's websockets sans-I/O protocol, offering `DirectSocket` to the app."""
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

    class DirectProtocol(WebSocketsSansIOProtocol):
        hispeed_sink: Callable[[bytes], None] | None = None
        #: the frames split here (`wsframes`), not by websockets' parser
        hispeed_split = False
        hispeed_rest = b""

        def data_received(self, data: bytes) -> None:
            if not self.hispeed_split:
                super().data_received(data)
                return
            if self.hispeed_rest:
                data = self.hispeed_rest + data
            payloads, used, other = split_frames(data, self.conn.max_message_size or 1 << 62)
            sink = self.hispeed_sink
            if sink is not None and not self.close_sent:  # past close: discarded, as before
                for payload in payloads:
                    sink(payload)
            if other:
                # a frame of another kind: websockets' parser (at this frame's start, as it
                # saw none of the split ones) takes the stream from here, as before
                self.hispeed_split = False
                self.hispeed_rest = b""
                super().data_received(data[used:])
            else:
                self.hispeed_rest = data[used:]

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            scope = getattr(self, "scope", None)
            if scope is not None:  # the app has not run yet: it finds the extension
                scope["extensions"]["hispeed.direct"] = DirectSocket(self)

        def send_receive_event_to_app(self) -> None:
            sink = self.hispeed_sink
            if sink is None or self.close_sent:
                super().send_receive_event_to_app()
                return
            data = self.frames[0] if len(self.frames) == 1 else b"".join(self.frames)
            self.frames = []
            sink(bytes(data))

    return DirectProtocol


async def serve(
    app: ASGIApp,
    host: str,
    port: int,
    *,
    shutdown: Callable[[], Awaitable[object]],
    max_ws_message: int,
    ready: Callable[[], None] | None = None,
    direct_post: DirectPost | None = None,
) -> None:
    """Serve `app` on host:port until `shutdown` returns, then end the connections (5 s of
    grace, as before)."""
    import uvicorn

    handoff = _Http2Handoff(app, 2**20)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        http=_front_protocol(handoff, direct_post),
        ws=_ws_protocol(),
        ws_max_size=max_ws_message,
        lifespan="off",
        access_log=False,
        log_config=None,
        timeout_graceful_shutdown=5,
        backlog=2048,
    )
    server = uvicorn.Server(config)
    config.load()
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    if server.should_exit:  # uvicorn could not listen: it logged why
        raise OSError(f"cannot serve on {host}:{port}")
    if ready is not None:
        ready()
    ticking = asyncio.ensure_future(server.main_loop())  # the Date header, once a second
    try:
        await shutdown()
    finally:
        server.should_exit = True
        await ticking
        await server.shutdown()
        await handoff.close(5.0)


__all__ = ["H2_PREFACE", "DirectPost", "DirectSocket", "event_loop_factory", "serve"]
