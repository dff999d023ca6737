"""The engine: statements in, streams, tables and running queries out.

`Engine(data_dir)` runs everything in-process on the embedded log:

    >>> import hispeed
    >>> engine = hispeed.Engine("hispeed-data")
    >>> engine.execute("CREATE STREAM readings (id STRING KEY, x DOUBLE) "
    ...                "WITH (kafka_topic='readings', value_format='JSON', partitions=1)")
    >>> engine.execute("CREATE TABLE peaks AS SELECT id, MAX(x) AS peak FROM readings GROUP BY id")
    >>> engine.insert("readings", {"ID": "device1", "X": 0.5})
    >>> engine.insert_many("readings", [{"ID": "d2", "X": 1.5}, {"ID": "d3", "X": 2.5}])
    >>> engine.drain()                      # process what is there (a server runs continuously)

Every statement that changes the catalog is kept in the command topic, so opening the same
data directory again brings back every stream, table and query where it left off.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from hispeed.catalog import Catalog, Source
from hispeed.connectors.runner import Connectors
from hispeed.errors import HispeedError
from hispeed.frames import Frame
from hispeed.functions.memcached import configure_from as configure_memcached
from hispeed.functions.redis import set_default_url
from hispeed.functions.udf.loading import load_modules
from hispeed.jupyter import Rows
from hispeed.log.base import AppendResult, Log
from hispeed.log.embedded import EmbeddedLog
from hispeed.log.producer import Producer
from hispeed.ops.watermark import idle_timeout
from hispeed.plan.query import plan_query
from hispeed.plan.scalable import is_scalable_push
from hispeed.registry import (
    DEFAULT_MAX_SCHEMA_BYTES,
    MAX_SCHEMA_BYTES_PROPERTY,
    SCHEMA_REGISTRY_URL,
    SchemaRegistry,
    apply_serde_settings,
    open_registry,
    registry_url,
)
from hispeed.runtime.analytic import ScanProgress, run_analysis
from hispeed.runtime.context import QueryContext, wall_clock_ms
from hispeed.runtime.manager import QueryManager
from hispeed.runtime.pull import run_sql
from hispeed.runtime.queries import PushQuery
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.sql import ast
from hispeed.sql.flink import FlinkTable, FlinkView
from hispeed.sql.flink_function import FlinkFunction
from hispeed.sql.parser import parse_iter, parse_query
from hispeed.statements import (
    analyze,
    delete,
    flink,
    flink_functions,
    info,
    inserts,
    queries,
    settings,
    sources,
)
from hispeed.statements.base import Call, EngineParts, Handler
from hispeed.statements.bulk import RowBuffer, insert_many
from hispeed.statements.commands import CommandTopic
from hispeed.statements.result import Result
from hispeed.statements.undo import all_or_nothing

if TYPE_CHECKING:
    from hispeed.runtime.distributed import DistributedTask
    from hispeed.runtime.task import QueryTask

log = logging.getLogger(__name__)

#: each kind of statement: its handler, and whether it is kept in the command topic (what
#: changes the catalog is, so a restart or another worker runs it again)
HANDLERS: dict[type[ast.Statement], tuple[Handler, bool]] = {
    ast.CreateSource: (sources.create_source, True),
    ast.CreateAsSelect: (queries.create_as_select, True),
    ast.InsertInto: (flink.insert_into, True),  # ksqlDB's, or into a Flink sink
    FlinkTable: (flink.create_table, True),
    FlinkView: (flink.create_view, True),
    FlinkFunction: (flink_functions.create_function, True),
    ast.InsertValues: (inserts.insert_values, False),
    ast.Delete: (delete.delete, False),
    ast.Drop: (flink.drop, True),  # ksqlDB's, or of a Flink table declared
    ast.AlterSource: (sources.alter_source, True),
    ast.CreateConnector: (settings.create_connector, True),
    ast.DropConnector: (settings.drop_connector, True),
    ast.CreateType: (sources.create_type, True),
    ast.SetProperty: (settings.set_property, False),
    ast.UnsetProperty: (settings.unset_property, False),
    ast.Show: (info.show, False),
    ast.Describe: (info.describe, False),
    ast.Terminate: (queries.terminate, True),
    ast.Explain: (info.explain, False),
    ast.Print: (info.print_topic, False),
    ast.QueryStatement: (info.pull_query, False),
    ast.Analyze: (analyze.analyze, False),
}


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
        insert_linger_ms: float = 0.0,
        schema_registry_url: str | None = None,
        schema_registry: SchemaRegistry | None = None,
        start_connectors: bool = True,
        clock: Callable[[], int] | None = None,
    ) -> None:
        """`worker_id`: this process's name among the workers of one application on Kafka
        (default: host and PID). `insert_linger_ms`: how long `insert` gathers rows before
        appending them together (as a Kafka producer's `linger.ms`); 0 (the default): each
        row is in the log when `insert` returns.

        `schema_registry_url` (or the property `ksql.schema.registry.url`, ksqlDB's name)
        points the AVRO, PROTOBUF and JSON_SR formats at an external Confluent-compatible
        schema registry; without one the engine keeps its own (`schema_registry`, served by
        `hispeed server`). `schema_registry` gives it a registry object instead (tests).
        `start_connectors=False` opens the catalog without running its connectors (a
        command that only reads the data directory: `hispeed topic export`). `clock`: the
        processing time that PROCTIME() reads, a function giving epoch milliseconds (the
        wall clock by default); tests give one they move, as Kafka Streams' test driver
        advances its wall-clock time."""
        if insert_linger_ms < 0:
            raise HispeedError(f"insert_linger_ms cannot be negative, not {insert_linger_ms}")
        idle_timeout(properties or {})  # a bad table.exec.source.idle-timeout: refused at once
        load_modules(udf_modules)  # before the replay: restored queries may call them
        if log_ is None:
            if data_dir is None:
                raise HispeedError("Engine needs a data directory or a log")
            log_ = EmbeddedLog(Path(data_dir), fsync=fsync)
        self.log = log_
        self.catalog = Catalog()
        #: what the runtime and the connectors are given (the engine's log, catalog,
        #: properties and lock), never the engine itself
        props: dict[str, Any] = {"auto.offset.reset": "earliest", **(properties or {})}
        if schema_registry_url:
            props[SCHEMA_REGISTRY_URL] = schema_registry_url
        if schema_registry is None:
            schema_registry = open_registry(
                registry_url(props),
                self.log,
                max_schema_bytes=int(
                    props.get(MAX_SCHEMA_BYTES_PROPERTY, DEFAULT_MAX_SCHEMA_BYTES)
                ),
            )
        apply_serde_settings(schema_registry, props)
        self.context = QueryContext(
            self.log,
            self.catalog,
            props,
            schema_registry=schema_registry,
            clock=clock or wall_clock_ms,
        )
        if self.properties.get("redis.url"):  # what REDIS_HASH / REDIS_GET read by default
            set_default_url(str(self.properties["redis.url"]))
        # what MEMCACHED_GET reads by default, and its cache's bounds
        configure_memcached(self.properties)
        #: what runs: the queries' tasks, push-query feeds and pull views
        self.runtime = QueryManager(self.context)
        #: who this engine is among the workers sharing a (Kafka) log's command topic
        self.worker_id = worker_id or f"{socket.gethostname()}-{os.getpid()}"
        self.commands = CommandTopic(self.context, self.worker_id, properties)
        self.log.create_topic(PROCESSING_LOG, 1, exist_ok=True)
        self.connectors = Connectors(self.context)
        #: what the statement handlers act on
        self.parts = EngineParts(self.context, self.runtime, self.connectors)
        self.commands.apply(self._replayed, own=True)
        self._report_unmade(set())
        if start_connectors:
            self.connectors.start_held()
        #: `insert`'s rows, gathered for the log's linger and inserted together
        self._rows = RowBuffer(
            self.catalog, self.log, insert_linger_ms, registry=self.context.schema_registry
        )

    @property
    def properties(self) -> dict[str, Any]:
        """The engine's properties (SET and UNSET change them; queries read them)."""
        return self.context.properties

    @property
    def schema_registry(self) -> SchemaRegistry:
        """The schemas of the AVRO, PROTOBUF and JSON_SR formats (by id and subject): the
        external registry `ksql.schema.registry.url` names, else the engine's own."""
        return self.context.schema_registry

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
        """Run one or more statements; returns a result per statement (rows `insert` gathered
        go in first)."""
        self.flush()
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
        entry = HANDLERS.get(type(stmt))
        if entry is None:
            raise HispeedError(f"{type(stmt).__name__} is not supported yet")
        handler, recorded = entry
        call = Call(parsed.text, {**self.properties, **overrides}, replay, recorded)

        def run() -> Result:
            result = handler(self.parts, stmt, call)
            if call.record:
                if not replay:
                    self.commands.record(parsed.text, self.properties, overrides)
                result.statement = parsed.text
            return result

        if not recorded:  # SHOW, SELECT, SET: nothing made, nothing to undo
            return run()
        return all_or_nothing(self.parts, call, run)

    def _replayed(self, parsed: ast.ParsedStatement) -> None:
        try:
            self._execute(parsed, {}, replay=True)
        except HispeedError as e:
            # a persistent query that cannot be made again (its UDF module or a source gone)
            # stays, in ERROR with why, rather than vanishing: every other query goes on
            if queries.keep_unmade(self.parts, parsed.statement, parsed.text, e) is None:
                raise

    def _report_unmade(self, before: set[str]) -> None:
        """Warn of the queries replay kept in ERROR (and not dropped later in the replay)."""
        for q in self.catalog.queries.values():
            if q.unmade and q.id not in before:
                log.warning("query %s is in ERROR: %s (%s)", q.id, q.error, q.statement)

    def sync_commands(self, every: float = 0.0) -> None:
        """Apply the statements other workers of a shared (Kafka) log have recorded since the
        last call, in the command topic's order: a statement sent to any worker runs on all."""
        before = {q.id for q in self.catalog.queries.values() if q.unmade}
        self.commands.sync(self._replayed, every)
        self._report_unmade(before)

    def insert(self, name: str, row: Mapping[str, Any], timestamp: int | None = None) -> None:
        """Insert one row into a stream or table from Python values (column names as the
        source has them: {"ID": ..., "X": ...}).

        The row is checked at once (a value that does not fit its column raises here) and
        stamped now (or `timestamp`, ms). By default it is appended before `insert` returns
        (its frame written straight to the log, no Arrow on the way for rows of plain types in
        JSON or KAFKA: over 100,000 rows a CPU second).
        With `Engine(insert_linger_ms=N)` it goes into the log with the rows inserted around
        it within N ms, one append for them all (as a Kafka producer's batch; over 100,000
        rows a second from one loop): `flush()` waits until they are in; `execute`, `query`,
        `stream`, `drain`, `insert_many` and `close` flush first; a failed append (the disk
        full, say) raises from the next `insert` or `flush`.
        """
        self._rows.add(name, row, timestamp)

    def insert_many(self, name: str, data: Any) -> AppendResult:
        """Insert many rows into a stream or table in one append; returns where they landed.

        `data`: a list of mappings (column names to Python values), a pyarrow Table or
        RecordBatch, or a Polars or pandas DataFrame. Column names match exactly or in any
        case; a ROWTIME column gives timestamps (ms). A value that does not fit raises a
        `HispeedError` naming its row and column, and nothing is inserted.

            >>> engine.insert_many("readings", pl.DataFrame({"id": ["a", "b"], "x": [1.0, 2.0]}))
        """
        self.flush()  # rows inserted before go first
        return insert_many(self.catalog, self.log, name, data, self.context.schema_registry)

    def flush(self) -> None:
        """Append every row `insert` holds now; raises what a failed append raised. (Call it
        where a row must be in the log before going on: an acknowledgement, say.)"""
        self._rows.flush()

    def producer(self, config: Mapping[str, Any] | None = None, **options: Any) -> Producer:
        """A producer of raw records into this engine's log, in confluent-kafka's shape:
        `produce(topic, value, key=None, ...)`, `poll()`, `flush()`, delivery callbacks;
        records batched in the background (`linger_ms`, `batch_size`). See
        `hispeed.log.producer`.

            >>> with engine.producer(linger_ms=5) as p:
            ...     p.produce("readings", b'{"X": 0.5}', key=b"device1")
        """
        return Producer(self.log, config, **options)

    def insert_row(
        self, target: Source, values: Mapping[str, pa.Array], timestamp: int | None
    ) -> None:
        """Append one row (its columns as one-value arrays) to a source's topic."""
        inserts.insert_row(self.log, target, values, timestamp, self.context.schema_registry)

    def query(self, sql: str, *, format: str = "rows") -> Any:
        """Run a pull query: the current rows of a table (or what a stream holds now).

        `format` is "rows" (a list of dicts, shown as a table in Jupyter), "polars" or
        "pandas" (a DataFrame).

            >>> engine.query("SELECT * FROM peaks WHERE id = 'device1'")
            [{'ID': 'device1', 'PEAK': 0.5}]
        """
        self.flush()
        with self.lock:
            rows = run_sql(self.runtime.views, sql)
        if format == "rows":
            return Rows(rows)
        if format == "polars":
            import polars as pl

            return pl.DataFrame(rows)
        if format == "pandas":
            import pandas as pd

            return pd.DataFrame(rows)
        raise HispeedError(f"format must be rows, polars or pandas, not {format!r}")

    def analyze(
        self, sql: str, *, format: str = "arrow", progress: ScanProgress | None = None
    ) -> Any:
        """Run analytical SQL (DuckDB's dialect: joins, subqueries, window functions, GROUP BY
        anything) over every stream's retained history and every table's current state.

            >>> engine.analyze(
            ...     "SELECT id, count(*) AS n, max(x) AS peak FROM readings GROUP BY id ORDER BY n"
            ... )

        Each source the query names is read from the log, decoded through its formats into
        the catalog's column types, and streamed to DuckDB (a topic bigger than memory works);
        ROWTIME, ROWPARTITION and ROWOFFSET are columns too. A table is its current state:
        each key's latest row. `format`: "arrow" (a pyarrow Table), "polars", "pandas" or
        "rows" (a list of dicts). `progress(done, total)` is told the records scanned.
        A query that does not parse raises `SqlError` with DuckDB's line and column.
        """
        if format not in ("arrow", "polars", "pandas", "rows"):
            raise HispeedError(f"format must be arrow, polars, pandas or rows, not {format!r}")
        self.flush()
        with self.lock:  # the catalog is read under the lock; the scan runs without it
            self.sync_commands()
        table = run_analysis(self.context, sql, progress=progress)
        if format == "polars":
            import polars as pl

            return pl.from_arrow(table)
        if format == "pandas":
            return table.to_pandas()
        if format == "rows":
            return Rows(table.to_pylist(maps_as_pydicts="strict"))
        return table

    def stream(self, sql: str, *, from_beginning: bool | None = None) -> Any:
        """Run a push query: its rows as they happen, as an iterator or an async iterator.

            >>> with engine.stream("SELECT id, x FROM readings WHERE x > 1 EMIT CHANGES") as q:
            ...     for row in q:      # or: async for row in q
            ...         print(row)

        `from_beginning` reads the source from its first record (default: from now on, or
        as the `auto.offset.reset` property says).
        """
        self.flush()
        with self.lock:
            select = parse_query(sql, self.catalog.types)
            plan = plan_query(select, self.catalog, self.log, properties=self.properties)
            reset = {"auto.offset.reset": "earliest"} if from_beginning else {}
            scalable = is_scalable_push(select, self.catalog, reset, self.properties)
            return PushQuery(
                self.runtime,
                plan,
                from_beginning=from_beginning,
                query_id=f"SCALABLE_PUSH_QUERY_{uuid.uuid4()}" if scalable else None,
            )

    def frame(self, name: str) -> Frame:
        """A stream or table by name, as a frame of the Python stream API (`hispeed.frames`):

        >>> from hispeed import col
        >>> engine.frame("readings").filter(col("x") > 1).to_stream("high")
        """
        return Frame.source(self, name)

    # -- running ----------------------------------------------------------------------------

    def drain(
        self,
        timeout: float | None = None,
        *,
        max_rounds: int | None = None,
        idle_timeout: float = 60.0,
    ) -> int:
        """Run every query until all have caught up with their inputs; returns the records
        processed. A backlog of any size is processed in one call.

        `timeout` bounds the call: it returns after that many seconds (caught up or not; the
        next call goes on). `max_rounds` bounds it in rounds (one poll of each query). On a
        shared log (Kafka) records arrive from the broker a moment after they are written:
        this waits for them, and raises HispeedError after `idle_timeout` s without progress.

        A query that fails does not stop the others, nor raise here: it is in ERROR
        (`runtime.state(query_id)`, SHOW QUERIES) and retried after its backoff.
        """
        self.flush()
        return self.runtime.drain(timeout, max_rounds=max_rounds, idle_timeout=idle_timeout)

    def start(self) -> None:
        """Run the queries on a background thread until `close()`."""
        self.runtime.start(lambda: self.sync_commands(every=0.5))

    def close(self) -> None:
        """Append the rows `insert` holds, stop the connectors and the queries, and close the
        log."""
        try:
            self._rows.close()
        except HispeedError:
            log.exception("rows inserted last could not be appended")
        self.connectors.close()
        self.runtime.close()
        self.schema_registry.close()
        self.log.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


__all__ = ["HANDLERS", "Engine"]
