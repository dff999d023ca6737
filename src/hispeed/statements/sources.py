"""CREATE and DROP of streams, tables and types, and the checks of a source's formats,
topic, window and timestamp that persistent queries share (`statements/queries.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hispeed.catalog import QueryInfo, Source, WindowInfo
from hispeed.errors import HispeedError, SqlError
from hispeed.formats.base import (
    FORMATS,
    KEY_SCHEMA_PROPERTIES,
    VALUE_SCHEMA_PROPERTIES,
    Column,
    Format,
    FormatContext,
    FormatError,
    SchemaFormat,
    get_format,
    parse_bool_option,
)
from hispeed.log.base import Log
from hispeed.registry import SchemaRegistry
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.windows import window_properties
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result
from hispeed.statements.sample import unreadable_records
from hispeed.statements.undo import creating_topic

#: the type of a HEADERS column: every header of the record
HEADERS_TYPE = T.array(T.struct([("KEY", T.STRING), ("VALUE", T.BYTES)]))


def already_exists(parts: EngineParts, kind: str, name: str) -> HispeedError:
    """ksqlDB's "already exists" error, and what a user can do about it: a user pasting a
    course's statements into a server that already runs them (the demo) meets it first."""
    existing = parts.catalog.sources[name]
    other = existing.kind.lower()
    users = sorted(
        {q.id for q in parts.catalog.readers_of(name)}
        | {q.id for q in parts.catalog.writers_of(name) if q.id != existing.writer}
    )
    drop = f"DROP {existing.kind} {name}"
    if users:
        drop = f"TERMINATE {', '.join(users)} (the queries using it), then {drop}"
    replace = (
        f"; or write CREATE OR REPLACE {kind} {name} to change it in place"
        if kind == existing.kind
        else ""
    )
    return HispeedError(
        f"Cannot add {kind.lower()} '{name}': A {other} with the same name already exists. "
        f"To use the existing {other}, leave this statement out (DESCRIBE {name} shows it), "
        f"or write CREATE {kind} IF NOT EXISTS to skip it when it exists; to keep both, give "
        f"this {kind.lower()} another name; to replace it, {drop} first{replace}."
    )


