"""The statement model back to SQL text that parses to the same statement.

A frame's query runs as the SQL text printed here: that text is what the command topic keeps
(so the query comes back after a restart as any SQL statement does), what SHOW QUERIES shows
and what EXPLAIN plans. `checked` parses the text again and refuses to go on if the parser
reads anything else than the statement the frame built.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from hispeed.errors import HispeedError
from hispeed.sql import ast
from hispeed.sql.expression_parser import RESERVED
from hispeed.sql.format import SqlWriter
from hispeed.sql.parser import parse
from hispeed.sql.types import SqlType

_PLAIN = re.compile(r"[A-Z_][A-Z0-9_]*\Z")
_UNITS = (
    ("DAYS", 86_400_000),
    ("HOURS", 3_600_000),
    ("MINUTES", 60_000),
    ("SECONDS", 1000),
    ("MILLISECONDS", 1),
)


def name_sql(name: str) -> str:
    """An identifier, in backquotes where SQL would read it otherwise (lower case, a
    reserved word, other characters)."""
    if _PLAIN.match(name) and name not in RESERVED:
        return name
    return "`" + name.replace("`", "``") + "`"


def duration_sql(ms: int) -> str:
    """A duration in the largest unit that divides it: `10 SECONDS`."""
    for unit, size in _UNITS:
        if ms and ms % size == 0:
            return f"{ms // size} {unit}"
    return f"{ms} MILLISECONDS"


class _Reparseable(SqlWriter):
    """SQL text that the parser reads back as the same expression: names quoted where they
    need it, a DOUBLE written as one, a negative number kept one literal."""

    def literal(self, e: ast.Literal) -> str:
        v = e.value
        if v is None or isinstance(v, bool):
            return super().literal(e).upper()
        if isinstance(v, float):
            if not math.isfinite(v):
                raise HispeedError(f"SQL has no literal for {v}")
            text = repr(v).upper()
            text = text if "E" in text else text + "E0"  # 1.5 alone is a DECIMAL in SQL
        else:
            text = super().literal(e)
        return f"({text})" if text.startswith("-") else text

    def name(self, name: str) -> str:
        return name_sql(name)

    def not_equal(self) -> str:
        return "!="

    def minus(self, e: ast.UnaryOp) -> str:
        # `-(1)`, not `-1`: the parser reads the latter as the literal -1
        return f"{e.op}({self.write(e.operand)})"

    def like(self, e: ast.Like) -> str:
        escape = "" if e.escape is None else " ESCAPE '" + e.escape.replace("'", "''") + "'"
        return super().like(e)[:-1] + escape + ")"

    def lambda_(self, e: ast.Lambda) -> str:
        params = ", ".join(name_sql(p) for p in e.params)
        return f"({params}) => {self.write(e.body)}"

    def unknown(self, e: ast.Expr) -> str:
        raise HispeedError(f"{type(e).__name__} cannot be written as SQL")


_WRITER = _Reparseable()


def expr_sql(e: ast.Expr) -> str:
    """An expression as SQL text that parses back to it (every operation in parentheses)."""
    return _WRITER.write(e)


def _relation(r: ast.Relation) -> str:
    if isinstance(r, ast.SourceRef):
        return name_sql(r.name) + (f" {name_sql(r.alias)}" if r.alias else "")
    if isinstance(r, ast.Join):
        kind = {"INNER": "JOIN", "FULL": "FULL OUTER JOIN"}.get(r.kind, f"{r.kind} JOIN")
        text = f"{_relation(r.left)} {kind} {_relation(r.right)}"
        if r.within is not None:
            w = r.within
            if w.before_ms == w.after_ms:
                text += f" WITHIN {duration_sql(w.before_ms)}"
            else:
                text += f" WITHIN ({duration_sql(w.before_ms)}, {duration_sql(w.after_ms)})"
            if w.grace_ms is not None:
                text += f" GRACE PERIOD {duration_sql(w.grace_ms)}"
        return f"{text} ON {expr_sql(r.on)}"
    raise HispeedError(f"{type(r).__name__} cannot be written as SQL")


def window_sql(w: ast.WindowSpec) -> str:
    """A WINDOW clause."""
    parts = [duration_sql(w.size_ms) if w.kind == "SESSION" else f"SIZE {duration_sql(w.size_ms)}"]
    if w.advance_ms is not None:
        parts.append(f"ADVANCE BY {duration_sql(w.advance_ms)}")
    if w.retention_ms is not None:
        parts.append(f"RETENTION {duration_sql(w.retention_ms)}")
    if w.grace_ms is not None:
        parts.append(f"GRACE PERIOD {duration_sql(w.grace_ms)}")
    return f"WINDOW {w.kind} ({', '.join(parts)})"


def select_sql(s: ast.Select) -> str:
    """A SELECT as SQL text."""
    items = []
    for item in s.items:
        if isinstance(item, ast.AllColumns):
            items.append(f"{name_sql(item.source)}.*" if item.source else "*")
        else:
            alias = f" AS {name_sql(item.alias)}" if item.alias else ""
            items.append(expr_sql(item.expr) + alias)
    text = f"SELECT {', '.join(items)} FROM {_relation(s.from_)}"
    if s.window is not None:
        text += " " + window_sql(s.window)
    if s.where is not None:
        text += f" WHERE {expr_sql(s.where)}"
    if s.group_by:
        text += " GROUP BY " + ", ".join(expr_sql(g) for g in s.group_by)
    if s.partition_by:
        text += " PARTITION BY " + ", ".join(expr_sql(p) for p in s.partition_by)
    if s.having is not None:
        text += f" HAVING {expr_sql(s.having)}"
    if s.emit is not None:
        text += f" EMIT {s.emit}"
    if s.limit is not None:
        text += f" LIMIT {s.limit}"
    return text


def _property(value: Any) -> str:
    if isinstance(value, bool):
        return "'" + str(value).lower() + "'"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def statement_sql(stmt: ast.Statement) -> str:
    """A statement a frame makes (CREATE ... AS SELECT, a bare SELECT, EXPLAIN) as SQL."""
    if isinstance(stmt, ast.QueryStatement):
        return select_sql(stmt.query) + ";"
    if isinstance(stmt, ast.CreateAsSelect):
        head = f"CREATE {'OR REPLACE ' if stmt.or_replace else ''}{stmt.kind} "
        head += name_sql(stmt.name)
        if stmt.properties:
            props = ", ".join(f"{k}={_property(p.value)}" for k, p in stmt.properties.items())
            head += f" WITH ({props})"
        return f"{head} AS {select_sql(stmt.query)};"
    if isinstance(stmt, ast.Explain) and isinstance(stmt.target, ast.Statement):
        return "EXPLAIN " + statement_sql(stmt.target)
    raise HispeedError(f"{type(stmt).__name__} cannot be written as SQL")


def checked(stmt: ast.Statement, types: Mapping[str, SqlType] | None = None) -> str:
    """The statement's SQL text, after checking that it parses back to the same statement
    (what runs, what is kept and what a restart replays must be what the frame built)."""
    text = statement_sql(stmt)
    (parsed,) = parse(text, types)
    if parsed.statement != stmt:
        raise HispeedError(
            f"hispeed cannot write this query as SQL it reads back the same: {text}\n"
            "please report it, with the frame that made it"
        )
    return text
