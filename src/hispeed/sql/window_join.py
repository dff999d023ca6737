"""The parsing of a join's right side and ON clause, with Flink's window join: a join of two
window table functions' rows, `(SELECT * FROM TABLE(TUMBLE(TABLE l, ...))) L JOIN (SELECT *
FROM TABLE(TUMBLE(TABLE r, ...))) R ON L.window_start = R.window_start AND L.window_end =
R.window_end AND ...` (or `TUMBLE(...) L`), is a `WindowJoin` (plan/window_join.py plans it)
once either side is one; any other join is ksqlDB's, with Flink's `FOR SYSTEM_TIME AS OF` and
a subquery on the right (sql/flink.py). `p` is the parser; typed loosely because the parser
imports this module.
"""

from __future__ import annotations

from typing import Any

from hispeed.errors import SqlError
from hispeed.sql import ast, flink
from hispeed.sql.window_tvf import starts_window_tvf, window_tvf


def join(p: Any, left: ast.Relation, kind: str, at: Any) -> ast.Relation:
    """The join of `left` with the relation after JOIN (`at`: the join's first token)."""
    right: ast.Relation
    if starts_window_tvf(p):
        right = window_tvf(p)
    else:
        ref, as_of = flink.joined_table(p)
        query = ref.query if isinstance(ref, flink.JoinedSubquery) else None
        if not (_windowed(left) or (query is not None and _tvf_rows(query))):
            # ksqlDB's join (a subquery on the right: a Flink statement's view of its own)
            within = p.within() if p.accept_word("WITHIN") else None
            p.expect_word("ON")
            on = p.expr()
            return ast.Join(left, ref, kind, on, within, pos=p.pos(at), as_of=as_of)
        right = ref if query is None else ast.Subquery(query, ref.alias, pos=ref.pos)
    if isinstance(left, ast.WindowJoin | ast.Join):
        raise SqlError(
            "a window join joins two window table functions' rows; joining a third "
            "relation to it is not supported",
            at.line,
            at.column,
        )
    p.expect_word("ON")
    return ast.WindowJoin(left, right, kind, p.expr(), pos=p.pos(at))


def _windowed(relation: ast.Relation) -> bool:
    """Whether `relation` is a window table function's rows, alone or in a subquery."""
    if isinstance(relation, ast.Subquery):
        return _tvf_rows(relation.query)
    return isinstance(relation, ast.WindowTvf)


def _tvf_rows(query: ast.Select) -> bool:
    """Whether `query` selects a window table function's rows (a window aggregation's are no
    window join's side: joined, they are a join of tables, as Nexmark q8's)."""
    return isinstance(query.from_, ast.WindowTvf) and not query.group_by and query.having is None
