"""Flink SQL's DDL on hispeed: what each Flink table, view and INSERT INTO becomes.

- A `'connector' = 'nexmark'` table (or `'datagen'` with Nexmark's ROW columns `person`,
  `auction`, `bid`) is declared, not made: hispeed's Nexmark events are in three topics
  (`person`, `auction`, `bid`: docs/nexmark.md), and each view that selects one kind's fields
  `WHERE event_type = n` becomes a stream over that kind's topic.
- A `'kafka'` (or `'upsert-kafka'`) table is a stream over its topic, a table when it has a
  PRIMARY KEY; `'format'` is the value format; the WATERMARK's column is its record time.
- A `'blackhole'`, `'print'` or `'filesystem'` table is a sink declared for a later INSERT
  INTO: that INSERT makes it, as a CREATE STREAM (or TABLE, when the query's result is a
  table: an aggregation, a Top-N) AS SELECT whose columns take the sink's names by position.
- Any other view is a persistent query: CREATE STREAM (or TABLE) name AS its SELECT.
"""

from __future__ import annotations

import dataclasses
import re

from hispeed.errors import HispeedError, SqlError
from hispeed.plan.query import plan_query
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.flink import FlinkTable, FlinkView, flink_query
from hispeed.sql.format import sql
from hispeed.statements import flink_files, flink_sink_types, flink_views, queries, sources
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result

#: Nexmark's event kinds by `event_type`, each hispeed's topic of that name
NEXMARK_KINDS = ("person", "auction", "bid")
#: Flink's format names, hispeed's
FORMATS = {"json": "JSON", "avro": "AVRO", "csv": "DELIMITED", "raw": "KAFKA"}
SINKS = ("blackhole", "print", "filesystem")
#: the engine property: partitions of a Flink 'kafka' table's missing topic without 'partitions'
DEFAULT_PARTITIONS = "flink.kafka.partitions"
MAX_PARTITIONS = 10_000


def _prop(value: object, pos: ast.Pos) -> ast.Property:
    return ast.Property(value, pos=pos)


def _is_nexmark(table: FlinkTable) -> bool:
    names = {c.name for c in table.columns}
    return table.connector == "nexmark" or (
        table.connector == "datagen" and {k.upper() for k in NEXMARK_KINDS} <= names
    )


def _exists(parts: EngineParts, name: str, if_not_exists: bool, kind: str) -> Result | None:
    """Refuse a name in use (a stream, a table, a Flink table declared), or say so (IF NOT
    EXISTS); None if it is free."""
    catalog = parts.catalog
    if (
        name not in catalog.sources
        and name not in catalog.flink
        and name not in catalog.flink_views
    ):
        return None
    if if_not_exists:
        return Result("status", f"{name} already exists")
    if name in parts.catalog.sources:
        raise sources.already_exists(parts, kind, name)
    what = "table" if name in catalog.flink else "view"
    raise HispeedError(
        f"Cannot add {kind.lower()} '{name}': a Flink {what} of that name is declared"
    )


def create_table(parts: EngineParts, stmt: FlinkTable, call: Call) -> Result:
    """A Flink CREATE TABLE: a stream or table over a topic, or a declaration (module doc)."""
    catalog = parts.catalog
    exists = _exists(parts, stmt.name, stmt.if_not_exists, "TABLE")
    if exists is not None:
        return exists
    connector = stmt.connector
    if connector in ("kafka", "upsert-kafka"):
        return sources.create_source(parts, _kafka_source(parts, stmt), call)
    if connector == "datagen" and not _is_nexmark(stmt):
        raise SqlError(
            "hispeed's Flink 'datagen' table has Nexmark's shape only (ROW columns person, "
            "auction and bid); hispeed's own datagen connector makes other data "
            "(CREATE SOURCE CONNECTOR ... WITH ('connector.class'='datagen'))",
            *stmt.pos,
        )
    catalog.flink[stmt.name] = stmt
    call.undo.append(lambda: catalog.flink.pop(stmt.name, None))
    what = "a Nexmark source" if _is_nexmark(stmt) else f"a '{connector}' sink"
    return Result("status", f"Table {stmt.name} declared: {what}")


