"""Temporal (versioned) joins: `s JOIN t FOR SYSTEM_TIME AS OF s.time_col ON s.k = t.id`
(Flink SQL's event-time temporal join; past ksqlDB: docs/sql.md).

The right side must be a table with a primary key (the join is on it, as any stream-table
join) whose record time is its rows' event time: each change of a key's row starts a new
version at that time. The left side is a stream; `time_col` one of its columns (its
timestamp column, BIGINT milliseconds or TIMESTAMP): each record joins the version of its
key's row valid at that time (ops/join_temporal.py). Superseded versions are kept
`query.temporal.retention.ms` (a query or engine property; a day by default) behind the
stream's time, for records that come that late.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hispeed.errors import HispeedError
from hispeed.expr.scope import Scope
from hispeed.plan.model import JoinSide, JoinStep
from hispeed.sql import ast

#: the property that says how long superseded versions are kept behind the stream's time
RETENTION_PROPERTY = "query.temporal.retention.ms"
DEFAULT_RETENTION_MS = 24 * 3600 * 1000


def versioned(step: JoinStep, node: ast.Join, right: JoinSide, scope: Scope, err: Any) -> JoinStep:
    """`step` as a temporal join when `node` says FOR SYSTEM_TIME AS OF; else `step`."""
    if node.as_of is None:
        return step
    at = node.as_of
    if step.left_kind != "STREAM" or step.right_kind != "TABLE":
        raise err(
            node,
            "FOR SYSTEM_TIME AS OF joins a stream with a versioned table: the left side must "
            f"be a stream and {right.label} a table (got {step.left_kind.lower()} and "
            f"{step.right_kind.lower()})",
        )
    if not right.source.key_columns:
        raise err(node, f"{right.label} has no PRIMARY KEY: a versioned table needs one")
    if not isinstance(at, ast.ColumnRef):
        raise err(at, "FOR SYSTEM_TIME AS OF takes a column of the stream, like s.dateTime")
    column = scope.resolve(at)
    if column.source == right.label:
        raise err(at, f"FOR SYSTEM_TIME AS OF takes a column of the stream, not of {right.label}")
    if column.type.name not in ("BIGINT", "TIMESTAMP"):
        raise err(
            at,
            f"FOR SYSTEM_TIME AS OF takes a time: a BIGINT of milliseconds or a TIMESTAMP, "
            f"not {column.type}",
        )
    step.as_of = column.field
    return step


def retention(properties: Mapping[str, Any]) -> int:
    """`query.temporal.retention.ms` from the properties (a day if not given)."""
    value = properties.get(RETENTION_PROPERTY)
    if value is None:
        return DEFAULT_RETENTION_MS
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if number < 0:
        raise HispeedError(
            f"{RETENTION_PROPERTY} must be a whole number of milliseconds, 0 or more, not {value!r}"
        )
    return number
