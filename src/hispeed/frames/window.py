"""Windows for `Frame.group_by(..., window=...)`: `tumbling`, `hopping` and `session`.

Each is SQL's WINDOW clause (`WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 SECONDS)`);
durations are milliseconds, a `datetime.timedelta`, or text: `"500ms"`, `"10s"`, `"5m"`,
`"2h"`, `"1d"`.
"""

from __future__ import annotations

import datetime
import re

from hispeed.errors import HispeedError
from hispeed.sql import ast

Duration = int | str | datetime.timedelta

_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_TEXT = re.compile(r"\s*(\d+)\s*(ms|s|m|h|d)\s*\Z")


def millis(duration: Duration) -> int:
    """A duration in milliseconds."""
    if isinstance(duration, datetime.timedelta):
        ms = duration / datetime.timedelta(milliseconds=1)
        if ms != int(ms):
            raise HispeedError(f"a duration is whole milliseconds, not {duration}")
        return int(ms)
    if isinstance(duration, bool) or not isinstance(duration, int | str):
        raise HispeedError(f"a duration is ms, a timedelta or text like '10s', not {duration!r}")
    if isinstance(duration, int):
        return duration
    match = _TEXT.match(duration)
    if match is None:
        raise HispeedError(
            f"a duration is written like '500ms', '10s', '5m', '2h' or '1d', not {duration!r}"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def _opt(duration: Duration | None) -> int | None:
    return None if duration is None else millis(duration)


def tumbling(
    size: Duration, *, grace: Duration | None = None, retention: Duration | None = None
) -> ast.WindowSpec:
    """Fixed windows of `size`, one after the other (`WINDOW TUMBLING`)."""
    return ast.WindowSpec("TUMBLING", millis(size), None, _opt(grace), _opt(retention))


def hopping(
    size: Duration,
    advance: Duration,
    *,
    grace: Duration | None = None,
    retention: Duration | None = None,
) -> ast.WindowSpec:
    """Windows of `size` starting every `advance` (`WINDOW HOPPING`); a record falls in
    each window that covers its time."""
    return ast.WindowSpec("HOPPING", millis(size), millis(advance), _opt(grace), _opt(retention))


def session(
    gap: Duration, *, grace: Duration | None = None, retention: Duration | None = None
) -> ast.WindowSpec:
    """Sessions per key, closed after `gap` without a record (`WINDOW SESSION`)."""
    return ast.WindowSpec("SESSION", millis(gap), None, _opt(grace), _opt(retention))


__all__ = ["Duration", "hopping", "millis", "session", "tumbling"]
