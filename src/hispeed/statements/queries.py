"""Persistent queries: CREATE ... AS SELECT, INSERT INTO and TERMINATE.

Each plans its SELECT (`plan.query.plan_query`), checks the sink, and has the runtime
manager start (or stop) the query's task.
"""

from __future__ import annotations

from typing import Any

from hispeed.catalog import Source
from hispeed.errors import PREPARING, HispeedError, SqlError
from hispeed.formats.base import KEY_SCHEMA_PROPERTIES, VALUE_SCHEMA_PROPERTIES, Column
from hispeed.plan import python
from hispeed.plan.model import QueryPlan
from hispeed.plan.nonkey_joins import kafka_key_problem
from hispeed.plan.query import plan_query
from hispeed.runtime.trigger import TriggerSpec, trigger_of
from hispeed.sql import ast
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result
from hispeed.statements.sources import (
    already_exists,
    check_formats,
    check_timestamp_column,
    configured_wrapping,
    ensure_topic,
    format_props,
    upper_or_none,
)
from hispeed.statements.undo import creating_topic


def create_as_select(parts: EngineParts, stmt: ast.CreateAsSelect, call: Call) -> Result:
    """CREATE STREAM or TABLE AS SELECT: a sink and the persistent query that writes it."""
    if stmt.name in parts.catalog.sources and not stmt.or_replace:
        if stmt.if_not_exists:
            return Result("status", f"{stmt.name} already exists")
        raise already_exists(parts, stmt.kind, stmt.name)
    if stmt.query.limit is not None:
        raise SqlError(
            f"CREATE {stmt.kind} AS SELECT statements don't support LIMIT clause.", *stmt.pos
        )
    plan = plan_query(stmt.query, parts.catalog, parts.log, stmt.kind, stmt.name, call.props)
    with_props = {k: p.value for k, p in stmt.properties.items()}
    # the stream API's map() and map_batches(): a Python function named in the WITH clause
    plan = python.from_properties(plan, with_props)
    produces = (
        "TABLE"
        if plan.aggregation is not None or plan.source.kind == "TABLE" or plan.ranking
        else "STREAM"
    )
    if produces != stmt.kind:
        raise SqlError(
            f"Invalid result type. Your SELECT query produces a {produces}. "
            f"Please use CREATE {produces} AS SELECT statement instead.",
            *stmt.pos,
        )
    src = plan.source
    _check_intermediate_types(plan)
    explicit_key_format = with_props.get("KEY_FORMAT") or with_props.get("FORMAT")
    key_format = explicit_key_format or src.key_format
    value_format = with_props.get("VALUE_FORMAT") or with_props.get("FORMAT") or src.value_format
    # a sink names its own schemas: the source's schema ids and names are not inherited
    inherited_key = {k: v for k, v in src.key_properties.items() if k not in KEY_SCHEMA_PROPERTIES}
    sink_key_props = format_props(
        {**with_props, "KEY_FORMAT": str(key_format)}, key=True, source_name=stmt.name
    )
    key_props = {**inherited_key, **sink_key_props}
    value_props = format_props(with_props, key=False)
    if str(value_format).upper() == str(src.value_format).upper() and not value_props:
        value_props = {
            k: v
            for k, v in src.value_properties.items()
            if k != "WRAP_SINGLE_VALUE" and k not in VALUE_SCHEMA_PROPERTIES
        }
    if plan.key and not explicit_key_format and str(key_format).upper() == "NONE":
        # as ksqlDB's LogicalPlanner.getSinkKeyFormat: a key format inherited from a keyless
        # source (NONE) gives way to the default key format once the result has a key (GROUP
        # BY, PARTITION BY, a join); a NONE named in the WITH clause stays, and is refused
        key_format = call.props.get("ksql.persistence.default.format.key", "KAFKA")
    if not plan.key and plan.repartition:
        # PARTITION BY NULL: no key, so NONE (Analyzer.keyFormatName); only another format
        # named in the WITH clause is a mistake
        if explicit_key_format and str(explicit_key_format).upper() != "NONE":
            raise SqlError("Key format specified for stream without key columns.", *stmt.pos)
        key_format = "NONE"
    if plan.join is not None:  # a join on non-key columns is keyed by several columns
        problem = kafka_key_problem(plan.join, str(key_format))
        if problem is not None:
            raise SqlError(problem, *stmt.pos)
    # as ksqlDB's TopicCreateInjector: without KAFKA_TOPIC, the sink's name after the
    # ksql.output.topic.name.prefix setting (empty by default)
    prefix = str(call.props.get("ksql.output.topic.name.prefix") or "")
    topic = str(with_props.get("KAFKA_TOPIC", prefix + stmt.name))
    sink = Source(
        name=stmt.name,
        kind=stmt.kind,
        key_columns=plan.key_columns,
        value_columns=plan.value_columns,
        topic=topic,
        key_format=str(key_format).upper(),
        value_format=str(value_format).upper(),
        key_properties=key_props,
        value_properties=configured_wrapping(
            value_props, len(plan.value_columns), str(value_format), call.props
        ),
        timestamp=upper_or_none(with_props.get("TIMESTAMP")),
        timestamp_format=with_props.get("TIMESTAMP_FORMAT"),
        window=plan.window_info,
        statement=call.text,
    )
    if plan.ranking is not None and len(plan.key_columns) > 1 and sink.key_format == "KAFKA":
        # ksqlDB has no Top-N to keep its message for: say why the key has several columns
        # and what holds them, at the query's place
        names = ", ".join(c.name for c in plan.key_columns)
        raise SqlError(
            f"this Top-N or deduplication result's key has several columns ({names}: the "
            "PARTITION BY columns, and the rank of a Top-N); the KAFKA key format holds one: "
            "name a format that holds several, WITH (key_format='JSON')",
            *stmt.query.pos,
        )
    check_formats(
        sink,
        registry=parts.context.schema_registry,
        register=None if call.replay else "always",
    )
    if sink.timestamp is not None:
        # as ksqlDB's LogicalPlanner: the column must be one of the result's
        check_timestamp_column(sink)
    parts.context.offset_reset(call.props)  # checked before anything is made
    trigger = _trigger(parts, with_props, stmt.pos)
    partitions = len(parts.log.describe_topic(src.topic).partitions)
    prefix = "CTAS" if stmt.kind == "TABLE" else "CSAS"
    query_id = parts.runtime.next_query_id(f"{prefix}_{stmt.name}")
    creating_topic(parts, call, topic, *parts.runtime.internal_topics(query_id))
    if not call.replay:
        ensure_topic(parts.log, topic, with_props, stmt.kind, partitions)
    else:
        parts.log.create_topic(topic, partitions, exist_ok=True)
    parts.catalog.add(sink, replace=stmt.or_replace)
    sink.writer = query_id
    parts.runtime.start_query(query_id, call.text, plan, sink, call.props, trigger)
    return Result("status", f"Created query with ID {query_id}", query_id=query_id)


