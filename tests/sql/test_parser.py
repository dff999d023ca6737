"""ksqlDB's dialect: statements parse into the model; errors name line, column and what was
expected."""

from __future__ import annotations

import pytest

from hispeed.errors import HispeedError, SqlError
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.parser import parse, parse_expression, parse_one, parse_query, parse_type


def test_create_stream_with_key_and_properties() -> None:
    stmt = parse_one(
        "CREATE STREAM clickstream (userid VARCHAR KEY, time BIGINT, url STRING, status INT) "
        "WITH (kafka_topic='clicks', value_format='JSON', partitions=3, wrap_single_value=false);"
    )
    assert isinstance(stmt, ast.CreateSource)
    assert (stmt.kind, stmt.name) == ("STREAM", "CLICKSTREAM")
    assert [(c.name, c.type, c.key) for c in stmt.columns] == [
        ("USERID", T.STRING, True),
        ("TIME", T.BIGINT, False),
        ("URL", T.STRING, False),
        ("STATUS", T.INTEGER, False),
    ]
    props = {k: p.value for k, p in stmt.properties.items()}
    assert props == {
        "KAFKA_TOPIC": "clicks",
        "VALUE_FORMAT": "JSON",
        "PARTITIONS": 3,
        "WRAP_SINGLE_VALUE": False,
    }


def test_create_or_replace_table_if_not_exists_and_source_table() -> None:
    stmt = parse_one(
        "CREATE OR REPLACE TABLE IF NOT EXISTS t (id INT PRIMARY KEY, v DOUBLE) "
        "WITH (kafka_topic='t', format='JSON')"
    )
    assert isinstance(stmt, ast.CreateSource)
    assert stmt.or_replace
    assert stmt.if_not_exists
    assert stmt.columns[0].primary_key
    src = parse_one(
        "CREATE SOURCE TABLE t (id INT PRIMARY KEY) WITH (kafka_topic='t', format='JSON')"
    )
    assert isinstance(src, ast.CreateSource)
    assert src.source


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("DECIMAL(4, 2)", T.decimal(4, 2)),
        ("ARRAY<MAP<STRING, ARRAY<INT>>>", T.array(T.map_(T.STRING, T.array(T.INTEGER)))),
        (
            "STRUCT<a INT, `b c` STRUCT<d BOOLEAN>>",
            T.struct([("A", T.INTEGER), ("b c", T.struct([("D", T.BOOLEAN)]))]),
        ),
        ("TIMESTAMP", T.TIMESTAMP),
        ("DATE", T.DATE),
        ("TIME", T.TIME),
        ("BYTES", T.BYTES),
        ("VARCHAR", T.STRING),
        ("LONG", T.BIGINT),
    ],
)
def test_types(text: str, expected: T.SqlType) -> None:
    assert parse_type(text) == expected


def test_custom_types_resolve() -> None:
    address = T.struct([("STREET", T.STRING)])
    assert parse_type("ADDRESS", {"ADDRESS": address}) == address


def test_select_with_every_clause() -> None:
    stmt = parse_one(
        "CREATE TABLE possible_fraud AS SELECT card_number, count(*) FROM authorization_attempts "
        "WINDOW TUMBLING (SIZE 5 SECONDS, RETENTION 2 HOURS, GRACE PERIOD 10 SECONDS) "
        "WHERE amount > 10 GROUP BY card_number HAVING count(*) > 3 EMIT CHANGES;"
    )
    assert isinstance(stmt, ast.CreateAsSelect)
    q = stmt.query
    assert q.window == ast.WindowSpec("TUMBLING", 5000, None, 10_000, 7_200_000)
    assert q.group_by == (ast.ColumnRef("CARD_NUMBER"),)
    assert q.having == ast.BinaryOp(
        ">", ast.FunctionCall("COUNT", (), star=True), ast.Literal(3, T.INTEGER)
    )
    assert q.emit == "CHANGES"


def test_hopping_and_session_windows() -> None:
    hop = parse_one(
        "SELECT k, count(*) FROM s WINDOW HOPPING (SIZE 1 MINUTE, ADVANCE BY 10 "
        "SECONDS) GROUP BY k EMIT CHANGES"
    )
    assert isinstance(hop, ast.QueryStatement)
    assert hop.query.window == ast.WindowSpec("HOPPING", 60_000, 10_000)
    session = parse_one("SELECT k, count(*) FROM s WINDOW SESSION (30 SECONDS) GROUP BY k")
    assert isinstance(session, ast.QueryStatement)
    assert session.query.window == ast.WindowSpec("SESSION", 30_000)


