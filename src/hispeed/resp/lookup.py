"""Lookups in Redis: values by key for enrichment, through a bounded LRU cache.

`RedisLookup` is what the REDIS_HASH / REDIS_GET functions (`hispeed.functions.redis`) read
through, and what a Python program can use for an enrichment join of its own.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import msgspec

from hispeed.errors import ConnectorError
from hispeed.resp.client import (
    DEFAULT_TIMEOUT_MS,
    DEFAULT_URL,
    RedisConnection,
    RedisURL,
    ReplyError,
    fields,
    text,
)
from hispeed.resp.templates import KeyTemplate, TemplateError


class RedisLookup:
    """Values from Redis by key, for enrichment joins, through a bounded LRU cache.

    Consistency: a value (or its absence) is cached for `ttl_ms` after it was read, so a join
    may see a value up to `ttl_ms` old; `ttl_ms=0` or `cache_size=0` reads Redis every time.
    Misses of one `get_many` call are read in one pipelined round trip. Modes: `hash`
    (HGETALL: the hash's fields as text), `string` (GET: `{"value": text}`), `json` (GET
    of a JSON object). A missing key, and a key of another type (counted in `errors`), is
    None. Returned dicts are shared with the cache: do not change them. Thread-safe.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        key_template: str = "{KEY}",
        mode: str = "hash",
        cache_size: int = 10_000,
        ttl_ms: int = 1_000,
        timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        what = "Redis lookup"
        self.template = KeyTemplate(key_template, "key.template")
        self.mode = mode.lower()
        if self.mode not in ("hash", "string", "json"):
            raise ConnectorError(f"{what}: mode must be hash, string or json, not {mode!r}")
        self.cache_size = max(0, cache_size)
        self.ttl_s = max(0, ttl_ms) / 1000
        self.conn = RedisConnection(RedisURL.parse(url, what), timeout_ms / 1000, what)
        self._cache: OrderedDict[str, tuple[float, dict[str, Any] | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.errors = 0
        self.last_error: str | None = None

    def key(self, key: Any) -> str:
        """The Redis key for a lookup key (a value for {KEY}, or a dict of columns)."""
        try:
            return self.template.fill(key, key if isinstance(key, Mapping) else None)
        except TemplateError as e:
            raise ConnectorError(f"Redis lookup of {key!r}: {e}") from None

    def get(self, key: Any) -> dict[str, Any] | None:
        return self.get_many([key])[0]

    def get_many(self, keys: Sequence[Any]) -> list[dict[str, Any] | None]:
        """The value for each key (None: not in Redis); RetriableError if Redis is away."""
        redis_keys = [self.key(k) for k in keys]
        results: list[dict[str, Any] | None] = [None] * len(redis_keys)
        with self._lock:
            now = time.monotonic()
            cache = self._cache
            missing: dict[str, list[int]] = {}
            for j, rk in enumerate(redis_keys):
                entry = cache.get(rk)
                if entry is not None and entry[0] > now:
                    cache.move_to_end(rk)
                    results[j] = entry[1]
                    self.hits += 1
                else:
                    missing.setdefault(rk, []).append(j)
            if not missing:
                return results
            self.misses += len(missing)
            verb = "HGETALL" if self.mode == "hash" else "GET"
            names = list(missing)
            replies = self.conn.pipeline([[verb, rk] for rk in names])
            expires = time.monotonic() + self.ttl_s
            keep = self.cache_size > 0 and self.ttl_s > 0
            for rk, reply in zip(names, replies, strict=True):
                value = self._decode(rk, reply)
                for j in missing[rk]:
                    results[j] = value
                if keep:
                    cache[rk] = (expires, value)
                    cache.move_to_end(rk)
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
        return results

    def _decode(self, key: str, reply: Any) -> dict[str, Any] | None:
        if isinstance(reply, ReplyError):
            self.errors += 1
            self.last_error = f"Redis lookup of key {key!r}: {reply.message}"
            return None
        if reply is None:
            return None
        if self.mode == "hash":
            return fields(reply) if reply else None
        if self.mode == "string":
            return {"value": text(reply)}
        try:
            value = msgspec.json.decode(reply)
        except msgspec.DecodeError as e:
            self.errors += 1
            self.last_error = f"Redis lookup of key {key!r}: not JSON: {e}"
            return None
        return value if isinstance(value, dict) else {"value": value}

    def invalidate(self, key: Any = None) -> None:
        """Forget one key's cached value (its lookup key), or all of them."""
        with self._lock:
            if key is None:
                self._cache.clear()
            else:
                self._cache.pop(self.key(key), None)

    def close(self) -> None:
        with self._lock:
            self.conn.close()


__all__ = ["RedisLookup"]
