"""The engine: statements in, streams, tables and running queries out.

`Engine(data_dir)` runs everything in-process on the embedded log:

    >>> import hispeed
    >>> engine = hispeed.Engine("hispeed-data")
    >>> engine.execute("CREATE STREAM readings (id STRING KEY, x DOUBLE) "
    ...                "WITH (kafka_topic='readings', value_format='JSON', partitions=1)")
    >>> engine.execute("CREATE TABLE peaks AS SELECT id, MAX(x) AS peak FROM readings GROUP BY id")
    >>> engine.insert("readings", {"ID": "device1", "X": 0.5})
    >>> engine.drain()                      # process what is there (a server runs continuously)

Every statement that changes the catalog is kept in the command topic, so opening the same
data directory again brings back every stream, table and query where it left off.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pyarrow as pa

from hispeed.catalog import Catalog, Source, WindowInfo
from hispeed.errors import HispeedError, SqlError
from hispeed.expr.casts import coerce
from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Scope
from hispeed.formats.base import Column, FormatError, get_format
from hispeed.functions.registry import EvalContext
from hispeed.log.base import Log
from hispeed.log.embedded import EmbeddedLog
from hispeed.plan.model import QueryPlan, UnsupportedError
from hispeed.plan.query import plan_query
from hispeed.runtime.context import QueryContext
from hispeed.runtime.manager import QueryManager
from hispeed.runtime.task import PROCESSING_LOG

if TYPE_CHECKING:
    from hispeed.runtime.distributed import DistributedTask
    from hispeed.runtime.task import QueryTask
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.parser import parse_iter, parse_query

log = logging.getLogger(__name__)

COMMAND_TOPIC = "_hispeed_command_topic"
_DURATION_UNITS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}


@dataclass
class Result:
    """What a statement gave: a status message, and rows for SHOW/DESCRIBE/queries."""

    kind: str  # "status", "sources", "queries", "describe", "properties", "topics", "rows"
    message: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    statement: str = ""
    query_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # DESCRIBE's details, structured


class Engine:
    """hispeed's streaming SQL engine over a log (the embedded one by default)."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        log_: Log | None = None,
        properties: Mapping[str, Any] | None = None,
        fsync: str = "1000ms",
        udf_modules: Sequence[str] = (),
        worker_id: str | None = None,
    ) -> None:
        """`worker_id`: this process's name among the workers of one application on Kafka
        (default: host and PID)."""
        from hispeed.functions.udf.loading import load_modules

        load_modules(udf_modules)  # before the replay: restored queries may call them
        if log_ is None:
            if data_dir is None:
                raise HispeedError("Engine needs a data directory or a log")
            log_ = EmbeddedLog(Path(data_dir), fsync=fsync)
        self.log = log_
        self.catalog = Catalog()
        #: what the runtime and the connectors are given (the engine's log, catalog,
        #: properties and lock), never the engine itself
        self.context = QueryContext(
            self.log, self.catalog, {"auto.offset.reset": "earliest", **(properties or {})}
        )
        if self.properties.get("redis.url"):  # what REDIS_HASH / REDIS_GET read by default
            from hispeed.functions.redis import set_default_url

            set_default_url(str(self.properties["redis.url"]))
        #: what runs: the queries' tasks, push-query feeds and pull views
        self.runtime = QueryManager(self.context)
        #: who this engine is among the workers sharing a (Kafka) log's command topic
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        #: the next command-topic offset this engine has not applied
        self._command_offset = 0
        self._synced_at = 0.0
        self.log.create_topic(COMMAND_TOPIC, 1, exist_ok=True)
        self.log.create_topic(PROCESSING_LOG, 1, exist_ok=True)
        from hispeed.connectors.runner import Connectors

        self.connectors = Connectors(self.context)
        self._replay()
        self.connectors.start_held()

    @property
    def properties(self) -> dict[str, Any]:
        """The engine's properties (SET and UNSET change them; queries read them)."""
        return self.context.properties

    @property
    def lock(self) -> threading.RLock:
        """Held by statements and each round of the query loop: hold it to read the catalog
        or the tasks while queries may run."""
        return self.context.lock

    @property
    def tasks(self) -> dict[str, QueryTask | DistributedTask]:
        """The running queries' tasks by query id (the runtime manager's)."""
        return self.runtime.tasks

    # -- statements -------------------------------------------------------------------------

    def execute(self, sql: str, properties: Mapping[str, Any] | None = None) -> list[Result]:
        """Run one or more statements; returns a result per statement."""
        with self.lock:
            self.sync_commands()
            results = []
            for parsed in parse_iter(sql, self.catalog.types):
                results.append(self._execute(parsed, dict(properties or {})))
            return results

    def execute_statement(
        self, parsed: ast.ParsedStatement, properties: Mapping[str, Any] | None = None
    ) -> Result:
        """Run one parsed statement with `properties` over the engine's (hold `lock`)."""
        return self._execute(parsed, dict(properties or {}))

    def _execute(
        self, parsed: ast.ParsedStatement, overrides: dict[str, Any], replay: bool = False
    ) -> Result:
        stmt = parsed.statement
        props = {**self.properties, **overrides}
        if isinstance(stmt, ast.CreateSource):
            result = self._create_source(stmt, parsed.text, replay)
        elif isinstance(stmt, ast.CreateAsSelect):
            result = self._create_as_select(stmt, parsed.text, props, replay)
        elif isinstance(stmt, ast.InsertInto):
            result = self._insert_into(stmt, parsed.text, replay)
        elif isinstance(stmt, ast.InsertValues):
            return self._insert_values(stmt)
        elif isinstance(stmt, ast.Drop):
            result = self._drop(stmt, replay)
        elif isinstance(stmt, ast.CreateConnector):
            if stmt.if_not_exists and stmt.name in self.connectors.runners:
                return Result("status", f"Connector {stmt.name} already exists")
            props = {k: p.value for k, p in stmt.properties.items()}
            result = Result(
                "status", self.connectors.create(stmt.kind, stmt.name, props, parsed.text)
            )
        elif isinstance(stmt, ast.DropConnector):
            result = Result("status", self.connectors.drop(stmt.name, stmt.if_exists))
        elif isinstance(stmt, ast.CreateType):
            if stmt.name.upper() in self.catalog.types and not stmt.if_not_exists:
                raise HispeedError(
                    f"Cannot register custom type '{stmt.name.upper()}' since it "
                    f"is already registered with type: "
                    f"{self.catalog.types[stmt.name.upper()]}"
                )
            self.catalog.types.setdefault(stmt.name.upper(), stmt.type)
            result = Result(
                "status",
                f"Registered custom type with name '{stmt.name.upper()}' and SQL type {stmt.type}",
            )
        elif isinstance(stmt, ast.SetProperty):
            self.properties[stmt.name] = stmt.value
            return Result("status", f"Successfully set property '{stmt.name}'")
        elif isinstance(stmt, ast.UnsetProperty):
            self.properties.pop(stmt.name, None)
            return Result("status", f"Successfully unset property '{stmt.name}'")
        elif isinstance(stmt, ast.Show):
            return self._show(stmt)
        elif isinstance(stmt, ast.Describe):
            return self._describe(stmt)
        elif isinstance(stmt, ast.Terminate):
            result = self._terminate(stmt)
        elif isinstance(stmt, ast.Explain):
            return self._explain(stmt)
        elif isinstance(stmt, ast.Print):
            return self._print(stmt)
        elif isinstance(stmt, ast.QueryStatement):
            return self._query(stmt.query)
        else:
            raise HispeedError(f"{type(stmt).__name__} is not supported yet")
        if not replay:
            self._record(parsed.text, overrides)
        result.statement = parsed.text
        return result

    def _record(self, text: str, overrides: Mapping[str, Any]) -> None:
        props = {
            k: v
            for k, v in {**self.properties, **overrides}.items()
            if isinstance(v, str | int | float | bool)
        }
        entry = {"statement": text, "properties": props, "worker": self.worker_id}
        result = self.log.append(COMMAND_TOPIC, [(None, msgspec.json.encode(entry))], partition=0)
        if int(result.offsets[0]) == self._command_offset:
            self._command_offset += 1  # nothing from another worker came in between

    def _replay(self) -> None:
        self._apply_commands(own=True)

    def sync_commands(self, every: float = 0.0) -> None:
        """Apply the statements other workers of a shared (Kafka) log have recorded since the
        last call, in the command topic's order: a statement sent to any worker runs on all."""
        if not self.log.shared or time.monotonic() - self._synced_at < every:
            return
        with self.lock:
            self._apply_commands(own=False)
            self._synced_at = time.monotonic()

    def _apply_commands(self, own: bool) -> None:
        """The command topic from where this engine stands; `own`: also this worker's own
        statements (a restart replays everything)."""
        start, end = self.log.offsets(COMMAND_TOPIC, 0)
        position = max(start, self._command_offset)
        if end <= position:
            return
        for batch in self.log.read(COMMAND_TOPIC, 0, position):
            offsets = batch.column("offset").to_pylist()
            for offset, value in zip(offsets, batch.column("value").to_pylist(), strict=True):
                self._command_offset = offset + 1
                entry = msgspec.json.decode(value)
                if not own and entry.get("worker") == self.worker_id:
                    continue
                saved = dict(self.properties)
                try:
                    self.properties.update(entry.get("properties", {}))
                    for parsed in parse_iter(entry["statement"], self.catalog.types):
                        self._execute(parsed, {}, replay=True)
                except HispeedError as e:  # a statement that no longer applies
                    log.warning("skipped on replay: %s (%s)", entry["statement"], e)
                finally:  # in place: the runtime holds this very dict
                    self.properties.clear()
                    self.properties.update(saved)

    # -- DDL --------------------------------------------------------------------------------

    def _create_source(self, stmt: ast.CreateSource, text: str, replay: bool) -> Result:
        props = {k: p.value for k, p in stmt.properties.items()}
        kind = stmt.kind
        if stmt.name in self.catalog.sources:
            if stmt.if_not_exists:
                return Result("status", f"Cannot add {kind.lower()} {stmt.name}: already exists")
            if not stmt.or_replace:
                existing = self.catalog.sources[stmt.name]
                raise HispeedError(
                    f"Cannot add {kind.lower()} '{stmt.name}': A "
                    f"{existing.kind.lower()} with the same name already exists"
                )
        key_cols, value_cols, header_cols = [], [], []
        seen: set[str] = set()
        for c in stmt.columns:
            if c.name in seen:
                raise SqlError(f"Duplicate column names: `{c.name}`", *c.pos)
            seen.add(c.name)
            if c.key and kind == "TABLE":
                raise SqlError(
                    f"Column `{c.name}` is a 'KEY' column: please use 'PRIMARY KEY' "
                    "for tables.\nTables have PRIMARY KEYs, which are unique and NON "
                    "NULL.\nStreams have KEYs, which have no uniqueness or NON NULL "
                    "constraints.",
                    *c.pos,
                )
            if c.primary_key and kind == "STREAM":
                raise SqlError(
                    f"Column `{c.name}` is a 'PRIMARY KEY' column: please use 'KEY' "
                    "for streams.\nTables have PRIMARY KEYs, which are unique and NON "
                    "NULL.\nStreams have KEYs, which have no uniqueness or NON NULL "
                    "constraints.",
                    *c.pos,
                )
            if c.name in ("ROWTIME", "ROWPARTITION", "ROWOFFSET", "WINDOWSTART", "WINDOWEND"):
                raise SqlError(
                    f"'{c.name}' is a reserved column name. You cannot use it as a name for a "
                    "column.",
                    *c.pos,
                )
            column = Column(c.name, c.type)
            if c.key or c.primary_key:
                key_cols.append(column)
            elif c.headers is not None:
                want = T.BYTES if c.headers else _HEADERS_TYPE
                if c.type != want:
                    shown = f"HEADER('{c.headers}')" if c.headers else "HEADERS"
                    raise SqlError(
                        f"Invalid type for {shown} column: expected {want}, got {c.type}",
                        *c.pos,
                    )
                header_cols.append((column, c.headers))
            else:
                value_cols.append(column)
        if stmt.or_replace and stmt.source:
            raise HispeedError(
                f"Cannot add {kind.lower()} '{stmt.name}': CREATE OR REPLACE is not "
                f"supported on source {kind.lower()}s."
            )
        key_format, value_format = self._formats(props, stmt.pos)
        probe = Source(
            name=stmt.name,
            kind=kind,
            key_columns=key_cols,
            value_columns=value_cols,
            topic="",
            key_format=key_format,
            value_format=value_format,
            key_properties=_format_props(props, key=True),
            value_properties=_format_props(props, key=False),
        )
        if not stmt.columns:
            self._check_formats(probe, columns=False)
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
            raise SqlError(
                "Tables require a PRIMARY KEY. Please define the PRIMARY KEY.", *stmt.pos
            )
        topic = props.get("KAFKA_TOPIC")
        if topic is None:
            raise SqlError(f'Missing required property "KAFKA_TOPIC" for CREATE {kind}', *stmt.pos)
        window = None
        if "WINDOW_TYPE" in props:
            window = _window_info(props)
        source = Source(
            name=stmt.name,
            kind=kind,
            key_columns=key_cols,
            value_columns=value_cols,
            topic=str(topic),
            key_format=key_format,
            value_format=value_format,
            key_properties=_format_props(props, key=True),
            value_properties=_format_props(props, key=False),
            header_columns=header_cols,
            timestamp=_upper(props.get("TIMESTAMP")),
            timestamp_format=props.get("TIMESTAMP_FORMAT"),
            window=window,
            statement=text,
            source_table=stmt.source,
        )
        self._check_formats(source)
        if source.timestamp is not None:
            _check_timestamp_column(source)
        if not replay:
            self._ensure_topic(source.topic, props, kind)
        self.catalog.add(source, replace=stmt.or_replace)
        return Result("status", f"{kind.capitalize()} created")

    def _formats(self, props: dict[str, Any], pos: tuple[int, int]) -> tuple[str, str]:
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
        key_format = (
            key_format or fmt or self.properties.get("ksql.persistence.default.format.key", "KAFKA")
        )
        value_format = (
            value_format or fmt or self.properties.get("ksql.persistence.default.format.value")
        )
        if value_format is None:
            raise SqlError(
                "Statement is missing the 'VALUE_FORMAT' property from the WITH "
                "clause. Either provide one or set a default via the "
                "'ksql.persistence.default.format.value' config.",
                *pos,
            )
        return str(key_format).upper(), str(value_format).upper()

    def _check_formats(self, source: Source, columns: bool = True) -> None:
        try:
            key_fmt = get_format(source.key_format, source.key_properties, is_key=True)
            value_fmt = get_format(source.value_format, source.value_properties)
            if not columns:
                return
            if source.key_columns or source.key_format != "KAFKA":
                key_fmt.check_columns(source.key_columns, is_key=True)
            value_fmt.check_columns(source.value_columns, is_key=False)
        except FormatError as e:
            raise HispeedError(str(e)) from None

    def _ensure_topic(
        self, topic: str, props: Mapping[str, Any], kind: str, partitions: int | None = None
    ) -> None:
        if topic in self.log.list_topics(internal=True):
            wanted = props.get("PARTITIONS")
            have = len(self.log.describe_topic(topic).partitions)
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
        self.log.create_topic(topic, int(count), exist_ok=True)

    def _plan(
        self, select: ast.Select, sink_kind: str | None, sink_name: str | None = None
    ) -> QueryPlan:
        return plan_query(select, self.catalog, self.log, sink_kind, sink_name)

    def _create_as_select(
        self, stmt: ast.CreateAsSelect, text: str, props: dict[str, Any], replay: bool
    ) -> Result:
        if stmt.name in self.catalog.sources and not stmt.or_replace:
            if stmt.if_not_exists:
                return Result("status", f"{stmt.name} already exists")
            existing = self.catalog.sources[stmt.name]
            raise HispeedError(
                f"Cannot add {stmt.kind.lower()} '{stmt.name}': A "
                f"{existing.kind.lower()} with the same name already exists"
            )
        if stmt.query.limit is not None:
            raise SqlError(
                f"CREATE {stmt.kind} AS SELECT statements don't support LIMIT clause.", *stmt.pos
            )
        plan = self._plan(stmt.query, stmt.kind, stmt.name)
        produces = (
            "TABLE" if (plan.aggregation is not None or plan.source.kind == "TABLE") else "STREAM"
        )
        if produces != stmt.kind:
            raise SqlError(
                f"Invalid result type. Your SELECT query produces a {produces}. "
                f"Please use CREATE {produces} AS SELECT statement instead.",
                *stmt.pos,
            )
        with_props = {k: p.value for k, p in stmt.properties.items()}
        src = plan.source
        _check_intermediate_types(plan)
        key_format = with_props.get("KEY_FORMAT") or with_props.get("FORMAT") or src.key_format
        value_format = (
            with_props.get("VALUE_FORMAT") or with_props.get("FORMAT") or src.value_format
        )
        key_props = {**src.key_properties, **_format_props(with_props, key=True)}
        value_props = _format_props(with_props, key=False)
        if str(value_format).upper() == str(src.value_format).upper() and not value_props:
            value_props = {
                k: v for k, v in src.value_properties.items() if k != "WRAP_SINGLE_VALUE"
            }
        if plan.key and str(key_format).upper() == "NONE":
            key_format = "KAFKA"
        if not plan.key and stmt.kind == "STREAM" and "KEY_FORMAT" in with_props:
            raise SqlError("Key format specified for stream without key columns.", *stmt.pos)
        if not plan.key and plan.repartition:
            key_format = "NONE"
        topic = str(with_props.get("KAFKA_TOPIC", stmt.name))
        sink = Source(
            name=stmt.name,
            kind=stmt.kind,
            key_columns=plan.key_columns,
            value_columns=plan.value_columns,
            topic=topic,
            key_format=str(key_format).upper(),
            value_format=str(value_format).upper(),
            key_properties=key_props,
            value_properties=value_props,
            timestamp=_upper(with_props.get("TIMESTAMP")),
            timestamp_format=with_props.get("TIMESTAMP_FORMAT"),
            window=plan.window_info,
            statement=text,
        )
        self._check_formats(sink)
        partitions = len(self.log.describe_topic(src.topic).partitions)
        if not replay:
            self._ensure_topic(topic, with_props, stmt.kind, partitions)
        else:
            self.log.create_topic(topic, partitions, exist_ok=True)
        prefix = "CTAS" if stmt.kind == "TABLE" else "CSAS"
        query_id = self.runtime.next_query_id(f"{prefix}_{stmt.name}")
        self.catalog.add(sink, replace=stmt.or_replace)
        sink.writer = query_id
        self.runtime.start_query(query_id, text, plan, sink, props)
        return Result("status", f"Created query with ID {query_id}", query_id=query_id)

    def _insert_into(self, stmt: ast.InsertInto, text: str, replay: bool) -> Result:
        target = self.catalog.sources.get(stmt.target)
        if target is None:
            raise SqlError(f"Source `{stmt.target}` does not exist.", *stmt.target_pos)
        if target.kind == "TABLE":
            raise HispeedError(
                f"INSERT INTO can only be used to insert into a stream. {target.name} is a table."
            )
        if target.source_table:
            raise HispeedError(f"Cannot insert into read-only {target.kind.lower()}: {target.name}")
        if target.header_columns:
            raise HispeedError(f"Cannot insert into {target.name} because it has header columns")
        plan = self._plan(stmt.query, target.kind, target.name)
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
        query_id = self.runtime.next_query_id("INSERTQUERY")
        self.runtime.start_query(query_id, text, plan, target)
        return Result("status", f"Created query with ID {query_id}", query_id=query_id)

    def _insert_values(self, stmt: ast.InsertValues) -> Result:
        target = self.catalog.sources.get(stmt.target)
        if target is None:
            message = f"Cannot insert values into an unknown stream/table: `{stmt.target}`"
            near = [n for n in self.catalog.sources if n.upper() == stmt.target.upper()]
            if near and near[0] != near[0].upper():
                message += (
                    f'\nDid you mean "{near[0]}"? Hint: wrap the source name in double quotes '
                    "to make it case-sensitive."
                )
            elif near:
                message += (
                    f"\nDid you mean {near[0]}? Hint: try removing double quotes from the "
                    "source name."
                )
            raise SqlError(message, *stmt.pos)
        if target.source_table:
            raise HispeedError(f"Cannot insert into read-only {target.kind.lower()}: {target.name}")
        columns = [*target.key_columns, *target.value_columns]
        names = list(stmt.columns) or [c.name for c in columns]
        if len(names) != len(stmt.values):
            raise SqlError(
                "Failed to prepare statement: Expected number columns and values to match: "
                f"{len(names)}, {len(stmt.values)}",
                *stmt.pos,
            )
        headers = [c.name for c, _ in target.header_columns if c.name in names]
        if headers:
            raise SqlError(f"Cannot insert into HEADER columns: {', '.join(headers)}", *stmt.pos)
        for name in names:
            if name in ("ROWPARTITION", "ROWOFFSET", "WINDOWSTART", "WINDOWEND"):
                raise SqlError(f"Inserting into column `{name}` is not allowed.", *stmt.pos)
        by_name = {c.name: c for c in columns}
        ctx = EvalContext()
        one = pa.RecordBatch.from_pydict({"$": [0]})
        values: dict[str, Any] = {}
        timestamp = None
        for name, expr in zip(names, stmt.values, strict=True):
            compiled = compile_expr(expr, Scope([]))
            if name == "ROWTIME":
                arr = compiled(one, ctx)
                timestamp = arr[0].as_py()
                continue
            col = by_name.get(name)
            if col is None:
                raise SqlError(f"Column name {name} does not exist.", *stmt.pos)
            arr = coerce(compiled(one, ctx), compiled.type, col.type, ctx)
            values[name] = arr.cast(col.type.to_arrow())
        self.insert_row(target, values, timestamp)
        return Result("status", "Inserted")

    def insert_row(
        self, target: Source, values: Mapping[str, pa.Array], timestamp: int | None
    ) -> None:
        key_fmt = get_format(target.key_format, target.key_properties, is_key=True)
        value_fmt = get_format(target.value_format, target.value_properties)

        def batch(cols: list[Column]) -> pa.RecordBatch:
            if not cols:
                return pa.RecordBatch.from_struct_array(pa.array([{}], type=pa.struct([])))
            return pa.RecordBatch.from_arrays(
                [values.get(c.name, pa.nulls(1, c.type.to_arrow())) for c in cols],
                names=[c.name for c in cols],
            )

        key = (
            key_fmt.encode(batch(target.key_columns), target.key_columns)
            if target.key_columns
            else pa.nulls(1, pa.binary())
        )
        value = value_fmt.encode(batch(target.value_columns), target.value_columns)
        record = {"key": key, "value": value}
        if timestamp is not None:
            record["timestamp"] = pa.array([timestamp], pa.int64())
        self.log.append(target.topic, pa.record_batch(record))

    def insert(self, name: str, row: Mapping[str, Any], timestamp: int | None = None) -> None:
        """Insert one row into a stream or table from Python values."""
        target = self.catalog.get(name.upper())
        values = {}
        for c in [*target.key_columns, *target.value_columns]:
            if c.name in row:
                try:
                    values[c.name] = pa.array([row[c.name]], c.type.to_arrow())
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
                    raise HispeedError(
                        f"{target.name}.{c.name} is {c.type}: {row[c.name]!r} does not fit ({e})"
                    ) from None
        self.insert_row(target, values, timestamp)

    def _drop(self, stmt: ast.Drop, replay: bool) -> Result:
        if stmt.kind == "TYPE":
            if stmt.name.upper() not in self.catalog.types:
                if stmt.if_exists:
                    return Result("status", f"Type {stmt.name} does not exist")
                raise HispeedError(f"Type {stmt.name.upper()} does not exist.")
            del self.catalog.types[stmt.name.upper()]
            return Result("status", f"Dropped type '{stmt.name.upper()}'")
        source = self.catalog.sources.get(stmt.name)
        if source is None:
            if stmt.if_exists:
                return Result("status", f"Source {stmt.name} does not exist.")
            raise HispeedError(f"{stmt.kind.capitalize()} {stmt.name} does not exist.")
        if source.kind != stmt.kind:
            raise HispeedError(
                f"Incompatible data source type is {source.kind}, but statement "
                f"was DROP {stmt.kind}"
            )
        readers = [q.id for q in self.catalog.readers_of(source.name)]
        writers = [q.id for q in self.catalog.writers_of(source.name) if q.id != source.writer]
        if readers or writers:
            raise HispeedError(
                f"Cannot drop {source.name}.\nThe following queries read from this source: "
                f"[{', '.join(sorted(readers))}].\nThe following queries write into this "
                f"source: [{', '.join(sorted(writers))}].\nYou need to terminate them before "
                "dropping " + source.name + "."
            )
        if source.writer and source.writer in self.tasks:
            self.runtime.stop_query(source.writer)
        del self.catalog.sources[source.name]
        if stmt.delete_topic and not replay:
            self.log.delete_topic(source.topic)
        return Result("status", f"Source `{source.name}` (topic: {source.topic}) was dropped.")

    def _terminate(self, stmt: ast.Terminate) -> Result:
        ids = list(self.tasks) if stmt.query_id is None else [stmt.query_id.upper()]
        for query_id in ids:
            if query_id not in self.catalog.queries:
                raise HispeedError(f"Unknown queryId: {query_id}")
            sink = self.catalog.queries[query_id].sink
            self.runtime.stop_query(query_id)
            if (
                sink
                and sink in self.catalog.sources
                and self.catalog.sources[sink].writer == query_id
            ):
                self.catalog.sources[sink].writer = None
        return Result("status", "Query terminated.")

    # -- information ------------------------------------------------------------------------

    def _show(self, stmt: ast.Show) -> Result:
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
                for s in sorted(self.catalog.sources.values(), key=lambda s: s.name)
                if s.kind == kind
            ]
            return Result(stmt.what.lower(), rows=rows)
        if stmt.what == "TOPICS":
            rows = [
                {"name": t, "replicaInfo": [1] * len(self.log.describe_topic(t).partitions)}
                for t in self.log.list_topics()
            ]
            return Result("topics", rows=rows)
        if stmt.what == "QUERIES":
            rows = [
                {
                    "id": q.id,
                    "queryString": q.statement,
                    "sinks": [q.sink] if q.sink else [],
                    "state": q.state,
                }
                for q in self.catalog.queries.values()
            ]
            return Result("queries", rows=rows)
        if stmt.what == "PROPERTIES":
            rows = [{"name": k, "value": str(v)} for k, v in sorted(self.properties.items())]
            return Result("properties", rows=rows)
        if stmt.what == "TYPES":
            rows = [{"name": k, "type": str(v)} for k, v in sorted(self.catalog.types.items())]
            return Result("types", rows=rows)
        if stmt.what == "CONNECTORS":
            return Result("connectors", rows=self.connectors.rows())
        if stmt.what == "FUNCTIONS":
            from hispeed.functions.udf.catalog import functions

            return Result("functions", rows=functions())
        raise HispeedError(f"SHOW {stmt.what} is not supported yet")

    def _describe(self, stmt: ast.Describe) -> Result:
        if stmt.connector:
            info = self.connectors.describe(stmt.name)
            return Result("describe_connector", message=str(info), info=info)
        if stmt.function:
            from hispeed.functions.udf.catalog import describe

            fn = describe(stmt.name)
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
        source = self.catalog.get(stmt.name, line=stmt.pos[0], column=stmt.pos[1])
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
            "writeQueries": [q.id for q in self.catalog.writers_of(source.name)],
            "readQueries": [q.id for q in self.catalog.readers_of(source.name)],
        }
        if source.window is not None:
            info["windowType"] = source.window.kind
        return Result("describe", rows=rows, message=str(info), info=info)

    def _explain(self, stmt: ast.Explain) -> Result:
        if isinstance(stmt.target, str):
            q = self.catalog.queries.get(stmt.target.upper())
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
        plan = self._plan(select, getattr(target, "kind", None))
        return Result("explain", message=describe_plan(plan))

    def _print(self, stmt: ast.Print) -> Result:
        topic = stmt.topic
        if topic not in self.log.list_topics(internal=True):
            raise HispeedError(
                f"Could not find topic '{topic}', or the KSQL user does not have "
                "permissions to list the topic. Topic names are case-sensitive."
            )
        rows = []
        for p in range(len(self.log.describe_topic(topic).partitions)):
            start, _ = self.log.offsets(topic, p)
            for batch in self.log.read(topic, p, start):
                for r in batch.to_pylist():
                    rows.append({"partition": p, **r})
        rows.sort(key=lambda r: (r["timestamp"], r["partition"], r["offset"]))
        if stmt.limit is not None:
            rows = rows[: stmt.limit]
        return Result("rows", rows=rows)

    def _query(self, select: ast.Select) -> Result:
        if select.emit is not None:
            raise UnsupportedError(
                "push queries (EMIT CHANGES) run through Engine.stream() or the server's /query"
            )
        from hispeed.runtime.pull import run_select

        return Result("rows", rows=run_select(self.runtime.views, select))

    def query(self, sql: str, *, format: str = "rows") -> Any:
        """Run a pull query: the current rows of a table (or what a stream holds now).

        `format` is "rows" (a list of dicts), "polars" or "pandas" (a DataFrame).

            >>> engine.query("SELECT * FROM peaks WHERE id = 'device1'")
            [{'ID': 'device1', 'PEAK': 0.5}]
        """
        from hispeed.runtime.pull import run_sql

        with self.lock:
            rows = run_sql(self.runtime.views, sql)
        if format == "rows":
            return rows
        if format == "polars":
            import polars as pl

            return pl.DataFrame(rows)
        if format == "pandas":
            import pandas as pd

            return pd.DataFrame(rows)
        raise HispeedError(f"format must be rows, polars or pandas, not {format!r}")

    def stream(self, sql: str, *, from_beginning: bool | None = None) -> Any:
        """Run a push query: its rows as they happen, as an iterator or an async iterator.

            >>> with engine.stream("SELECT id, x FROM readings WHERE x > 1 EMIT CHANGES") as q:
            ...     for row in q:      # or: async for row in q
            ...         print(row)

        `from_beginning` reads the source from its first record (default: from now on, or
        as the `auto.offset.reset` property says).
        """
        from hispeed.runtime.queries import PushQuery

        with self.lock:
            select = parse_query(sql, self.catalog.types)
            return PushQuery(self.runtime, self._plan(select, None), from_beginning=from_beginning)

    # -- running ----------------------------------------------------------------------------

    def drain(self, max_rounds: int = 1000, timeout: float = 60.0) -> int:
        """Run every query until none has anything left to read; returns records processed.

        On a shared log (Kafka) records arrive from the broker a moment after they are
        written: a query has nothing left only when its consumer has reached the end of every
        partition it reads, so this waits (up to `timeout` s without progress) until then.
        """
        return self.runtime.drain(max_rounds, timeout)

    def start(self) -> None:
        """Run the queries on a background thread until `close()`."""
        self.runtime.start(lambda: self.sync_commands(every=0.5))

    def close(self) -> None:
        """Stop the connectors and the queries, and close the log."""
        self.connectors.close()
        self.runtime.close()
        self.log.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_plan(plan: QueryPlan) -> str:
    lines = [f"source: {plan.source.name} ({plan.source.kind})"]
    if plan.where is not None:
        lines.append("filter: WHERE")
    if plan.aggregation is not None:
        agg = plan.aggregation
        window = agg.window.kind if agg.window else "none"
        lines.append(f"aggregate: {len(agg.calls)} aggregate(s), window {window}")
    lines.append("key: " + ", ".join(f"{c.name} {c.type}" for c in plan.key))
    lines.append("value: " + ", ".join(f"{c.name} {c.type}" for c in plan.value))
    return "\n".join(lines)


