"""hispeed: a real-time data platform for Python."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hispeed.errors import HispeedError
from hispeed.version import __version__

if TYPE_CHECKING:
    from hispeed.client import Client
    from hispeed.engine import Engine
    from hispeed.udf import udaf, udf, udtf

__all__ = ["Client", "Engine", "HispeedError", "__version__", "udaf", "udf", "udtf"]


def __getattr__(name: str) -> Any:
    # the engine pulls in pyarrow and friends: import it only when asked for
    if name == "Engine":
        from hispeed.engine import Engine

        return Engine
    if name == "Client":
        from hispeed.client import Client

        return Client
    if name in ("udf", "udaf", "udtf"):
        # the Python function decorators; importing hispeed.udf may rebind `hispeed.udf` to
        # the module, which is callable as the decorator too
        import importlib

        return getattr(importlib.import_module("hispeed.udf"), name)
    raise AttributeError(f"module 'hispeed' has no attribute {name!r}")
