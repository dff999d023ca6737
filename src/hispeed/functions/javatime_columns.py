"""Java-pattern formatting of whole columns of instants (TIMESTAMPTOSTRING, FORMAT_TIMESTAMP).

A pattern's text depends only on the local time cut to the pattern's finest field (a day for
`yyyy-MM-dd`, an hour for `HH`) and on the zone's offset at that instant. So the rows of a
batch are grouped by that pair, one row of each group is formatted by the row-by-row code
(`javatime.format_java`, the reference), and every row takes its group's text: the results
are those of the row path by construction, at the cost of one formatting per distinct day,
hour or second instead of one per row. Instants streamed together share few of them.

What this path leaves to the row path (`format_instants` returns None): a pattern with a
letter it does not know the unit of, or that does not parse; an instant within a year of the
ends of the range Python's datetime holds (where the row path reports overflows row by row);
and a group whose formatting fails (the row path reports that error for each of its rows).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.javatime import (
    OptionalSection,
    PatternField,
    PatternItem,
    format_java,
    from_millis,
    java_pattern,
)

_DAY, _HOUR, _MINUTE, _SECOND = 86_400_000, 3_600_000, 60_000, 1_000

#: the span of local time each pattern letter's text depends on, in milliseconds; the zone's
#: letters (XxZOzvV) depend on the offset only, which is part of every group's key
_UNITS: dict[str, int] = {
    **dict.fromkeys("GuyDMLdQqEec", _DAY),
    **dict.fromkeys("aHkKh", _HOUR),
    "m": _MINUTE,
    "s": _SECOND,
    **dict.fromkeys("SnNA", 1),
    **dict.fromkeys("XxZOzvV", _DAY),
}

#: instants from 0002-01-01 to 9998-01-01 UTC: local times of any zone stay within Python's
#: datetime (years 1 to 9999) with room for every offset
_LOW = -62_104_060_800_000
_HIGH = 253_339_228_800_000


def pattern_unit(items: Sequence[PatternItem]) -> int | None:
    """The finest span of local time the pattern's text depends on (ms), or None if a letter
    is not known here."""
    unit = _DAY
    for item in items:
        if isinstance(item, OptionalSection):
            inner = pattern_unit(item.items)
            if inner is None:
                return None
            unit = min(unit, inner)
        elif isinstance(item, PatternField):
            if item.letter not in _UNITS:
                return None
            unit = min(unit, _UNITS[item.letter])
    return unit


def format_instants(millis: pa.Array, pattern: str, tz: dt.tzinfo) -> pa.Array | None:
    """Each row's epoch milliseconds as `format_java(java_pattern(pattern), from_millis(ms,
    tz))` gives it (NULL for NULL), or None when the row path must run (see the module)."""
    try:
        items = java_pattern(pattern)
    except ValueError:
        return None
    unit = pattern_unit(items)
    if unit is None:
        return None
    n = len(millis)
    valid = pc.is_valid(millis).to_numpy(zero_copy_only=False) if millis.null_count else None
    ms = np.asarray(pc.fill_null(millis, 0).to_numpy(zero_copy_only=False), dtype=np.int64)
    if n and (int(ms.min()) < _LOW or int(ms.max()) > _HIGH):
        return None
    offsets = _offsets(ms, tz)
    if offsets is None:
        return None
    keys = _codes(np.floor_divide(ms + offsets, unit)) if unit > 1 else _codes(ms + offsets)
    if not isinstance(tz, dt.timezone):  # the same local time at two offsets (autumn's hour)
        keys = _codes(keys * (int(offsets.max() - offsets.min()) + 1) + (offsets - offsets.min()))
    inverse, first = _groups(keys)
    texts: list[Any] = []
    for i in first.tolist():
        try:
            texts.append(format_java(items, from_millis(int(ms[i]), tz)))
        except (ValueError, OverflowError):
            return None
    out = pa.array(texts, pa.string()).take(pa.array(inverse))
    if valid is not None:
        out = pc.if_else(pa.array(valid), out, pa.scalar(None, pa.string()))
    return out


def _offsets(ms: np.ndarray, tz: dt.tzinfo) -> np.ndarray | None:
    """Each instant's UTC offset in the zone (ms). Zones change their offsets at whole seconds,
    so one lookup per distinct second is exact."""
    if isinstance(tz, dt.timezone):
        fixed = tz.utcoffset(None) // dt.timedelta(milliseconds=1)
        return np.full(len(ms), fixed, np.int64)
    seconds = np.floor_divide(ms, _SECOND)
    inverse, first = _groups(_codes(seconds))
    looked: list[int] = []
    for s in seconds[first].tolist():
        off = from_millis(int(s) * _SECOND, tz).utcoffset()
        if off is None:
            return None
        looked.append(off // dt.timedelta(milliseconds=1))
    found: np.ndarray = np.asarray(looked, np.int64)[inverse]
    return found


def _codes(keys: np.ndarray) -> np.ndarray:
    """The keys as small non-negative integers in the same order (dense when they lie close
    together, as a batch's times do; else by sorting)."""
    if not len(keys):
        return keys.astype(np.int64)
    low, high = int(keys.min()), int(keys.max())
    if high - low <= 4 * len(keys) + 1024:
        return (keys - low).astype(np.int64)
    return np.unique(keys, return_inverse=True)[1].astype(np.int64).reshape(-1)


def _groups(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(each row's group, the first row of each group) for non-negative integer codes."""
    n = len(codes)
    if not n:
        return codes, codes
    size = int(codes.max()) + 1
    first = np.full(size, n, np.int64)
    np.minimum.at(first, codes, np.arange(n, dtype=np.int64))
    present = first < n
    group = np.cumsum(present) - 1
    return group[codes], first[present]


__all__ = ["format_instants", "pattern_unit"]
