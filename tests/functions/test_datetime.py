import datetime as dt

import pytest

from hispeed.functions.registry import FunctionTypeError, lookup
from hispeed.sql.types import BIGINT, DATE, INTEGER, STRING, TIME, TIMESTAMP
from tests.functions.util import call, col, values

TS = dt.datetime(2018, 5, 11, 21, 58, 33, 123000)  # 1526075913123 ms


def test_format_timestamp() -> None:
    pat = col(STRING, "yyyy-MM-dd HH:mm:ss.SSS", "yyyy-MM-dd HH:mm:ss zzz")
    out = values(
        "FORMAT_TIMESTAMP", col(TIMESTAMP, TS, TS), pat, col(STRING, "UTC", "America/Los_Angeles")
    )
    assert out == ["2018-05-11 21:58:33.123", "2018-05-11 14:58:33 PDT"]
    out = values(
        "FORMAT_TIMESTAMP", col(TIMESTAMP, TS, None), col(STRING, "yyyy-MM-dd'T'HH:mm:ssXXX", "y")
    )
    assert out == ["2018-05-11T21:58:33Z", None]
    out = values(
        "TIMESTAMPTOSTRING",
        col(BIGINT, 1526075913000),
        col(STRING, "yyyy-MM-dd HH:mm:ss zzz"),
        col(STRING, "Europe/London"),
    )
    assert out == ["2018-05-11 22:58:33 BST"]
    more = values("FORMAT_TIMESTAMP", col(TIMESTAMP, TS), col(STRING, "EEE, d MMM yy h:mm a ''x''"))
    assert more == ["Fri, 11 May 18 9:58 PM '+00'"]


def test_bad_pattern_is_row_error() -> None:
    out, ctx = call("FORMAT_TIMESTAMP", col(TIMESTAMP, TS), col(STRING, "yyyy-MM-dd 'oops"))
    assert out == [None]
    assert ctx.errors[0][0] == 0
    out, ctx = call(
        "FORMAT_TIMESTAMP", col(TIMESTAMP, TS), col(STRING, "yyyy"), col(STRING, "Nowhere/City")
    )
    assert out == [None]
    assert "time zone" in ctx.errors[0][1]


def test_parse_timestamp() -> None:
    out = values(
        "STRINGTOTIMESTAMP",
        col(
            STRING, "2018-05-11T21:58:33Z", "2019-08-27T13:31:09.2+0000", "2018-05-11T21:58:33 PST"
        ),
        col(
            STRING,
            "yyyy-MM-dd'T'HH:mm:ssX",
            "yyyy-MM-dd'T'HH:mm:ss.S[S][S]Z",
            "yyyy-MM-dd'T'HH:mm:ss zzz",
        ),
    )
    assert out == [1526075913000, 1566912669200, 1526101113000]
    out = values(
        "PARSE_TIMESTAMP",
        col(STRING, "2018-05-11 14:58:33"),
        col(STRING, "yyyy-MM-dd HH:mm:ss"),
        col(STRING, "America/Los_Angeles"),
    )
    assert out == [dt.datetime(2018, 5, 11, 21, 58, 33)]
    out, ctx = call("PARSE_TIMESTAMP", col(STRING, "not a date", None), col(STRING, "yyyy", "yyyy"))
    assert out == [None, None]
    assert [r for r, _ in ctx.errors] == [0]


