"""ksqlDB's REST entities, field by field, from hispeed's catalog.

Each builder gives the JSON that ksqlDB's rest-model class of the same name serializes (with
its ApiJsonMapper: an empty Optional is `null`, never left out, except where the class says
NON_ABSENT or NON_EMPTY): `schema_info` (SchemaInfo, as EntityUtil builds it from a SQL type),
`field_info` (FieldInfo), `running_query` (RunningQuery), `source_description`
(SourceDescription, as SourceDescriptionFactory fills it), `query_description`
(QueryDescription), `property` (PropertiesList.Property). hispeed adds a field of its own only
inside objects, which ksqlDB's clients read ignoring unknown fields (every rest-model class is
`@JsonIgnoreProperties(ignoreUnknown = true)`), never beside a wrapper object's one key.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hispeed.sql.types import SqlType

if TYPE_CHECKING:
    from hispeed.catalog import QueryInfo, Source
    from hispeed.engine import Engine

#: PropertiesList.QueryLevelProperties: what a query may set for itself (level QUERY); every
#: other property is a server's (level SERVER)
QUERY_LEVEL_PROPERTIES = frozenset(
    {
        "auto.offset.reset",
        "buffered.records.per.partition",
        "cache.max.bytes.buffering",
        "ksql.fail.on.deserialization.error",
        "ksql.cast.strings.preserve.nulls",
        "ksql.nested.error.set.null",
        "ksql.query.retry.backoff.max.ms",
        "ksql.query.pull.max.allowed.offset.lag",
        "ksql.query.pull.table.scan.enabled",
        "ksql.timestamp.throw.on.invalid",
        "max.task.idle.ms",
        "task.timeout.ms",
    }
)
#: PropertiesList.MutableSystemProperties: the clients' and Streams' settings ALTER SYSTEM may
#: change (with the query-level ones, what `editable` says)
MUTABLE_SYSTEM_PROPERTIES = frozenset(
    {
        "max.poll.records",
        "max.poll.interval.ms",
        "session.timeout.ms",
        "heartbeat.interval.ms",
        "fetch.min.bytes",
        "fetch.max.bytes",
        "fetch.max.wait.ms",
        "metadata.max.age.ms",
        "max.partition.fetch.bytes",
        "batch.size",
        "linger.ms",
        "delivery.timeout.ms",
        "max.request.size",
        "max.block.ms",
        "buffer.memory",
        "compression.type",
        "acceptable.recovery.lag",
        "commit.interval.ms",
        "max.warmup.replicas",
        "num.standby.replicas",
        "poll.ms",
        "probing.rebalance.interval.ms",
        "processing.guarantee",
        "window.size.ms",
    }
)
#: the prefixes ksqlDB's KsqlConfigResolver strips before it looks a property up
_PREFIXES = ("ksql.streams.consumer.", "ksql.streams.producer.", "ksql.streams.")


def schema_info(t: SqlType) -> dict[str, Any]:
    """SchemaInfo of a SQL type: its base type's name; a STRUCT's fields, an ARRAY's element
    or a MAP's value as `memberSchema`; a DECIMAL's precision and scale as `parameters` (left
    out when empty, as NON_EMPTY says)."""
    out: dict[str, Any] = {"type": t.name, "fields": None, "memberSchema": None}
    if t.name == "STRUCT":
        out["fields"] = [field_info(n, ft) for n, ft in t.fields]
    elif t.name in ("ARRAY", "MAP"):
        assert t.element is not None
        out["memberSchema"] = schema_info(t.element)
    elif t.name == "DECIMAL":
        out["parameters"] = {"precision": t.precision, "scale": t.scale}
    return out


def field_info(
    name: str, t: SqlType, kind: str | None = None, header_key: str | None = None
) -> dict[str, Any]:
    """FieldInfo (NON_ABSENT: `type` only for a KEY or HEADER column, `headerKey` only for a
    HEADER('key') column)."""
    out: dict[str, Any] = {"name": name, "schema": schema_info(t)}
    if kind is not None:
        out["type"] = kind
    if header_key is not None:
        out["headerKey"] = header_key
    return out


def source_fields(source: Source) -> list[dict[str, Any]]:
    """EntityUtil.buildSourceSchemaEntity: the key, value and header columns."""
    fields = [field_info(c.name, c.type, "KEY") for c in source.key_columns]
    fields += [field_info(c.name, c.type) for c in source.value_columns]
    fields += [
        field_info(c.name, c.type, "HEADER", key or None) for c, key in source.header_columns
    ]
    return fields


def running_query(engine: Engine, query: QueryInfo) -> dict[str, Any]:
    """RunningQuery, with hispeed's `error` (why a query is in ERROR, else null)."""
    sinks = [query.sink] if query.sink else []
    topics = [engine.catalog.sources[s].topic for s in sinks if s in engine.catalog.sources]
    return {
        "queryString": query.statement,
        "sinks": sinks,
        "sinkKafkaTopics": topics,
        "id": query.id,
        "statusCount": {query.state: 1},
        "queryType": "PERSISTENT",
        "state": query.state,
        "error": query.error,
    }