def _schema(keys: list[Column], values: list[Column]) -> str:
    return ", ".join(
        [f"`{c.name}` {c.type} KEY" for c in keys] + [f"`{c.name}` {c.type}" for c in values]
    )


def _upper(value: Any) -> str | None:
    return None if value is None else str(value).upper()


def _format_props(props: Mapping[str, Any], *, key: bool) -> dict[str, Any]:
    names = ("KEY_DELIMITER",) if key else ("VALUE_DELIMITER", "WRAP_SINGLE_VALUE")
    return {k: v for k, v in props.items() if k in names}


def _window_info(props: Mapping[str, Any]) -> WindowInfo:
    kind = str(props["WINDOW_TYPE"]).upper()
    if kind not in ("TUMBLING", "HOPPING", "SESSION"):
        raise HispeedError(f"WINDOW_TYPE must be TUMBLING, HOPPING or SESSION, not {kind}")
    size = props.get("WINDOW_SIZE")
    if kind == "SESSION":
        if size is not None:
            raise HispeedError("'WINDOW_SIZE' should not be set for SESSION windows.")
        return WindowInfo(kind, None)
    if size is None:
        raise HispeedError(
            f"{kind} windows require 'WINDOW_SIZE' to be provided in the WITH "
            "clause. For example: 'WINDOW_SIZE'='10 SECONDS'"
        )
    return WindowInfo(kind, parse_duration(str(size), "WINDOW_SIZE"))


