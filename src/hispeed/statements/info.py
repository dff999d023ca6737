"""What the engine can tell: SHOW, DESCRIBE, EXPLAIN, PRINT, and pull queries."""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from typing import Any

from hispeed.errors import HispeedError, SqlError
from hispeed.functions.udf.catalog import describe as describe_function
from hispeed.functions.udf.catalog import functions
from hispeed.plan.model import QueryPlan, UnsupportedError
from hispeed.plan.query import plan_query
from hispeed.runtime.pull import run_select
from hispeed.sql import ast
from hispeed.statements import kafka_connect
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result


def show(parts: EngineParts, stmt: ast.Show, call: Call) -> Result:
    """SHOW STREAMS, TABLES, TOPICS, QUERIES, PROPERTIES, TYPES, CONNECTORS or FUNCTIONS."""
    if stmt.what in ("STREAMS", "TABLES"):
        kind = stmt.what[:-1]
        rows = [
            {
                "name": s.name,
                "type": s.kind,
                "topic": s.topic,
                "keyFormat": s.key_format,
                "valueFormat": s.value_format,
                "isWindowed": s.window is not None,
            }
            for s in sorted(parts.catalog.sources.values(), key=lambda s: s.name)
            if s.kind == kind
        ]
        return Result(stmt.what.lower(), rows=rows)
    if stmt.what == "TOPICS":
        rows = [
            {"name": t, "replicaInfo": [1] * len(parts.log.describe_topic(t).partitions)}
            for t in parts.log.list_topics()
        ]
        return Result("topics", rows=rows)
    if stmt.what == "QUERIES":
        rows = [
            {
                "id": q.id,
                "queryString": q.statement,
                "sinks": [q.sink] if q.sink else [],
                "state": q.state,
                # why a query is in ERROR (runtime/manager.py retries it), else None
                "error": q.error,
            }
            for q in parts.catalog.queries.values()
        ]
        return Result("queries", rows=rows)
    if stmt.what == "PROPERTIES":
        rows = [{"name": k, "value": str(v)} for k, v in sorted(parts.properties.items())]
        return Result("properties", rows=rows)
    if stmt.what == "TYPES":
        rows = [{"name": k, "type": str(v)} for k, v in sorted(parts.catalog.types.items())]
        return Result("types", rows=rows)
    if stmt.what == "CONNECTORS":
        # hispeed's own, then the Connect cluster's (with ksql.connect.url set)
        rows, warnings = kafka_connect.show_rows(parts, call, stmt.scope)
        own = [r for r in parts.connectors.rows() if kafka_connect.in_scope(r, stmt.scope)]
        return Result("connectors", rows=own + rows, warnings=warnings)
    if stmt.what == "FUNCTIONS":
        return Result("functions", rows=functions())
    raise HispeedError(f"SHOW {stmt.what} is not supported yet")


def describe(parts: EngineParts, stmt: ast.Describe, call: Call) -> Result:
    """DESCRIBE a stream or table, a connector or a function."""
    if stmt.connector:
        if kafka_connect.is_remote(parts, stmt.name, call):
            return kafka_connect.describe(parts, stmt.name, call)
        info = parts.connectors.describe(stmt.name)
        return Result("describe_connector", message=str(info), info=info)
    if stmt.function:
        fn = describe_function(stmt.name)
        about = {"name": fn.name, "type": fn.kind, "description": fn.description}
        about.update(category=fn.category, author=fn.author, path=fn.path)
        overloads = [
            {
                "arguments": o.arguments(),
                "returnType": o.returns,
                "description": o.description,
            }
            for o in fn.overloads
        ]
        return Result("describe_function", rows=overloads, message=str(about), info=about)
    source = parts.catalog.get(stmt.name, line=stmt.pos[0], column=stmt.pos[1])
    rows = [
        {"name": c.name, "type": str(c.type), "key": c in source.key_columns}
        for c in source.columns
    ]
    info = {
        "name": source.name,
        "type": source.kind,
        "topic": source.topic,
        "keyFormat": source.key_format,
        "valueFormat": source.value_format,
        "schema": source.schema_text(),
        "statement": source.statement,
        "writeQueries": [q.id for q in parts.catalog.writers_of(source.name)],
        "readQueries": [q.id for q in parts.catalog.readers_of(source.name)],
    }
    if source.window is not None:
        info["windowType"] = source.window.kind
    return Result("describe", rows=rows, message=str(info), info=info)