def _partitions(parts: EngineParts, stmt: FlinkTable, topic: str) -> int | None:
    """hispeed's 'partitions' option: the count a missing topic is made with (a whole number
    from 1 to 10000, refused at its place otherwise); without it, a missing topic is made with
    `flink.kafka.partitions` partitions (1 by default), as Flink's Kafka leaves that to the
    broker; None for a topic there (its own count)."""
    text = stmt.options.get("partitions")
    if text is None:
        if topic in parts.log.list_topics(internal=True):
            return None
        text = str(parts.properties.get(DEFAULT_PARTITIONS, "1"))
        pos = stmt.pos
        what = f"the setting '{DEFAULT_PARTITIONS}'"
    else:
        pos = stmt.option_pos.get("partitions", stmt.pos)
        what = "'partitions'"
    count = int(text) if text.strip().isascii() and text.strip().isdigit() else 0
    if not 1 <= count <= MAX_PARTITIONS:
        raise SqlError(
            f"{what} is the number of partitions of the topic '{topic}': a whole number from "
            f"1 to {MAX_PARTITIONS}, not '{text}'",
            *pos,
        )
    return count


def _kafka_source(parts: EngineParts, stmt: FlinkTable) -> ast.CreateSource:
    for c in stmt.columns:
        if c.type is None:
            raise SqlError(
                f"computed column {c.name}: hispeed's Flink 'kafka' tables have physical "
                "columns only",
                *c.pos,
            )
    options = stmt.options
    kind = "TABLE" if stmt.primary_key else "STREAM"
    if stmt.connector == "upsert-kafka" and kind == "STREAM":
        raise SqlError("an 'upsert-kafka' table needs a PRIMARY KEY (...) NOT ENFORCED", *stmt.pos)
    topic = options.get("topic")
    if topic is None:
        raise SqlError("a Flink 'kafka' table names its 'topic'", *stmt.pos)
    fmt = options.get("value.format", options.get("format", "json")).lower()
    if fmt not in FORMATS:
        raise SqlError(
            f"Flink format '{fmt}' is not supported; these are: " + ", ".join(FORMATS),
            *stmt.pos,
        )
    key_fmt = options.get("key.format", "json" if len(stmt.primary_key) > 1 else "raw").lower()
    props = {
        "KAFKA_TOPIC": _prop(topic, stmt.pos),
        "VALUE_FORMAT": _prop(FORMATS[fmt], stmt.pos),
        "KEY_FORMAT": _prop(FORMATS.get(key_fmt, "KAFKA"), stmt.pos),
    }
    partitions = _partitions(parts, stmt, topic)
    if partitions is not None:
        props["PARTITIONS"] = _prop(partitions, stmt.pos)
    if stmt.watermark is not None:
        props["TIMESTAMP"] = _prop(stmt.watermark[0], stmt.pos)
    columns = tuple(
        ast.ColumnDef(c.name, c.type, primary_key=c.name in stmt.primary_key, pos=c.pos)  # type: ignore[arg-type]
        for c in stmt.columns
    )
    return ast.CreateSource(
        kind, stmt.name, columns, props, False, stmt.if_not_exists, pos=stmt.pos
    )


def create_view(parts: EngineParts, stmt: FlinkView, call: Call) -> Result:
    """A Flink CREATE VIEW: a stream over a Nexmark kind's topic, or a persistent query."""
    catalog = parts.catalog
    exists = _exists(parts, stmt.name, stmt.if_not_exists, "STREAM")
    if exists is not None:
        return exists
    query = stmt.query
    base = query.from_
    if isinstance(base, ast.SourceRef) and base.name in catalog.flink:
        table = catalog.flink[base.name]
        if not _is_nexmark(table):
            raise SqlError(
                f"{base.name} is a '{table.connector}' sink: INSERT INTO it, not read it",
                *base.pos,
            )
        return sources.create_source(parts, _nexmark_view(stmt, table), call)
    if flink_views.proctime_column(query) is not None:
        # inlined where it is read, as Flink does (statements/flink_views.py)
        catalog.flink_views[stmt.name] = stmt
        call.undo.append(lambda: catalog.flink_views.pop(stmt.name, None))
        return Result("status", f"View {stmt.name} declared: a processing-time view")
    return make_view(parts, stmt.name, query, stmt.pos, call)


