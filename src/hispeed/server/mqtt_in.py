"""The MQTT bridge's inbound side: an MQTT 3.1.1 subscriber on asyncio that reads PUBLISH
packets in bulk.

paho-mqtt calls Python once per message (its `on_message`), then the bridge queued each one:
about 10,000 messages a second on a core, whatever the bridge did with them. This subscriber
reads what the socket holds (hundreds of packets in one read when messages come fast), parses
every PUBLISH of it in one loop and hands them to `deliver` together; only once `deliver`
returns (the log has the records) does it acknowledge the QoS 1 ones (PUBACK), all in one
write; when `deliver` fails, it acknowledges none of them and connects again. Meanwhile the
next packets wait in the socket, so the next group is as large as the time the last one took.

The subscriber speaks only what a subscriber needs: CONNECT, SUBSCRIBE (QoS 1),
PUBLISH in, PUBACK out, PINGREQ; MQTT's own libraries are used for publishing (the bridge's
outbound side, paho).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

#: bytes read from the socket at most at once
READ_SIZE = 1 << 18
#: a packet larger than this ends the connection (a broker never sends one unasked)
MAX_PACKET = 1 << 28


class MqttProtocolError(Exception):
    """The broker sent something that is not MQTT 3.1.1."""


def packet(kind: int, body: bytes) -> bytes:
    """A control packet: the fixed header (type and flags, remaining length) and `body`."""
    n = len(body)
    length = bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([kind]) + bytes(length) + body


def _string(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def connect_packet(client_id: str, keepalive: int, clean_session: bool = True) -> bytes:
    """CONNECT, MQTT 3.1.1, no credentials."""
    header = (
        _string("MQTT") + bytes([4, 0x02 if clean_session else 0]) + keepalive.to_bytes(2, "big")
    )
    return packet(0x10, header + _string(client_id))


def subscribe_packet(packet_id: int, filters: Sequence[str], qos: int = 1) -> bytes:
    body = packet_id.to_bytes(2, "big") + b"".join(_string(f) + bytes([qos]) for f in filters)
    return packet(0x82, body)


def pubacks(packet_ids: Sequence[int]) -> bytes:
    """PUBACK for each QoS 1 message, in order, as one write."""
    return b"".join(b"\x40\x02" + i.to_bytes(2, "big") for i in packet_ids)


@dataclass
class Parsed:
    """What one parse of the buffer found."""

    #: (MQTT topic, payload) of each PUBLISH, in order
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    #: the packet ids of the QoS 1 PUBLISH packets, to acknowledge once delivered
    acks: list[int] = field(default_factory=list)
    #: the SUBACK packets' return codes
    subacks: list[bytes] = field(default_factory=list)
    connack: bytes | None = None


def parse(buf: bytearray, out: Parsed) -> None:
    """Parse the whole packets at the front of `buf` into `out` and remove them from `buf`;
    a partial packet stays for the next read."""
    pos = 0
    end = len(buf)
    messages = out.messages
    acks = out.acks
    while end - pos >= 2:
        first = buf[pos]
        length = 0
        shift = 0
        i = pos + 1
        while True:
            if i >= end:
                del buf[:pos]
                return
            b = buf[i]
            i += 1
            length |= (b & 0x7F) << shift
            if not b & 0x80:
                break
            shift += 7
            if shift > 21:
                raise MqttProtocolError("a packet's remaining length runs past four bytes")
        if length > MAX_PACKET:
            raise MqttProtocolError(f"a packet of {length} bytes")
        stop = i + length
        if stop > end:
            break
        kind = first >> 4
        if kind == 3:  # PUBLISH
            tlen = (buf[i] << 8) | buf[i + 1]
            j = i + 2 + tlen
            topic = buf[i + 2 : j].decode("utf-8", "replace")
            if first & 0x06:  # QoS 1 (or 2, which a QoS 1 subscription never receives)
                acks.append((buf[j] << 8) | buf[j + 1])
                j += 2
            messages.append((topic, bytes(buf[j:stop])))
        elif kind == 9:  # SUBACK: packet id, then a return code per filter
            out.subacks.append(bytes(buf[i + 2 : stop]))
        elif kind == 2:  # CONNACK: flags, return code
            out.connack = bytes(buf[i:stop])
        # PINGRESP (13) and anything else a subscriber may ignore
        pos = stop
    del buf[:pos]


Deliver = Callable[[list[tuple[str, bytes]]], Awaitable[None]]


class Subscriber:
    """Subscribes to `filters` (QoS 1) on host:port and hands messages to `deliver` in groups;
    reconnects with backoff. It runs its own event loop on a thread of its own."""

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        filters: Sequence[str],
        deliver: Deliver,
        *,
        keepalive: int = 30,
        clean_session: bool = True,
        reconnect: tuple[float, float] = (1.0, 30.0),
        on_connect: Callable[[], None] = lambda: None,
        on_subscribed: Callable[[list[str]], None] = lambda refused: None,
        on_disconnect: Callable[[str], None] = lambda reason: None,
        on_connect_fail: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self.host, self.port = host, port
        self.client_id = client_id
        self.filters = list(filters)
        self.deliver = deliver
        self.keepalive = keepalive
        self.clean_session = clean_session
        self.reconnect = reconnect
        self.on_connect = on_connect
        self.on_subscribed = on_subscribed
        self.on_disconnect = on_disconnect
        self.on_connect_fail = on_connect_fail
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    def start(self) -> None:
        """Connect in the background; returns at once."""
        from hispeed.server.http import event_loop_factory

        def main() -> None:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(self._main())

        self._thread = threading.Thread(target=main, name="hispeed-mqtt-in", daemon=True)
        self._thread.start()
        self._started.wait(10)

    def stop(self, timeout: float = 30.0) -> None:
        """Deliver what was read, acknowledge it, disconnect and end the thread."""
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            with contextlib.suppress(RuntimeError):  # its loop already ended
                loop.call_soon_threadsafe(stop.set)
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._started.set()
        delay = self.reconnect[0]
        while not self._stop.is_set():
            try:
                reader, writer = await asyncio.open_connection(self.host, self.port)
            except OSError as e:
                self.on_connect_fail(str(e))
                await self._sleep(delay)
                delay = min(delay * 2, self.reconnect[1])
                continue
            try:
                reason = await self._session(reader, writer)
                delay = self.reconnect[0]
            except (OSError, MqttProtocolError, asyncio.IncompleteReadError) as e:
                reason = str(e) or type(e).__name__
            finally:
                writer.close()
                with contextlib.suppress(OSError, ConnectionError):
                    await writer.wait_closed()
            if self._stop.is_set():
                return
            self.on_disconnect(reason)
            await self._sleep(delay)

    async def _sleep(self, seconds: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        """One connection: connect, subscribe, then read and deliver until it ends; returns why
        it ended."""
        assert self._stop is not None
        writer.write(connect_packet(self.client_id, self.keepalive, self.clean_session))
        buf = bytearray()
        parsed = Parsed()
        while parsed.connack is None:
            data = await asyncio.wait_for(reader.read(READ_SIZE), 30)
            if not data:
                return "the broker closed the connection before CONNACK"
            buf += data
            parse(buf, parsed)
        if len(parsed.connack) < 2 or parsed.connack[1] != 0:
            code = parsed.connack[1] if len(parsed.connack) > 1 else -1
            self.on_connect_fail(f"the broker refused the connection (return code {code})")
            return f"refused ({code})"
        self.on_connect()
        writer.write(subscribe_packet(1, self.filters))
        pinging = asyncio.ensure_future(self._ping(writer))
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            while True:
                if parsed.subacks:
                    codes = parsed.subacks.pop()
                    refused = [f for f, c in zip(self.filters, codes, strict=False) if c >= 0x80]
                    self.on_subscribed(refused)
                if parsed.messages:
                    messages, acks = parsed.messages, parsed.acks
                    parsed.messages, parsed.acks = [], []
                    try:
                        await self.deliver(messages)
                    except Exception as e:
                        # nothing acknowledged: the broker keeps the QoS 1 messages (and sends
                        # them again to a session that persists)
                        log.exception("delivering %d MQTT messages failed", len(messages))
                        return f"delivering failed: {e}"
                    if acks:  # only now: the log has them
                        writer.write(pubacks(acks))
                if stopping.done():
                    with contextlib.suppress(OSError):
                        writer.write(b"\xe0\x00")  # DISCONNECT
                        await writer.drain()
                    return "stopped"
                read = asyncio.ensure_future(reader.read(READ_SIZE))
                await asyncio.wait((read, stopping), return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    continue  # stopping: what was parsed is delivered above
                data = read.result()
                if not data:
                    return "the broker closed the connection"
                buf += data
                parse(buf, parsed)
        finally:
            pinging.cancel()
            stopping.cancel()

    async def _ping(self, writer: asyncio.StreamWriter) -> None:
        while True:
            await asyncio.sleep(self.keepalive / 2)
            writer.write(b"\xc0\x00")  # PINGREQ


__all__ = [
    "MqttProtocolError",
    "Parsed",
    "Subscriber",
    "connect_packet",
    "packet",
    "parse",
    "pubacks",
    "subscribe_packet",
]
