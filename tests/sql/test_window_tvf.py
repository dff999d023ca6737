"""Flink's windowing table functions in FROM: what the parser reads, and where it refuses."""

from __future__ import annotations

import pytest

from hispeed.errors import SqlError
from hispeed.sql import ast
from hispeed.sql.parser import parse_query


def _tvf(text: str) -> ast.WindowTvf:
    relation = parse_query(text).from_
    assert isinstance(relation, ast.WindowTvf)
    return relation


def test_each_function_with_intervals_in_flinks_forms() -> None:
    tumble = _tvf(
        "SELECT * FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' SECONDS))"
    )
    assert (tumble.kind, tumble.source.name, tumble.time_column, tumble.size_ms) == (
        "TUMBLE",
        "BID",
        "DATETIME",
        10_000,
    )
    assert tumble.step_ms is None
    assert tumble.offset_ms == 0
    hop = _tvf(
        "SELECT * FROM HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '2' SECOND, "
        "INTERVAL '1' MINUTE) AS h"
    )
    assert (hop.kind, hop.step_ms, hop.size_ms, hop.label) == ("HOP", 2_000, 60_000, "H")
    cumulate = _tvf(
        "SELECT * FROM CUMULATE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '1' HOUR, "
        "INTERVAL '1' DAY, INTERVAL '0.5' SECOND)"
    )
    assert (cumulate.step_ms, cumulate.size_ms, cumulate.offset_ms) == (
        3_600_000,
        86_400_000,
        500,
    )
    session = _tvf("SELECT * FROM SESSION(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '5' MINUTES)")
    assert (session.kind, session.size_ms) == ("SESSION", 300_000)
    named = _tvf(
        "SELECT * FROM TABLE(TUMBLE(DATA => TABLE bid, TIMECOL => DESCRIPTOR(dateTime), "
        "SIZE => INTERVAL '10' MILLISECONDS, OFFSET => INTERVAL '3' MILLISECOND)) b"
    )
    assert (named.size_ms, named.offset_ms, named.label) == (10, 3, "B")


@pytest.mark.parametrize(
    ("text", "place", "words"),
    [
        # the TABLE keyword before the source
        (
            "SELECT *\nFROM TUMBLE(bid, DESCRIPTOR(t), INTERVAL '1' SECOND)",
            (2, 13),
            "expected TABLE and the source to window",
        ),
        # a negative size, at its INTERVAL
        (
            "SELECT * FROM TUMBLE(TABLE bid, DESCRIPTOR(t),\n  INTERVAL '-10' SECOND)",
            (2, 3),
            "TUMBLE's size must be a positive interval, not -10000 ms",
        ),
        (
            "SELECT * FROM HOP(TABLE bid, DESCRIPTOR(t), INTERVAL '0' SECOND, INTERVAL '1' HOUR)",
            (1, 45),
            "HOP's slide must be a positive interval",
        ),
        (
            "SELECT * FROM HOP(TABLE bid, DESCRIPTOR(t), INTERVAL '2' HOUR, INTERVAL '1' HOUR)",
            (1, 45),
            "HOP's slide (7200000 ms) must not be longer than its size (3600000 ms)",
        ),
        (
            "SELECT * FROM CUMULATE(TABLE bid, DESCRIPTOR(t), INTERVAL '7' SECOND, "
            "INTERVAL '1' MINUTE)",
            (1, 71),
            "must be a whole number of steps",
        ),
        (
            "SELECT * FROM TUMBLE(TABLE bid, t, INTERVAL '1' SECOND)",
            (1, 33),
            "expected DESCRIPTOR(time_column)",
        ),
        (
            "SELECT * FROM TUMBLE(TABLE bid, DESCRIPTOR(t), INTERVAL '1' FORTNIGHT)",
            (1, 61),
            "expected a time unit",
        ),
        (
            "SELECT * FROM TUMBLE(TABLE bid, DESCRIPTOR(t), INTERVAL '0.0001' SECOND)",
            (1, 57),
            "is not a whole number of milliseconds",
        ),
        (
            "SELECT * FROM HOP(TABLE bid, DESCRIPTOR(t), INTERVAL '1' SECOND)",
            (1, 64),
            "expected ',' and the size",
        ),
        (
            "SELECT * FROM TUMBLE(TABLE bid, DESCRIPTOR(t), SIZE => INTERVAL '1' SECOND, "
            "STEP => INTERVAL '1' SECOND)",
            (1, 77),
            "expected the argument OFFSET here, not STEP",
        ),
    ],
)
def test_malformed_calls_are_refused_at_their_place(
    text: str, place: tuple[int, int], words: str
) -> None:
    with pytest.raises(SqlError) as err:
        parse_query(text)
    assert (err.value.line, err.value.column) == place
    assert words in str(err.value)


def test_a_stream_named_like_a_function_is_still_a_stream() -> None:
    # only a call (the name then '(') is a window function
    relation = parse_query("SELECT * FROM hop h EMIT CHANGES").from_
    assert relation == ast.SourceRef("HOP", "H")
