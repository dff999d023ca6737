"""Flink SQL's `CREATE [TEMPORARY [SYSTEM]] FUNCTION [IF NOT EXISTS] name AS 'identifier'
[LANGUAGE JAVA|SCALA|PYTHON]`: a user-defined function by its implementation's name
(statements/flink_functions.py registers it; docs/sql.md, "Flink's CREATE FUNCTION")."""

from __future__ import annotations

from dataclasses import dataclass

from hispeed.errors import SqlError
from hispeed.sql import ast
from hispeed.sql.expression_parser import ExpressionParser
from hispeed.sql.lexer import Token

#: the languages Flink's CREATE FUNCTION names (Scala's classes are Java's to the JVM)
LANGUAGES = ("JAVA", "SCALA", "PYTHON")


@dataclass(frozen=True)
class FlinkFunction(ast.Statement):
    """`CREATE FUNCTION name AS 'identifier' [LANGUAGE lang]`: a Java (or Scala) class name,
    or with LANGUAGE PYTHON a Python function's import path `module.function`."""

    name: str
    identifier: str
    language: str = "JAVA"
    temporary: bool = False
    if_not_exists: bool = False
    pos: ast.Pos = ast.NOPOS
    #: where the identifier's quoted text is (errors about the implementation point there)
    identifier_pos: ast.Pos = ast.NOPOS


def create_function(p: ExpressionParser, start: Token, temporary: bool) -> FlinkFunction:
    """The rest of a Flink CREATE FUNCTION, FUNCTION the current token."""
    p.expect_word("FUNCTION")
    if_not_exists = False
    if p.accept_word("IF"):
        p.expect_word("NOT")
        p.expect_word("EXISTS")
        if_not_exists = True
    name = p.identifier("the function's name")
    while p.accept_op("."):  # catalog.database.name: hispeed has one catalog
        name = p.identifier("the function's name")
    p.expect_word("AS")
    at = p.tok
    identifier = p.string("the function's implementation in quotes, like 'my_module.my_fn'")
    language = "JAVA"
    if p.accept_word("LANGUAGE"):
        lang = p.tok
        language = p.identifier("JAVA, SCALA or PYTHON").upper()
        if language not in LANGUAGES:
            raise SqlError(
                f"LANGUAGE {language}: Flink's CREATE FUNCTION takes JAVA, SCALA or PYTHON",
                lang.line,
                lang.column,
            )
    if p.tok.is_word("USING"):
        raise SqlError(
            "CREATE FUNCTION ... USING JAR is not supported: hispeed runs no Java; write the "
            "function in Python and name it with LANGUAGE PYTHON",
            p.tok.line,
            p.tok.column,
        )
    return FlinkFunction(
        name.upper(),
        identifier,
        language,
        temporary,
        if_not_exists,
        pos=p.pos(start),
        identifier_pos=p.pos(at),
    )


__all__ = ["LANGUAGES", "FlinkFunction", "create_function"]
