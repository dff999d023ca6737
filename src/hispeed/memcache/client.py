"""A memcached client for whole batches: pipelined stores and gets over one socket a server.

`MemcachedCluster` spreads keys over its servers with pymemcache's rendezvous hash, the one
pymemcache's `HashClient` uses (nodes named "host:port"), so a key this client writes is the
key a `HashClient` over the same servers reads, and the other way round.

Why not pymemcache's own `set_many`: it raises at the first error reply, leaving the replies
after it unread (one oversized value would fail every record of the batch), it has no
pipelined add/replace/cas/delete of many keys, and `HashClient` takes a failing server out
of the ring, moving its keys to another server, where a sink must rather wait for the same
server to come back. So the text protocol's storage commands are written here, all of a
server's commands of one round in one `sendall`, and the replies read back by position.

Any failure of a connection itself (refused, reset, timed out) closes it and raises
`RetriableError`: the caller connects again on its next call.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Sequence
from typing import NamedTuple

from pymemcache.client.rendezvous import RendezvousHash

from hispeed.errors import ConnectorError, RetriableError

#: the memcached a client without servers talks to
DEFAULT_SERVERS = "127.0.0.1:11211"
DEFAULT_TIMEOUT_S = 5.0
#: memcached's longest key, in bytes
MAX_KEY_BYTES = 250
#: memcached's default item size limit (its -I option): a value with its key and the item's
#: header must fit in it
DEFAULT_MAX_ITEM_BYTES = 1024 * 1024
#: bytes of an item besides its key and value (memcached's item header with a CAS field,
#: the flags and the trailing CRLF, rounded up)
ITEM_OVERHEAD_BYTES = 64
#: memcached reads an expiry over 30 days as a Unix time, not as seconds from now
RELATIVE_EXPIRY_MAX_S = 30 * 24 * 3600
#: keys of one `gets` command (memcached takes long key lists, but a bounded line is kinder)
KEYS_PER_GET = 100
#: what memcached's text protocol cannot carry in a key: spaces and control characters
_BAD_KEY_BYTE = re.compile(rb"[\x00-\x20\x7f]")


class Op(NamedTuple):
    """One storage command: `set`, `add`, `replace`, `cas` (with `cas_token`) or `delete`.
    (A named tuple: a batch makes one per record, and a tuple is quick to make.)"""

    verb: str
    key: bytes
    value: bytes = b""
    expire: int = 0
    cas_token: int = 0


def parse_servers(text: str, what: str) -> list[tuple[str, int]]:
    """`host:port[,host:port...]` (a missing port is 11211) as (host, port) pairs."""
    out: list[tuple[str, int]] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep:
            host, port = part, "11211"
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConnectorError(f"{what}: {part!r} is not a memcached server (host:port)")
        out.append((host, int(port)))
    if not out:
        raise ConnectorError(f"{what}: no memcached servers given (host:port[,host:port])")
    return out


def key_problem(key: bytes) -> str | None:
    """Why memcached cannot take `key` (too long, spaces or control characters), or None."""
    if not key:
        return "the key is empty"
    if len(key) > MAX_KEY_BYTES:
        return f"the key is {len(key)} bytes, over memcached's {MAX_KEY_BYTES}"
    # the text protocol splits on spaces and ends a line at CR LF; memcached refuses controls
    if _BAD_KEY_BYTE.search(key):
        return "the key holds a space or a control character, which memcached refuses"
    return None


def expiry(seconds: float | None) -> int:
    """memcached's exptime for a TTL in seconds (0: never; past 30 days a Unix time)."""
    if seconds is None or seconds <= 0:
        return 0
    whole = max(1, round(seconds))
    if whole > RELATIVE_EXPIRY_MAX_S:
        return int(time.time()) + whole
    return whole


class MemcachedConnection:
    """One socket to one memcached server; `RetriableError` when it cannot talk."""

    def __init__(self, host: str, port: int, timeout_s: float, what: str) -> None:
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self.what = what
        self.sock: socket.socket | None = None
        self._buf = b""

    @property
    def name(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self.sock is not None

    def connect(self) -> None:
        if self.sock is not None:
            return
        try:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout_s)
        except OSError as e:
            raise RetriableError(
                f"{self.what}: memcached at {self.name} cannot be reached: {e}"
            ) from None
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock
        self._buf = b""

    def close(self) -> None:
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
        self.sock = None
        self._buf = b""

    def _lost(self, e: BaseException) -> RetriableError:
        self.close()
        return RetriableError(f"{self.what}: lost memcached at {self.name}: {e}")

    def _fill(self) -> None:
        assert self.sock is not None
        chunk = self.sock.recv(262144)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self._buf += chunk

    def exchange(self, payload: bytes, replies: int) -> list[bytes]:
        """Send `payload` (commands that each answer one line) and read `replies` lines."""
        self.connect()
        assert self.sock is not None
        try:
            self.sock.sendall(payload)
            while self._buf.count(b"\r\n") < replies:
                self._fill()
        except OSError as e:
            raise self._lost(e) from None
        lines = self._buf.split(b"\r\n", replies)
        self._buf = lines.pop() if len(lines) > replies else b""
        return lines

    def gets(self, keys: Sequence[bytes]) -> dict[bytes, tuple[bytes, int]]:
        """Each found key's (value, cas token), its `gets` commands pipelined."""
        self.connect()
        assert self.sock is not None
        commands = [
            b"gets " + b" ".join(keys[i : i + KEYS_PER_GET]) + b"\r\n"
            for i in range(0, len(keys), KEYS_PER_GET)
        ]
        found: dict[bytes, tuple[bytes, int]] = {}
        try:
            self.sock.sendall(b"".join(commands))
            ends = 0
            while ends < len(commands):
                line = self._line()
                if line == b"END":
                    ends += 1
                    continue
                parts = line.split()
                if len(parts) < 4 or parts[0] != b"VALUE":
                    raise ConnectionError(f"unexpected reply {line[:80]!r} to gets")
                size = int(parts[3])
                while len(self._buf) < size + 2:
                    self._fill()
                found[parts[1]] = (self._buf[:size], int(parts[4]) if len(parts) > 4 else 0)
                self._buf = self._buf[size + 2 :]
        except OSError as e:
            raise self._lost(e) from None
        return found

    def _line(self) -> bytes:
        while True:
            end = self._buf.find(b"\r\n")
            if end >= 0:
                line = self._buf[:end]
                self._buf = self._buf[end + 2 :]
                return line
            self._fill()


