"""Lookups in Redis: enrichment from a cache, as functions a query calls per row.

    SELECT r.device, r.speed, REDIS_HASH('device:' + r.device)['owner'] AS owner
    FROM readings r;

- `REDIS_HASH(key [, url])` -> MAP<STRING, STRING>: the hash at `key` (HGETALL), or NULL
  when there is none;
- `REDIS_GET(key [, url])` -> STRING: the string at `key` (GET), or NULL.

`url` defaults to the server's Redis (the `redis.url` property; `HISPEED_REDIS_URL`). A
batch's distinct keys are read in one pipelined round trip through a bounded LRU cache
(10,000 keys a Redis and mode). **Consistency**: a value, or its absence, is kept for one
second after it was read, so a row may be enriched with a value up to a second old; what
Redis held is never mixed within one key. When Redis cannot be reached the batch fails and
is read again (the query retries; nothing is skipped).
"""

from __future__ import annotations

import atexit
import os
import threading
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from hispeed.functions.registry import EvalContext, scalar
from hispeed.functions.signatures import check
from hispeed.resp.client import DEFAULT_URL
from hispeed.resp.lookup import RedisLookup
from hispeed.sql.types import STRING, SqlType

Args = Sequence[pa.Array]
Types = Sequence[SqlType]

#: the Redis a lookup without a URL reads (set by the engine from its `redis.url`)
_default_url: str | None = None
_lookups: dict[tuple[str, str], RedisLookup] = {}
_lock = threading.Lock()
CACHE_SIZE = 10_000
TTL_MS = 1_000


def _close_all() -> None:
    """Close the lookups' connections as the process ends (the sockets are not left for
    the interpreter's shutdown to find open)."""
    with _lock:
        for found in _lookups.values():
            found.close()
        _lookups.clear()


atexit.register(_close_all)


def set_default_url(url: str | None) -> None:
    """Make `url` the Redis that REDIS_HASH / REDIS_GET read when a call names none (None:
    `HISPEED_REDIS_URL`, else Redis's default address); for the whole process."""
    global _default_url
    _default_url = url


def _lookup(url: str | None, mode: str) -> RedisLookup:
    chosen = url or _default_url or os.environ.get("HISPEED_REDIS_URL") or DEFAULT_URL
    with _lock:
        found = _lookups.get((chosen, mode))
        if found is None:
            found = RedisLookup(chosen, "{KEY}", mode, cache_size=CACHE_SIZE, ttl_ms=TTL_MS)
            _lookups[(chosen, mode)] = found
        return found


def _resolve(name: str, result: SqlType) -> Any:
    def resolve(arg_types: Types) -> SqlType:
        if len(arg_types) == 1:
            check(name, "a key, and a Redis URL if not the server's", arg_types, STRING)
        else:
            check(name, "a key, and a Redis URL if not the server's", arg_types, STRING, STRING)
        return result

    return resolve


def _urls(args: Args) -> list[str | None]:
    if len(args) < 2:
        return [None] * len(args[0])
    return list(args[1].to_pylist())


def _read(args: Args, mode: str) -> list[dict[str, Any] | None]:
    keys = args[0].to_pylist()
    urls = _urls(args)
    out: list[dict[str, Any] | None] = [None] * len(keys)
    by_url: dict[str | None, list[int]] = {}
    for i, (key, url) in enumerate(zip(keys, urls, strict=True)):
        if key is not None:
            by_url.setdefault(url, []).append(i)
    for url, rows in by_url.items():
        lookup = _lookup(url, mode)
        distinct = sorted({keys[i] for i in rows})
        values = dict(zip(distinct, lookup.get_many(distinct), strict=True))
        for i in rows:
            out[i] = values[keys[i]]
    return out


MAP_OF_STRINGS = SqlType("MAP", key=STRING, element=STRING)


@scalar("REDIS_HASH", _resolve("REDIS_HASH", MAP_OF_STRINGS))
def _redis_hash(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    values = _read(args, "hash")
    rows = [None if v is None else [(str(k), _text(x)) for k, x in v.items()] for v in values]
    return pa.array(rows, type=rt.to_arrow())


@scalar("REDIS_GET", _resolve("REDIS_GET", STRING))
def _redis_get(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    values = _read(args, "string")
    return pa.array([None if v is None else _text(v.get("value")) for v in values], pa.string())


def _text(value: Any) -> str | None:
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)


__all__ = ["set_default_url"]
