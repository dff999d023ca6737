"""TIMESTAMPTOSTRING and FORMAT_TIMESTAMP by column (functions/javatime_columns.py) against the
row-by-row reference (`_datetime.format_millis_row`, Java's DateTimeFormatter as
`javatime` implements it): same texts, NULLs and row errors, over random patterns, zones
(offsets, regions with daylight saving, a bad zone) and instants (clustered as streams are,
spread over the years, at daylight-saving changes, past the range a datetime holds)."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hispeed.functions import javatime_columns
from hispeed.functions._datetime import format_millis_row
from hispeed.functions.registry import EvalContext, lookup, rowwise
from hispeed.sql.types import BIGINT, STRING, TIMESTAMP

#: pattern letters and literals, joined at random (Y, w and W: letters the row path refuses)
WORDS = (
    "yyyy yy y uuuu u MM MMM MMMM M LL dd d D DDD E EEE EEEE EEEEE e ee c a HH H kk hh h KK K "
    "mm m ss s S SS SSS SSSSSS SSSSSSSSSSS n N A G GGGG Q QQQ q X XX XXX x xxx Z ZZZZ O z zzzz "
    "v VV 'T' '' 'o''clock' - : / . , [HH] [.SSS] [mm[ss]] Y w W"
)
PIECES = [*WORDS.split(" "), " "]
#: patterns as queries write them, each depending on a different span of local time
COMMON = [
    "yyyy-MM-dd",
    "HH",
    "HH:mm",
    "mm",
    "ss",
    "yyyy-MM-dd HH:mm",
    "HH XXX",
    "h a z",
    "D",
    "QQQ yy",
    "yyyy-MM-dd'T'HH:mm:ssXXX",
    "EEE, d MMM yyyy HH:mm:ss Z",
    "hh 'o''clock' a, zzzz",
]
ZONES = [
    "UTC",
    "Z",
    "+05:30",
    "-08:00",
    "GMT+2",
    "PST",
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "Australia/Lord_Howe",  # daylight saving of half an hour
    "Nowhere/City",  # not a zone: an error for each row
]
DAY = 86_400_000
#: instants at daylight-saving changes (New York, London, Lord Howe) and the ends of the range
SPECIAL = [
    1772953200000,  # 2026-03-08 07:00 UTC: New York springs forward
    1793512800000,  # 2026-11-01 06:00 UTC: New York falls back
    1774746000000,  # 2026-03-29 01:00 UTC: London
    1775311200000,  # 2026-04-04 15:00 UTC: Lord Howe's half hour back
    0,
    -1,
    javatime_columns._LOW,
    javatime_columns._HIGH,
    javatime_columns._LOW - 1,
    javatime_columns._HIGH + 1,
    -62135596800000,  # 0001-01-01 UTC
    253402300799999,  # 9999-12-31 23:59:59.999 UTC
    2**62,
    -(2**62),
]


@st.composite
def instants(draw: st.DrawFn) -> list[int | None]:
    """A batch: mostly near one base (as a stream's times are), some anywhere, some NULL."""
    base = draw(st.one_of(st.sampled_from(SPECIAL), st.integers(-(10**13), 4 * 10**12)))
    spread = draw(st.sampled_from([1000, 3_600_000, 3 * DAY, 400 * DAY]))
    near = st.integers(-spread, spread).map(lambda d: base + d)
    anywhere = st.integers(javatime_columns._LOW - DAY, javatime_columns._HIGH + DAY)
    one = st.one_of(near, near, near, anywhere, st.sampled_from(SPECIAL), st.none())
    return draw(st.lists(one, min_size=1, max_size=40))


def reference(
    name: str, millis: list[int | None], pattern: Any, tz: Any
) -> tuple[list[Any], list[tuple[int, str]]]:
    ctx = EvalContext()
    cols = [pa.array(millis, pa.int64()), pa.array(pattern, pa.string())]
    if tz is not None:
        cols.append(pa.array(tz, pa.string()))
    out = rowwise(ctx, cols, STRING, format_millis_row, label=name)
    return out.to_pylist(), ctx.errors


def by_column(
    name: str, millis: list[int | None], pattern: Any, tz: Any
) -> tuple[list[Any], list[tuple[int, str]]]:
    fn = lookup(name)
    assert fn is not None
    first = TIMESTAMP if name == "FORMAT_TIMESTAMP" else BIGINT
    types = [first, STRING] + ([STRING] if tz is not None else [])
    arrays = [pa.array(millis, first.to_arrow()), pa.array(pattern, pa.string())]
    if tz is not None:
        arrays.append(pa.array(tz, pa.string()))
    ctx = EvalContext()
    out = fn.evaluate(ctx, arrays, types, STRING)
    assert out.type == pa.string()
    return out.to_pylist(), ctx.errors


@settings(
    max_examples=int(os.environ.get("HISPEED_HYPOTHESIS_EXAMPLES", "50")) * 6,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    name=st.sampled_from(["TIMESTAMPTOSTRING", "FORMAT_TIMESTAMP"]),
    millis=instants(),
    pattern=st.one_of(
        st.sampled_from(COMMON),
        st.lists(st.sampled_from(PIECES), min_size=1, max_size=6).map("".join),
    ),
    tz=st.one_of(st.none(), st.sampled_from(ZONES)),
    null_pattern_rows=st.booleans(),
)
def test_by_column_matches_the_row_path(
    name: str, millis: list[int | None], pattern: str, tz: str | None, null_pattern_rows: bool
) -> None:
    n = len(millis)
    patterns: list[str | None] = [pattern] * n
    if null_pattern_rows:  # the same pattern, NULL in some rows
        patterns = [None if i % 3 == 1 else pattern for i in range(n)]
    zones = None if tz is None else [tz] * n
    assert by_column(name, millis, patterns, zones) == reference(name, millis, patterns, zones)


@pytest.mark.parametrize(
    ("pattern", "tz"),
    [
        ("yyyy-MM-dd", "UTC"),
        ("HH", "UTC"),
        ("yyyy-MM-dd HH:mm:ss.SSS zzz", "America/New_York"),
        ("HH XXX", "America/New_York"),  # 01:00 twice, at -04:00 and at -05:00
        ("mm", "UTC"),
        ("EEEE d MMMM uuuu h:mm a XXX", "Australia/Lord_Howe"),
    ],
)
def test_a_stream_of_instants(pattern: str, tz: str) -> None:
    """Ten thousand instants a second over a day and a half, across New York's autumn change."""
    start = 1793512800000 - DAY
    millis: list[int | None] = list(range(start, start + 36 * 3_600_000, 12_347))
    millis[5] = None
    n = len(millis)
    got = by_column("TIMESTAMPTOSTRING", millis, [pattern] * n, [tz] * n)
    assert got == reference("TIMESTAMPTOSTRING", millis, [pattern] * n, [tz] * n)
    assert got[0][5] is None
    assert got[1] == []


def test_different_patterns_in_different_rows_take_the_row_path() -> None:
    millis = [0, DAY, None]
    patterns = ["yyyy", "MM-dd", "HH"]
    assert by_column("TIMESTAMPTOSTRING", millis, patterns, None) == (["1970", "01-02", None], [])


def test_which_patterns_the_column_path_takes() -> None:
    ms = pa.array([0, 1, DAY], pa.int64())
    utc = javatime_columns.format_instants
    import datetime as dt

    assert utc(ms, "yyyy-MM-dd", dt.UTC) is not None
    assert utc(ms, "HH:mm:ss.SSS", dt.UTC) is not None
    assert utc(ms, "YYYY", dt.UTC) is None  # week-based year: not known here
    assert utc(ms, "yyyy'", dt.UTC) is None  # does not parse: the row path's error
    assert utc(pa.array([2**62], pa.int64()), "yyyy", dt.UTC) is None  # overflows by row
