"""The parsing of an aggregate call's FILTER clause, past ksqlDB's grammar:
`COUNT(*) FILTER (WHERE price < 10000)`, `COUNT(DISTINCT bidder) FILTER (WHERE ...)`
(SQL:2003's filtered aggregates, as Flink SQL, PostgreSQL and DuckDB say them; docs/sql.md).

Kept apart from the expression parser so that ksqlDB's grammar stays as it is: the parser
calls `filter_ahead` and `filter_clause` after a call's closing parenthesis. `p` is the
parser (sql/expression_parser.py's); typed loosely because the parser imports this module.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hispeed.sql import ast


def filter_ahead(p: Any) -> bool:
    """Whether `FILTER (WHERE` follows (FILTER alone may be a column alias or the array
    function FILTER, which never takes WHERE)."""
    return bool(p.tok.is_word("FILTER") and p.peek().is_op("(") and p.peek(2).is_word("WHERE"))


def filter_clause(p: Any, call: ast.FunctionCall) -> ast.FunctionCall:
    """`FILTER (WHERE condition)` after `call`: the call with its filter."""
    p.expect_word("FILTER")
    p.expect_op("(")
    p.expect_word("WHERE")
    condition = p.expr()
    if not p.tok.is_op(")"):
        raise p.error("')' closing FILTER (WHERE ...")
    p.advance()
    return dataclasses.replace(call, filter=condition)
