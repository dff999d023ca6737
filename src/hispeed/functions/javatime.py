"""Java DateTimeFormatter patterns: format and parse date-time text as ksqlDB (Java) does.

`java_pattern` reads a pattern into items, `format_java` formats a datetime with them and
`parse_java` reads text back (`datetime_of` makes the datetime of what it read); `zone`
reads a Java zone id. The date and time functions (FORMAT_TIMESTAMP, PARSE_DATE...) and the
TIMESTAMP_FORMAT of a source's event time both use them.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
class PatternField:
    letter: str
    count: int


@dataclass(frozen=True)
class OptionalSection:
    items: tuple[PatternField | str | OptionalSection, ...]


PatternItem = PatternField | str | OptionalSection
_LETTERS = set("GuyDMLdQqYwWEecFaBhKkHmsSAnNVvzOXxZp")


@lru_cache(maxsize=256)
def java_pattern(pattern: str) -> tuple[PatternItem, ...]:
    """Tokenize a java.time DateTimeFormatter pattern."""
    stack: list[list[PatternItem]] = [[]]
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
            stack[-1].append(OptionalSection(tuple(items)))
            i += 1
        elif c.isascii() and c.isalpha():
            if c not in _LETTERS:
                raise ValueError(f"unknown pattern letter {c!r} in {pattern!r}")
            j = i
            while j < n and pattern[j] == c:
                j += 1
            stack[-1].append(PatternField(c, j - i))
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


def _format_field(f: PatternField, t: dt.datetime) -> str:
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


def format_java(items: Sequence[PatternItem], t: dt.datetime) -> str:
    """Format a datetime with a tokenized Java pattern."""
    out: list[str] = []
    for item in items:
        if isinstance(item, str):
            out.append(item)
        elif isinstance(item, OptionalSection):
            out.append(format_java(item.items, t))
        else:
            out.append(_format_field(item, t))
    return "".join(out)


# parsing: a regex per pattern, with a named group per field

_NUMERIC = set("yuMLdDHhkKmsSnNAQqe")
_OFFSET_RX = r"Z|z|GMT(?:[+-]\d{1,2}(?::?\d{2})?)?|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?"


def _field_regex(f: PatternField, name: str, next_is_numeric: bool) -> str:
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


def _regex(
    items: Sequence[PatternItem], counter: list[int], fields: dict[str, PatternField]
) -> str:
    parts: list[str] = []
    for idx, item in enumerate(items):
        if isinstance(item, str):
            parts.append(re.escape(item))
        elif isinstance(item, OptionalSection):
            parts.append(f"(?:{_regex(item.items, counter, fields)})?")
        else:
            nxt = items[idx + 1] if idx + 1 < len(items) else None
            numeric_next = (
                isinstance(nxt, PatternField)
                and nxt.letter in _NUMERIC
                and not (nxt.letter in "ML" and nxt.count >= 3)
            )
            name = f"f{counter[0]}"
            counter[0] += 1
            fields[name] = item
            parts.append(_field_regex(item, name, numeric_next))
    return "".join(parts)


@lru_cache(maxsize=256)
def _parser(pattern: str) -> tuple[re.Pattern[str], dict[str, PatternField]]:
    fields: dict[str, PatternField] = {}
    rx = _regex(java_pattern(pattern), [0], fields)
    return re.compile(rx, re.IGNORECASE), fields


@dataclass
class ParsedTime:
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


def parse_java(pattern: str, text: str) -> ParsedTime:
    """Parse text with a Java pattern into its fields (missing ones take defaults)."""
    rx, fields = _parser(pattern)
    m = rx.fullmatch(text)
    if m is None:
        raise ValueError(f"text {text!r} does not match pattern {pattern!r}")
    p = ParsedTime()
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


def datetime_of(p: ParsedTime, tz: dt.tzinfo) -> dt.datetime:
    if p.day_of_year is not None:
        base = dt.date(p.year, 1, 1) + dt.timedelta(days=p.day_of_year - 1)
        p.month, p.day = base.month, base.day
    return dt.datetime(
        p.year, p.month, p.day, p.hour, p.minute, p.second, p.micro, tzinfo=p.tz or tz
    )


def epoch_millis(t: dt.datetime) -> int:
    delta = t - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_millis(ms: int, tz: dt.tzinfo) -> dt.datetime:
    return (_EPOCH + dt.timedelta(milliseconds=ms)).astimezone(tz)


def epoch_day(d: dt.date) -> int:
    return (d - dt.date(1970, 1, 1)).days
