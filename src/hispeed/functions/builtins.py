"""The built-in scalar functions: importing this module registers them all."""

from hispeed.functions import (  # noqa: F401  (registers on import)
    _collections,
    _datetime,
    _json,
    _math,
    _misc,
    _string,
    redis,
)
