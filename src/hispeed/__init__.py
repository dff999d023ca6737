"""hispeed: a real-time data platform for Python."""

__version__ = "0.1.0"

from hispeed.errors import HispeedError

__all__ = ["HispeedError", "__version__"]
