"""Lookups in memcached by key, through a bounded LRU cache (what MEMCACHED_GET reads).

Consistency: a value, or its absence, is kept for `ttl_ms` after it was read, so a row may
be enriched with a value up to that old; `cache_size=0` or `ttl_ms=0` reads memcached every
time. A call's misses are read in one pipelined round trip per server.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Sequence

from hispeed.memcache.client import DEFAULT_TIMEOUT_S, MemcachedCluster, key_problem


class MemcachedLookup:
    """Values from memcached servers (keys spread as pymemcache's HashClient spreads them).

    A value is returned as text (UTF-8, undecodable bytes replaced); a key memcached cannot
    hold (too long, with spaces) is None and counted in `errors`. Thread-safe.
    """

    def __init__(
        self,
        servers: str,
        cache_size: int = 10_000,
        ttl_ms: int = 1_000,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        self.cluster = MemcachedCluster(servers, "memcached lookup", timeout_s)
        self.cache_size = max(0, cache_size)
        self.ttl_s = max(0, ttl_ms) / 1000
        self._cache: OrderedDict[bytes, tuple[float, str | None]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0
        self.errors = 0

    def get_many(self, keys: Sequence[str]) -> list[str | None]:
        """The value at each key (None: absent); RetriableError if a server is away."""
        out: list[str | None] = [None] * len(keys)
        with self._lock:
            now = time.monotonic()
            cache = self._cache
            missing: dict[bytes, list[int]] = {}
            for j, key in enumerate(keys):
                raw = key.encode("utf-8", "surrogateescape")
                entry = cache.get(raw)
                if entry is not None and entry[0] > now:
                    cache.move_to_end(raw)
                    out[j] = entry[1]
                    self.hits += 1
                elif key_problem(raw) is not None:
                    self.errors += 1
                else:
                    missing.setdefault(raw, []).append(j)
            if not missing:
                return out
            self.misses += len(missing)
            found = self.cluster.gets(list(missing))
            keep = self.cache_size > 0 and self.ttl_s > 0
            expires = time.monotonic() + self.ttl_s
            for raw, indices in missing.items():
                hit = found.get(raw)
                value = None if hit is None else hit[0].decode("utf-8", "replace")
                for j in indices:
                    out[j] = value
                if keep:
                    cache[raw] = (expires, value)
                    cache.move_to_end(raw)
            while len(cache) > self.cache_size:
                cache.popitem(last=False)
        return out

    def cached(self) -> int:
        """How many keys the cache holds now."""
        with self._lock:
            return len(self._cache)

    def close(self) -> None:
        with self._lock:
            self.cluster.close()


__all__ = ["MemcachedLookup"]
