"""Freed memory back to the OS while the server runs.

The C library's malloc (Arrow's pool in a hispeed process, see hispeed/__init__.py) keeps
what a thread freed in that thread's arena, and gives an arena's pages back only from its
top: after a burst (a restart restoring state, a backlog read in large batches) the demo held
40-55 MB free in its arenas for 33 MB in use, and its RSS crept up with every burst. Arrow's
`MemoryPool.release_unused()` hands those free pages back (glibc's malloc_trim for the system
pool; mimalloc's and jemalloc's own collection for theirs): a walk of the arenas, a few
milliseconds, done every `memory_release_interval_s` on a thread of its own.
"""

from __future__ import annotations

import logging
import threading

import pyarrow as pa

log = logging.getLogger(__name__)


def release_free_memory() -> None:
    """Give the memory Arrow's allocator holds free (and, for the system pool, everything
    malloc holds free) back to the OS."""
    pa.default_memory_pool().release_unused()


class MemoryReleaser:
    """A server component: `release_free_memory()` every `interval` seconds until `stop()`."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        #: hand-backs done (`/metrics`: hispeed_memory_releases)
        self.releases = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._run, name="hispeed-memory", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                release_free_memory()
            except Exception:  # never a reason to stop serving
                log.exception("releasing free memory failed")
            self.releases += 1

    def stats(self) -> dict[str, int]:
        """releases: the hand-backs done so far."""
        return {"releases": self.releases}

    def stop(self) -> None:
        """Stop the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
