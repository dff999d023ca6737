"""The parsing of what hispeed says past ksqlDB's grammar for ranking and window functions:
`name(args) OVER (PARTITION BY ... ORDER BY ... [ROWS | RANGE frame])` and a subquery in
FROM (docs/sql.md).

Kept apart from the statement parser so that ksqlDB's grammar stays as it is: the parser
calls these at the two places the additions begin (a call followed by OVER, a `(` where a
source name is expected). `p` is the parser (sql/parser.py's StatementParser); typed loosely
because the parser imports this module.
"""

from __future__ import annotations

from typing import Any

from hispeed.errors import SqlError
from hispeed.sql import ast
from hispeed.sql.intervals import interval
from hispeed.sql.lexer import INTEGER

#: the window functions that take no frame: they rank rows or read another row
_FRAMELESS = ("ROW_NUMBER", "RANK", "DENSE_RANK", "LAG", "LEAD")


def over_ahead(p: Any) -> bool:
    """Whether an OVER clause follows (the call just read is a window function)."""
    return bool(p.tok.is_word("OVER") and p.peek().is_op("("))


def over_clause(p: Any, name: str, args: tuple[ast.Expr, ...], pos: ast.Pos) -> ast.OverCall:
    """`OVER ( [PARTITION BY e, ...] [ORDER BY e [ASC | DESC], ...] [frame] )` after
    `name(args)`."""
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
    if p.tok.is_word("ROWS", "RANGE") and name.upper() in _FRAMELESS:
        raise p.error(
            f"')': a frame (ROWS or RANGE BETWEEN ...) is not supported for {name.upper()}, "
            "which takes PARTITION BY and ORDER BY only (the aggregates AVG, SUM, COUNT, MIN "
            "and MAX take a frame)"
        )
    frame = _frame(p) if p.tok.is_word("ROWS", "RANGE") else None
    if not p.tok.is_op(")"):
        expected = (
            "',', ASC, DESC, ROWS, RANGE or ')'" if order else "PARTITION BY, ORDER BY or ')'"
        )
        raise p.error(expected if frame is None else "')'")
    p.advance()
    return ast.OverCall(name.upper(), args, tuple(partition), tuple(order), frame, pos=pos)


def _frame(p: Any) -> tuple[str, int | None]:
    """`ROWS BETWEEN n PRECEDING AND CURRENT ROW` or `RANGE BETWEEN INTERVAL '1' HOUR
    PRECEDING AND CURRENT ROW` (UNBOUNDED PRECEDING for either; the short forms `ROWS n
    PRECEDING`, `RANGE INTERVAL ... PRECEDING` too). A frame ends at the current row: what
    follows a row in a stream has not arrived when the row does."""
    kind = p.tok.value.upper()
    p.advance()
    between = p.accept_word("BETWEEN") is not None
    size: int | None
    if p.accept_word("UNBOUNDED"):
        size = None
    elif kind == "ROWS":
        tok = p.tok
        if tok.kind != INTEGER:
            raise p.error("a number of rows (ROWS BETWEEN 10 PRECEDING AND CURRENT ROW)")
        p.advance()
        size = int(tok.value)
    else:
        size, start = interval(p)
        if size < 0:
            raise SqlError("a RANGE's interval is not negative", start.line, start.column)
    if p.tok.is_word("FOLLOWING"):
        raise p.error(
            "PRECEDING: a frame ends at the current row (the rows that follow a row of a "
            "stream have not arrived when it does)"
        )
    p.expect_word("PRECEDING")
    if between:
        p.expect_word("AND")
        if not (p.tok.is_word("CURRENT") and p.peek().is_word("ROW")):
            raise p.error(
                "CURRENT ROW: a frame ends at the current row (the rows that follow a row of "
                "a stream have not arrived when it does)"
            )
        p.advance()
        p.advance()
    return kind, size


def subquery_ahead(p: Any) -> bool:
    """Whether a subquery `(SELECT ...` stands where a source name is expected."""
    return bool(p.tok.is_op("(") and p.peek().is_word("SELECT"))


def subquery(p: Any) -> ast.Subquery:
    """`(SELECT ...) [[AS] alias]` in FROM."""
    start = p.expect_op("(")
    p.nested += 1
    try:
        query = p.select()
    finally:
        p.nested -= 1
    if not p.tok.is_op(")"):
        raise p.error("')' closing the subquery")
    p.advance()
    # the alias as a source's (ORDER BY after the subquery is no alias)
    return ast.Subquery(query, p.optional_alias(), pos=p.pos(start))