def test_the_courses_join() -> None:
    stmt = parse_one(
        "select * from DRONE d\nLEFT OUTER JOIN WEATHER w  WITHIN 1 HOURS\n"
        "on d.weatherstation = w.weatherstation;"
    )
    assert isinstance(stmt, ast.QueryStatement)
    join = stmt.query.from_
    assert isinstance(join, ast.Join)
    assert join.kind == "LEFT"
    assert join.within == ast.WithinSpec(3_600_000, 3_600_000)
    assert join.right == ast.SourceRef("WEATHER", "W")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "a + b * 2",
            ast.BinaryOp(
                "+",
                ast.ColumnRef("A"),
                ast.BinaryOp("*", ast.ColumnRef("B"), ast.Literal(2, T.INTEGER)),
            ),
        ),
        (
            "NOT a OR b AND c",
            ast.BinaryOp(
                "OR",
                ast.UnaryOp("NOT", ast.ColumnRef("A")),
                ast.BinaryOp("AND", ast.ColumnRef("B"), ast.ColumnRef("C")),
            ),
        ),
        (
            "x NOT BETWEEN 1 AND 2",
            ast.Between(
                ast.ColumnRef("X"),
                ast.Literal(1, T.INTEGER),
                ast.Literal(2, T.INTEGER),
                negated=True,
            ),
        ),
        (
            "s->f[1]['k']",
            ast.Subscript(
                ast.Subscript(ast.Dereference(ast.ColumnRef("S"), "F"), ast.Literal(1, T.INTEGER)),
                ast.Literal("k", T.STRING),
            ),
        ),
        ("a || 'x'", ast.FunctionCall("CONCAT", (ast.ColumnRef("A"), ast.Literal("x", T.STRING)))),
        ("t.col IS NOT NULL", ast.IsNull(ast.ColumnRef("COL", "T"), negated=True)),
        ("-2147483648", ast.Literal(-2147483648, T.INTEGER)),
        ("2147483648", ast.Literal(2147483648, T.BIGINT)),
        ("1.50", ast.Literal(__import__("decimal").Decimal("1.50"), T.decimal(3, 2))),
        ("1.5E2", ast.Literal(150.0, T.DOUBLE)),
        ("'it''s'", ast.Literal("it's", T.STRING)),
        ("`lower`", ast.ColumnRef("lower")),
        (
            "TRANSFORM(xs, x => x + 1)",
            ast.FunctionCall(
                "TRANSFORM",
                (
                    ast.ColumnRef("XS"),
                    ast.Lambda(
                        ("X",), ast.BinaryOp("+", ast.ColumnRef("X"), ast.Literal(1, T.INTEGER))
                    ),
                ),
            ),
        ),
        (
            "CASE WHEN a THEN 1 ELSE 2 END",
            ast.Case(
                None, ((ast.ColumnRef("A"), ast.Literal(1, T.INTEGER)),), ast.Literal(2, T.INTEGER)
            ),
        ),
        ("CAST(x AS DECIMAL(4, 2))", ast.Cast(ast.ColumnRef("X"), T.decimal(4, 2))),
        (
            "x IN (1, 2)",
            ast.InList(ast.ColumnRef("X"), (ast.Literal(1, T.INTEGER), ast.Literal(2, T.INTEGER))),
        ),
        (
            "MAP('a' := 1)",
            ast.MapConstructor(((ast.Literal("a", T.STRING), ast.Literal(1, T.INTEGER)),)),
        ),
        ("STRUCT(a := 1)", ast.StructConstructor((("A", ast.Literal(1, T.INTEGER)),))),
        (
            "ARRAY[1, 2]",
            ast.ArrayConstructor((ast.Literal(1, T.INTEGER), ast.Literal(2, T.INTEGER))),
        ),
    ],
)
def test_expressions(text: str, expected: ast.Expr) -> None:
    assert parse_expression(text) == expected