def make_view(parts: EngineParts, name: str, query: ast.Select, pos: ast.Pos, call: Call) -> Result:
    """A Flink view (or a subquery made one): its subqueries made views first, then a window
    aggregation's stream, or CREATE STREAM (or TABLE) name AS its SELECT."""
    flink_files.read_sources(parts, query, call)
    query = flink_views.hoist(parts, query, name, call, make_view)
    if flink_views.is_window_aggregation(query):
        return flink_views.create_window_view(parts, name, query, pos, call)
    kind, query, props = _keyed(parts, query, name, pos)
    create = ast.CreateAsSelect(kind, name, query, props, pos=pos)
    return queries.create_as_select(parts, create, call)


def _nexmark_view(view: FlinkView, table: FlinkTable) -> ast.CreateSource:
    """`SELECT kind.f, ..., dateTime FROM nexmark WHERE event_type = n`: a stream over the
    topic of kind n, the columns the ROW's fields (or the table's own, its time)."""
    query = view.query
    where = query.where
    kind_no = (
        where.right.value
        if isinstance(where, ast.BinaryOp)
        and where.op == "="
        and isinstance(where.left, ast.ColumnRef)
        and where.left.name == "EVENT_TYPE"
        and isinstance(where.right, ast.Literal)
        and isinstance(where.right.value, int)
        else None
    )
    if kind_no not in range(len(NEXMARK_KINDS)) or query.group_by or query.window:
        raise SqlError(
            "a view over the Nexmark table selects one kind of event: "
            "SELECT kind.field, ... FROM nexmark WHERE event_type = 0 (person), 1 (auction) "
            "or 2 (bid)",
            *query.pos if query.pos != ast.NOPOS else view.pos,
        )
    assert isinstance(kind_no, int)
    kind = NEXMARK_KINDS[kind_no].upper()
    columns_by_name = {c.name: c for c in table.columns}
    row = columns_by_name.get(kind)
    if row is None or row.type is None or row.type.name != "STRUCT":
        raise SqlError(f"the Nexmark table has no ROW column {kind}", *table.pos)
    columns: list[ast.ColumnDef] = []
    for item in query.items:
        if not isinstance(item, ast.SelectItem) or not isinstance(item.expr, ast.ColumnRef):
            raise SqlError(
                "a view over the Nexmark table selects columns, each kind.field or the table's own",
                *view.pos,
            )
        ref = item.expr
        col_type: T.SqlType | None
        if ref.source is None:
            own = columns_by_name.get(ref.name)
            # a computed column (Nexmark's dateTime) has the type of the ROW's field it picks
            col_type = (own.type or row.type.field(ref.name)) if own is not None else None
        elif ref.source == kind:
            col_type = row.type.field(ref.name)
        else:
            raise SqlError(
                f"{ref.source}.{ref.name}: a view of event_type {kind_no} reads {kind}'s fields",
                *ref.pos,
            )
        if col_type is None:
            raise SqlError(f"{ref.name} is no field of the Nexmark table's {kind}", *ref.pos)
        columns.append(ast.ColumnDef(item.alias or ref.name, col_type, pos=ref.pos))
    props = {
        "KAFKA_TOPIC": _prop(NEXMARK_KINDS[kind_no], view.pos),
        "VALUE_FORMAT": _prop("JSON", view.pos),
    }
    names = {c.name for c in columns}
    if table.watermark is not None and table.watermark[0] in names:
        props["TIMESTAMP"] = _prop(table.watermark[0], view.pos)
    return ast.CreateSource("STREAM", view.name, tuple(columns), props, pos=view.pos)


