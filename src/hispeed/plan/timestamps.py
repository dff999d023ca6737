"""Text timestamps compared with ROWTIME, WINDOWSTART or WINDOWEND, read as epoch millis.

ksqlDB rewrites `ROWTIME >= '2020-01-01T00:00'` (and BETWEEN, either side) into a comparison
with a BIGINT literal before it type-checks a WHERE or HAVING clause (its
StatementRewriteForMagicPseudoTimestamp); a partial datetime is completed with the earliest
value of each missing part, and a datetime without a zone is UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

from hispeed.errors import HispeedError, SqlError
from hispeed.sql import ast
from hispeed.sql import types as T

MAGIC_COLUMNS = ("ROWTIME", "WINDOWSTART", "WINDOWEND")
_COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")

_PARTIAL = re.compile(
    r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T(\d{2})(?::(\d{2})(?::(\d{2})(?:\.(\d{1,3})\d*)?)?)?)?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)

_HELP = (
    "\nRequired format is: \"yyyy-MM-dd'T'HH:mm:ss.SSS\", with an optional numeric 4-digit "
    "timezone, for example: '2020-05-26T23:59:58.000' or with tz: "
    "'2020-05-26T23:59:58.000+0200'. A trailing 'Z' instead of tz indicates the zero UTC "
    'offset. Partials are also supported, for example "2020-05-26"'
)


def parse_partial_timestamp(text: str) -> int:
    """Milliseconds of a possibly partial ISO-8601 datetime; UTC unless it names a zone."""
    m = _PARTIAL.match(text.strip())
    if not m:
        raise HispeedError(f"Failed to parse timestamp '{text}'{_HELP}")
    year, month, day, hour, minute, second, frac, zone = m.groups()
    tz = dt.UTC
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        tz = dt.timezone(sign * dt.timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    # java.time's SMART resolver (ksqlDB's StringToTimestampParser) reads 24:00:00.000 as
    # the midnight that ends the day
    end_of_day = hour == "24" and not any(int(p or 0) for p in (minute, second, frac))
    try:
        moment = dt.datetime(
            int(year),
            int(month or 1),
            int(day or 1),
            0 if end_of_day else int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((frac or "0").ljust(3, "0")) * 1000,
            tzinfo=tz,
        )
    except ValueError as e:
        raise HispeedError(f"Failed to parse timestamp '{text}': {e}{_HELP}") from None
    if end_of_day:
        moment += dt.timedelta(days=1)
    return int(moment.timestamp() * 1000)


def _magic(e: ast.Expr, columns: tuple[str, ...]) -> bool:
    return isinstance(e, ast.ColumnRef) and e.name in columns


def _millis(e: ast.Expr) -> ast.Expr | None:
    if isinstance(e, ast.Literal) and isinstance(e.value, str):
        try:
            return ast.Literal(parse_partial_timestamp(e.value), T.BIGINT, e.pos)
        except HispeedError as err:
            line, column = e.pos
            raise SqlError(err.message, line or 1, column or 1) from None
    return None


def magic_timestamps(e: ast.Expr, columns: tuple[str, ...] = MAGIC_COLUMNS) -> ast.Expr:
    """`e` with every text literal compared with one of `columns` as epoch milliseconds,
    wherever the comparison sits in the expression."""
    if isinstance(e, ast.BinaryOp) and e.op in _COMPARISONS:
        if _magic(e.left, columns):
            return dataclasses.replace(e, right=_millis(e.right) or e.right)
        if _magic(e.right, columns):
            return dataclasses.replace(e, left=_millis(e.left) or e.left)
    if isinstance(e, ast.Between) and _magic(e.operand, columns):
        return dataclasses.replace(e, low=_millis(e.low) or e.low, high=_millis(e.high) or e.high)
    changes: dict[str, object] = {}
    for f in dataclasses.fields(e):
        value = getattr(e, f.name)
        if isinstance(value, ast.Expr):
            new = magic_timestamps(value, columns)
            if new is not value:
                changes[f.name] = new
        elif isinstance(value, tuple) and any(isinstance(v, ast.Expr) for v in value):
            items = tuple(
                magic_timestamps(v, columns) if isinstance(v, ast.Expr) else v for v in value
            )
            if any(a is not b for a, b in zip(items, value, strict=True)):
                changes[f.name] = items
    return dataclasses.replace(e, **changes) if changes else e
