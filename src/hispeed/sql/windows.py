"""The window properties of a CREATE STREAM/TABLE over a windowed topic, checked as ksqlDB
checks them while it builds the statement (its CreateSourceProperties and DurationParser):
what they refuse is refused by the parser."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hispeed.errors import HispeedError

#: the longest duration a window property may give (100,000 years)
MAX_DURATION_MS = 100_000 * 36_525 * 86_400_000 // 100

_DURATION_UNITS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}


#: the window kinds whose windowed keys hold each window's end as well as its start (Kafka
#: Streams' session key layout): a session's end is not its start plus a size, and CUMULATE's
#: windows (the planner's CUMULATING aggregation) share their start
ENDS_IN_KEY = ("SESSION", "CUMULATING")


def parse_duration(text: str, option: str) -> int:
    """Milliseconds of a duration like '10 SECONDS' (`option` names it in errors)."""
    parts = text.strip().split()
    bad = f"Configuration {option} is invalid: Invalid duration: '{text}'."
    if len(parts) != 2 or not (parts[0].isascii() and parts[0].isdigit()):
        raise HispeedError(f"{bad} Use an amount and a unit, like '10 SECONDS'")
    unit = parts[1].upper().rstrip("S")
    if unit not in _DURATION_UNITS:
        raise HispeedError(f"{bad} Unknown time unit: '{parts[1].upper()}'")
    millis = int(parts[0]) * _DURATION_UNITS[unit]
    if not 0 < millis <= MAX_DURATION_MS:
        raise HispeedError(
            f"{bad} A window lasts more than 0 and at most {MAX_DURATION_MS} MILLISECONDS "
            "(100,000 years)"
        )
    return millis


#: the kinds of window a windowed topic's keys may have (WINDOW_TYPE, DESCRIBE's and the REST
#: API's windowType): ksqlDB's, and CUMULATING, the windows of Flink's CUMULATE aggregated
WINDOW_TYPES = ("TUMBLING", "HOPPING", "SESSION", "CUMULATING")


def window_properties(props: Mapping[str, Any]) -> tuple[str, int | None] | None:
    """(WINDOW_TYPE, size in ms or None for sessions) of a WITH clause, None if it names no
    window; an error where ksqlDB refuses the pair."""
    if props.get("WINDOW_TYPE") is None:
        return None
    kind = str(props["WINDOW_TYPE"]).upper()
    if kind not in WINDOW_TYPES:
        raise HispeedError(f"WINDOW_TYPE must be {', '.join(WINDOW_TYPES)}, not {kind}")
    size = props.get("WINDOW_SIZE")
    if kind == "SESSION":
        if size is not None:
            raise HispeedError("'WINDOW_SIZE' should not be set for SESSION windows.")
        return kind, None
    if size is None:
        raise HispeedError(
            f"{kind} windows require 'WINDOW_SIZE' to be provided in the WITH "
            "clause. For example: 'WINDOW_SIZE'='10 SECONDS'"
        )
    return kind, parse_duration(str(size), "WINDOW_SIZE")