def test_dates() -> None:
    pats = col(STRING, "yyyy-MM-dd", "dd/MM/yyyy", "dd-MMM-yyyy", "dd-MM-yyyy'Sophia'")
    out = values("DATETOSTRING", col(INTEGER, 17662, 18027, 18993, -1), pats)
    assert out == ["2018-05-11", "11/05/2019", "01-Jan-2022", "31-12-1969Sophia"]
    assert values("FORMAT_DATE", col(DATE, dt.date(2021, 10, 11)), col(STRING, "yyyyMMdd")) == [
        "20211011"
    ]
    assert values(
        "STRINGTODATE",
        col(STRING, "2018-05-11", "11-Jan-2022"),
        col(STRING, "yyyy-MM-dd", "dd-MMM-yyyy"),
    ) == [17662, 19003]
    assert values("PARSE_DATE", col(STRING, "20211011"), col(STRING, "yyyyMMdd")) == [
        dt.date(2021, 10, 11)
    ]
    out, ctx = call("PARSE_DATE", col(STRING, "2021-10-11 10"), col(STRING, "yyyy-MM-dd HH"))
    assert out == [None]
    assert "time field" in ctx.errors[0][1]


def test_times() -> None:
    assert values(
        "PARSE_TIME", col(STRING, "13:25", "01:02:03.456"), col(STRING, "HH:mm", "HH:mm:ss.SSS")
    ) == [
        dt.time(13, 25),
        dt.time(1, 2, 3, 456000),
    ]
    assert values("FORMAT_TIME", col(TIME, dt.time(16, 43, 40)), col(STRING, "HH:mm")) == ["16:43"]
    out, ctx = call("FORMAT_TIME", col(TIME, dt.time(1)), col(STRING, "yyyy HH"))
    assert out == [None]
    assert "date field" in ctx.errors[0][1]


def test_arithmetic() -> None:
    d = col(DATE, dt.date(2021, 1, 30), None)
    assert values("DATEADD", col(STRING, "DAYS", "DAYS"), col(INTEGER, 3, 3), d) == [
        dt.date(2021, 2, 2),
        None,
    ]
    assert values(
        "DATESUB", col(STRING, "DAY"), col(INTEGER, 30), col(DATE, dt.date(2021, 1, 30))
    ) == [dt.date(2020, 12, 31)]
    t = col(TIME, dt.time(23, 0))
    assert values("TIMEADD", col(STRING, "HOURS"), col(INTEGER, 2), t) == [dt.time(1, 0)]
    assert values("TIMESUB", col(STRING, "MINUTES"), col(INTEGER, 90), t) == [dt.time(21, 30)]
    ts = col(TIMESTAMP, dt.datetime(2021, 1, 1))
    assert values("TIMESTAMPADD", col(STRING, "MILLISECONDS"), col(INTEGER, 5), ts) == [
        dt.datetime(2021, 1, 1, 0, 0, 0, 5000)
    ]
    assert values("TIMESTAMPSUB", col(STRING, "SECONDS"), col(INTEGER, 1), ts) == [
        dt.datetime(2020, 12, 31, 23, 59, 59)
    ]
    out, ctx = call("TIMESTAMPADD", col(STRING, "FORTNIGHTS"), col(INTEGER, 1), ts)
    assert out == [None]
    assert "unknown time unit" in ctx.errors[0][1]


def test_convert_tz_and_conversions() -> None:
    ts = col(TIMESTAMP, dt.datetime(2021, 6, 1, 12, 0))
    out = values("CONVERT_TZ", ts, col(STRING, "UTC"), col(STRING, "America/Los_Angeles"))
    assert out == [dt.datetime(2021, 6, 1, 5, 0)]
    assert values("FROM_DAYS", col(INTEGER, 1, None)) == [dt.date(1970, 1, 2), None]
    assert values("FROM_UNIXTIME", col(BIGINT, 1000)) == [dt.datetime(1970, 1, 1, 0, 0, 1)]
    assert values("UNIX_DATE", col(DATE, dt.date(1970, 1, 11))) == [10]
    assert values("UNIX_TIMESTAMP", col(TIMESTAMP, dt.datetime(1970, 1, 1, 0, 0, 1))) == [1000]
    (now,) = values("UNIX_TIMESTAMP")
    assert now > 1_600_000_000_000
    with pytest.raises(FunctionTypeError, match="UNIX_DATE"):
        lookup("UNIX_DATE").resolve([STRING])  # type: ignore[union-attr]
