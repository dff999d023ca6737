"""Java DateTimeFormatter patterns, formatted and parsed back."""

import datetime as dt

from hispeed.functions.javatime import (
    datetime_of,
    epoch_millis,
    format_java,
    java_pattern,
    parse_java,
)


def test_a_pattern_formats_and_parses_back() -> None:
    pattern = "yyyy-MM-dd HH:mm:ss.SSS"
    t = dt.datetime(2020, 5, 26, 7, 23, 44, 123000, tzinfo=dt.UTC)
    text = format_java(java_pattern(pattern), t)
    assert text == "2020-05-26 07:23:44.123"
    assert datetime_of(parse_java(pattern, text), dt.UTC) == t
    assert epoch_millis(t) == 1590477824123