def result_kind(parts: EngineParts, query: ast.Select, name: str) -> str:
    """STREAM or TABLE: what `query` produces (an aggregation, a Top-N or a table's rows
    make a table), as CREATE ... AS SELECT checks it."""
    return _planned(parts, query, name)[0]


def _planned(parts: EngineParts, query: ast.Select, name: str) -> tuple[str, bool]:
    """`result_kind`, and whether the key has a type the KAFKA key format cannot hold (a
    TIMESTAMP: Flink's rows have no key, so the key's format is hispeed's to choose)."""
    plan = plan_query(query, parts.catalog, parts.log, "TABLE", name, parts.properties)
    table = plan.aggregation is not None or plan.source.kind == "TABLE" or plan.ranking
    kafka = ("INTEGER", "BIGINT", "DOUBLE", "STRING")
    return "TABLE" if table else "STREAM", any(c.type.name not in kafka for c in plan.key)


def _keyed(
    parts: EngineParts, query: ast.Select, name: str, pos: ast.Pos
) -> tuple[str, ast.Select, dict[str, ast.Property]]:
    """What `query` produces, the query, and its sink's properties: a join of streams that
    does not select its key (ksqlDB's rule: a stream's key is a column of it) is given none
    (PARTITION BY NULL), as a Flink row has no key; a table's key, or a key KAFKA cannot
    hold, is JSON."""
    try:
        kind, unkafka = _planned(parts, query, name)
    except SqlError as e:
        missing = str(e).split(": ", 1)[-1].startswith("Key missing from projection")
        rank = _unselected_rank(query)
        if rank is not None and str(e).split(": ", 1)[-1].startswith("select the rank"):
            # Flink's Top-N need not output its rank; hispeed's result is keyed by it
            item = ast.SelectItem(ast.ColumnRef(rank, pos=query.pos), rank, pos=query.pos)
            query = dataclasses.replace(query, items=(*query.items, item))
        elif not missing or query.partition_by:
            raise
        elif query.group_by:
            # Flink need not select what it groups by; ksqlDB's key columns are selected
            shown = {sql(i.expr) for i in query.items if isinstance(i, ast.SelectItem)}
            keys = [g for g in query.group_by if sql(g) not in shown]
            more = [ast.SelectItem(g, f"GROUP_KEY_{n}", pos=query.pos) for n, g in enumerate(keys)]
            query = dataclasses.replace(query, items=(*query.items, *more))
        elif isinstance(query.from_, ast.Join | ast.WindowJoin):
            keyless = (ast.Literal(None, None, pos=query.pos),)
            query = dataclasses.replace(query, partition_by=keyless)
        else:
            raise
        kind, unkafka = _planned(parts, query, name)
    props = _sink_props("TABLE" if unkafka else kind, pos)
    return kind, query, props


def _unselected_rank(query: ast.Select) -> str | None:
    """The name of the rank (`ROW_NUMBER() OVER (...) AS rn`) of a Top-N subquery the outer
    query reads but does not select (None: no such rank)."""
    sub = query.from_
    if not isinstance(sub, ast.Subquery):
        return None
    for item in sub.query.items:
        if isinstance(item, ast.SelectItem) and isinstance(item.expr, ast.OverCall):
            return item.alias
    return None


def _sink_props(kind: str, pos: ast.Pos) -> dict[str, ast.Property]:
    # a table's key may be several columns (GROUP BY a, b; PARTITION BY a, b): JSON holds them
    return {"KEY_FORMAT": _prop("JSON", pos)} if kind == "TABLE" else {}


