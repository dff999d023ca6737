"""Flink SQL's windowing table functions in FROM, and its INTERVAL literals.

`TUMBLE`, `HOP`, `CUMULATE` and `SESSION` take `TABLE src` (the rows to window), a
`DESCRIPTOR(time_col)` (the column of event time) and durations written as Flink writes them
(`INTERVAL '10' SECOND`); Flink also lets the call stand inside `TABLE(...)` and name its
arguments (`SIZE => INTERVAL '1' MINUTE`). The statement parser calls `window_tvf` where a
relation starts; the planner (`plan/window_tvf.py`) gives the call its meaning.
"""

from __future__ import annotations

from hispeed.errors import SqlError
from hispeed.sql import ast
from hispeed.sql.expression_parser import ExpressionParser
from hispeed.sql.intervals import interval
from hispeed.sql.lexer import IDENT, Token

FUNCTIONS = ("TUMBLE", "HOP", "CUMULATE", "SESSION")

#: each function's arguments after DATA and TIMECOL, in order, by Flink's names for them;
#: the ones past `required` may be left out
_ARGUMENTS = {
    "TUMBLE": (("SIZE", "OFFSET"), 1),
    "HOP": (("SLIDE", "SIZE", "OFFSET"), 2),
    "CUMULATE": (("STEP", "SIZE", "OFFSET"), 2),
    "SESSION": (("GAP",), 1),
}


def starts_window_tvf(p: ExpressionParser) -> bool:
    """Whether the relation at the parser's token is a windowing table function."""
    tok = p.tok
    if tok.kind != IDENT or not p.peek().is_op("("):
        return False
    return tok.is_word(*FUNCTIONS) or (tok.is_word("TABLE") and p.peek(2).is_word(*FUNCTIONS))


def window_tvf(p: ExpressionParser) -> ast.WindowTvf:
    """A windowing table function, at a token where `starts_window_tvf` holds."""
    wrapped = p.accept_word("TABLE") is not None
    if wrapped:
        p.expect_op("(")
    name_tok = p.expect_word(*FUNCTIONS)
    kind = name_tok.value
    p.expect_op("(")
    _argument_name(p, "DATA")
    if not p.accept_word("TABLE"):
        raise p.error(f"TABLE and the source to window, as in {kind}(TABLE bid, ...)")
    source_tok = p.tok
    source = ast.SourceRef(p.identifier("a stream name"), pos=p.pos(source_tok))
    partition_by = _partition_by(p, kind)
    p.expect_op(",")
    _argument_name(p, "TIMECOL")
    if not p.accept_word("DESCRIPTOR"):
        raise p.error("DESCRIPTOR(time_column), the column of event time")
    p.expect_op("(")
    time_tok = p.tok
    time_column = p.identifier("the column of event time")
    if time_column == "PROCTIME" and p.tok.is_op("(") and p.peek().is_op(")"):
        p.advance()  # PROCTIME(): the processing time (docs/sql.md)
        p.advance()
        time_column = "PROCTIME()"
    p.expect_op(")")
    names, required = _ARGUMENTS[kind]
    values: dict[str, tuple[int, Token]] = {}
    for i, arg in enumerate(names):
        if i >= required and not p.tok.is_op(","):
            break
        if not p.tok.is_op(","):
            raise p.error(f"',' and the {arg.lower()}, like INTERVAL '10' SECOND")
        p.advance()
        _argument_name(p, arg)
        values[arg] = interval(p)
    p.expect_op(")")
    if wrapped:
        p.expect_op(")")
    for arg, (millis, tok) in values.items():
        if arg != "OFFSET" and millis <= 0:  # Flink's offset may be negative: earlier starts
            raise SqlError(
                f"{kind}'s {arg.lower()} must be a positive interval, not {millis} ms",
                tok.line,
                tok.column,
            )
    size_arg = "GAP" if kind == "SESSION" else "SIZE"
    size, size_tok = values[size_arg]
    step = values.get("SLIDE", values.get("STEP"))
    if step is not None:
        what = "slide" if kind == "HOP" else "step"
        if step[0] > size:
            raise SqlError(
                f"{kind}'s {what} ({step[0]} ms) must not be longer than its size ({size} ms)",
                step[1].line,
                step[1].column,
            )
        if kind == "CUMULATE" and size % step[0]:
            raise SqlError(
                f"CUMULATE's max size ({size} ms) must be a whole number of steps ({step[0]} ms)",
                size_tok.line,
                size_tok.column,
            )
    alias = p.optional_alias()
    return ast.WindowTvf(
        kind,
        source,
        time_column,
        size,
        None if step is None else step[0],
        values["OFFSET"][0] if "OFFSET" in values else 0,
        alias,
        time_pos=p.pos(time_tok),
        pos=p.pos(name_tok),
        partition_by=partition_by,
    )


def _partition_by(p: ExpressionParser, kind: str) -> tuple[ast.ColumnRef, ...]:
    """SESSION's `PARTITION BY k [, k2 ...]` (or `PARTITION BY (k, k2)`) after its table, as
    Flink 1.19 writes it: the columns whose values each keep their own sessions."""
    at = p.accept_word("PARTITION")
    if at is None:
        return ()
    if kind != "SESSION":
        raise SqlError(
            f"Syntax Error\n{kind} takes no PARTITION BY: only SESSION keeps its windows per key",
            at.line,
            at.column,
        )
    p.expect_word("BY")
    wrapped = p.tok.is_op("(")
    if wrapped:
        p.advance()
    keys = []
    while True:
        tok = p.tok
        keys.append(ast.ColumnRef(p.identifier("a column to partition by"), pos=p.pos(tok)))
        # a comma goes on to the next key, unless DESCRIPTOR (or TIMECOL =>) follows it
        nxt = p.peek()
        if not p.tok.is_op(",") or (
            not wrapped and (nxt.is_word("DESCRIPTOR") or p.peek(2).is_op("=>"))
        ):
            break
        p.advance()
    if wrapped:
        p.expect_op(")")
    return tuple(keys)


def _argument_name(p: ExpressionParser, name: str) -> None:
    """Flink's named argument `NAME =>`, which may be written before the argument."""
    if p.tok.kind == IDENT and p.peek().is_op("=>"):
        tok = p.advance()
        if tok.value != name:
            raise SqlError(
                f"Syntax Error\nexpected the argument {name} here, not {tok.value}",
                tok.line,
                tok.column,
            )
        p.advance()
