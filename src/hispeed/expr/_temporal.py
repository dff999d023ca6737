"""TIMESTAMP, DATE and TIME to and from ksqlDB's ISO-8601 text."""

from __future__ import annotations

import datetime as dt

import pyarrow as pa

from hispeed.functions.registry import EvalContext, rowwise
from hispeed.sql import types as T
from hispeed.sql.types import SqlType

_EPOCH = dt.datetime(1970, 1, 1)


def to_iso(arr: pa.Array, source: SqlType) -> pa.Array:
    """TIMESTAMP -> '2020-05-26T07:23:44.123', DATE -> '2020-05-26', TIME -> '07:23:44.123'."""
    ctx = EvalContext()
    if source.name == "TIMESTAMP":
        return rowwise(
            ctx,
            [arr],
            T.STRING,
            lambda v: v.strftime("%Y-%m-%dT%H:%M:%S.") + f"{v.microsecond // 1000:03d}",
        )
    if source.name == "DATE":
        return rowwise(ctx, [arr], T.STRING, lambda v: v.isoformat())
    return rowwise(ctx, [arr], T.STRING, lambda v: _time_text(v))


def _time_text(v: dt.time) -> str:
    text = v.strftime("%H:%M")
    if v.second or v.microsecond:
        text += v.strftime(":%S")
    if v.microsecond:
        text += f".{v.microsecond // 1000:03d}"
    return text


def parse_iso(arr: pa.Array, target: SqlType, ctx: EvalContext) -> pa.Array:
    """Parse ISO-8601 text into TIMESTAMP, DATE or TIME; bad rows become NULL and are reported."""
    if target.name == "TIMESTAMP":
        return rowwise(ctx, [arr], target, _parse_timestamp)
    if target.name == "DATE":
        return rowwise(ctx, [arr], target, lambda s: dt.date.fromisoformat(s.strip()[:10]))
    return rowwise(ctx, [arr], target, lambda s: dt.time.fromisoformat(s.strip()))


def _parse_timestamp(text: str) -> dt.datetime:
    s = text.strip()
    if len(s) == 10:
        s += "T00:00:00"
    value = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return value
