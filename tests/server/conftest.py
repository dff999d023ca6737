"""The server fixtures live in `hispeed.testing.server` (a plugin of the root conftest)."""

from hispeed.testing.server import RunningServer, ServerFactory

__all__ = ["RunningServer", "ServerFactory"]
