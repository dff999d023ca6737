"""The parsing of `DELETE FROM table WHERE ...`, which hispeed says past ksqlDB's grammar
(confluentinc/ksql#7073; docs/sql.md).

Kept apart from the statement parser: the parser calls `delete` when a statement starts with
DELETE. `p` is the parser (sql/parser.py's StatementParser); typed loosely because the parser
imports this module. What the WHERE clause may say (the key, by equality or IN) is checked
where the table is known, in statements/delete.py.
"""

from __future__ import annotations

from typing import Any

from hispeed.sql import ast


def delete(p: Any) -> ast.Delete:
    """`DELETE FROM name [WHERE condition]`."""
    start = p.expect_word("DELETE")
    p.expect_word("FROM")
    at = p.tok
    target = p.identifier("a table name")
    where = p.expr() if p.accept_word("WHERE") else None
    return ast.Delete(target, where, pos=p.pos(start), target_pos=p.pos(at))