def insert_into(parts: EngineParts, stmt: ast.InsertInto, call: Call) -> Result:
    """INSERT INTO: into a declared Flink sink, the CREATE ... AS SELECT that makes it;
    into anything else, ksqlDB's INSERT INTO (`queries.insert_into`)."""
    declared = parts.catalog.flink.get(stmt.target)
    if declared is None:
        # a sink that does not exist is the mistake to report first (queries.insert_into)
        if stmt.columns and stmt.target in parts.catalog.sources:
            raise SqlError(
                f"INSERT INTO {stmt.target} (columns) SELECT is Flink's, for a sink declared "
                "with CREATE TABLE ... WITH ('connector' = ...); ksqlDB's INSERT INTO ... "
                "SELECT fills a stream's columns by name, without a column list",
                *stmt.columns_pos,
            )
        target = parts.catalog.sources.get(stmt.target)
        if target is not None and target.kind == "TABLE" and _flink_made(target.statement):
            raise SqlError(
                f"INSERT INTO {stmt.target}: it is a Flink '{_connector(target.statement)}' "
                "table, which hispeed reads as a TABLE over its topic, and hispeed writes a "
                "table from the one query that makes it: write the aggregation as CREATE "
                f"TABLE name WITH (KAFKA_TOPIC='{target.topic}', KEY_FORMAT='JSON') AS "
                "SELECT ... in place of this CREATE TABLE and INSERT INTO, or INSERT INTO a "
                "'blackhole', 'print' or 'filesystem' sink",
                *stmt.target_pos,
            )
        return queries.insert_into(parts, stmt, call)
    if _is_nexmark(declared):
        raise SqlError(f"{stmt.target} is a Nexmark source: it cannot be inserted into", *stmt.pos)
    query = _by_position(flink_query(stmt.query), declared, stmt)
    flink_files.read_sources(parts, query, call)
    query = flink_views.hoist(parts, query, stmt.target, call, make_view)
    made = parts.catalog.sources.get(stmt.target)
    if made is not None and made.kind == "TABLE":
        raise SqlError(
            f"INSERT INTO {stmt.target}: its first INSERT INTO (an aggregation or a Top-N) made "
            "it a table, which hispeed writes from that one query only; declare another sink "
            "for this query (CREATE TABLE other (...) WITH ('connector' = ...))",
            *stmt.target_pos,
        )
    if made is not None:
        # a second INSERT INTO the same sink: ksqlDB's, into the stream the first one made
        query = flink_sink_types.checked(parts, query, declared)
        return queries.insert_into(parts, ast.InsertInto(stmt.target, query, pos=stmt.pos), call)
    kind, query, props = _keyed(parts, query, stmt.target, stmt.pos)
    query = flink_sink_types.checked(parts, query, declared)
    props = {**props, **stmt.properties}
    create = ast.CreateAsSelect(kind, stmt.target, query, props, pos=stmt.pos)
    return queries.create_as_select(parts, create, call)


def _flink_made(statement: str | None) -> bool:
    """Whether a source was made by a Flink CREATE TABLE (its text names a 'connector')."""
    return _connector(statement) != ""


def _connector(statement: str | None) -> str:
    found = re.search(r"'connector'\s*=\s*'([^']*)'", statement or "", re.IGNORECASE)
    return found.group(1) if found else ""


def _by_position(query: ast.Select, sink: FlinkTable, stmt: ast.InsertInto) -> ast.Select:
    """Flink fills a sink's columns by position: each item takes its column's name (with a
    column list, the listed column's; a column left out of it gets NULL)."""
    names = [c.name for c in sink.columns if c.type is not None]
    if stmt.columns:
        return _by_list(query, sink, stmt)
    if any(isinstance(i, ast.AllColumns) for i in query.items):
        return query  # the source's own names (checked by the plan)
    if len(query.items) != len(names):
        raise SqlError(
            f"Column types of query result and sink for '{sink.name}' do not match: the "
            f"query has {len(query.items)} columns, the sink {len(names)} "
            f"({', '.join(names)})",
            *stmt.pos,
        )
    items = tuple(
        ast.SelectItem(i.expr, name, pos=i.pos)
        for i, name in zip(query.items, names, strict=True)
        if isinstance(i, ast.SelectItem)
    )
    return dataclasses.replace(query, items=items)