def create_source(parts: EngineParts, stmt: ast.CreateSource, call: Call) -> Result:
    """CREATE STREAM or TABLE over a topic (creating the topic if asked to)."""
    props = {k: p.value for k, p in stmt.properties.items()}
    kind = stmt.kind
    if stmt.name in parts.catalog.sources:
        if stmt.if_not_exists:
            return Result("status", f"Cannot add {kind.lower()} {stmt.name}: already exists")
        if not stmt.or_replace:
            raise already_exists(parts, kind, stmt.name)
    key_cols, value_cols, header_cols = [], [], []
    seen: set[str] = set()
    for c in stmt.columns:
        if c.name in seen:
            raise SqlError(f"Duplicate column names: `{c.name}`", *c.pos)
        seen.add(c.name)
        if c.name in ("ROWTIME", "ROWPARTITION", "ROWOFFSET", "WINDOWSTART", "WINDOWEND"):
            raise SqlError(
                f"'{c.name}' is a reserved column name. You cannot use it as a name for a column.",
                *c.pos,
            )
        column = Column(c.name, c.type)
        if c.key or c.primary_key:
            key_cols.append(column)
        elif c.headers is not None:
            want = T.BYTES if c.headers else HEADERS_TYPE
            if c.type != want:
                shown = f"HEADER('{c.headers}')" if c.headers else "HEADERS"
                raise SqlError(
                    f"Invalid type for {shown} column: expected {want}, got {c.type}",
                    *c.pos,
                )
            header_cols.append((column, c.headers))
        else:
            value_cols.append(column)
    existing = parts.catalog.sources.get(stmt.name)
    if stmt.or_replace and (stmt.source or (existing is not None and existing.source_table)):
        raise HispeedError(
            f"Cannot add {kind.lower()} '{stmt.name}': CREATE OR REPLACE is not "
            f"supported on source {kind.lower()}s."
        )
    key_format, value_format = formats(parts.properties, props, stmt.pos)
    check_schema_ids(props, key_format, value_format, key_cols, value_cols)
    probe = Source(
        name=stmt.name,
        kind=kind,
        key_columns=key_cols,
        value_columns=value_cols,
        topic="",
        key_format=key_format,
        value_format=value_format,
        key_properties=format_props(props, key=True, source_name=stmt.name),
        value_properties=format_props(props, key=False),
    )
    key_fmt, value_fmt = source_formats(probe)
    inferred = (key_fmt.uses_registry and not key_cols) or (
        value_fmt.uses_registry and not value_cols
    )
    if inferred and props.get("KAFKA_TOPIC") is not None:
        probe.topic = str(props["KAFKA_TOPIC"])
        key_fmt, value_fmt = source_formats(probe, parts.context.schema_registry)
        more_key, more_value = infer_columns(key_fmt, value_fmt, not key_cols, not value_cols)
        key_cols += more_key
        value_cols += more_value
        inferred = bool(more_key or more_value)
    if not stmt.columns and not inferred:
        raise SqlError("No columns supplied.", *stmt.pos)
    if "KEY" in props:
        line, col = stmt.properties["KEY"].pos
        raise SqlError(
            "KEY is not a property any more: declare the key in the column list, "
            f"like `{props['KEY']} INTEGER PRIMARY KEY` for a table or "
            f"`{props['KEY']} INTEGER KEY` for a stream",
            line,
            col,
        )
    if kind == "TABLE" and not key_cols:
        raise SqlError("Tables require a PRIMARY KEY. Please define the PRIMARY KEY.", *stmt.pos)
    topic = props.get("KAFKA_TOPIC")
    if topic is None:
        raise SqlError(f'Missing required property "KAFKA_TOPIC" for CREATE {kind}', *stmt.pos)
    window = None
    if "WINDOW_TYPE" in props:
        window = window_info(props)
        if not key_cols:  # ksqlDB's CreateSourceCommand.validate
            raise HispeedError("Windowed sources require a key column.")
    source = Source(
        name=stmt.name,
        kind=kind,
        key_columns=key_cols,
        value_columns=value_cols,
        topic=str(topic),
        key_format=key_format,
        value_format=value_format,
        key_properties=format_props(props, key=True, source_name=stmt.name),
        value_properties=configured_wrapping(
            format_props(props, key=False), len(value_cols), value_format, call.props
        ),
        header_columns=header_cols,
        timestamp=upper_or_none(props.get("TIMESTAMP")),
        timestamp_format=props.get("TIMESTAMP_FORMAT"),
        window=window,
        statement=call.text,
        source_table=stmt.source,
    )
    check_formats(
        source,
        registry=parts.context.schema_registry,
        # a side whose columns were inferred has its schema already: "if-absent" leaves it
        register=None if call.replay else "if-absent",
    )
    if source.timestamp is not None:
        check_timestamp_column(source)
    if not call.replay:
        creating_topic(parts, call, source.topic)
        ensure_topic(parts.log, source.topic, props, kind)
    parts.catalog.add(source, replace=stmt.or_replace)
    result = Result("status", f"{kind.capitalize()} created")
    if not call.replay:
        warning = unreadable_records(parts.log, source, registry=parts.context.schema_registry)
        if warning is not None:
            result.warnings.append(warning)
    return result


def create_type(parts: EngineParts, stmt: ast.CreateType, call: Call) -> Result:
    """CREATE TYPE: a name for a SQL type."""
    types = parts.catalog.types
    if stmt.name.upper() in types and not stmt.if_not_exists:
        raise HispeedError(
            f"Cannot register custom type '{stmt.name.upper()}' since it "
            f"is already registered with type: "
            f"{types[stmt.name.upper()]}"
        )
    types.setdefault(stmt.name.upper(), stmt.type)
    return Result(
        "status",
        f"Registered custom type with name '{stmt.name.upper()}' and SQL type {stmt.type}",
    )


def alter_source(parts: EngineParts, stmt: ast.AlterSource, call: Call) -> Result:
    """ALTER STREAM|TABLE ... ADD COLUMN: new value columns at the end of the schema, for
    the queries started from now on (ksqlDB's AlterSourceFactory and DdlCommandExec)."""
    kind = stmt.kind.lower()
    source = parts.catalog.sources.get(stmt.name)
    if source is not None and source.source_table:
        raise HispeedError(
            f"Cannot alter {kind} '{stmt.name}': ALTER operations are not supported on "
            f"source {kind}s."
        )
    if source is None:
        raise HispeedError(f"Source {stmt.name} does not exist.")
    if source.kind != stmt.kind:
        raise HispeedError(
            f"Incompatible data source type is {source.kind}, but statement was ALTER {stmt.kind}"
        )
    if source.writer is not None:
        raise HispeedError("ALTER command is not supported for CREATE ... AS statements.")
    added: list[Column] = []
    for c in stmt.columns:
        if source.column(c.name) is not None or any(a.name == c.name for a in added):
            raise HispeedError(
                f"Cannot add column {c.name} to schema. A column with the same name already exists."
            )
        added.append(Column(c.name, c.type))
    source.value_columns = [*source.value_columns, *added]
    return Result("status", f"{source.kind.capitalize()} {source.name} altered.")


