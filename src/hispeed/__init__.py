"""hispeed: a real-time data platform for Python."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hispeed.errors import HispeedError

__version__ = "0.1.0"

if TYPE_CHECKING:
    from hispeed.engine import Engine

__all__ = ["Engine", "HispeedError", "__version__"]


def __getattr__(name: str) -> Any:
    # the engine pulls in pyarrow and friends: import it only when asked for
    if name == "Engine":
        from hispeed.engine import Engine

        return Engine
    raise AttributeError(f"module 'hispeed' has no attribute {name!r}")