def _by_list(query: ast.Select, sink: FlinkTable, stmt: ast.InsertInto) -> ast.Select:
    """`INSERT INTO sink (c1, c2) SELECT a, b`: a fills c1, b fills c2, each column the list
    leaves out is NULL; the items in the sink's order, as `_by_position` would take them."""
    types = {c.name: c.type for c in sink.columns if c.type is not None}
    for n, name in enumerate(stmt.columns):
        if name not in types or name in stmt.columns[:n]:
            what = "is listed twice" if name in types else "is not a column of the sink"
            raise SqlError(
                f"INSERT INTO {sink.name}: {name} {what} (its columns: {', '.join(types)})",
                *stmt.columns_pos,
            )
    items = query.items
    if any(isinstance(i, ast.AllColumns) for i in items) or len(items) != len(stmt.columns):
        raise SqlError(
            f"INSERT INTO {sink.name} lists {len(stmt.columns)} columns: the query must give "
            f"as many, named one by one (it gives {len(items)}"
            f"{', with *' if any(isinstance(i, ast.AllColumns) for i in items) else ''})",
            *stmt.columns_pos,
        )
    given = dict(zip(stmt.columns, items, strict=True))
    ordered: list[ast.SelectItem] = []
    for name, sql_type in types.items():
        item = given.get(name)
        if isinstance(item, ast.SelectItem):
            ordered.append(ast.SelectItem(item.expr, name, pos=item.pos))
        else:  # left out of the list: NULL, as Flink fills it
            null = ast.Cast(ast.Literal(None, None, pos=stmt.columns_pos), sql_type)
            ordered.append(ast.SelectItem(null, name, pos=stmt.columns_pos))
    return dataclasses.replace(query, items=tuple(ordered))


def drop(parts: EngineParts, stmt: ast.Drop, call: Call) -> Result:
    """DROP TABLE of a Flink table: its declaration goes (and the stream or table its INSERT
    INTO made, as ksqlDB's DROP); any other DROP is ksqlDB's (`sources.drop`)."""
    catalog = parts.catalog
    if stmt.kind == "VIEW":
        return _drop_view(parts, stmt, call)
    declared = catalog.flink.get(stmt.name) if stmt.kind != "TYPE" else None
    if declared is None:
        made = catalog.sources.get(stmt.name)
        if stmt.kind == "TABLE" and made is not None and _flink_made(made.statement):
            # a Flink 'kafka' table is a stream here: Flink's DROP TABLE drops it all the same
            stmt = dataclasses.replace(stmt, kind=made.kind)
        return sources.drop(parts, stmt, call)
    del catalog.flink[stmt.name]
    call.undo.append(lambda: catalog.flink.setdefault(stmt.name, declared))
    made = catalog.sources.get(stmt.name)
    if made is not None:
        # the stream or table its INSERT INTO made (a Flink table may be either here)
        return sources.drop(parts, dataclasses.replace(stmt, kind=made.kind), call)
    return Result("status", f"Table {stmt.name} dropped (a Flink table declared, never made)")


def _drop_view(parts: EngineParts, stmt: ast.Drop, call: Call) -> Result:
    """Flink's DROP VIEW: a view inlined where read goes from the catalog; a view made a
    stream or table is dropped as one (a window view with its windowed table)."""
    catalog = parts.catalog
    view = catalog.flink_views.pop(stmt.name, None)
    if view is not None:
        call.undo.append(lambda: catalog.flink_views.setdefault(stmt.name, view))
        return Result("status", f"View {stmt.name} dropped")
    made = catalog.sources.get(stmt.name)
    if made is None:
        if stmt.if_exists:
            return Result("status", f"View {stmt.name} does not exist")
        raise SqlError(f"View {stmt.name} does not exist.", *stmt.pos)
    window = flink_views.is_window_view(parts, made)
    result = sources.drop(parts, dataclasses.replace(stmt, kind=made.kind), call)
    if window:
        flink_views.drop_view_parts(parts, stmt.name, sources.drop, call)
    return result


__all__ = ["create_table", "create_view", "drop", "insert_into", "result_kind"]
