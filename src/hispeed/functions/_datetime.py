"""Date and time functions, with a formatter and parser for Java DateTimeFormatter patterns."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions._signatures import check, rows
from hispeed.functions.registry import EvalContext, scalar
from hispeed.sql.types import BIGINT, DATE, INTEGER, STRING, TIME, TIMESTAMP, SqlType

Args = Sequence[pa.Array]
Types = Sequence[SqlType]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MONTHS = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
]
_DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]

# java.time.ZoneId.SHORT_IDS, which java.util.TimeZone also accepts
_SHORT_IDS = {
    "ACT": "Australia/Darwin",
    "AET": "Australia/Sydney",
    "AGT": "America/Argentina/Buenos_Aires",
    "ART": "Africa/Cairo",
    "AST": "America/Anchorage",
    "BET": "America/Sao_Paulo",
    "BST": "Asia/Dhaka",
    "CAT": "Africa/Harare",
    "CNT": "America/St_Johns",
    "CST": "America/Chicago",
    "CTT": "Asia/Shanghai",
    "EAT": "Africa/Addis_Ababa",
    "ECT": "Europe/Paris",
    "IET": "America/Indiana/Indianapolis",
    "IST": "Asia/Kolkata",
    "JST": "Asia/Tokyo",
    "MIT": "Pacific/Apia",
    "NET": "Asia/Yerevan",
    "NST": "Pacific/Auckland",
    "PLT": "Asia/Karachi",
    "PNT": "America/Phoenix",
    "PRT": "America/Puerto_Rico",
    "PST": "America/Los_Angeles",
    "SST": "Pacific/Guadalcanal",
    "VST": "Asia/Ho_Chi_Minh",
    "EST": "-05:00",
    "MST": "-07:00",
    "HST": "-10:00",
}
_ZONE_NAMES = {
    "PDT": "America/Los_Angeles",
    "EDT": "America/New_York",
    "CDT": "America/Chicago",
    "MDT": "America/Denver",
    "CET": "CET",
    "CEST": "CET",
    "GMT": "UTC",
    "UTC": "UTC",
    "BST": "Europe/London",
    "Z": "UTC",
}


@lru_cache(maxsize=128)
def zone(name: str) -> dt.tzinfo:
    """A time zone from a Java zone id: region, offset (+01:00), UTC/GMT[+offset] or short id."""
    n = name.strip()
    if n in ("Z", "UTC", "GMT", "UT"):
        return dt.UTC
    m = re.fullmatch(r"(?:UTC|GMT|UT)?([+-])(\d{1,2})(?::?(\d{2}))?(?::?(\d{2}))?", n)
    if m:
        sign = -1 if m[1] == "-" else 1
        delta = dt.timedelta(hours=int(m[2]), minutes=int(m[3] or 0), seconds=int(m[4] or 0))
        return dt.timezone(sign * delta)
    if n in _SHORT_IDS:
        return zone(_SHORT_IDS[n])
    try:
        return ZoneInfo(n)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"Invalid time zone: {name}") from None


# --- Java DateTimeFormatter patterns -------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    letter: str
    count: int


@dataclass(frozen=True)
class _Optional:
    items: tuple[_Field | str | _Optional, ...]


_Item = _Field | str | _Optional
_LETTERS = set("GuyDMLdQqYwWEecFaBhKkHmsSAnNVvzOXxZp")


@lru_cache(maxsize=256)
def java_pattern(pattern: str) -> tuple[_Item, ...]:
    """Tokenize a java.time DateTimeFormatter pattern."""
    stack: list[list[_Item]] = [[]]
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "'":
            end = i + 1
            text: list[str] = []
            while True:
                if end >= n:
                    raise ValueError(f"unterminated quote in pattern {pattern!r}")
                if pattern[end] == "'":
                    if end + 1 < n and pattern[end + 1] == "'":
                        text.append("'")
                        end += 2
                        continue
                    break
                text.append(pattern[end])
                end += 1
            stack[-1].append("".join(text) if end > i + 1 else "'")
            i = end + 1
        elif c == "[":
            stack.append([])
            i += 1
        elif c == "]":
            if len(stack) == 1:
                raise ValueError(f"unbalanced ']' in pattern {pattern!r}")
            items = stack.pop()
            stack[-1].append(_Optional(tuple(items)))
            i += 1
        elif c.isascii() and c.isalpha():
            if c not in _LETTERS:
                raise ValueError(f"unknown pattern letter {c!r} in {pattern!r}")
            j = i
            while j < n and pattern[j] == c:
                j += 1
            stack[-1].append(_Field(c, j - i))
            i = j
        else:
            stack[-1].append(c)
            i += 1
    if len(stack) != 1:
        raise ValueError(f"unbalanced '[' in pattern {pattern!r}")
    return tuple(stack[0])


def _offset_text(off: dt.timedelta | None, letter: str, count: int) -> str:
    secs = int(off.total_seconds()) if off is not None else 0
    if secs == 0 and letter == "X":
        return "Z"
    sign = "-" if secs < 0 else "+"
    secs = abs(secs)
    hh, mm = secs // 3600, secs // 60 % 60
    if letter == "O":
        return "GMT" if secs == 0 else f"GMT{sign}{hh}" + (f":{mm:02d}" if mm else "")
    if letter == "Z":
        return f"{sign}{hh:02d}:{mm:02d}" if count == 4 else f"{sign}{hh:02d}{mm:02d}"
    if count == 1:
        return f"{sign}{hh:02d}" + (f"{mm:02d}" if mm else "")
    if count in (2, 4):
        return f"{sign}{hh:02d}{mm:02d}"
    return f"{sign}{hh:02d}:{mm:02d}"


def _format_field(f: _Field, t: dt.datetime) -> str:
    c, k = f.letter, f.count
    if c in "yu":
        year = t.year if c == "u" or t.year > 0 else 1 - t.year
        return f"{year % 100:02d}" if k == 2 else f"{year:0{k}d}"
    if c in "ML":
        if k >= 4:
            return _MONTHS[t.month - 1]
        if k == 3:
            return _MONTHS[t.month - 1][:3]
        return f"{t.month:0{k}d}"
    if c == "d":
        return f"{t.day:0{k}d}"
    if c == "D":
        return f"{t.timetuple().tm_yday:0{k}d}"
    if c in "Eec":
        name = _DAYS[t.weekday()]
        if c in "ec" and k <= 2:
            return f"{(t.isoweekday() % 7) + 1:0{k}d}"
        return name if k == 4 else name[0] if k == 5 else name[:3]
    if c == "a":
        return "AM" if t.hour < 12 else "PM"
    if c == "H":
        return f"{t.hour:0{k}d}"
    if c == "k":
        return f"{t.hour or 24:0{k}d}"
    if c == "h":
        return f"{(t.hour % 12) or 12:0{k}d}"
    if c == "K":
        return f"{t.hour % 12:0{k}d}"
    if c == "m":
        return f"{t.minute:0{k}d}"
    if c == "s":
        return f"{t.second:0{k}d}"
    if c == "S":
        return f"{t.microsecond:06d}000"[:k] if k <= 9 else f"{t.microsecond:06d}".ljust(k, "0")
    if c == "n":
        return f"{t.microsecond * 1000:0{k}d}"
    if c == "N":
        nanos = ((t.hour * 60 + t.minute) * 60 + t.second) * 10**9 + t.microsecond * 1000
        return f"{nanos:0{k}d}"
    if c == "A":
        millis = ((t.hour * 60 + t.minute) * 60 + t.second) * 1000 + t.microsecond // 1000
        return f"{millis:0{k}d}"
    if c == "G":
        return (
            ("AD" if t.year > 0 else "BC")
            if k <= 3
            else ("Anno Domini" if t.year > 0 else "Before Christ")
        )
    if c == "Q" or c == "q":
        return str((t.month - 1) // 3 + 1).zfill(k) if k <= 2 else f"Q{(t.month - 1) // 3 + 1}"
    if c in "XxZO":
        return _offset_text(t.utcoffset(), c, k)
    if c in "zv":
        name = t.tzname() or "UTC"
        return name if k < 4 else str(getattr(t.tzinfo, "key", name))
    if c == "V":
        return str(getattr(t.tzinfo, "key", t.tzname() or "UTC"))
    raise ValueError(f"pattern letter {c!r} is not supported")


def format_java(items: Sequence[_Item], t: dt.datetime) -> str:
    """Format a datetime with a tokenized Java pattern."""
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, _Optional):
            out.append(format_java(item.items, t))
        else:
            out.append(_format_field(item, t))
    return "".join(out)


# parsing: a regex per pattern, with a named group per field

_NUMERIC = set("yuMLdDHhkKmsSnNAQqe")
_OFFSET_RX = r"Z|z|GMT(?:[+-]\d{1,2}(?::?\d{2})?)?|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?"


def _field_regex(f: _Field, name: str, next_is_numeric: bool) -> str:
    c, k = f.letter, f.count
    if c in "ML" and k >= 3:
        names = _MONTHS if k >= 4 else [m[:3] for m in _MONTHS]
        return f"(?P<{name}>{'|'.join(names)})"
    if c in "Eec" and not (c in "ec" and k <= 2):
        names = _DAYS if k >= 4 else [d[:3] for d in _DAYS]
        return f"(?P<{name}>{'|'.join(names)})"
    if c == "a":
        return f"(?P<{name}>AM|PM|am|pm)"
    if c == "G":
        return f"(?P<{name}>AD|BC|Anno Domini|Before Christ)"
    if c in "XxZO":
        return f"(?P<{name}>{_OFFSET_RX})"
    if c in "zvV":
        return rf"(?P<{name}>[A-Za-z][A-Za-z0-9_/+\-]*)"
    if c == "S":
        return rf"(?P<{name}>\d{{{k}}})"
    if c in "yu":
        if k == 2:
            return rf"(?P<{name}>\d{{2}})"
        return (
            rf"(?P<{name}>[+-]?\d{{{k}}})" if next_is_numeric else rf"(?P<{name}>[+-]?\d{{{k},9}})"
        )
    if c in _NUMERIC:
        if k == 1 and not next_is_numeric:
            return rf"(?P<{name}>\d{{1,{19 if c in 'nNA' else 3 if c == 'D' else 2}}})"
        return rf"(?P<{name}>\d{{{k}}})"
    raise ValueError(f"pattern letter {c!r} is not supported")


def _regex(items: Sequence[_Item], counter: list[int], fields: dict[str, _Field]) -> str:
    parts: list[str] = []
    for idx, item in enumerate(items):
        if isinstance(item, str):
            parts.append(re.escape(item))
        elif isinstance(item, _Optional):
            parts.append(f"(?:{_regex(item.items, counter, fields)})?")
        else:
            nxt = items[idx + 1] if idx + 1 < len(items) else None
            numeric_next = (
                isinstance(nxt, _Field)
                and nxt.letter in _NUMERIC
                and not (nxt.letter in "ML" and nxt.count >= 3)
            )
            name = f"f{counter[0]}"
            counter[0] += 1
            fields[name] = item
            parts.append(_field_regex(item, name, numeric_next))
    return "".join(parts)


@lru_cache(maxsize=256)
def _parser(pattern: str) -> tuple[re.Pattern[str], dict[str, _Field]]:
    fields: dict[str, _Field] = {}
    rx = _regex(java_pattern(pattern), [0], fields)
    return re.compile(rx, re.IGNORECASE), fields


@dataclass
class _Parsed:
    year: int = 1970
    month: int = 1
    day: int = 1
    day_of_year: int | None = None
    hour: int = 0
    minute: int = 0
    second: int = 0
    micro: int = 0
    pm: bool | None = None
    hour12: int | None = None
    tz: dt.tzinfo | None = None
    has_date: bool = False
    has_time: bool = False


def parse_java(pattern: str, text: str) -> _Parsed:
    """Parse text with a Java pattern into its fields (missing ones take defaults)."""
    rx, fields = _parser(pattern)
    m = rx.fullmatch(text)
    if m is None:
        raise ValueError(f"text {text!r} does not match pattern {pattern!r}")
    p = _Parsed()
    for name, f in fields.items():
        v = m.group(name)
        if v is None:
            continue
        c = f.letter
        if c in "yu":
            p.year = 2000 + int(v) if f.count == 2 else int(v)
            p.has_date = True
        elif c in "ML":
            p.month = (
                int(v)
                if v.isdigit()
                else 1
                + [x.lower() for x in _MONTHS].index(
                    next(x for x in _MONTHS if x.lower().startswith(v.lower())).lower()
                )
            )
            p.has_date = True
        elif c == "d":
            p.day = int(v)
            p.has_date = True
        elif c == "D":
            p.day_of_year = int(v)
            p.has_date = True
        elif c in "Hk":
            p.hour = int(v) % 24
            p.has_time = True
        elif c in "hK":
            p.hour12 = int(v) % 12
            p.has_time = True
        elif c == "a":
            p.pm = v.upper() == "PM"
        elif c == "m":
            p.minute = int(v)
            p.has_time = True
        elif c == "s":
            p.second = int(v)
            p.has_time = True
        elif c == "S":
            p.micro = int(v.ljust(6, "0")[:6])
        elif c == "n":
            p.micro = int(v) // 1000
        elif c == "A":
            ms = int(v)
            p.hour, p.minute, p.second = ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60
            p.micro = ms % 1000 * 1000
            p.has_time = True
        elif c in "XxZO":
            p.tz = zone(v.upper())
        elif c in "zvV":
            p.tz = zone(_ZONE_NAMES.get(v.upper(), v))
    if p.hour12 is not None:
        p.hour = p.hour12 + (12 if p.pm else 0)
    return p


def _datetime_of(p: _Parsed, tz: dt.tzinfo) -> dt.datetime:
    if p.day_of_year is not None:
        base = dt.date(p.year, 1, 1) + dt.timedelta(days=p.day_of_year - 1)
        p.month, p.day = base.month, base.day
    return dt.datetime(
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.micro, tzinfo=p.tz or tz
    )


def _epoch_millis(t: dt.datetime) -> int:
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _from_millis(ms: int, tz: dt.tzinfo) -> dt.datetime:
    return (_EPOCH + dt.timedelta(milliseconds=ms)).astimezone(tz)


def _epoch_day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days


# --- resolvers -----------------------------------------------------------------------------------


def _fixed(
    name: str, accepts: str, result: SqlType, *params: SqlType
) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        check(name, accepts, arg_types, *params)
        return result

    return resolve


def _with_zone(
    name: str, accepts: str, result: SqlType, *params: SqlType
) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        if len(arg_types) == len(params) + 1:
            check(name, accepts, arg_types, *params, STRING)
        else:
            check(name, accepts, arg_types, *params)
        return result

    return resolve


def _ts_millis(arr: pa.Array) -> pa.Array:
    return pc.cast(arr, pa.int64()) if pa.types.is_timestamp(arr.type) else arr


# --- formatting ----------------------------------------------------------------------------------


@scalar(
    "FORMAT_TIMESTAMP",
    _with_zone("FORMAT_TIMESTAMP", "(TIMESTAMP, STRING[, STRING zone])", STRING, TIMESTAMP, STRING),
)
def _format_timestamp(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format a TIMESTAMP with a Java date-time pattern, in UTC or the given zone."""
    cols = [_ts_millis(args[0]), *args[1:]]
    return rows(
        ctx,
        "FORMAT_TIMESTAMP",
        cols,
        rt,
        lambda ms, pat, tz="UTC": format_java(java_pattern(pat), _from_millis(ms, zone(tz))),
    )