def _trigger(parts: EngineParts, with_props: dict[str, Any], pos: ast.Pos) -> TriggerSpec:
    """The micro-batch trigger a persistent query's WITH clause names (runtime/trigger.py);
    a wrong one is an error at the statement's place."""
    try:
        trigger = trigger_of(with_props)
    except HispeedError as e:
        raise SqlError(str(e), *pos) from None
    if trigger.kind != "CONTINUOUS" and parts.log.shared:
        raise SqlError(
            f"TRIGGER='{trigger.kind}' runs on the embedded log only, not on Kafka", *pos
        )
    return trigger


def insert_into(parts: EngineParts, stmt: ast.InsertInto, call: Call) -> Result:
    """INSERT INTO a stream: a persistent query that writes into it."""
    target = parts.catalog.sources.get(stmt.target)
    if target is None:
        raise SqlError(
            f"Source `{stmt.target}` does not exist.",
            *stmt.target_pos,
            located=True,
            preparing=True,
        )
    # ksqlDB's AstSanitizer checks the target as it prepares the statement, so these read as
    # its EngineContext wraps them
    if target.kind == "TABLE":
        raise HispeedError(
            f"{PREPARING}INSERT INTO can only be used to insert into a stream. {target.name} is "
            "a table."
        )
    if target.header_columns:
        raise HispeedError(
            f"{PREPARING}Cannot insert into {target.name} because it has header columns"
        )
    if target.source_table:
        raise HispeedError(f"Cannot insert into read-only {target.kind.lower()}: {target.name}")
    plan = plan_query(stmt.query, parts.catalog, parts.log, target.kind, target.name, call.props)
    if plan.aggregation is not None or plan.source.kind == "TABLE":
        raise HispeedError(
            f"INSERT INTO can only be used to insert into a stream. {target.name} is a table."
        )
    got = [(c.name, c.type) for c in plan.key_columns + plan.value_columns]
    want = [(c.name, c.type) for c in target.key_columns + target.value_columns]
    if got != want:
        raise HispeedError(
            f"Incompatible schema between results and sink.\nResult schema is "
            f"{_schema(plan.key_columns, plan.value_columns)}\nSink schema is "
            f"{_schema(target.key_columns, target.value_columns)}"
        )
    parts.context.offset_reset(call.props)  # checked before anything is made
    trigger = _trigger(parts, {k: p.value for k, p in stmt.properties.items()}, stmt.pos)
    query_id = parts.runtime.next_query_id("INSERTQUERY")
    creating_topic(parts, call, *parts.runtime.internal_topics(query_id))
    parts.runtime.start_query(query_id, call.text, plan, target, call.props, trigger)
    return Result("status", f"Created query with ID {query_id}", query_id=query_id)