def drop(parts: EngineParts, stmt: ast.Drop, call: Call) -> Result:
    """DROP STREAM, TABLE or TYPE (a source's writing query stops with it)."""
    if stmt.kind == "TYPE":
        if stmt.name.upper() not in parts.catalog.types:
            if stmt.if_exists:
                return Result("status", f"Type {stmt.name} does not exist")
            raise HispeedError(f"Type {stmt.name.upper()} does not exist.")
        del parts.catalog.types[stmt.name.upper()]
        return Result("status", f"Dropped type '{stmt.name.upper()}'")
    source = parts.catalog.sources.get(stmt.name)
    if source is None and (unmade := _unmade_writer(parts, stmt.name)) is not None:
        # a CREATE ... AS SELECT that failed on replay: its query is in ERROR, its sink was
        # never made again; dropping it stops that query (and deletes the topic if asked)
        topic = unmade.sink_topic
        if stmt.delete_topic and not call.replay and topic in parts.log.list_topics(internal=True):
            parts.log.delete_topic(str(topic))
        parts.runtime.stop_query(unmade.id)
        return Result(
            "status", f"Source `{stmt.name}` (its query {unmade.id} was in ERROR) was dropped."
        )
    if source is None:
        if stmt.if_exists:
            return Result("status", f"Source {stmt.name} does not exist.")
        raise HispeedError(f"{stmt.kind.capitalize()} {stmt.name} does not exist.")
    if stmt.delete_topic:
        # ksqlDB's TopicDeleteInjector runs before the drop itself is checked
        if source.source_table:
            raise HispeedError(f"Cannot delete topic for read-only source: {source.name}")
        sharing = sorted(
            s.name
            for s in parts.catalog.sources.values()
            if s.topic == source.topic and s.name != source.name
        )
        if sharing:
            raise HispeedError(
                f"Refusing to delete topic. Found other data sources ({', '.join(sharing)}) "
                f"using topic {source.topic}"
            )
    if source.kind != stmt.kind:
        raise HispeedError(
            f"Incompatible data source type is {source.kind.lower()}, but statement was DROP "
            f"{stmt.kind.lower()}"
        )
    readers = [q.id for q in parts.catalog.readers_of(source.name)]
    writers = [q.id for q in parts.catalog.writers_of(source.name) if q.id != source.writer]
    if readers or writers:
        raise HispeedError(
            f"Cannot drop {source.name}.\nThe following queries read from this source: "
            f"[{', '.join(sorted(readers))}].\nThe following queries write into this "
            f"source: [{', '.join(sorted(writers))}].\nYou need to terminate them before "
            "dropping " + source.name + "."
        )
    # the step that may fail first: what follows cannot (a stopped query is not restarted)
    if (
        stmt.delete_topic
        and not call.replay
        and source.topic in parts.log.list_topics(internal=True)
    ):
        parts.log.delete_topic(source.topic)
    if source.writer and source.writer in parts.runtime.tasks:
        parts.runtime.stop_query(source.writer)
    del parts.catalog.sources[source.name]
    return Result("status", f"Source `{source.name}` (topic: {source.topic}) was dropped.")


def _unmade_writer(parts: EngineParts, name: str) -> QueryInfo | None:
    """The query in ERROR of a CREATE ... AS SELECT of `name` that failed on replay."""
    return next(
        (q for q in parts.catalog.writers_of(name) if q.unmade and q.sink_topic is not None),
        None,
    )


