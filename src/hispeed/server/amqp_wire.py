"""An AMQP 0-9-1 connection (RabbitMQ) on asyncio for the AMQP bridge: one channel, read and
written in bulk.

Measured first with aiormq (aio-pika's core): it reads a frame at a time through
`StreamReader.readexactly` and runs a task per delivered message, and it published about
8,000 messages per CPU-second with confirms and consumed about 16,000, a fraction of what the
bridge must carry. So, as the MQTT bridge's inbound side does (`mqtt_in`), this connection
reads what the socket holds and parses every frame of it in one loop: the frames a bridge
meets by the thousand (Basic.Deliver with its content header and body; the broker's
Basic.Ack/Nack of published messages; heartbeats) are parsed here, and publishing writes the
method, header and body frames of a whole batch in one write. Every other frame (the
handshake, declarations, Channel.Close, ...) is built and read by pamqp, the AMQP codec aiormq
itself uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from pamqp import commands, frame, header

from hispeed.errors import ConfigError

#: bytes read from the socket at most at once
READ_SIZE = 1 << 18
#: the largest frame asked for in the handshake (RabbitMQ's default, 128 KiB)
FRAME_MAX = 131072
FRAME_END = 0xCE
CHANNEL = 1

_FRAME_HEADER = struct.Struct(">BHI")
_U16 = struct.Struct(">H")
_U64 = struct.Struct(">Q")
_DELIVER = b"\x00\x3c\x00\x3c"  # Basic.Deliver: class 60, method 60
_ACK = b"\x00\x3c\x00\x50"  # Basic.Ack (the broker's publisher confirm)
_NACK = b"\x00\x3c\x00\x78"  # Basic.Nack
_HEARTBEAT = b"\x08\x00\x00\x00\x00\x00\x00\xce"
# the content header's property flags of a published message: delivery-mode and message-id
_MESSAGE_ID = 1 << 7
_PUBLISH_FLAGS = (1 << 12) | _MESSAGE_ID


class AmqpError(Exception):
    """The broker closed the channel or the connection, or sent something not AMQP 0-9-1."""


@dataclass(frozen=True)
class AmqpUrl:
    """Where the broker is and how to log in: amqp://USER:PASSWORD@HOST:PORT/VHOST."""

    host: str
    port: int
    user: str
    password: str
    vhost: str

    @classmethod
    def parse(cls, url: str) -> AmqpUrl:
        parts = urlsplit(url.strip())
        example = "amqp://guest:guest@localhost:5672/"
        if parts.scheme != "amqp" or not parts.hostname:
            raise ConfigError(f"amqp_url cannot be {url!r}: write it like {example}")
        try:
            port = parts.port or 5672
        except ValueError:
            raise ConfigError(f"amqp_url {url!r} has a bad port: write it like {example}") from None
        path = parts.path[1:] if parts.path.startswith("/") else parts.path
        return cls(
            parts.hostname,
            port,
            unquote(parts.username or "guest"),
            unquote(parts.password or "guest"),
            unquote(path) or "/",
        )

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


def _short(text: str) -> bytes:
    data = text.encode()
    if len(data) > 255:
        raise ValueError(f"{text[:40]!r}... is longer than AMQP's 255 bytes")
    return bytes([len(data)]) + data


@dataclass
class Delivery:
    """A message the broker delivered to one of the channel's consumers."""

    consumer_tag: str
    delivery_tag: int
    redelivered: bool
    exchange: str
    routing_key: str
    body: bytes
    #: the message-id property, when the publisher set one
    message_id: str | None = None


@dataclass
class Parsed:
    """What the parses of the buffer found and nobody took yet."""

    deliveries: list[Delivery] = field(default_factory=list)
    #: other method frames, unmarshalled by pamqp
    methods: list[Any] = field(default_factory=list)
    #: the message being assembled: its Basic.Deliver fields, body size and body parts
    partial: list[Any] | None = None


