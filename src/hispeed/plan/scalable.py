"""Whether a push query is what ksqlDB calls a scalable push query (its id says so).

ksqlDB (ScalablePushUtil.isScalablePushQuery) serves a push query from the output of the one
persistent query that writes its source, and names it `SCALABLE_PUSH_QUERY_<uuid>`, when
`ksql.query.push.v2.enabled` is on and the query reads a single source (no join) that exactly
one query writes, from latest, with EMIT CHANGES and no GROUP BY, WINDOW, HAVING or PARTITION
BY, and names neither ROWPARTITION nor ROWOFFSET in its select list or WHERE. Every other push
query is a transient one (`transient_<SOURCE>_<n>`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hispeed.catalog import Catalog
from hispeed.plan.scope import walk
from hispeed.sql import ast

PUSH_V2_ENABLED = "ksql.query.push.v2.enabled"
#: ksqlDB's pseudo columns that a pull or scalable push query may not name
_DISALLOWED = {"ROWPARTITION", "ROWOFFSET"}


def _true(value: Any) -> bool:
    return value is True or str(value).strip().lower() == "true"


def _latest(overrides: Mapping[str, Any]) -> bool:
    """ScalablePushUtil.isLatest: the request's auto.offset.reset (plain, then with the
    ksql.streams. prefix); without it, latest, where a push query starts by default. (ksqlDB
    then looks at the server's setting too; hispeed's engine-wide auto.offset.reset is for
    persistent queries, and a push query starts where its request says.)"""
    for name in ("auto.offset.reset", "ksql.streams.auto.offset.reset"):
        if name in overrides:
            return str(overrides[name]).strip().lower() == "latest"
    return True


def is_scalable_push(
    select: ast.Select,
    catalog: Catalog,
    overrides: Mapping[str, Any],
    config: Mapping[str, Any],
) -> bool:
    """Whether ksqlDB would run `select` as a scalable push query (see the module's doc).
    `overrides` are the request's properties, `config` the engine's (for push v2 only)."""
    enabled = (
        overrides[PUSH_V2_ENABLED]
        if PUSH_V2_ENABLED in overrides
        else config.get(PUSH_V2_ENABLED, False)
    )
    if not _true(enabled) or not isinstance(select.from_, ast.SourceRef):
        return False
    source = select.from_.name
    writers = [q for q in catalog.queries.values() if q.sink == source]
    if (
        select.emit != "CHANGES"
        or select.group_by
        or select.window is not None
        or select.having is not None
        or select.partition_by
        or len(writers) != 1
        or not _latest(overrides)
    ):
        return False
    exprs = [item.expr for item in select.items if isinstance(item, ast.SelectItem)]
    if select.where is not None:
        exprs.append(select.where)
    return not any(
        isinstance(e, ast.ColumnRef) and e.name.upper() in _DISALLOWED
        for expr in exprs
        for e in walk(expr)
    )


def scalable_rows_only(select: ast.Select, catalog: Catalog) -> ast.Select:
    """`select` as a scalable push query runs it: ksqlDB's ScalablePushConsumer.handleRow
    skips a record without a key (when the source has key columns) or without a value, so
    WHERE also asks for a key (the null values are the caller's to drop)."""
    assert isinstance(select.from_, ast.SourceRef)
    source = catalog.sources[select.from_.name]
    if not source.key_columns:
        return select
    has_key: ast.Expr | None = None
    for column in source.key_columns:
        present = ast.IsNull(ast.ColumnRef(column.name), negated=True, pos=select.pos)
        has_key = present if has_key is None else ast.BinaryOp("OR", has_key, present)
    assert has_key is not None
    where = has_key if select.where is None else ast.BinaryOp("AND", select.where, has_key)
    return dataclasses.replace(select, where=where)