def encode(op: Op) -> bytes:
    """The protocol text of one storage command."""
    verb, key, value, expire, cas_token = op
    if verb == "cas":
        return b"cas %b 0 %d %d %d\r\n%b\r\n" % (key, expire, len(value), cas_token, value)
    if verb == "delete":
        return b"delete %b\r\n" % key
    return b"%b %b 0 %d %d\r\n%b\r\n" % (_VERBS[verb], key, expire, len(value), value)


_VERBS = {v: v.encode() for v in ("set", "add", "replace")}


def bad_keys(keys: Sequence[bytes]) -> bool:
    """Whether any of `keys` may be one memcached cannot hold (a quick test of a batch:
    `key_problem` then tells which and why)."""
    if not keys:
        return False
    if min(map(len, keys)) == 0 or max(map(len, keys)) > MAX_KEY_BYTES:
        return True
    return _BAD_KEY_BYTE.search(b"a".join(keys)) is not None


class MemcachedCluster:
    """memcached servers with keys spread by rendezvous hashing, as pymemcache's HashClient."""

    def __init__(self, servers: str, what: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.what = what
        self.servers = parse_servers(servers, what)
        self.connections = {
            f"{h}:{p}": MemcachedConnection(h, p, timeout_s, what) for h, p in self.servers
        }
        self.names = list(self.connections)
        self.hasher = RendezvousHash()
        for name in self.names:
            self.hasher.add_node(name)

    def display(self) -> str:
        return ",".join(self.names)

    @property
    def connected(self) -> bool:
        return all(c.connected for c in self.connections.values())

    def node(self, key: bytes) -> str:
        """The server that holds `key` (HashClient hashes the key's text)."""
        if len(self.names) == 1:
            return self.names[0]
        return str(self.hasher.get_node(key.decode("utf-8", "surrogateescape")))

    def split(self, keys: Sequence[bytes]) -> dict[str, list[int]]:
        """The indices of `keys` by the server that holds each."""
        if len(self.names) == 1:
            return {self.names[0]: list(range(len(keys)))}
        out: dict[str, list[int]] = {}
        for i, k in enumerate(keys):
            out.setdefault(self.node(k), []).append(i)
        return out

    def connect(self) -> None:
        for c in self.connections.values():
            c.connect()

    def close(self) -> None:
        for c in self.connections.values():
            c.close()

    def store(self, ops: Sequence[Op], payloads: Sequence[bytes] | None = None) -> list[bytes]:
        """Run `ops` (distinct keys, or ones whose order on a server does not matter) and
        return each one's reply line (STORED, NOT_STORED, EXISTS, NOT_FOUND, DELETED,
        SERVER_ERROR ...). `payloads`, when given, is each op's text already encoded."""
        texts = payloads if payloads is not None else [encode(op) for op in ops]
        replies: list[bytes] = [b""] * len(ops)
        for name, indices in self.split([op.key for op in ops]).items():
            conn = self.connections[name]
            if len(indices) == len(ops):
                return conn.exchange(b"".join(texts), len(ops))
            lines = conn.exchange(b"".join(texts[i] for i in indices), len(indices))
            for i, line in zip(indices, lines, strict=True):
                replies[i] = line
        return replies

    def gets(self, keys: Sequence[bytes]) -> dict[bytes, tuple[bytes, int]]:
        """Each found key's (value, cas token), one pipelined round trip per server."""
        found: dict[bytes, tuple[bytes, int]] = {}
        for name, indices in self.split(keys).items():
            found.update(self.connections[name].gets([keys[i] for i in indices]))
        return found


__all__ = [
    "DEFAULT_MAX_ITEM_BYTES",
    "DEFAULT_SERVERS",
    "DEFAULT_TIMEOUT_S",
    "ITEM_OVERHEAD_BYTES",
    "MAX_KEY_BYTES",
    "MemcachedCluster",
    "MemcachedConnection",
    "Op",
    "bad_keys",
    "encode",
    "expiry",
    "key_problem",
    "parse_servers",
]