def explain(parts: EngineParts, stmt: ast.Explain, call: Call) -> Result:
    """EXPLAIN a query (its plan) or a query id (its statement)."""
    if isinstance(stmt.target, str):
        q = parts.catalog.queries.get(stmt.target.upper())
        if q is None:
            raise HispeedError(
                f"Query with id:{stmt.target} does not exist, use SHOW "
                "QUERIES to view the full set of queries."
            )
        return Result("explain", message=q.statement)
    target = stmt.target
    select = getattr(target, "query", None)
    if not isinstance(select, ast.Select):
        raise HispeedError("EXPLAIN takes a query or a query id")
    plan = plan_query(select, parts.catalog, parts.log, getattr(target, "kind", None))
    return Result("explain", message=describe_plan(plan))


#: the engine property bounding the records of a PRINT answered whole (`Engine.execute`;
#: the server's `print_max_records`), and its default: that answer is built in memory
PRINT_MAX_RECORDS = "print.max.records"
DEFAULT_PRINT_MAX_RECORDS = 10_000
#: records of a read batch turned into Python rows at a time
_PRINT_CHUNK = 500


def print_topic(parts: EngineParts, stmt: ast.Print, call: Call) -> Result:
    """PRINT a topic: its records in timestamp order, every INTERVAL-th one, up to its LIMIT
    and at most `print.max.records` of them (this answer is built in memory; the server's
    /query streams PRINT instead). The partitions are read lazily and merged, so a large
    topic costs the records shown, not the topic."""
    topic = stmt.topic
    if topic not in parts.log.list_topics(internal=True):
        raise HispeedError(
            f"Could not find topic '{topic}', or the KSQL user does not have "
            "permissions to list the topic. Topic names are case-sensitive."
        )
    most = int(call.props.get(PRINT_MAX_RECORDS, DEFAULT_PRINT_MAX_RECORDS))
    limit = most if stmt.limit is None else min(stmt.limit, most)
    interval = print_interval(stmt)
    records = heapq.merge(
        *(
            _partition_records(parts, topic, p)
            for p in range(len(parts.log.describe_topic(topic).partitions))
        ),
        key=lambda r: (r["timestamp"], r["partition"], r["offset"]),
    )
    rows = list(itertools.islice(records, 0, limit * interval, interval))
    warnings = []
    if len(rows) >= most and (stmt.limit is None or stmt.limit > most):
        warnings.append(
            f"PRINT stopped after {most} records (the setting print_max_records, the engine "
            f"property '{PRINT_MAX_RECORDS}'): add a LIMIT, or PRINT through the server, "
            "which streams the records"
        )
    return Result("rows", rows=rows, warnings=warnings)


def print_interval(stmt: ast.Print) -> int:
    """PRINT's INTERVAL (every n-th record; 1 when not given), checked."""
    if stmt.interval is None:
        return 1
    if stmt.interval < 1:
        raise SqlError(f"PRINT's INTERVAL must be 1 or more, not {stmt.interval}", *stmt.pos)
    return stmt.interval


def _partition_records(parts: EngineParts, topic: str, partition: int) -> Iterator[dict[str, Any]]:
    """One partition's records from its start, a batch at a time."""
    start, _ = parts.log.offsets(topic, partition)
    for batch in parts.log.read(topic, partition, start):
        for at in range(0, batch.num_rows, _PRINT_CHUNK):  # a large batch a slice at a time
            for r in batch.slice(at, _PRINT_CHUNK).to_pylist():
                yield {"partition": partition, **r}


def pull_query(parts: EngineParts, stmt: ast.QueryStatement, call: Call) -> Result:
    """A pull query's rows (a push query runs through `Engine.stream`)."""
    select = stmt.query
    if select.emit is not None:
        raise UnsupportedError(
            "push queries (EMIT CHANGES) run through Engine.stream() or the server's /query"
        )
    return Result("rows", rows=run_select(parts.runtime.views, select, call.props))


def describe_plan(plan: QueryPlan) -> str:
    """What EXPLAIN shows of a plan."""
    lines = [f"source: {plan.source.name} ({plan.source.kind})"]
    if plan.where is not None:
        lines.append("filter: WHERE")
    if plan.aggregation is not None:
        agg = plan.aggregation
        window = agg.window.kind if agg.window else "none"
        lines.append(f"aggregate: {len(agg.calls)} aggregate(s), window {window}")
    lines.append("key: " + ", ".join(f"{c.name} {c.type}" for c in plan.key))
    if plan.python is not None:
        stage = plan.python
        lines.append(f"python: {stage.kind} {stage.reference}")
    lines.append("value: " + ", ".join(f"{c.name} {c.type}" for c in plan.value))
    return "\n".join(lines)
