"""Flink's window join, planned onto ksqlDB's stream-stream join with a window step.

    SELECT L.id, L.v, R.v, L.window_start
    FROM (SELECT * FROM TABLE(TUMBLE(TABLE l, DESCRIPTOR(t), INTERVAL '1' MINUTE))) L
    [LEFT | RIGHT | FULL [OUTER]] JOIN
         (SELECT * FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(t), INTERVAL '1' MINUTE))) R
    ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.id = R.id

joins the rows of the two streams that share a key and a window. `rewrite` turns it into the
stream-stream join the planner knows (`FROM l L JOIN r R WITHIN ... ON L.id = R.id`), the
window equalities taken out of ON (each side's rows are put in their window by the join step
itself) and each window column written as its expression over the side's ROWTIME; the plan's
join step then carries the window (`JoinStep.window`), which makes it ops/join_window.py's:
a window's pairs (and an outer join's unmatched rows) are output once, when it closes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hispeed.catalog import Catalog, Source
from hispeed.plan.model import RowWindows
from hispeed.plan.scope import error_at, leftmost
from hispeed.plan.window_tvf import (
    TVF_COLUMNS,
    assigned_columns,
    session_columns,
    window_columns,
)
from hispeed.sql import ast

#: what a window join's side may be
_SIDE = "(SELECT * FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(t), INTERVAL ...))) alias"


@dataclasses.dataclass(frozen=True)
class _Side:
    tvf: ast.WindowTvf
    alias: str
    source: Source


def rewrite(
    select: ast.Select, catalog: Catalog
) -> tuple[ast.Select, tuple[int, int], RowWindows | None]:
    """The query over a window join as a stream-stream join, the window (size, offset in
    milliseconds) its join step puts rows in, and for HOP's and CUMULATE's rows their windows
    (the step puts a copy of a record in each, its end in `ROW_WINDOW_END`); an error at its
    place for what is not run."""
    wj = select.from_
    assert isinstance(wj, ast.WindowJoin)
    left, right = _side(wj.left, catalog), _side(wj.right, catalog)
    if left.alias == right.alias:
        raise error_at(wj.right, f"both sides of the window join are named {left.alias}")
    a, b = left.tvf, right.tvf
    if (a.kind, a.size_ms, a.step_ms, a.offset_ms) != (b.kind, b.size_ms, b.step_ms, b.offset_ms):
        raise error_at(
            b,
            f"a window join's two sides are windowed alike: the same {a.kind} with the same "
            "sizes and offset",
        )
    rest = _window_equalities_out(wj.on, left.alias, right.alias)
    row_windows = None
    if a.kind == "SESSION":
        _session_keys(rest, left, right)
        row_windows = RowWindows("SESSION", a.size_ms, 0, 0)
    elif a.kind != "TUMBLE":
        assert a.step_ms is not None  # HOP's slide, CUMULATE's step: the parser requires them
        row_windows = RowWindows(a.kind, a.size_ms, a.step_ms, a.offset_ms)
    columns = {
        alias: (
            window_columns(tvf, ast.ColumnRef("ROWTIME", alias, pos=tvf.pos), side.source)
            if row_windows is None
            else session_columns(tvf, alias, side.source)
            if tvf.kind == "SESSION"
            else assigned_columns(tvf, alias, side.source)
        )
        for alias, tvf, side in ((left.alias, a, left), (right.alias, b, right))
    }
    join = ast.Join(
        ast.SourceRef(left.source.name, left.alias, pos=a.pos),
        ast.SourceRef(right.source.name, right.alias, pos=b.pos),
        wj.kind,
        _placed(rest, columns),
        # rows of one window are less than its size apart
        ast.WithinSpec(a.size_ms - 1, a.size_ms - 1, 0),
        pos=wj.pos,
    )
    plain = dataclasses.replace(
        select,
        from_=join,
        items=tuple(_placed(i, columns) for i in select.items),
        where=_placed(select.where, columns),
        group_by=_placed(select.group_by, columns),
        partition_by=_placed(select.partition_by, columns),
        having=_placed(select.having, columns),
    )
    return plain, (a.size_ms, a.offset_ms), row_windows


def _side(relation: ast.Relation, catalog: Catalog) -> _Side:
    """One side: a window table function, alone or as `(SELECT * FROM tvf) alias`."""
    if isinstance(relation, ast.Subquery):
        inner = relation.query
        tvf = inner.from_
        plain = (
            isinstance(tvf, ast.WindowTvf)
            and len(inner.items) == 1
            and isinstance(inner.items[0], ast.AllColumns)
            and inner.items[0].source is None
            and inner.where is None
            and not inner.group_by
            and inner.having is None
            and inner.window is None
            and not inner.partition_by
        )
        if not plain or not isinstance(tvf, ast.WindowTvf):
            raise error_at(
                relation, f"a window join's sides are window table functions' rows: {_SIDE}"
            )
        if relation.alias is None:
            raise error_at(relation, f"name the window join's side: {_SIDE}")
        alias = relation.alias
    elif isinstance(relation, ast.WindowTvf):
        tvf, alias = relation, relation.label
    else:
        raise error_at(relation, f"a window join's sides are window table functions' rows: {_SIDE}")
    line, col = tvf.source.pos
    source = catalog.get(tvf.source.name, line=line or 1, column=col or 1)
    if source.kind != "STREAM" or source.window is not None:
        raise error_at(tvf.source, f"a window join joins streams; {source.name} is not one")
    if tvf.time_column not in ("ROWTIME", source.timestamp):
        raise error_at(
            dataclasses.replace(tvf.source, pos=tvf.time_pos),
            "a window join windows each side by its stream's event time: "
            f"DESCRIPTOR({source.timestamp or 'ROWTIME'})",
        )
    return _Side(tvf, alias, source)


def _session_keys(rest: ast.Expr, left: _Side, right: _Side) -> None:
    """A window join of SESSION's rows: each side's sessions are its join key's, so ON's
    other condition is one key equality and each side is PARTITION BY its key column."""
    terms = _conjuncts(rest)
    term = terms[0]
    if (
        len(terms) != 1
        or not isinstance(term, ast.BinaryOp)
        or term.op != "="
        or not isinstance(term.left, ast.ColumnRef)
        or not isinstance(term.right, ast.ColumnRef)
    ):
        raise error_at(
            leftmost(rest),
            "a window join of SESSION's rows joins on one key besides the windows "
            f"(... AND {left.alias}.id = {right.alias}.id), each side's sessions partitioned "
            "by it",
        )
    by_alias = {term.left.source: term.left.name, term.right.source: term.right.name}
    for side in (left, right):
        key = by_alias.get(side.alias)
        if [k.name for k in side.tvf.partition_by] != [key]:
            raise error_at(
                side.tvf,
                "a window join of SESSION's rows keeps each side's sessions per join key: "
                f"SESSION(TABLE {side.source.name.lower()} PARTITION BY {str(key).lower()}, "
                "...)",
            )


def _window_equalities_out(on: ast.Expr, left: str, right: str) -> ast.Expr:
    """ON without `L.window_start = R.window_start` and `L.window_end = R.window_end`
    (both required, as Flink requires them); what is left must join the sides on a key."""
    terms = _conjuncts(on)
    found = set()
    rest = []
    for term in terms:
        name = _window_equality(term, left, right)
        if name is None:
            rest.append(term)
        else:
            found.add(name)
    for name in ("WINDOW_START", "WINDOW_END"):
        if name not in found:
            raise error_at(
                leftmost(on),
                "a window join's ON says the two sides' windows are the same: "
                f"{left}.window_start = {right}.window_start AND {left}.window_end = "
                f"{right}.window_end AND ...; {left}.{name.lower()} = {right}.{name.lower()} "
                "is missing",
            )
    if not rest:
        raise error_at(
            leftmost(on), f"a window join also joins on a key: ... AND {left}.id = {right}.id"
        )
    out = rest[0]
    for term in rest[1:]:
        out = ast.BinaryOp("AND", out, term, pos=getattr(term, "pos", ast.NOPOS))
    return out


def _conjuncts(e: ast.Expr) -> list[ast.Expr]:
    if isinstance(e, ast.BinaryOp) and e.op == "AND":
        return [*_conjuncts(e.left), *_conjuncts(e.right)]
    return [e]


def _window_equality(e: ast.Expr, left: str, right: str) -> str | None:
    """The window column `e` equates between the two sides, or None."""
    if not isinstance(e, ast.BinaryOp) or e.op != "=":
        return None
    a, b = e.left, e.right
    if not (isinstance(a, ast.ColumnRef) and isinstance(b, ast.ColumnRef)):
        return None
    if a.name != b.name or a.name not in ("WINDOW_START", "WINDOW_END"):
        return None
    return a.name if {a.source, b.source} == {left, right} else None


def _placed(value: Any, columns: dict[str, dict[str, ast.Expr]]) -> Any:
    """`value` with each `alias.window_*` replaced by its expression (unqualified: refused,
    both sides have one)."""
    if isinstance(value, ast.ColumnRef) and value.name in TVF_COLUMNS:
        if value.source is None:
            raise error_at(
                value, f"{value.name} is ambiguous in a window join: qualify it (L.{value.name})"
            )
        side = columns.get(value.source)
        if side is not None:
            return dataclasses.replace(side[value.name], pos=value.pos)  # type: ignore[call-arg]
        return value
    if isinstance(value, ast.SelectItem):
        name = value.expr.name if isinstance(value.expr, ast.ColumnRef) else None
        alias = value.alias or (name if name in TVF_COLUMNS else None)
        return dataclasses.replace(value, expr=_placed(value.expr, columns), alias=alias)
    if isinstance(value, ast.Expr):
        changes = {}
        for k, v in vars(value).items():
            if k == "pos":
                continue
            new = _placed(v, columns)
            if new is not v:
                changes[k] = new
        return dataclasses.replace(value, **changes) if changes else value
    if isinstance(value, tuple):
        items = tuple(_placed(v, columns) for v in value)
        return items if any(x is not y for x, y in zip(items, value, strict=True)) else value
    return value
