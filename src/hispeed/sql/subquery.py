"""The parsing of `x [NOT] IN (SELECT ...)` and `[NOT] EXISTS (SELECT ...)`, which hispeed
says past ksqlDB's grammar (confluentinc/ksql#745; docs/sql.md).

Kept apart from the expression parser, which calls these where the additions begin (a `(`
and SELECT after IN; EXISTS and `(`). `p` is the parser; typed loosely because the parser
imports this module. The subquery is parsed by the statement parser's `select`; where it may
stand, and what it may say, is plan/semijoin.py's to decide.
"""

from __future__ import annotations

from typing import Any

from hispeed.errors import SqlError
from hispeed.sql import ast


def _query(p: Any) -> ast.Select:
    start = p.expect_op("(")
    select = getattr(p, "select", None)
    if select is None:  # an expression parsed alone (parse_expression): no statements
        raise SqlError("a subquery is not supported here", start.line, start.column)
    p.nested += 1
    try:
        query: ast.Select = select()
    finally:
        p.nested -= 1
    if not p.tok.is_op(")"):
        raise p.error("')' closing the subquery")
    p.advance()
    return query


def in_subquery(p: Any, left: ast.Expr, negated: bool, at: Any) -> ast.InSubquery:
    """`left [NOT] IN (SELECT ...)`, the IN (and NOT) already read (`at`: their token)."""
    return ast.InSubquery(left, _query(p), negated, pos=p.pos(at))


def exists(p: Any) -> ast.Exists:
    """`EXISTS (SELECT ...)`."""
    at = p.expect_word("EXISTS")
    return ast.Exists(_query(p), pos=p.pos(at))


def scalar_subquery(p: Any) -> SqlError:
    """The error for `(SELECT ...)` where a value is expected: a scalar subquery has no
    incremental answer here (its value would change every row that read it)."""
    return SqlError(
        "a subquery as a value, (SELECT ...), is not supported: use x IN (SELECT key FROM "
        "table), EXISTS (SELECT ... FROM table WHERE table.key = x), or a join",
        p.tok.line,
        p.tok.column,
    )
