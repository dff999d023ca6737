"""The connectors hispeed ships; importing this module registers them."""

import hispeed.connectors.datagen
import hispeed.connectors.redis

__all__ = ["hispeed"]
