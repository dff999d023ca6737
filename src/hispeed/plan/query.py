"""`plan_query`: a SELECT planned against the catalog and the topics the log holds.

`plan_select` plans from the catalog alone; a query also needs what only the log knows (a
join of co-partitioned sources needs topics with as many partitions each). The engine's
statements, pull queries, push queries and the conformance runner all plan through here.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hispeed.catalog import Catalog
from hispeed.errors import SqlError
from hispeed.log.base import Log
from hispeed.plan.model import QueryPlan
from hispeed.plan.planner import plan_select
from hispeed.plan.window_limit import check_ranks_kept, check_rows_apart, check_windows_per_row
from hispeed.sql import ast


def plan_query(
    select: ast.Select,
    catalog: Catalog,
    log: Log,
    sink_kind: str | None = None,
    sink_name: str | None = None,
    properties: Mapping[str, Any] | None = None,
) -> QueryPlan:
    """The plan of `select` (writing a `sink_kind` named `sink_name`, if it has a sink);
    `properties`: the engine's and the statement's, for the bounds a query is checked against
    (the defaults when None)."""
    check_windows_per_row(select, properties)
    check_rows_apart(select, properties)
    plan = plan_select(select, catalog, sink_kind, sink_name)
    check_ranks_kept(plan, select, properties)
    for step in plan.join.steps if plan.join is not None else []:
        if step.copartitioned is None:
            continue
        left, right = (catalog.sources[n] for n in step.copartitioned)
        counts = [len(log.describe_topic(s.topic).partitions) for s in (left, right)]
        if counts[0] != counts[1]:
            raise SqlError(
                f"Can't join `{left.name}` with `{right.name}` since the number of "
                f"partitions don't match. `{left.name}` partitions = {counts[0]}; "
                f"`{right.name}` partitions = {counts[1]}. Please repartition either one "
                "so that the number of partitions match.",
                *select.pos,
            )
    return plan
