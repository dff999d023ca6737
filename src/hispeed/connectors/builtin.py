"""The connectors hispeed ships; importing this module registers them."""

from hispeed.connectors import redis  # noqa: F401
