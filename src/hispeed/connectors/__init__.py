"""Connectors: sinks and sources as plugins (see `hispeed.connectors.base`).

Each connector module registers its classes with `@register` (by their `connector.class`
names); importing this package imports the built-in ones, so a new connector is one module
plus its line below.
"""

from hispeed.connectors import datagen, redis  # noqa: F401  (they register)