def source_description(engine: Engine, source: Source, *, extended: bool = False) -> dict[str, Any]:
    """SourceDescription of a stream or table, as DESCRIBE (EXTENDED) gives it. hispeed's
    statistics are in /metrics, so `statistics` and `errorStats` stay empty."""
    partitions = replication = 0
    if source.topic in engine.log.list_topics(internal=True):
        described = engine.log.describe_topic(source.topic)
        partitions = len(described.partitions)
        replicas = getattr(described.partitions[0], "replicas", None) if partitions else None
        replication = len(replicas) if replicas else (1 if partitions else 0)
    catalog = engine.catalog
    return {
        "name": source.name,
        "windowType": source.window.kind if source.window is not None else None,
        "readQueries": [running_query(engine, q) for q in catalog.readers_of(source.name)],
        "writeQueries": [running_query(engine, q) for q in catalog.writers_of(source.name)],
        "fields": source_fields(source),
        "type": source.kind,
        "timestamp": source.timestamp or "",
        "statistics": "",
        "errorStats": "",
        "extended": extended,
        "keyFormat": source.key_format,
        "valueFormat": source.value_format,
        "topic": source.topic,
        "partitions": partitions,
        "replication": replication,
        "statement": source.statement,
        "queryOffsetSummaries": [],
        "sourceConstraints": _made_from(engine, source.name),
        "clusterStatistics": [],
        "clusterErrorStats": [],
    }


def _made_from(engine: Engine, name: str) -> list[str]:
    """The sources made by a CREATE ... AS SELECT from `name`: ksqlDB's drop constraints
    (MetaStoreImpl.addSourceReferences), which keep `name` from being dropped before them."""
    queries = engine.catalog.queries
    return sorted(
        s.name
        for s in engine.catalog.sources.values()
        if s.writer in queries and name in queries[s.writer].sources
    )


def query_description(
    engine: Engine, query: QueryInfo | None, text: str, plan: str
) -> dict[str, Any]:
    """QueryDescription of a running query (EXPLAIN <query id>), or of a statement's plan
    (EXPLAIN <statement>: no id, no sink, state null)."""
    sink = engine.catalog.sources.get(query.sink) if query and query.sink else None
    errors = (
        [{"timestamp": 0, "errorMessage": query.error, "type": "UNKNOWN"}]
        if query is not None and query.error
        else []
    )
    return {
        "id": query.id if query is not None else "",
        "statementText": query.statement if query is not None else text,
        "windowType": sink.window.kind if sink is not None and sink.window else None,
        "fields": source_fields(sink) if sink is not None else [],
        "sources": sorted(query.sources) if query is not None else [],
        "sinks": [query.sink] if query is not None and query.sink else [],
        "topology": plan,
        "executionPlan": plan,
        "overriddenProperties": {},
        "ksqlHostQueryStatus": {},
        "queryType": "PERSISTENT",
        "queryErrors": errors,
        "tasksMetadata": [],
        "consumerGroupId": "",
        "state": query.state if query is not None else None,
    }


def property_entry(name: str, value: Any) -> dict[str, Any]:
    """PropertiesList.Property: its name, scope, value (as text), whether SET may change it
    (`editable`) and its `level` (QUERY or SERVER)."""
    plain = name
    for prefix in _PREFIXES:
        if plain.startswith(prefix):
            plain = plain[len(prefix) :]
            break
    query_level = plain in QUERY_LEVEL_PROPERTIES
    return {
        "name": name,
        "scope": "KSQL",
        "value": None if value is None else str(value),
        "editable": query_level or plain in MUTABLE_SYSTEM_PROPERTIES,
        "level": "QUERY" if query_level else "SERVER",
    }
