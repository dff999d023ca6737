"""The bounds a query's text is checked against when it is planned: the windows one row
falls in (`query.window.max.per.row`), and how many rows apart LAG/LEAD and OVER ... ROWS
frames look (`query.over.max.rows`).

A HOP or CUMULATE window table function, or ksqlDB's `WINDOW HOPPING`, puts each row in
size / slide windows: `HOP(..., INTERVAL '1' MILLISECOND, INTERVAL '1' DAY)` is 86.4 million
windows a row, which no query can hold. Size and slide are constants, so the query is
refused when it is planned, at the call's (or the WINDOW clause's) place, rather than
failing on its first row.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hispeed.errors import HispeedError, SqlError
from hispeed.plan.model import QueryPlan
from hispeed.plan.scope import error_at
from hispeed.sql import ast

#: the property that bounds the windows one row falls in, and its default
MAX_PER_ROW_PROPERTY = "query.window.max.per.row"
DEFAULT_MAX_PER_ROW = 10_000


def windows_per_row(size_ms: int, step_ms: int) -> int:
    """How many windows of `size_ms` starting every `step_ms` hold one instant."""
    return -(-size_ms // step_ms)


def check_windows_per_row(select: ast.Select, properties: Mapping[str, Any] | None) -> None:
    """Refuse a HOP, CUMULATE or HOPPING window anywhere in `select` that puts one row in
    more windows than `query.window.max.per.row` allows (engine or query property)."""
    limit: int | None = None
    for node in _nodes(select):
        if isinstance(node, ast.WindowTvf) and node.step_ms:
            size, step, what = node.size_ms, node.step_ms, f"{node.kind}"
            slide = "slide" if node.kind == "HOP" else "step"
        elif isinstance(node, ast.WindowSpec) and node.advance_ms:
            size, step, what, slide = node.size_ms, node.advance_ms, "WINDOW HOPPING", "advance"
        else:
            continue
        if limit is None:
            limit = _limit(properties or {})
        count = windows_per_row(size, step)
        if count > limit:
            raise error_at(
                node,
                f"{what} puts each row in {count:,} windows (size {size} ms, {slide} "
                f"{step} ms); at most {limit:,} are allowed ({MAX_PER_ROW_PROPERTY}): "
                f"make the {slide} longer or the size shorter, or raise the setting",
            )


#: the property that bounds how many rows apart LAG/LEAD's offset and a ROWS frame reach (a
#: partition keeps, or waits for, that many rows), and its default
MAX_ROWS_APART_PROPERTY = "query.over.max.rows"
DEFAULT_MAX_ROWS_APART = 100_000


def check_rows_apart(select: ast.Select, properties: Mapping[str, Any] | None) -> None:
    """Refuse a LAG/LEAD offset or an OVER (... ROWS BETWEEN n PRECEDING ...) frame anywhere
    in `select` that reaches more rows back than `query.over.max.rows` allows."""
    limit: int | None = None
    for node in _nodes(select):
        if not isinstance(node, ast.OverCall):
            continue
        reach: list[tuple[Any, int, str]] = []
        if node.name in ("LAG", "LEAD") and len(node.args) > 1:
            arg = node.args[1]
            if isinstance(arg, ast.Literal) and type(arg.value) is int:
                reach.append((arg, arg.value, f"{node.name}'s offset"))
        if node.frame is not None and node.frame[0] == "ROWS" and node.frame[1] is not None:
            reach.append((node, node.frame[1], f"ROWS BETWEEN {node.frame[1]} PRECEDING"))
        for where, rows, what in reach:
            if limit is None:
                limit = _limit(properties or {}, MAX_ROWS_APART_PROPERTY, DEFAULT_MAX_ROWS_APART)
            if rows > limit:
                raise error_at(
                    where,
                    f"{what} reaches {rows:,} rows; at most {limit:,} are allowed "
                    f"({MAX_ROWS_APART_PROPERTY}): each partition keeps that many rows, "
                    "so raise the setting if they fit in memory",
                )


def _limit(
    properties: Mapping[str, Any],
    name: str = MAX_PER_ROW_PROPERTY,
    default: int = DEFAULT_MAX_PER_ROW,
) -> int:
    """The setting's value: a whole number above 0, the default when not given."""
    value = properties.get(name)
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise HispeedError(f"{name} must be a whole number above 0, not {value!r}")
    return number


def _nodes(node: Any) -> list[Any]:
    """`node` and every AST node inside it (subqueries, joins, the WINDOW clause)."""
    out: list[Any] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, list | tuple):
            stack.extend(item)
        elif dataclasses.is_dataclass(item) and not isinstance(item, type):
            out.append(item)
            stack.extend(getattr(item, f.name) for f in dataclasses.fields(item))
        elif isinstance(item, dict):
            stack.extend(item.values())
    return out


#: the property that bounds the rows a table Top-N's partition keeps, and its default: a
#: table's Top-N keeps every current row (a delete above the N-th lets the next one in), so
#: a partition's rows would otherwise grow without bound (ops/topn.py)
TABLE_ROWS_PROPERTY = "query.topn.table.max.rows"
DEFAULT_TABLE_ROWS = 100_000


def check_ranks_kept(
    plan: QueryPlan, select: ast.Select, properties: Mapping[str, Any] | None
) -> None:
    """Refuse a Top-N over a table whose N is more than the rows a partition may keep
    (`query.topn.table.max.rows`): it could not give N ranks once a partition is that big."""
    ranking = plan.ranking
    if ranking is None or ranking.function == "OVER" or ranking.table_key is None:
        return
    limit = _limit(properties or {}, TABLE_ROWS_PROPERTY, DEFAULT_TABLE_ROWS)
    if ranking.limit > limit:
        raise SqlError(
            f"a Top-N over a table keeps at most {limit:,} rows a partition "
            f"({TABLE_ROWS_PROPERTY}), fewer than its {ranking.limit:,} ranks: "
            "lower N or raise the setting",
            *select.pos,
        )