def terminate(parts: EngineParts, stmt: ast.Terminate, call: Call) -> Result:
    """TERMINATE a query (or ALL): its task stops, its sink has no writer any more."""
    # ALL: the persistent queries (a push query is its client's to close)
    ids = list(parts.catalog.queries) if stmt.query_id is None else [stmt.query_id.upper()]
    for query_id in ids:  # all checked before any stops
        if query_id not in parts.catalog.queries:
            raise HispeedError(f"Unknown queryId: {query_id}")
    for query_id in ids:
        sink = parts.catalog.queries[query_id].sink
        parts.runtime.stop_query(query_id)
        if (
            sink
            and sink in parts.catalog.sources
            and parts.catalog.sources[sink].writer == query_id
        ):
            parts.catalog.sources[sink].writer = None
    return Result("status", "Query terminated.")


def keep_unmade(
    parts: EngineParts, stmt: ast.Statement, text: str, error: HispeedError
) -> str | None:
    """A CREATE ... AS SELECT or INSERT INTO that failed on replay: kept as a query in ERROR
    under the id it had (so the ids after it stay theirs); returns that id (None: the
    statement makes no query, and the caller reports it as before)."""
    if isinstance(stmt, ast.CreateAsSelect):
        prefix = "CTAS" if stmt.kind == "TABLE" else "CSAS"
        query_id = parts.runtime.next_query_id(f"{prefix}_{stmt.name}")
        with_props = {k: p.value for k, p in stmt.properties.items()}
        topic_prefix = str(parts.properties.get("ksql.output.topic.name.prefix") or "")
        topic = str(with_props.get("KAFKA_TOPIC", topic_prefix + stmt.name))
        sources = _relation_names(stmt.query.from_)
        parts.runtime.keep_unmade(query_id, text, stmt.name, sources, error, topic)
        return query_id
    if isinstance(stmt, ast.InsertInto):
        query_id = parts.runtime.next_query_id("INSERTQUERY")
        sources = _relation_names(stmt.query.from_)
        parts.runtime.keep_unmade(query_id, text, stmt.target, sources, error)
        return query_id
    return None


def _relation_names(relation: ast.Relation) -> list[str]:
    """The sources a FROM clause names (a join's sides)."""
    if isinstance(relation, ast.SourceRef):
        return [relation.name]
    if isinstance(relation, ast.Join):
        return [*_relation_names(relation.left), relation.right.name]
    name = getattr(relation, "name", None)
    return [name] if isinstance(name, str) else []


def _schema(keys: list[Column], values: list[Column]) -> str:
    return ", ".join(
        [f"`{c.name}` {c.type} KEY" for c in keys] + [f"`{c.name}` {c.type}" for c in values]
    )


#: aggregates whose running state is a STRUCT, ARRAY or MAP, which DELIMITED cannot hold
_COMPLEX_STATE = frozenset(
    {
        "AVG",
        "CORRELATION",
        "STDDEV_SAMP",
        "STDDEV_SAMPLE",
        "STDDEV_POP",
        "TOPK",
        "TOPKDISTINCT",
        "COLLECT_LIST",
        "COLLECT_SET",
        "HISTOGRAM",
        "LATEST_BY_OFFSET",
        "EARLIEST_BY_OFFSET",
        "COUNT_DISTINCT",
    }
)


def _check_intermediate_types(plan: QueryPlan) -> None:
    """ksqlDB keeps an aggregation's state in the source's value format and refuses what
    DELIMITED cannot hold; hispeed refuses the same statements, so that a query written here
    also runs on ksqlDB."""
    agg = plan.aggregation
    if agg is None or plan.source.value_format != "DELIMITED":
        return
    if any(call.spec.name.upper() in _COMPLEX_STATE for call in agg.calls):
        raise HispeedError(
            "One of the functions used in the statement has an intermediate type that the "
            "value format can not handle. Please remove the function or change the format."
        )