def test_other_statements() -> None:
    stmts = [
        p.statement
        for p in parse(
            "SHOW STREAMS; LIST TABLES; SHOW QUERIES; SHOW PROPERTIES; SHOW TOPICS;"
            "DESCRIBE EXTENDED s; DESCRIBE FUNCTION ucase; EXPLAIN CSAS_S_0; TERMINATE ALL;"
            "PRINT 'my_topic' FROM BEGINNING LIMIT 3; SET 'auto.offset.reset'='earliest';"
            "UNSET 'auto.offset.reset'; DROP TABLE IF EXISTS t DELETE TOPIC;"
            "INSERT INTO s (a, b) VALUES (1, 'x'); INSERT INTO s SELECT * FROM t;"
            "CREATE TYPE address AS STRUCT<street STRING>;"
        )
    ]
    assert stmts[0] == ast.Show("STREAMS")
    assert stmts[1] == ast.Show("TABLES")
    assert stmts[5] == ast.Describe("S", extended=True)
    assert stmts[6] == ast.Describe("UCASE", function=True)
    assert stmts[7] == ast.Explain("CSAS_S_0")
    assert stmts[8] == ast.Terminate(None)
    assert stmts[9] == ast.Print("my_topic", from_beginning=True, limit=3)
    assert stmts[10] == ast.SetProperty("auto.offset.reset", "earliest")
    assert stmts[12] == ast.Drop("TABLE", "T", if_exists=True, delete_topic=True)
    assert stmts[13] == ast.InsertValues(
        "S", ("A", "B"), (ast.Literal(1, T.INTEGER), ast.Literal("x", T.STRING))
    )
    assert isinstance(stmts[14], ast.InsertInto)
    assert stmts[15] == ast.CreateType("ADDRESS", T.struct([("STREET", T.STRING)]))


def test_type_parameters_are_read_and_ignored_as_ksqldb_does() -> None:
    # ksqlDB's grammar: baseType ('(' typeParameter (',' typeParameter)* ')')?, with a
    # parameter a whole number or the word STRING, which its SqlTypeParser then ignores
    (stmt,) = [
        p.statement
        for p in parse(
            "CREATE STREAM s (k VARCHAR(STRING) KEY, v varchar(10), w INT(3, string))"
            " WITH (kafka_topic='t', value_format='JSON');"
        )
    ]
    assert isinstance(stmt, ast.CreateSource)
    assert [c.type for c in stmt.columns] == [T.STRING, T.STRING, T.INTEGER]


def test_statement_text_and_position_are_kept() -> None:
    parsed = parse("SHOW STREAMS;\n  SHOW TABLES;")
    assert [(p.text, p.line, p.column) for p in parsed] == [
        ("SHOW STREAMS;", 1, 1),
        ("SHOW TABLES;", 2, 3),
    ]


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("SELEC * FROM s", 1, 1, "Unknown statement 'SELEC'\nDid you mean 'SELECT'?"),
        ("SELECT * FROM s WHERE", 1, 22, "expected an expression"),
        ("SELECT a FROM s GROUP BY f3, (f2, f1)", 1, 33, "missing ')' at ','"),
        (
            "CREATE STREAM s (k STRING (KEY)) WITH (kafka_topic='t')",
            1,
            28,
            "Expecting {'STRING', INTEGER_VALUE}",
        ),
        (
            "CREATE STREAM s (k VARCHAR(STRING) (KEY)) WITH (kafka_topic='t')",
            1,
            36,
            "Syntax Error\nExpecting {',', ')'}",
        ),
        (
            "CREATE STREAM s (k VARCHAR(10 KEY)) WITH (kafka_topic='t')",
            1,
            31,
            "Expecting {',', ')'}",
        ),
        ("SELECT * FROM s WHERE id IN ()", 1, 30, "IN needs at least one"),
        ("SELECT CAST(x AS NULL) FROM s", 1, 18, "Syntax error at or near 'NULL'"),
        ("CREATE STREAM s (a FOO) WITH (kafka_topic='t')", 1, 20, "unknown type FOO"),
        ("SELECT * FROM s\nWINDOW HOPPING (SIZE 1 SECOND) GROUP BY a", 2, 1, "needs ADVANCE BY"),
        ("SELECT 'abc FROM s", 1, 8, "never closed"),
        ("SELECT a FROM s WINDOW TUMBLING (SIZE 5 BOBS)", 1, 41, "a time unit"),
    ],
)
def test_errors_point_at_the_spot(text: str, line: int, column: int, message: str) -> None:
    with pytest.raises(SqlError) as err:
        parse(text)
    assert (err.value.line, err.value.column) == (line, column), str(err.value)
    assert message in str(err.value)
    assert str(err.value).startswith(f"line {line}:{column}: ")