def parse(buf: bytearray, out: Parsed, confirms: Confirms) -> None:
    """Parse the whole frames at the front of `buf` into `out` (and the broker's confirms into
    `confirms`), and remove them from `buf`; a partial frame stays for the next read."""
    pos = 0
    end = len(buf)
    unpack_header = _FRAME_HEADER.unpack_from
    unpack_u64 = _U64.unpack_from
    while end - pos >= 8:
        kind, _channel, size = unpack_header(buf, pos)
        p = pos + 7
        stop = p + size
        if stop >= end:
            break
        if buf[stop] != FRAME_END:
            raise AmqpError("a frame does not end with 0xCE: the stream is not AMQP 0-9-1")
        if kind == 3:  # a body frame: the current message's content
            part = out.partial
            if part is None:
                raise AmqpError("a content body frame without a Basic.Deliver")
            part[6].append(bytes(buf[p:stop]))
            part[7] += size
            if part[7] >= part[5]:
                _complete(out)
        elif kind == 2:  # a content header: the body's size, and the message id if any
            part = out.partial
            if part is None:
                raise AmqpError("a content header frame without a Basic.Deliver")
            (part[5],) = unpack_u64(buf, p + 4)
            flags = (buf[p + 12] << 8) | buf[p + 13]
            if flags & _MESSAGE_ID:
                part[8] = _message_id(buf, p + 14, flags)
            if part[5] == 0:
                _complete(out)
        elif kind == 1:
            method = bytes(buf[p : p + 4])
            if method == _DELIVER:
                q = p + 4
                n = buf[q]
                consumer_tag = buf[q + 1 : q + 1 + n].decode()
                q += 1 + n
                (delivery_tag,) = unpack_u64(buf, q)
                redelivered = bool(buf[q + 8] & 1)
                q += 9
                n = buf[q]
                exchange = buf[q + 1 : q + 1 + n].decode()
                q += 1 + n
                n = buf[q]
                routing_key = buf[q + 1 : q + 1 + n].decode()
                out.partial = [consumer_tag, delivery_tag, redelivered, exchange, routing_key]
                out.partial += [-1, [], 0, None]
            elif method in (_ACK, _NACK):
                (tag,) = unpack_u64(buf, p + 4)
                confirms.add(tag, bool(buf[p + 12] & 1), method == _ACK)
            else:
                _, _, value = frame.unmarshal(bytes(buf[pos : stop + 1]))
                if isinstance(value, commands.Channel.Close | commands.Connection.Close):
                    raise AmqpError(
                        f"the broker closed the channel: {value.reply_code} {value.reply_text}"
                    )
                out.methods.append(value)
        # kind 8: a heartbeat; nothing to do
        pos = stop + 1
    del buf[:pos]


def _message_id(buf: bytearray, q: int, flags: int) -> str:
    """The message-id property of a content header whose properties start at `q`: the
    properties before it in AMQP's order are passed over (content-type, content-encoding,
    headers, delivery-mode, priority, correlation-id, reply-to, expiration)."""
    for bit in range(15, 7, -1):
        if not flags & (1 << bit):
            continue
        if bit == 13:  # headers: a field table, its length first
            q += 4 + int.from_bytes(buf[q : q + 4], "big")
        elif bit in (12, 11):  # delivery-mode, priority: an octet
            q += 1
        else:  # a short string
            q += 1 + buf[q]
    n = buf[q]
    return buf[q + 1 : q + 1 + n].decode("utf-8", "replace")


def _complete(out: Parsed) -> None:
    part = out.partial
    assert part is not None
    body = part[6][0] if len(part[6]) == 1 else b"".join(part[6])
    out.deliveries.append(Delivery(part[0], part[1], part[2], part[3], part[4], body, part[8]))
    out.partial = None


class Confirms:
    """The broker's publisher confirms: which delivery tags it acknowledged or refused."""

    def __init__(self) -> None:
        #: every tag up to this one is confirmed (acknowledged or refused)
        self.upto = 0
        self._single: set[int] = set()
        #: a message was refused (Basic.Nack): the batch must be sent again
        self.refused = False

    def add(self, tag: int, multiple: bool, ack: bool) -> None:
        if not ack:
            self.refused = True
        if multiple:
            self.upto = max(self.upto, tag)
            if self._single:
                self._single = {t for t in self._single if t > self.upto}
        else:
            self._single.add(tag)
        while self.upto + 1 in self._single:
            self.upto += 1
            self._single.discard(self.upto)


