"""Event time from a STRING column with a TIMESTAMP_FORMAT (a Java DateTimeFormatter pattern)."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from hispeed.functions.javatime import datetime_of, epoch_millis, parse_java


def parse_timestamps(arr: pa.Array, pattern: str | None) -> pa.Array:
    """Epoch ms of each text (UTC unless the pattern has a zone); NULL where unreadable."""
    out: list[int | None] = []
    for text in arr.to_pylist():
        if text is None or pattern is None:
            out.append(None)
            continue
        try:
            out.append(epoch_millis(datetime_of(parse_java(pattern, text), dt.UTC)))
        except (ValueError, KeyError, OverflowError):
            out.append(None)
    return pa.array(out, pa.int64())
