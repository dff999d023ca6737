"""The parsing of what hispeed says past ksqlDB's grammar for joins (docs/sql.md, "Joins past
ksqlDB"): the comma join `FROM a, b` of Flink and standard SQL, and INTERVAL literals in
expressions (`b.t - INTERVAL '5' MINUTE`), which an interval join's time bounds use.

Kept apart from the statement parser so that ksqlDB's grammar stays as it is; `p` is the
parser, typed loosely because the parsers import this module. plan/join_conditions.py gives
these their meaning.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.intervals import interval
from hispeed.sql.lexer import Token


def comma_join(p: Any, left: ast.Relation, comma: Token) -> ast.Join:
    """`left, right` (the comma read): an inner join whose condition the planner takes from
    WHERE's conjuncts over the sources joined so far."""
    right = p.source_ref()
    on = ast.Literal(True, T.BOOLEAN, pos=p.pos(comma))
    return ast.Join(left, right, "INNER", on, None, pos=p.pos(comma), comma=True)


@dataclass(frozen=True)
class IntervalLiteral(ast.Literal):
    """An INTERVAL literal: a BIGINT of milliseconds, which a TIMESTAMP may also be moved by
    (`ts - INTERVAL '10' SECOND`, as in Flink SQL)."""


def interval_literal(p: Any) -> ast.Literal:
    """`INTERVAL '10' SECOND` in an expression: its milliseconds, a BIGINT, the unit of
    ROWTIME and of the times it is added to or taken from."""
    millis, start = interval(p)
    return IntervalLiteral(millis, T.BIGINT, pos=p.pos(start))
