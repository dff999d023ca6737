"""Serialization formats between record bytes and typed Arrow columns (ksqlDB's formats).

`get_format(name, properties, is_key=...)` gives a `Format` whose `decode` turns a batch of
key or value bytes into one Arrow column per declared `Column`, and whose `encode` writes them
back. JSON, DELIMITED, KAFKA and NONE are built in: each module registers its format with
`@register_format`, and importing this package imports them. A new format is one module with a
registered `Format` subclass, plus its line below.
"""

from hispeed.formats import (  # noqa: F401  (they register)
    _json,
    avro,
    delimited,
    json_sr,
    kafka,
    none,
    protobuf,
)
from hispeed.formats.base import (
    FORMATS,
    Column,
    DecodeResult,
    Format,
    FormatError,
    get_format,
    register_format,
)

__all__ = [
    "FORMATS",
    "Column",
    "DecodeResult",
    "Format",
    "FormatError",
    "get_format",
    "register_format",
]
