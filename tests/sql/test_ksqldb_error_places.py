"""Errors are placed as ksqlDB places them: its parser's refusals read `line L:C: Syntax
Error` (its SyntaxErrorValidator and ParsingException), and what it refuses while building a
statement at a named node reads `Line: L, Col: C: ` (its NodeLocation.asPrefix)."""

from __future__ import annotations

import pytest

from hispeed.errors import HispeedError, SqlError
from hispeed.sql.parser import parse


@pytest.mark.parametrize(
    ("text", "place"),
    [
        ("SELECT * FROM s WHERE a = 1 AND;", "line 1:32: "),
        ("CREATE STREAM s (a NULL) WITH (kafka_topic='t');", "line 1:20: "),
        ("SELECT * FROM s LIMIT heh;", "line 1:23: "),
        ("SELECT a FROM s WHERE b = `;", "line 1:27: "),
    ],
)
def test_syntax_errors_say_syntax_error_where_ksqldb_does(text: str, place: str) -> None:
    with pytest.raises(SqlError) as err:
        parse(text)
    assert str(err.value).startswith(place + "Syntax Error\n")
    assert not err.value.located


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "CREATE TABLE t (id INT KEY, name STRING) WITH (kafka_topic='t');",
            "Line: 1, Col: 17: Column `ID` is a 'KEY' column: please use 'PRIMARY KEY' for "
            "tables.\nTables have PRIMARY KEYs",
        ),
        (
            "CREATE STREAM s (k STRING, id INT PRIMARY KEY) WITH (kafka_topic='t');",
            "Line: 1, Col: 28: Column `ID` is a 'PRIMARY KEY' column: please use 'KEY' for "
            "streams.\nTables have PRIMARY KEYs",
        ),
    ],
)
def test_key_kinds_are_refused_while_parsing(text: str, message: str) -> None:
    with pytest.raises(SqlError) as err:
        parse(text)
    assert str(err.value).startswith(message)
    assert err.value.located


def test_the_right_key_kinds_still_parse() -> None:
    parse("CREATE TABLE t (id INT PRIMARY KEY, name STRING) WITH (kafka_topic='t');")
    parse("CREATE STREAM s (id INT KEY, name STRING) WITH (kafka_topic='t');")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "SELECT 1.7976931348623159E308 FROM s;",
            "Failed to prepare statement: line 1:9: Number overflows DOUBLE: "
            "1.7976931348623159E308",
        ),
        (
            "SELECT -1.7976931348623160E308 FROM s;",
            "Failed to prepare statement: line 1:9: Number overflows DOUBLE: "
            "-1.7976931348623160E308",
        ),
    ],
)
def test_literals_out_of_range_are_refused_as_the_statement_is_built(
    text: str, message: str
) -> None:
    with pytest.raises(SqlError) as err:
        parse(text)
    assert str(err.value) == message


def test_the_largest_double_still_parses() -> None:
    parse("SELECT 1.7976931348623157E308, -1.7976931348623157E308 FROM s;")


@pytest.mark.parametrize(
    ("props", "message"),
    [
        (
            "WINDOW_TYPE='Hopping', WINDOW_SIZE='30 bobs'",
            "Configuration WINDOW_SIZE is invalid: Invalid duration: '30 bobs'. Unknown time "
            "unit: 'BOBS'",
        ),
        (
            "WINDOW_TYPE='Session', WINDOW_SIZE='30 seconds'",
            "'WINDOW_SIZE' should not be set for SESSION windows.",
        ),
        ("WINDOW_TYPE='Tumbling'", "TUMBLING windows require 'WINDOW_SIZE' to be provided"),
    ],
)
def test_window_properties_are_refused_while_parsing(props: str, message: str) -> None:
    with pytest.raises(HispeedError) as err:
        parse(
            "CREATE TABLE t (k STRING PRIMARY KEY, v INT) "
            f"WITH (kafka_topic='t', value_format='JSON', {props});"
        )
    assert message in str(err.value)


def test_good_window_properties_parse() -> None:
    parse(
        "CREATE TABLE t (k STRING PRIMARY KEY, v INT) "
        "WITH (kafka_topic='t', value_format='JSON', WINDOW_TYPE='Hopping', "
        "WINDOW_SIZE='30 SECONDS');"
    )
