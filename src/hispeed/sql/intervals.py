"""Flink SQL's INTERVAL literals (`INTERVAL '10' SECOND`), read where a window table function
(sql/window_tvf.py) or an OVER clause's RANGE frame (sql/over.py) takes one. Apart from both
so that the OVER clause, which the expression parser reads, can use it without importing the
window functions' module (which imports the expression parser).
"""

from __future__ import annotations

import decimal
from typing import Any

from hispeed.errors import SqlError
from hispeed.sql.lexer import DECIMAL, IDENT, INTEGER, STRING, Token
from hispeed.sql.windows import MAX_DURATION_MS

_UNITS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}


def interval(p: Any) -> tuple[int, Token]:
    """`INTERVAL '10' SECOND` (or `SECONDS`; MILLISECOND to DAY): its milliseconds, and the
    token that starts it. A negative amount is returned as it is, for the caller's check."""
    start = p.tok
    if not p.accept_word("INTERVAL"):
        raise p.error("an INTERVAL, like INTERVAL '10' SECOND")
    amount_tok = p.tok
    if amount_tok.kind == STRING:
        text = amount_tok.value.strip()
    elif amount_tok.kind in (INTEGER, DECIMAL):
        text = amount_tok.value
    else:
        raise p.error("the interval's amount in quotes, like INTERVAL '10' SECOND")
    p.advance()
    try:
        amount = decimal.Decimal(text)
    except decimal.InvalidOperation:
        raise SqlError(
            f"Invalid INTERVAL: '{text}' is not a number of time units",
            amount_tok.line,
            amount_tok.column,
        ) from None
    unit = p.tok
    name = unit.value.rstrip("S") if unit.kind == IDENT else ""
    if name not in _UNITS:
        raise p.error("a time unit (MILLISECOND, SECOND, MINUTE, HOUR or DAY)")
    p.advance()
    millis = amount * _UNITS[name]
    if millis != millis.to_integral_value():
        raise SqlError(
            f"Invalid INTERVAL: '{text}' {unit.value} is not a whole number of milliseconds",
            amount_tok.line,
            amount_tok.column,
        )
    if abs(millis) > MAX_DURATION_MS:
        raise SqlError(
            f"Invalid INTERVAL: '{text}' {unit.value} is longer than the longest a window can "
            f"span, {MAX_DURATION_MS} MILLISECONDS (100,000 years)",
            amount_tok.line,
            amount_tok.column,
        )
    return int(millis), start
