"""A minimal Redis client: RESP2 over one socket, built for whole batches at once.

The sink builds the protocol text of a whole batch itself (one `str`, encoded once) and
hands it to `RedisConnection.send_batch`, which writes it all and reads every reply back,
returning only the error replies by command index. redis-py's per-command Python cost caps
it near 100,000 pipelined commands a second; this path is bound by building the text.

Strings travel as UTF-8; bytes that are not UTF-8 are carried through `surrogateescape`, so
`text(b"\\xff")` written by the sink arrives in Redis as the byte 0xff.

Any failure of the connection itself (refused, reset, timed out) closes it and raises
`RetriableError`: the caller connects again on its next call.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from hispeed.errors import ConnectorError, RetriableError

#: the Redis a client without a URL talks to
DEFAULT_URL = "redis://127.0.0.1:6379"
#: how long a command may take before the connection counts as lost
DEFAULT_TIMEOUT_MS = 5_000

ENCODING = "utf-8"
ERRORS = "surrogateescape"

#: error replies that say the server cannot serve now but may soon: the batch is retried
TRANSIENT_ERRORS = (
    "LOADING",
    "BUSY",
    "MASTERDOWN",
    "READONLY",
    "TRYAGAIN",
    "CLUSTERDOWN",
    "NOREPLICAS",
    "OOM",
    "NOAUTH",
)


class ReplyError(Exception):
    """An error reply from Redis (`-WRONGTYPE ...`): the message without its leading dash."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def is_transient(message: str) -> bool:
    """Whether an error reply is the server's state (retry the batch), not the record's."""
    return message.split(" ", 1)[0] in TRANSIENT_ERRORS


@dataclass(frozen=True)
class RedisURL:
    """Where a Redis is: `redis://[[user]:password@]host[:port][/db]`, `rediss://` (TLS) or
    `unix:///path/to/socket[?db=n]`."""

    host: str = "127.0.0.1"
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    unix_path: str | None = None

    @classmethod
    def parse(cls, url: str, what: str) -> RedisURL:
        parts = urlsplit(url.strip())
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ConnectorError(
                f"{what}: 'redis.url' must start with redis://, rediss:// or unix://, not {url!r}"
            )
        try:
            if parts.scheme == "unix":
                query = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
                return cls(
                    db=int(query.get("db", "0")),
                    password=query.get("password"),
                    unix_path=parts.path,
                )
            path = parts.path.strip("/")
            return cls(
                host=parts.hostname or "127.0.0.1",
                port=parts.port or 6379,
                db=int(path) if path else 0,
                username=unquote(parts.username) if parts.username else None,
                password=unquote(parts.password) if parts.password else None,
                tls=parts.scheme == "rediss",
            )
        except ValueError as e:
            raise ConnectorError(f"{what}: 'redis.url' {url!r} is not a Redis URL: {e}") from None

    def display(self) -> str:
        """The URL without its password, for DESCRIBE and error messages."""
        if self.unix_path is not None:
            return f"unix://{self.unix_path}?db={self.db}"
        scheme = "rediss" if self.tls else "redis"
        return f"{scheme}://{self.host}:{self.port}/{self.db}"


def bulk(s: str) -> str:
    """One RESP bulk string, as text (its length counted in UTF-8 bytes)."""
    n = len(s) if s.isascii() else len(s.encode(ENCODING, ERRORS))
    return f"${n}\r\n{s}\r\n"


def command(*args: str) -> str:
    """One RESP command, as text."""
    return f"*{len(args)}\r\n" + "".join([bulk(a) for a in args])


class _IncompleteError(Exception):
    """The buffer ends inside a reply."""


