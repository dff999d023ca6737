"""hispeed: a real-time data platform for Python."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hispeed.errors import HispeedError
from hispeed.version import __version__

if TYPE_CHECKING:
    from hispeed.client import Client
    from hispeed.engine import Engine
    from hispeed.frames import Trigger, col, func, lit, window
    from hispeed.udf import udaf, udf, udtf

#: Arrow's allocator for every hispeed process, unless ARROW_DEFAULT_MEMORY_POOL names another.
#: pyarrow's wheels default to mimalloc, whose heaps are per thread: hispeed allocates Arrow
#: buffers on many threads (the queries, each connector, the server's event loop and request
#: workers, the log cleaner), and the demo left running held 40-70 MB in mimalloc for 2-7 MB
#: of live Arrow memory, stepping up with each burst of load (RSS +11 to +22 MB per 10
#: minutes after warm-up in the 30-minute soak); the C library's malloc shares freed memory
#: between threads and stayed flat (docs/reliability.md, "Left running"). Arrow reads the
#: variable once, when pyarrow is imported, so it is set here, before any hispeed module
#: imports pyarrow; a process that imported pyarrow before hispeed keeps its pool.
ARROW_MEMORY_POOL = "system"
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", ARROW_MEMORY_POOL)

__all__ = [
    "Client",
    "Engine",
    "HispeedError",
    "Trigger",
    "__version__",
    "col",
    "func",
    "lit",
    "udaf",
    "udf",
    "udtf",
    "window",
]


def __getattr__(name: str) -> Any:
    # the engine pulls in pyarrow and friends: import it only when asked for
    if name == "Engine":
        from hispeed.engine import Engine

        return Engine
    if name == "Client":
        from hispeed.client import Client

        return Client
    if name in (
        "col",
        "func",
        "lit",
        "window",
        "Trigger",
    ):  # the Python stream API (hispeed.frames)
        import hispeed.frames

        return getattr(hispeed.frames, name)
    if name in ("udf", "udaf", "udtf"):
        # the Python function decorators; importing hispeed.udf may rebind `hispeed.udf` to
        # the module, which is callable as the decorator too
        import importlib

        return getattr(importlib.import_module("hispeed.udf"), name)
    raise AttributeError(f"module 'hispeed' has no attribute {name!r}")
