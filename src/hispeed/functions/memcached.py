"""Lookups in memcached: enrichment from a plain cache, batched per query batch.

    SELECT r.device, MEMCACHED_GET('owner:' + r.device) AS owner FROM readings r;

`MEMCACHED_GET(key [, servers])` -> STRING: the value at `key` as text, or NULL when memcached
has none (or cannot hold such a key: over 250 bytes, with spaces). `servers` is
"host:port[,host:port]", keys spread over them as pymemcache's HashClient (and the memcached
sink) spread them; it defaults to the engine's `memcached.servers` (`HISPEED_MEMCACHED_SERVERS`,
else 127.0.0.1:11211). A batch's distinct keys are read in one pipelined round trip per server
through a bounded LRU cache (`memcached.lookup.cache.size` keys, 10,000 by default, each kept
`memcached.lookup.cache.ttl.ms`, 1,000 by default): a row may be enriched with a value up to
that old. When a server cannot be reached the batch fails and is read again (the query
retries; nothing is skipped).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from hispeed.errors import ConfigError
from hispeed.functions.registry import EvalContext, scalar
from hispeed.functions.signatures import check
from hispeed.memcache.client import DEFAULT_SERVERS
from hispeed.memcache.lookup import MemcachedLookup
from hispeed.sql.types import STRING, SqlType

#: the engine properties that configure the lookups, and their defaults
SERVERS_PROPERTY = "memcached.servers"
CACHE_SIZE_PROPERTY = "memcached.lookup.cache.size"
CACHE_TTL_PROPERTY = "memcached.lookup.cache.ttl.ms"
DEFAULT_CACHE_SIZE = 10_000
DEFAULT_CACHE_TTL_MS = 1_000

_settings: dict[str, Any] = {
    "servers": None,
    "cache_size": DEFAULT_CACHE_SIZE,
    "ttl_ms": DEFAULT_CACHE_TTL_MS,
}
_lookups: dict[tuple[str, int, int], MemcachedLookup] = {}
_lock = threading.Lock()


def _close_all() -> None:
    """Close the lookups' connections as the process ends (the sockets are not left for
    the interpreter's shutdown to find open)."""
    with _lock:
        for found in _lookups.values():
            found.close()
        _lookups.clear()


atexit.register(_close_all)


def configure(
    servers: str | None = None,
    cache_size: int = DEFAULT_CACHE_SIZE,
    ttl_ms: int = DEFAULT_CACHE_TTL_MS,
) -> None:
    """Set what MEMCACHED_GET reads when a call names no servers (None: the environment's
    `HISPEED_MEMCACHED_SERVERS`, else 127.0.0.1:11211) and its cache's bounds; for the whole
    process, as the engine's properties say."""
    if cache_size < 0 or ttl_ms < 0:
        raise ConfigError(
            f"{CACHE_SIZE_PROPERTY} and {CACHE_TTL_PROPERTY} cannot be negative "
            f"(given {cache_size} and {ttl_ms})"
        )
    with _lock:
        _settings.update(servers=servers, cache_size=cache_size, ttl_ms=ttl_ms)


def configure_from(properties: dict[str, Any]) -> None:
    """`configure` from engine properties (`memcached.servers`, `memcached.lookup.cache.*`)."""
    numbers = []
    for name, default in (
        (CACHE_SIZE_PROPERTY, DEFAULT_CACHE_SIZE),
        (CACHE_TTL_PROPERTY, DEFAULT_CACHE_TTL_MS),
    ):
        raw = properties.get(name, default)
        try:
            numbers.append(int(raw))
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be a whole number, not {raw!r}") from None
    servers = properties.get(SERVERS_PROPERTY)
    configure(str(servers) if servers else None, numbers[0], numbers[1])


def lookup_for(servers: str | None) -> MemcachedLookup:
    """The shared lookup (and its cache) of a server list (None: the configured default)."""
    with _lock:
        chosen = (
            servers
            or _settings["servers"]
            or os.environ.get("HISPEED_MEMCACHED_SERVERS")
            or DEFAULT_SERVERS
        )
        key = (chosen, int(_settings["cache_size"]), int(_settings["ttl_ms"]))
        found = _lookups.get(key)
        if found is None:
            found = MemcachedLookup(chosen, cache_size=key[1], ttl_ms=key[2])
            _lookups[key] = found
        return found


def _resolve(arg_types: Sequence[SqlType]) -> SqlType:
    what = "a key, and memcached servers (host:port[,host:port]) if not the engine's"
    if len(arg_types) == 1:
        check("MEMCACHED_GET", what, arg_types, STRING)
    else:
        check("MEMCACHED_GET", what, arg_types, STRING, STRING)
    return STRING


@scalar("MEMCACHED_GET", _resolve)
def _memcached_get(
    ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], rt: SqlType
) -> pa.Array:
    keys = args[0].to_pylist()
    servers = args[1].to_pylist() if len(args) > 1 else [None] * len(keys)
    out: list[str | None] = [None] * len(keys)
    by_servers: dict[str | None, list[int]] = {}
    for i, (key, where) in enumerate(zip(keys, servers, strict=True)):
        if key is not None:
            by_servers.setdefault(where, []).append(i)
    for where, rows in by_servers.items():
        distinct = sorted({keys[i] for i in rows})
        values = dict(zip(distinct, lookup_for(where).get_many(distinct), strict=True))
        for i in rows:
            out[i] = values[keys[i]]
    return pa.array(out, pa.string())


__all__ = ["configure", "configure_from", "lookup_for"]
