"""The server fixtures, for the commands that talk to one (`hispeed sql`)."""

from tests.server.conftest import server, server_factory

__all__ = ["server", "server_factory"]
