"""What an expression is compiled against and what compiling it gives.

`Scope` holds the columns an expression may name (`ScopeColumn`: its SQL name, type and the
batch field that holds it), the lambda parameters in reach and the clause being compiled;
`Compiled` is a typed expression whose evaluator computes a whole Arrow column per batch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any

import pyarrow as pa

from hispeed.errors import SqlError
from hispeed.functions.registry import EvalContext
from hispeed.sql import ast
from hispeed.sql.format import sql
from hispeed.sql.types import SqlType

Evaluator = Callable[[pa.RecordBatch, EvalContext], pa.Array]


@dataclass(frozen=True)
class ScopeColumn:
    name: str  # the column's SQL name
    type: SqlType
    field: str  # the batch column that holds it
    source: str | None = None  # the alias or source name that qualifies it


@dataclass
class Scope:
    columns: list[ScopeColumn]
    lambdas: dict[str, ScopeColumn] = field(default_factory=dict)
    #: the clause being compiled, for messages: SELECT, WHERE, HAVING, PARTITION BY...
    clause: str = "SELECT"
    #: sub-expressions whose values a column already holds (table function calls)
    replaced: dict[ast.Expr, ScopeColumn] = field(default_factory=dict)
    #: a join's columns, which ksqlDB's messages name as it flattens them (`I1.BAR` is
    #: `I1_BAR` past the join: in WHERE, SELECT and HAVING, not in the ON clause)
    flat_names: bool = False
    #: the sub-expressions compiled so far, by clause: the same one written twice (SPLIT(url,
    #: '/') in three select items) is one evaluator, computed once per batch
    compiled: dict[tuple[str, ast.Expr], Compiled] = field(
        default_factory=dict, compare=False, repr=False
    )

    def shown(self, e: ast.Expr) -> str:
        """`e` as ksqlDB's messages write it in this scope."""
        if not self.flat_names or self.clause == "JOIN ON":
            return sql(e)
        return sql(self._flattened(e))

    def _flattened(self, e: ast.Expr) -> ast.Expr:
        if isinstance(e, ast.ColumnRef):
            source = e.source
            if source is None and e.name not in self.lambdas:
                try:
                    source = self.resolve(e).source
                except SqlError:
                    source = None
            if source is None or source.startswith("$"):
                return e
            return ast.ColumnRef(f"{source}_{e.name}", None, pos=e.pos)
        changes: dict[str, Any] = {}
        for f in fields(e):
            value = getattr(e, f.name)
            if isinstance(value, ast.Expr):
                changes[f.name] = self._flattened(value)
            elif isinstance(value, tuple):
                changes[f.name] = tuple(
                    self._flattened(v) if isinstance(v, ast.Expr) else v for v in value
                )
        return replace(e, **changes)

    def resolve(self, ref: ast.ColumnRef) -> ScopeColumn:
        if ref.source is None and ref.name in self.lambdas:
            return self.lambdas[ref.name]
        matches = [
            c
            for c in self.columns
            if c.name == ref.name and (ref.source is None or c.source == ref.source)
        ]
        if len(matches) == 1:
            return matches[0]
        line, col = ref.pos
        shown = f"{ref.source}.{ref.name}" if ref.source else ref.name
        if not matches:
            if ref.name in ("WINDOWSTART", "WINDOWEND") and self.clause == "WHERE":
                # WHERE runs before a window is assigned
                raise SqlError(f"Unknown column {ref.name}.", line, col)
            if ref.name in ("WINDOWSTART", "WINDOWEND") and ref.source is None:
                raise SqlError(
                    f"Window bounds column {ref.name} can only be used in the SELECT clause of "
                    "windowed aggregations",
                    line,
                    col,
                )
            if ref.source is not None and not any(c.source == ref.source for c in self.columns):
                sources = sorted(
                    {c.source for c in self.columns if c.source and not c.source.startswith("$")}
                )
                raise SqlError(
                    f"Failed to prepare statement: '{ref.source}' is not a valid stream/table "
                    f"name or alias. The sources here are: {', '.join(sources)}",
                    line,
                    col,
                )
            names = ", ".join(
                dict.fromkeys(
                    (f"{c.source}.{c.name}" if ref.source and c.source else c.name)
                    for c in self.columns
                    # `$`: the engine's own columns and sources (a join's `$J`), not the user's
                    if not c.name.startswith("$") and not (c.source or "").startswith("$")
                )
            )
            if not names:
                # a VALUES list, DELETE's key values: no column is in reach, only values
                raise SqlError(
                    f"'{shown}' cannot be resolved: no column can be named here, only a value "
                    f"(a literal such as 1 or 'text', or an expression of literals)",
                    line,
                    col,
                    located=True,
                )
            raise SqlError(
                f"{self.clause} column '{shown}' cannot be resolved. The columns here are: {names}",
                line,
                col,
                located=True,
            )
        raise SqlError(
            f"Column '{shown}' is ambiguous. Could be "
            + " or ".join(f"{c.source}.{ref.name}" for c in matches)
            + ".",
            line,
            col,
            located=True,
            # ksqlDB's AstSanitizer finds it, before the statement is analysed
            preparing=True,
        )


@dataclass(frozen=True)
class Compiled:
    type: SqlType | None  # None: the NULL literal, of no type yet
    evaluate: Evaluator
    constant: bool = False

    def __call__(self, batch: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        out = self.evaluate(batch, ctx)
        if isinstance(out, pa.ChunkedArray):
            out = out.combine_chunks()
        return out


def error_at(node: Any, message: str) -> SqlError:
    """A SqlError at the position of `node` (the start of the statement if it has none)."""
    line, col = getattr(node, "pos", (0, 0))
    return SqlError(message, line or 1, col or 1)


def not_here(e: ast.Expr) -> str:
    """Why an expression only some places take (a window function, a subquery) is refused
    where it stands, in the user's words: their text, never the parser's class name."""
    if isinstance(e, ast.OverCall):
        return (
            f"{sql(e)} is not supported here: a window function goes in the select list of a "
            "query over one stream (LAG, LEAD, AVG, SUM, COUNT, MIN, MAX OVER (PARTITION BY "
            "... ORDER BY ROWTIME ...)), or, as ROW_NUMBER, RANK or DENSE_RANK, in a subquery "
            "whose rank the outer query bounds (Top-N, deduplication)"
        )
    if isinstance(e, ast.InSubquery | ast.Exists):
        return (
            f"{sql(e)} is not supported here: IN / EXISTS with a subquery is a condition of "
            "its own, ANDed into the WHERE of a query over one stream or table"
        )
    return f"{sql(e)} is not supported here"