def formats(
    properties: Mapping[str, Any], props: Mapping[str, Any], pos: tuple[int, int]
) -> tuple[str, str]:
    """The key and value formats a WITH clause names (`props`), else the defaults the
    engine's `properties` set."""
    fmt = props.get("FORMAT")
    key_format = props.get("KEY_FORMAT")
    value_format = props.get("VALUE_FORMAT")
    for name in ("KEY_FORMAT", "VALUE_FORMAT"):
        if fmt is not None and props.get(name) is not None:
            raise SqlError(
                f"Cannot supply both '{name}' and 'FORMAT' properties, as 'FORMAT' sets both "
                "key and value formats. Either use just 'FORMAT', or use 'KEY_FORMAT' and "
                "'VALUE_FORMAT'.",
                *pos,
            )
    key_format = key_format or fmt or properties.get("ksql.persistence.default.format.key", "KAFKA")
    value_format = value_format or fmt or properties.get("ksql.persistence.default.format.value")
    if value_format is None:
        raise SqlError(
            "Statement is missing the 'VALUE_FORMAT' property from the WITH "
            "clause. Either provide one or set a default via the "
            "'ksql.persistence.default.format.value' config.",
            *pos,
        )
    return str(key_format).upper(), str(value_format).upper()


def source_formats(source: Source, registry: SchemaRegistry | None = None) -> tuple[Format, Format]:
    """A source's key and value formats, bound to its topic and the schema registry."""
    context = FormatContext(registry, source.topic or None)
    try:
        key = get_format(source.key_format, source.key_properties, is_key=True, context=context)
        value = get_format(source.value_format, source.value_properties, context=context)
    except FormatError as e:
        raise HispeedError(str(e)) from None
    return key, value


def check_formats(
    source: Source,
    columns: bool = True,
    registry: SchemaRegistry | None = None,
    register: str | None = None,
) -> None:
    """Refuse formats that do not exist or cannot hold the source's columns. `register`:
    "always" (a sink) or "if-absent" (a CREATE with columns) registers the schemas of the
    schema-registry formats under the topic's subjects, as ksqlDB's SchemaRegisterInjector."""
    key_fmt, value_fmt = source_formats(source, registry)
    try:
        if not columns:
            return
        if source.key_columns or source.key_format != "KAFKA":
            key_fmt.check_columns(source.key_columns, is_key=True)
        value_fmt.check_columns(source.value_columns, is_key=False)
        if register is None or registry is None:
            return
        for fmt, cols in ((key_fmt, source.key_columns), (value_fmt, source.value_columns)):
            if not isinstance(fmt, SchemaFormat) or (fmt.is_key and not cols):
                continue
            if register == "always" or registry.latest(fmt.subject) is None:
                fmt.register(cols)
    except FormatError as e:
        raise HispeedError(str(e)) from None


def check_schema_ids(
    props: Mapping[str, Any],
    key_format: str,
    value_format: str,
    key_cols: list[Column],
    value_cols: list[Column],
) -> None:
    """A CREATE's KEY_/VALUE_SCHEMA_ID needs a format that infers schemas and no columns of
    its own on that side (ksqlDB's DefaultSchemaInjector, with its messages)."""
    for side, fmt, cols in (("KEY", key_format, key_cols), ("VALUE", value_format, value_cols)):
        if props.get(f"{side}_SCHEMA_ID") is None:
            continue
        cls = FORMATS.get(fmt.upper())
        if cls is None or not cls.uses_registry:
            raise HispeedError(
                f"{side}_FORMAT should support schema inference when {side}_SCHEMA_ID is "
                f"provided. Current format is {fmt.upper()}."
            )
        if cols:
            raise HispeedError(
                f"Table elements and {side}_SCHEMA_ID cannot both exist for create statement."
            )


def infer_columns(
    key_fmt: Format, value_fmt: Format, want_key: bool, want_value: bool
) -> tuple[list[Column], list[Column]]:
    """The key and value columns the registered schemas give (ksqlDB's DefaultSchemaInjector),
    for the sides a CREATE declares no columns of and whose format keeps schemas."""
    key: list[Column] = []
    value: list[Column] = []
    try:
        if want_key and isinstance(key_fmt, SchemaFormat):
            key = key_fmt.infer_columns()
        if want_value and isinstance(value_fmt, SchemaFormat):
            value = value_fmt.infer_columns()
    except FormatError as e:
        raise HispeedError(str(e)) from None
    return key, value


def ensure_topic(
    log: Log, topic: str, props: Mapping[str, Any], kind: str, partitions: int | None = None
) -> None:
    """Create a source's topic (`props` says how many partitions, else `partitions`), or
    check the one there has as many partitions as asked."""
    if topic in log.list_topics(internal=True):
        wanted = props.get("PARTITIONS")
        have = len(log.describe_topic(topic).partitions)
        if wanted is not None and int(wanted) != have:
            raise HispeedError(
                f"A Kafka topic with the name '{topic}' already exists, with different "
                f"partition/replica configuration than required. KSQL expects {wanted} "
                f"partitions (topic has {have}), 1 replication factor (topic has 1)."
            )
        return
    count = props.get("PARTITIONS") or partitions
    if count is None:
        raise HispeedError(
            f"Topic '{topic}' does not exist. If you want to create a new topic for the "
            f"{kind.lower()} please re-run the statement providing the required 'PARTITIONS' "
            "configuration in the WITH clause (and optionally 'REPLICAS'). For example: "
            f"CREATE {kind} X WITH (KAFKA_TOPIC='{topic}', PARTITIONS=1, ...)"
        )
    log.create_topic(topic, int(count), exist_ok=True)


