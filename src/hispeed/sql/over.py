"""The parsing of what hispeed says past ksqlDB's grammar for ranking and window functions:
`name(args) OVER (PARTITION BY ... ORDER BY ...)` and a subquery in FROM (docs/sql.md).

Kept apart from the statement parser so that ksqlDB's grammar stays as it is: the parser
calls these at the two places the additions begin (a call followed by OVER, a `(` where a
source name is expected). `p` is the parser (sql/parser.py's StatementParser); typed loosely
because the parser imports this module.
"""

from __future__ import annotations

from typing import Any

from hispeed.sql import ast
from hispeed.sql.lexer import IDENT, QUOTED


def over_ahead(p: Any) -> bool:
    """Whether an OVER clause follows (the call just read is a window function)."""
    return bool(p.tok.is_word("OVER") and p.peek().is_op("("))


def over_clause(p: Any, name: str, args: tuple[ast.Expr, ...], pos: ast.Pos) -> ast.OverCall:
    """`OVER ( [PARTITION BY e, ...] [ORDER BY e [ASC | DESC], ...] )` after `name(args)`."""
    p.expect_word("OVER")
    p.expect_op("(")
    partition: list[ast.Expr] = []
    order: list[tuple[ast.Expr, bool]] = []
    if p.accept_word("PARTITION"):
        p.expect_word("BY")
        partition.append(p.expr())
        while p.accept_op(","):
            partition.append(p.expr())
    if p.accept_word("ORDER"):
        p.expect_word("BY")
        while True:
            expr = p.expr()
            descending = bool(p.accept_word("DESC"))
            if not descending:
                p.accept_word("ASC")
            order.append((expr, descending))
            if not p.accept_op(","):
                break
    if p.tok.is_word("ROWS", "RANGE"):
        raise p.error(
            "')': a frame (ROWS or RANGE BETWEEN ...) is not supported; ROW_NUMBER and LAG "
            "take PARTITION BY and ORDER BY only"
        )
    if not p.tok.is_op(")"):
        raise p.error("PARTITION BY, ORDER BY or ')'" if not order else "',', ASC, DESC or ')'")
    p.advance()
    return ast.OverCall(name.upper(), args, tuple(partition), tuple(order), pos=pos)


def subquery_ahead(p: Any) -> bool:
    """Whether a subquery `(SELECT ...` stands where a source name is expected."""
    return bool(p.tok.is_op("(") and p.peek().is_word("SELECT"))


def subquery(p: Any, reserved: set[str]) -> ast.Subquery:
    """`(SELECT ...) [[AS] alias]` in FROM (`reserved`: the words that are no alias)."""
    start = p.expect_op("(")
    p.nested += 1
    try:
        query = p.select()
    finally:
        p.nested -= 1
    if not p.tok.is_op(")"):
        raise p.error("')' closing the subquery")
    p.advance()
    alias = None
    if p.accept_word("AS"):
        alias = p.identifier("an alias")
    elif p.tok.kind == QUOTED or (
        p.tok.kind == IDENT and p.tok.value not in reserved and not p.tok.is_word("EMIT")
    ):
        alias = p.identifier()
    return ast.Subquery(query, alias, pos=p.pos(start))
