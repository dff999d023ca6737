"""The connectors hispeed ships; importing this module registers them."""

from hispeed.connectors import datagen, redis  # noqa: F401
