"""The parsing of ORDER BY in a query, which hispeed says past ksqlDB's grammar for pull
queries over tables (confluentinc/ksql#4750; docs/sql.md).

Kept apart from the statement parser: the parser calls `order_by` where the clause may stand
(after HAVING, before EMIT and LIMIT). `p` is the parser (sql/parser.py's StatementParser);
typed loosely because the parser imports this module. Where ORDER BY is allowed is decided by
the planner (plan/pull.py), which refuses it, at its place, outside a pull query.
"""

from __future__ import annotations

from typing import Any

from hispeed.sql import ast


def order_by(p: Any) -> tuple[ast.OrderItem, ...]:
    """`ORDER BY e [ASC | DESC] [NULLS FIRST | NULLS LAST], ...`, or () when absent."""
    if not (p.tok.is_word("ORDER") and p.peek().is_word("BY")):
        return ()
    p.advance()
    p.advance()
    items = []
    while True:
        at = p.tok
        expr = p.expr()
        descending = bool(p.accept_word("DESC"))
        if not descending:
            p.accept_word("ASC")
        nulls_first = None
        if p.accept_word("NULLS"):
            nulls_first = p.expect_word("FIRST", "LAST").value == "FIRST"
        items.append(ast.OrderItem(expr, descending, nulls_first, pos=p.pos(at)))
        if not p.accept_op(","):
            return tuple(items)
