"""Scopes: the columns an expression of a query can name, and compiling in one clause.

`source_scope` gives a source's columns (its own, ROWTIME and the like, WINDOWSTART/END when
windowed) under the label the query reads it by; `compile_clause` compiles an expression of
one clause, its errors saying which clause, as ksqlDB's do. `walk` and `is_aggregate` are the
AST helpers every planner shares.
"""

from __future__ import annotations

from typing import Any

from hispeed.catalog import Source
from hispeed.errors import SqlError
from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Compiled, Scope, ScopeColumn
from hispeed.functions.aggregates import AGGREGATES
from hispeed.plan.model import PSEUDO_COLUMNS, WINDOW_COLUMNS, field_name
from hispeed.plan.timestamps import magic_timestamps
from hispeed.sql import ast
from hispeed.sql.format import sql


def source_scope(source: Source, label: str) -> Scope:
    """The columns a query can name in `source`, read as `label`."""
    cols = [ScopeColumn(c.name, c.type, field_name(label, c.name), label) for c in source.columns]
    cols += [ScopeColumn(n, t, field_name(label, n), label) for n, t in PSEUDO_COLUMNS.items()]
    if source.window is not None:
        cols += [ScopeColumn(n, t, field_name(label, n), label) for n, t in WINDOW_COLUMNS.items()]
    return Scope(cols)


def error_at(node: Any, message: str, *, located: bool = False) -> SqlError:
    """A SqlError at the position of `node` (the start of the statement if it has none);
    `located`: placed as ksqlDB's analyzer places its errors (see SqlError)."""
    line, col = getattr(node, "pos", (1, 1))
    return SqlError(message, line or 1, col or 1, located=located)


def walk(e: ast.Expr) -> list[ast.Expr]:
    """e and every expression inside it, parents first."""
    out = [e]
    for value in vars(e).values():
        if isinstance(value, ast.Expr):
            out += walk(value)
        elif isinstance(value, tuple):
            for item in value:
                if isinstance(item, ast.Expr):
                    out += walk(item)
                elif isinstance(item, tuple):
                    out += [x for sub in item if isinstance(sub, ast.Expr) for x in walk(sub)]
    return out


def is_aggregate(e: ast.Expr) -> bool:
    """Whether `e` calls an aggregate function."""
    return isinstance(e, ast.FunctionCall) and e.name.upper() in AGGREGATES


def default_name(e: ast.Expr) -> str | None:
    """The column name an unaliased select item gets, or None for a generated KSQL_COL_n."""
    if isinstance(e, ast.ColumnRef):
        return e.name
    if isinstance(e, ast.Dereference):
        return e.field
    return None


_PREFIXES = {
    "WHERE": "Error in WHERE expression: ",
    "HAVING": "Error in HAVING expression: ",
    "SELECT": "Invalid Select: ",
}


def compile_clause(
    e: ast.Expr,
    scope: Scope,
    clause: str,
    replaced: dict[ast.Expr, ScopeColumn] | None = None,
) -> Compiled:
    """Compile an expression of one clause; its errors say which clause, as ksqlDB's do.

    In WHERE and HAVING, text compared with ROWTIME or a window bound is a timestamp, and an
    error ends with the filter as ksqlDB's FilterTypeValidator names it (`Statement: (...)`)."""
    saved = scope.clause
    scope.clause = clause
    filter_ = clause in ("WHERE", "HAVING")
    try:
        return compile_expr(magic_timestamps(e) if filter_ else e, scope, replaced)
    except SqlError as err:
        if err.located:  # ksqlDB's analyzer refuses it before the clause is compiled
            raise
        reason = _PREFIXES.get(clause, "") + err.reason
        if filter_:
            reason += f"\nStatement: {scope.shown(e)}"
        raise SqlError(reason, err.line, err.column) from None
    finally:
        scope.clause = saved


def leftmost(e: ast.Expr) -> ast.Expr:
    """The node an error about `e` points at: where its text begins (a binary operation's
    position is its operator's)."""
    while isinstance(e, ast.BinaryOp):
        e = e.left
    return e


#: the types a ranking's or OVER's ORDER BY and PARTITION BY take: ARRAY, MAP and STRUCT
#: values have no order (the rows would be kept sorted or hashed by them)
_NESTED = ("ARRAY", "MAP", "STRUCT")


def ordered_clause(e: ast.Expr, scope: Scope, clause: str) -> Compiled:
    """`compile_clause` for an OVER clause's ORDER BY or PARTITION BY (Top-N, LAG and LEAD,
    OVER aggregates), refusing a nested value at its line and column, as a sorted pull
    query's ORDER BY does."""
    compiled = compile_clause(e, scope, clause)
    if compiled.type is not None and compiled.type.name in _NESTED:
        verb = "sort" if clause == "ORDER BY" else "partition by"
        raise error_at(
            e,
            f"{clause} cannot {verb} {sql(e)}, of type {compiled.type}: it takes numbers, "
            "text, bytes, booleans, dates and times",
        )
    return compiled