@scalar(
    "TIMESTAMPTOSTRING",
    _with_zone("TIMESTAMPTOSTRING", "(BIGINT, STRING[, STRING zone])", STRING, BIGINT, STRING),
)
def _timestamp_to_string(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format epoch milliseconds with a Java date-time pattern, in UTC or the given zone."""
    cols = [pc.cast(args[0], pa.int64()), *args[1:]]
    return rows(
        ctx,
        "TIMESTAMPTOSTRING",
        cols,
        rt,
        lambda ms, pat, tz="UTC": format_java(java_pattern(pat), _from_millis(ms, zone(tz))),
    )


def _format_days(days: int, pattern: str) -> str:
    d = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    items = java_pattern(pattern)
    return format_java(items, dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC))


@scalar("FORMAT_DATE", _fixed("FORMAT_DATE", "(DATE, STRING)", STRING, DATE, STRING))
def _format_date(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format a DATE with a Java date pattern."""
    return rows(ctx, "FORMAT_DATE", [pc.cast(args[0], pa.int32()), args[1]], rt, _format_days)


@scalar("DATETOSTRING", _fixed("DATETOSTRING", "(INTEGER days, STRING)", STRING, INTEGER, STRING))
def _date_to_string(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format days since the epoch with a Java date pattern."""
    return rows(ctx, "DATETOSTRING", args, rt, _format_days)


@scalar("FORMAT_TIME", _fixed("FORMAT_TIME", "(TIME, STRING)", STRING, TIME, STRING))
def _format_time(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format a TIME with a Java time pattern."""

    def one(ms: int, pattern: str) -> str:
        items = java_pattern(pattern)
        _reject_fields(items, "yuMLdDEGQqe", "Time format contains date field.")
        return format_java(items, _from_millis(ms, dt.UTC))

    return rows(ctx, "FORMAT_TIME", [pc.cast(args[0], pa.int32()), args[1]], rt, one)


def _reject_fields(items: Sequence[_Item], letters: str, message: str) -> None:
    for item in items:
        if isinstance(item, _Optional):
            _reject_fields(item.items, letters, message)
        elif isinstance(item, _Field) and item.letter in letters:
            raise ValueError(message)


# --- parsing -------------------------------------------------------------------------------------


def _parse_millis(text: str, pattern: str, tz: str = "UTC") -> int:
    return _epoch_millis(_datetime_of(parse_java(pattern, text), zone(tz)))


@scalar(
    "PARSE_TIMESTAMP",
    _with_zone("PARSE_TIMESTAMP", "(STRING, STRING[, STRING zone])", TIMESTAMP, STRING, STRING),
)
def _parse_timestamp(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse a TIMESTAMP with a Java date-time pattern, in UTC or the given zone."""
    out = rows(ctx, "PARSE_TIMESTAMP", args, BIGINT, _parse_millis)
    return pc.cast(out, pa.timestamp("ms"))


@scalar(
    "STRINGTOTIMESTAMP",
    _with_zone("STRINGTOTIMESTAMP", "(STRING, STRING[, STRING zone])", BIGINT, STRING, STRING),
)
def _string_to_timestamp(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse epoch milliseconds with a Java date-time pattern, in UTC or the given zone."""
    return rows(ctx, "STRINGTOTIMESTAMP", args, rt, _parse_millis)


def _parse_days(text: str, pattern: str) -> int:
    p = parse_java(pattern, text)
    if p.has_time and (p.hour or p.minute or p.second or p.micro):
        raise ValueError("Date format contains time field.")
    return _epoch_day(_datetime_of(p, dt.UTC).date())


@scalar("PARSE_DATE", _fixed("PARSE_DATE", "(STRING, STRING)", DATE, STRING, STRING))
def _parse_date(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse a DATE with a Java date pattern."""
    return pc.cast(rows(ctx, "PARSE_DATE", args, INTEGER, _parse_days), pa.date32())


@scalar("STRINGTODATE", _fixed("STRINGTODATE", "(STRING, STRING)", INTEGER, STRING, STRING))
def _string_to_date(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse days since the epoch with a Java date pattern."""
    return rows(ctx, "STRINGTODATE", args, rt, _parse_days)


@scalar("PARSE_TIME", _fixed("PARSE_TIME", "(STRING, STRING)", TIME, STRING, STRING))
def _parse_time(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse a TIME with a Java time pattern."""

    def one(text: str, pattern: str) -> int:
        _reject_fields(java_pattern(pattern), "yuMLdDEGQqe", "Time format contains date field.")
        p = parse_java(pattern, text)
        return ((p.hour * 60 + p.minute) * 60 + p.second) * 1000 + p.micro // 1000

    return pc.cast(rows(ctx, "PARSE_TIME", args, INTEGER, one), pa.time32("ms"))


# --- arithmetic ----------------------------------------------------------------------------------

_UNIT_MILLIS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}


def unit_millis(unit: str) -> int:
    """Milliseconds in a time unit (DAYS, HOUR, MILLISECONDS...)."""
    u = unit.strip().upper()
    u = u[:-1] if u.endswith("S") else u
    if u not in _UNIT_MILLIS:
        raise ValueError(
            f"unknown time unit {unit!r}; use MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS"
        )
    return _UNIT_MILLIS[u]


def _unit_delta(args: Args) -> Any:
    """Per-row interval in ms from (unit, interval) columns, as int64 numpy (0 where NULL)."""
    units = args[0].to_pylist()
    same = len(set(units)) == 1 and units[0] is not None
    intervals = np.asarray(pc.fill_null(pc.cast(args[1], pa.int64()), 0).to_numpy(), np.int64)
    if same:
        return intervals * unit_millis(units[0])
    scale = np.array([unit_millis(u) if u is not None else 0 for u in units], np.int64)
    return intervals * scale


def _arith(name: str, target: SqlType, sign: int, doc: str) -> None:
    accepts = f"(unit, INTEGER, {target})"

    def resolve(arg_types: Types) -> SqlType:
        check(name, accepts, arg_types, STRING, INTEGER, target)
        return target

    def evaluate(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
        mask = np.zeros(len(args[2]), dtype=bool)
        for a in args:
            if a.null_count:
                mask |= np.asarray(a.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        try:
            delta = _unit_delta(args) * sign
        except ValueError as e:
            for i in range(len(args[2])):
                ctx.error(i, f"{name}: {e}")
            return pa.nulls(len(args[2]), rt.to_arrow())
        if target == DATE:
            days = np.asarray(pc.fill_null(pc.cast(args[2], pa.int32()), 0).to_numpy(), np.int64)
            total = days * 86_400_000 + delta
            out = np.trunc(total / 86_400_000).astype(np.int32)  # Java truncates towards zero
            return pa.array(out, pa.int32(), mask=mask).cast(pa.date32())
        if target == TIME:
            ms = np.asarray(pc.fill_null(pc.cast(args[2], pa.int32()), 0).to_numpy(), np.int64)
            out = np.mod(ms + delta, 86_400_000).astype(np.int32)
            return pa.array(out, pa.int32(), mask=mask).cast(pa.time32("ms"))
        ms = np.asarray(pc.fill_null(pc.cast(args[2], pa.int64()), 0).to_numpy(), np.int64)
        return pa.array(ms + delta, pa.int64(), mask=mask).cast(pa.timestamp("ms"))

    scalar(name, resolve, description=doc)(evaluate)


_arith("DATEADD", DATE, 1, "Add an interval (unit, count) to a DATE.")
_arith("DATESUB", DATE, -1, "Subtract an interval (unit, count) from a DATE.")
_arith("TIMEADD", TIME, 1, "Add an interval (unit, count) to a TIME, wrapping at midnight.")
_arith("TIMESUB", TIME, -1, "Subtract an interval (unit, count) from a TIME, wrapping at midnight.")
_arith("TIMESTAMPADD", TIMESTAMP, 1, "Add an interval (unit, count) to a TIMESTAMP.")
_arith("TIMESTAMPSUB", TIMESTAMP, -1, "Subtract an interval (unit, count) from a TIMESTAMP.")


@scalar(
    "CONVERT_TZ",
    _fixed(
        "CONVERT_TZ",
        "(TIMESTAMP, STRING from_zone, STRING to_zone)",
        TIMESTAMP,
        TIMESTAMP,
        STRING,
        STRING,
    ),
)
def _convert_tz(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Shift a TIMESTAMP's wall-clock time from one time zone to another."""

    def one(ms: int, source: str, target: str) -> int:
        instant = _from_millis(ms, dt.UTC)
        to_off = instant.astimezone(zone(target)).utcoffset() or dt.timedelta()
        from_off = instant.astimezone(zone(source)).utcoffset() or dt.timedelta()
        return ms + int((to_off - from_off).total_seconds() * 1000)

    out = rows(ctx, "CONVERT_TZ", [_ts_millis(args[0]), args[1], args[2]], BIGINT, one)
    return pc.cast(out, pa.timestamp("ms"))


# --- conversions ---------------------------------------------------------------------------------


@scalar("FROM_DAYS", _fixed("FROM_DAYS", "(INTEGER)", DATE, INTEGER))
def _from_days(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Convert days since the epoch to a DATE."""
    return pc.cast(pc.cast(args[0], pa.int32()), pa.date32())


@scalar("FROM_UNIXTIME", _fixed("FROM_UNIXTIME", "(BIGINT)", TIMESTAMP, BIGINT))
def _from_unixtime(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Convert epoch milliseconds to a TIMESTAMP."""
    return pc.cast(pc.cast(args[0], pa.int64()), pa.timestamp("ms"))


def _resolve_unix(name: str, param: SqlType, result: SqlType) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        if arg_types:
            check(name, f"() or ({param})", arg_types, param)
        return result

    return resolve


@scalar("UNIX_DATE", _resolve_unix("UNIX_DATE", DATE, INTEGER), deterministic=False)
def _unix_date(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return a DATE (default today) as days since the epoch."""
    if args:
        return pc.cast(args[0], pa.int32())
    return pa.array([_epoch_day(dt.date.today())], pa.int32())


@scalar("UNIX_TIMESTAMP", _resolve_unix("UNIX_TIMESTAMP", TIMESTAMP, BIGINT), deterministic=False)
def _unix_timestamp(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return a TIMESTAMP (default now) as epoch milliseconds."""
    if args:
        return pc.cast(args[0], pa.int64())
    return pa.array([time.time_ns() // 1_000_000], pa.int64())
