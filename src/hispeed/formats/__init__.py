"""Serialization formats between record bytes and typed Arrow columns (ksqlDB's formats).

`get_format(name, properties, is_key=...)` gives a `Format` whose `decode` turns a batch of
key or value bytes into one Arrow column per declared `Column`, and whose `encode` writes them
back. JSON, DELIMITED, KAFKA and NONE are available.
"""

from hispeed.formats.base import (
    Column,
    DecodeResult,
    Format,
    FormatError,
    get_format,
)

__all__ = ["Column", "DecodeResult", "Format", "FormatError", "get_format"]