@pytest.mark.parametrize("literal", ["-9223372036854775809", "9223372036854775808"])
def test_a_bigint_literal_out_of_range_is_refused_as_the_ast_is_built(literal: str) -> None:
    """ksqlDB's ParserUtil.visitIntegerLiteral throws a ParsingException at the literal's
    node while its AstBuilder runs: 'Failed to prepare statement: ' and its column + 1."""
    with pytest.raises(SqlError) as err:
        parse(f"SELECT {literal} FROM s")
    assert (err.value.line, err.value.column) == (1, 8)
    assert str(err.value) == (
        f"Failed to prepare statement: line 1:9: Invalid numeric literal: {literal}"
    )


@pytest.mark.parametrize(
    ("text", "suggestion"),
    [("RUN SCRIPT 'foo';", "PRINT"), ("DESCIBE s;", "DESCRIBE"), ("'x';", "SET")],
)
def test_a_statement_with_no_commands_word_is_an_unknown_statement(
    text: str, suggestion: str
) -> None:
    """ksqlDB's SyntaxErrorValidator: the command nearest by edit distance, the first of
    equally near ones in its list (RUN is 3 edits from PRINT, DROP and SET)."""
    word = text.split()[0].rstrip(";")
    with pytest.raises(SqlError) as err:
        parse(text)
    assert str(err.value) == (
        f"line 1:1: Syntax Error\nUnknown statement '{word}'\nDid you mean '{suggestion}'?"
    )


def test_assert_takes_only_topic_or_schema() -> None:
    """ksqlDB's grammar has ASSERT [NOT EXISTS] TOPIC|SCHEMA among statements (ASSERT VALUES
    is its test runner's own grammar): the next word is the syntax error."""
    with pytest.raises(SqlError) as err:
        parse("ASSERT VALUES foo (id INT) VALUES (123);")
    assert str(err.value).startswith(
        "line 1:8: Syntax Error\nSyntax error at or near 'VALUES' at line 1:8"
    )


def test_the_seeds_malformed_users_statement_points_at_the_curly_quote() -> None:
    text = (
        "CREATE TABLE users\n"
        "( user_id INTEGER, registered_at LONG, username VARCHAR, name VARCHAR, city VARCHAR, "
        "level VARCHAR)\n"
        "WITH ( key = 'user_id', 'kafka_topic=\u2018clickstream_users', value_format='JSON');"
    )
    with pytest.raises(SqlError) as err:
        parse(text)
    third_line = text.splitlines()[2]
    assert (err.value.line, err.value.column) == (3, third_line.index("\u2018") + 1)
    assert "typographic quote" in str(err.value)
    assert "kafka_topic='clickstream_users'" in str(err.value)


def test_a_typographic_quote_outside_a_string() -> None:
    with pytest.raises(SqlError, match="straight single quotes") as err:
        parse("SELECT * FROM s WHERE name = \u2018bob\u2019")
    assert err.value.column == 30


def test_parse_query_gives_the_one_select() -> None:
    select = parse_query("SELECT id FROM s WHERE x > 1 EMIT CHANGES;")
    assert isinstance(select, ast.Select)
    assert select.emit is not None
    for text in ("SELECT id FROM s; SELECT x FROM s;", "SHOW STREAMS;"):
        with pytest.raises(HispeedError, match="expected one SELECT statement"):
            parse_query(text)


@pytest.mark.parametrize("clause", ["GROUP BY", "PARTITION BY"])
def test_an_empty_grouping_list_is_refused_when_built(clause: str) -> None:
    # ksqlDB's grammar accepts `()`; its GroupBy / PartitionBy nodes refuse it
    with pytest.raises(SqlError) as info:
        parse(f"CREATE STREAM o AS SELECT a, b FROM s {clause} ();")
    assert f"Failed to prepare statement: {clause} requires at least one expression" in str(
        info.value
    )
    assert (info.value.line, info.value.column) == (1, 40 + len(clause))