class Connection:
    """One connection with one channel (number 1) to a broker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.buf = bytearray()
        self.parsed = Parsed()
        self.confirms = Confirms()
        self.frame_max = FRAME_MAX
        self.heartbeat = 0
        #: the delivery tag of the last message published (publisher confirms count from 1)
        self.published = 0
        self._method_frames: dict[tuple[str, str], bytes] = {}

    @classmethod
    async def open(
        cls, url: AmqpUrl, *, heartbeat: int = 30, timeout: float = 30.0, name: str = "hispeed"
    ) -> Connection:
        """Connect, log in (PLAIN), open the virtual host and channel 1."""
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(url.host, url.port), timeout
        )
        conn = cls(reader, writer)
        try:
            await asyncio.wait_for(conn._handshake(url, heartbeat, name), timeout)
        except BaseException:
            conn.abort()
            raise
        return conn

    async def _handshake(self, url: AmqpUrl, heartbeat: int, name: str) -> None:
        self.writer.write(frame.marshal(header.ProtocolHeader(), 0))
        await self._expect(commands.Connection.Start)
        self._send(
            commands.Connection.StartOk(
                client_properties={"product": "hispeed", "connection_name": name},
                mechanism="PLAIN",
                response=f"\0{url.user}\0{url.password}",
            ),
            0,
        )
        tune = await self._expect(commands.Connection.Tune)
        self.frame_max = min(FRAME_MAX, tune.frame_max or FRAME_MAX)
        self.heartbeat = min(heartbeat, tune.heartbeat) if tune.heartbeat else heartbeat
        self._send(
            commands.Connection.TuneOk(
                channel_max=1, frame_max=self.frame_max, heartbeat=self.heartbeat
            ),
            0,
        )
        self._send(commands.Connection.Open(virtual_host=url.vhost), 0)
        await self._expect(commands.Connection.OpenOk)
        await self.call(commands.Channel.Open(), commands.Channel.OpenOk)

    def _send(self, method: Any, channel: int = CHANNEL) -> None:
        self.writer.write(frame.marshal(method, channel))

    async def _expect(self, kind: type) -> Any:
        while True:
            for i, m in enumerate(self.parsed.methods):
                if isinstance(m, kind):
                    del self.parsed.methods[i]
                    return m
            if not await self.read():
                raise AmqpError(f"the broker closed the connection before {kind.__name__}")

    async def call(self, method: Any, reply: type) -> Any:
        """Send a method on the channel and wait for its reply (a Channel.Close raises)."""
        self._send(method)
        return await self._expect(reply)

    async def read(self, timeout: float | None = None) -> bool:
        """Read what the socket holds and parse it; False when the broker closed it. Without
        anything from the broker for two heartbeat intervals the connection is dead."""
        if timeout is None and self.heartbeat:
            timeout = self.heartbeat * 2
        data = await asyncio.wait_for(self.reader.read(READ_SIZE), timeout)
        if not data:
            return False
        self.buf += data
        parse(self.buf, self.parsed, self.confirms)
        return True

    def take(self) -> list[Delivery]:
        """The messages delivered so far (and not yet taken)."""
        got = self.parsed.deliveries
        self.parsed.deliveries = []
        return got

    def ack(self, delivery_tag: int) -> None:
        """Acknowledge every message delivered up to `delivery_tag`."""
        self._send(commands.Basic.Ack(delivery_tag=delivery_tag, multiple=True))

    def send_heartbeat(self) -> None:
        self.writer.write(_HEARTBEAT)

    async def select_confirms(self) -> None:
        """Put the channel in confirm mode: the broker acknowledges each published message."""
        await self.call(commands.Confirm.Select(), commands.Confirm.SelectOk)

    def publish(self, exchange: str, messages: Sequence[tuple[str, bytes, str]]) -> int:
        """Write (routing key, body, message id) messages, persistent, to `exchange` in one
        write; returns the delivery tag of the last (what `wait_confirms` waits for)."""
        chunks: list[bytes] = []
        add = chunks.append
        pack_header = _FRAME_HEADER.pack
        room = self.frame_max - 8
        for routing_key, body, message_id in messages:
            method = self._method_frames.get((exchange, routing_key))
            if method is None:
                payload = b"\x00\x3c\x00\x28\x00\x00" + _short(exchange) + _short(routing_key)
                payload += b"\x00"
                method = pack_header(1, CHANNEL, len(payload)) + payload + b"\xce"
                if len(self._method_frames) > 10_000:
                    self._method_frames.clear()
                self._method_frames[(exchange, routing_key)] = method
            add(method)
            mid = message_id.encode()
            props = b"\x02" + bytes([len(mid)]) + mid
            add(pack_header(2, CHANNEL, 14 + len(props)))
            add(b"\x00\x3c\x00\x00" + _U64.pack(len(body)) + _U16.pack(_PUBLISH_FLAGS))
            add(props + b"\xce")
            for i in range(0, len(body), room):
                piece = body[i : i + room]
                add(pack_header(3, CHANNEL, len(piece)))
                add(piece)
                add(b"\xce")
        self.writer.write(b"".join(chunks))
        self.published += len(messages)
        return self.published

    async def wait_confirms(self, tag: int, timeout: float) -> bool:
        """Wait until the broker confirmed every message up to `tag`; False when it refused
        one (Basic.Nack) or did not answer within `timeout`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        await self.writer.drain()
        while self.confirms.upto < tag:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            try:
                if not await self.read(min(remaining, 1.0)):
                    raise AmqpError("the broker closed the connection")
            except TimeoutError:
                self.send_heartbeat()
        refused, self.confirms.refused = self.confirms.refused, False
        return not refused

    async def close(self) -> None:
        """Close the connection politely (Connection.Close), then the socket."""
        with contextlib.suppress(Exception):
            self._send(commands.Connection.Close(reply_code=200, reply_text="bye"), 0)
            await asyncio.wait_for(self._expect(commands.Connection.CloseOk), 5)
        self.abort()

    def abort(self) -> None:
        self.writer.close()


__all__ = [
    "AmqpError",
    "AmqpUrl",
    "Confirms",
    "Connection",
    "Delivery",
    "Parsed",
    "parse",
]