def upper_or_none(value: Any) -> str | None:
    """A property's value in upper case (a column name), or None when not set."""
    return None if value is None else str(value).upper()


def configured_wrapping(
    value_props: dict[str, Any],
    value_columns: int,
    value_format: str,
    properties: Mapping[str, Any],
) -> dict[str, Any]:
    """`value_props` with WRAP_SINGLE_VALUE from `ksql.persistence.wrap.single.values` when the
    statement does not set it, the value has one column and its format can do it (ksqlDB's
    SerdeFeaturesFactory.getDefaultValueWrapping)."""
    configured = properties.get("ksql.persistence.wrap.single.values")
    if configured is None or "WRAP_SINGLE_VALUE" in value_props or value_columns != 1:
        return value_props
    wrap = parse_bool_option("ksql.persistence.wrap.single.values", configured)
    cls = FORMATS.get(str(value_format).upper())
    if cls is None or not (cls.supports_wrap if wrap else cls.supports_unwrap):
        return value_props
    return {**value_props, "WRAP_SINGLE_VALUE": wrap}


def format_props(
    props: Mapping[str, Any], *, key: bool, source_name: str | None = None
) -> dict[str, Any]:
    """The key's (or the value's) format properties of a WITH clause. An AVRO key's record
    is named after the source (`source_name`) unless KEY_SCHEMA_FULL_NAME names it, as
    ksqlDB's AvroFormat.getKeySchemaName: OUTPUT_TOPIC gives
    io.confluent.ksql.avro_schemas.OutputTopicKey."""
    if key:
        names: tuple[str, ...] = ("KEY_DELIMITER", *KEY_SCHEMA_PROPERTIES)
    else:
        names = ("VALUE_DELIMITER", "WRAP_SINGLE_VALUE", *VALUE_SCHEMA_PROPERTIES)
    out = {k: v for k, v in props.items() if k in names}
    key_format = str(props.get("FORMAT") or props.get("KEY_FORMAT") or "").upper()
    if key and source_name and key_format == "AVRO" and "KEY_SCHEMA_FULL_NAME" not in out:
        out["KEY_SCHEMA_FULL_NAME"] = avro_key_name(source_name)
    return out


def avro_key_name(source_name: str) -> str:
    """ksqlDB's default full name of an AVRO key's record for a source (UPPER_UNDERSCORE
    to UpperCamel, then "Key")."""
    camel = "".join(w[:1].upper() + w[1:].lower() for w in source_name.split("_") if w)
    return f"io.confluent.ksql.avro_schemas.{camel}Key"


def window_info(props: Mapping[str, Any]) -> WindowInfo:
    """The window of a source over a windowed topic (WINDOW_TYPE, WINDOW_SIZE)."""
    found = window_properties(props)
    assert found is not None
    return WindowInfo(*found)


def check_timestamp_column(source: Source) -> None:
    """Refuse a TIMESTAMP column that does not exist or cannot be a time."""
    assert source.timestamp is not None
    col = source.column(source.timestamp)
    if col is None:
        raise HispeedError(
            f"The TIMESTAMP column set in the WITH clause does not exist in the "
            f"schema: '{source.timestamp}'"
        )
    # ksqlDB's TimestampExtractionPolicyFactory, in its order
    if col.type.name == "STRING":
        if not source.timestamp_format:
            raise HispeedError(
                "A String timestamp field has been specified without also specifying the "
                "timestamp_format"
            )
        return
    if source.timestamp_format:
        raise HispeedError(
            "'TIMESTAMP_FORMAT' set in the WITH clause can only be used when the timestamp "
            "column is of type STRING."
        )
    if col.type.name not in ("BIGINT", "TIMESTAMP"):
        raise HispeedError(
            f"Timestamp column, `{col.name}`, should be LONG(INT64), TIMESTAMP, "
            "or a String with a timestamp_format specified."
        )