def parse_duration(text: str, option: str) -> int:
    parts = text.strip().split()
    bad = f"Configuration {option} is invalid: Invalid duration: '{text}'."
    if len(parts) != 2 or not parts[0].isdigit():
        raise HispeedError(f"{bad} Use an amount and a unit, like '10 SECONDS'")
    unit = parts[1].upper().rstrip("S")
    if unit not in _DURATION_UNITS:
        raise HispeedError(f"{bad} Unknown time unit: '{parts[1].upper()}'")
    return int(parts[0]) * _DURATION_UNITS[unit]


def _check_timestamp_column(source: Source) -> None:
    assert source.timestamp is not None
    col = source.column(source.timestamp)
    if col is None:
        raise HispeedError(
            f"The TIMESTAMP column set in the WITH clause does not exist in the "
            f"schema: '{source.timestamp}'"
        )
    if col.type.name not in ("BIGINT", "TIMESTAMP", "STRING"):
        raise HispeedError(
            f"Timestamp column, `{col.name}`, should be LONG(INT64), TIMESTAMP, "
            "or a String with a timestamp_format specified."
        )
    if col.type.name == "STRING" and not source.timestamp_format:
        raise HispeedError(
            f"Timestamp column, `{col.name}`, should be LONG(INT64), TIMESTAMP, "
            "or a String with a timestamp_format specified."
        )


__all__ = ["Engine", "Result", "T"]


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


#: the type of a HEADERS column: every header of the record
_HEADERS_TYPE = T.array(T.struct([("KEY", T.STRING), ("VALUE", T.BYTES)]))