def parse_reply(buf: bytes, pos: int) -> tuple[Any, int]:
    """The reply starting at `pos` and the position after it; raises _IncompleteError.

    Simple strings and bulk strings come back as bytes, integers as int, nil as None,
    arrays as lists, errors as `ReplyError` instances (returned, not raised).
    """
    end = buf.find(b"\r\n", pos)
    if end < 0:
        raise _IncompleteError
    kind = buf[pos]
    if kind == 58:  # ':'
        return int(buf[pos + 1 : end]), end + 2
    if kind == 36:  # '$'
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        stop = end + 2 + n
        if len(buf) < stop + 2:
            raise _IncompleteError
        return buf[end + 2 : stop], stop + 2
    if kind == 43:  # '+'
        return buf[pos + 1 : end], end + 2
    if kind == 45:  # '-'
        return ReplyError(buf[pos + 1 : end].decode(ENCODING, "replace")), end + 2
    if kind == 42:  # '*'
        n = int(buf[pos + 1 : end])
        if n < 0:
            return None, end + 2
        items = []
        p = end + 2
        for _ in range(n):
            item, p = parse_reply(buf, p)
            items.append(item)
        return items, p
    raise ReplyError(f"unexpected reply from Redis: {bytes(buf[pos : end + 2])!r}")


class RedisConnection:
    """One connection to one Redis, opened on first use and again after a failure."""

    def __init__(self, url: RedisURL, timeout: float, what: str) -> None:
        self.url = url
        self.timeout = timeout
        #: who uses it, for error messages ("connector leaders")
        self.what = what
        self._sock: socket.socket | None = None
        self._buf = b""

    @property
    def connected(self) -> bool:
        return self._sock is not None

    def connect(self) -> None:
        """Open the connection (AUTH and SELECT as the URL says) unless it is open."""
        if self._sock is not None:
            return
        u = self.url
        try:
            if u.unix_path is not None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    sock.settimeout(self.timeout)
                    sock.connect(u.unix_path)
                except BaseException:  # no such socket file: ours to close all the same
                    sock.close()
                    raise
            else:
                sock = socket.create_connection((u.host, u.port), timeout=self.timeout)
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    if u.tls:
                        context = ssl.create_default_context()
                        sock = context.wrap_socket(sock, server_hostname=u.host)
                except BaseException:  # a failed TLS handshake: the TCP socket is ours to close
                    sock.close()
                    raise
        except OSError as e:
            raise RetriableError(
                f"{self.what}: cannot connect to Redis at {u.display()}: {e}"
            ) from None
        self._sock = sock
        self._buf = b""
        setup = []
        if u.password is not None:
            auth = [u.username, u.password] if u.username else [u.password]
            setup.append(command("AUTH", *auth))
        if u.db:
            setup.append(command("SELECT", str(u.db)))
        if setup:
            errors = self.send_batch("".join(setup), len(setup), simple=True)
            if errors:
                self.close()
                raise RetriableError(
                    f"{self.what}: Redis at {u.display()} refused the connection: {errors[0][1]}"
                )

    def close(self) -> None:
        sock, self._sock = self._sock, None
        self._buf = b""
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()

    def _lost(self, e: BaseException) -> RetriableError:
        self.close()
        reason = "timed out" if isinstance(e, TimeoutError) else str(e) or type(e).__name__
        return RetriableError(f"{self.what}: Redis at {self.url.display()}: {reason}")

    def _send(self, payload: bytes) -> socket.socket:
        self.connect()
        sock = self._sock
        assert sock is not None
        try:
            sock.sendall(payload)
        except OSError as e:
            raise self._lost(e) from None
        return sock

    def _recv(self, sock: socket.socket) -> bytes:
        try:
            chunk = sock.recv(1 << 20)
        except OSError as e:
            raise self._lost(e) from None
        if not chunk:
            raise self._lost(ConnectionResetError("the connection was closed by Redis"))
        return chunk

    def send_batch(self, text: str, count: int, simple: bool) -> list[tuple[int, str]]:
        """Send `count` commands at once; return (command index, message) of error replies.

        `simple`: every reply is one line (integers, +OK, errors), so the replies are
        counted by their line ends alone, without parsing them.
        """
        self.send_text(text)
        return self.collect(count, simple)

    def send_text(self, text: str) -> None:
        """Send protocol text (part of a batch) without reading replies."""
        self._send(text.encode(ENCODING, ERRORS))

    def collect(self, count: int, simple: bool) -> list[tuple[int, str]]:
        """Read the replies of `count` commands sent with `send_text`; return the errors'
        (command index, message). `simple`: as for `send_batch`."""
        sock = self._sock
        if sock is None:
            raise RetriableError(f"{self.what}: the connection to Redis closed before its replies")
        if simple:
            return self._simple_errors(sock, count)
        replies = self._read(sock, count)
        return [(i, r.message) for i, r in enumerate(replies) if isinstance(r, ReplyError)]

    def _simple_errors(self, sock: socket.socket, count: int) -> list[tuple[int, str]]:
        chunks = [self._buf] if self._buf else []
        seen = self._buf.count(b"\r\n")
        last = self._buf[-1:]
        while seen < count:
            chunk = self._recv(sock)
            seen += chunk.count(b"\r\n")
            if last == b"\r" and chunk[:1] == b"\n":
                seen += 1
            last = chunk[-1:]
            chunks.append(chunk)
        data = b"".join(chunks)
        if seen > count:  # more than asked for (cannot happen in a request/reply protocol)
            cut = 0
            for _ in range(count):
                cut = data.index(b"\r\n", cut) + 2
            data, self._buf = data[:cut], data[cut:]
        else:
            self._buf = b""
        if not data.startswith(b"-") and b"\r\n-" not in data:
            return []
        return [
            (i, line[1:].decode(ENCODING, "replace"))
            for i, line in enumerate(data.split(b"\r\n")[:count])
            if line.startswith(b"-")
        ]

    def _read(self, sock: socket.socket, count: int) -> list[Any]:
        replies: list[Any] = []
        buf = self._buf
        pos = 0
        while len(replies) < count:
            try:
                reply, pos = parse_reply(buf, pos)
            except (_IncompleteError, IndexError):
                buf = buf[pos:] + self._recv(sock)
                pos = 0
                continue
            except ValueError as e:
                raise self._lost(e) from None
            replies.append(reply)
        self._buf = buf[pos:]
        return replies

    def call(self, *args: str) -> Any:
        """One command; its reply, or ReplyError raised."""
        sock = self._send(command(*args).encode(ENCODING, ERRORS))
        reply = self._read(sock, 1)[0]
        if isinstance(reply, ReplyError):
            raise reply
        return reply

    def pipeline(self, commands: list[list[str]]) -> list[Any]:
        """Several commands at once; their replies in order (errors as ReplyError values)."""
        if not commands:
            return []
        sock = self._send("".join(command(*c) for c in commands).encode(ENCODING, ERRORS))
        return self._read(sock, len(commands))

    def send(self, *args: str) -> None:
        """Send one command without waiting for its reply (SUBSCRIBE and friends)."""
        self._send(command(*args).encode(ENCODING, ERRORS))

    def receive(self, timeout: float) -> Any:
        """The next reply or push message within `timeout` seconds, or None if none came.

        A push message is an array; a bare nil cannot arrive unasked, so None means timeout.
        """
        self.connect()
        sock = self._sock
        assert sock is not None
        with contextlib.suppress(_IncompleteError, IndexError):  # not whole yet: read more
            reply, pos = parse_reply(self._buf, 0)
            self._buf = self._buf[pos:]
            return reply
        sock.settimeout(timeout)
        try:
            while True:
                try:
                    chunk = sock.recv(1 << 16)
                except (TimeoutError, BlockingIOError):
                    return None
                except OSError as e:
                    raise self._lost(e) from None
                if not chunk:
                    raise self._lost(ConnectionResetError("the connection was closed by Redis"))
                self._buf += chunk
                try:
                    reply, pos = parse_reply(self._buf, 0)
                except (_IncompleteError, IndexError):
                    continue
                self._buf = self._buf[pos:]
                return reply
        finally:
            if self._sock is not None:
                self._sock.settimeout(self.timeout)


def text(value: bytes | str) -> str:
    """A reply's bytes as text (non-UTF-8 bytes kept through surrogateescape)."""
    return value if isinstance(value, str) else value.decode(ENCODING, ERRORS)


def fields(flat: list[Any]) -> dict[str, str]:
    """A flat `[field, value, field, value...]` reply (HGETALL, a stream entry) as a dict."""
    return {text(flat[j]): text(flat[j + 1]) for j in range(0, len(flat), 2)}


__all__ = [
    "DEFAULT_TIMEOUT_MS",
    "DEFAULT_URL",
    "ENCODING",
    "ERRORS",
    "RedisConnection",
    "RedisURL",
    "ReplyError",
    "bulk",
    "command",
    "fields",
    "is_transient",
    "parse_reply",
    "text",
]
