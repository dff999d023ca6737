"""`Frame`: a stream or table query built in Python, run as the SQL statement it stands for.

Each method returns a new frame; nothing runs until a frame is written (`to_stream`,
`to_table`, `to_topic`), read (`collect`, `stream`, iteration) or explained. A frame is one
SELECT of the statement model (`hispeed.sql.ast`): a filter after a select reads the
selected columns through their expressions (`select(x=col("a") + 1).filter(col("x") > 2)` is
`SELECT a + 1 AS x ... WHERE a + 1 > 2`), a filter after an aggregation is its HAVING. The
statement is printed as SQL (`frames/render.py`), checked to parse back the same, and run by
the engine as if typed: one planner, one set of operators, and a persistent query that the
command topic keeps as its SQL text, so it survives restarts as any other.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from hispeed.catalog import Catalog
from hispeed.errors import HispeedError
from hispeed.frames import parquet as parquet_files
from hispeed.frames.expressions import Expr, as_expr, identifier
from hispeed.frames.mapping import PythonStep, explained, mapped_rows, stage_plan
from hispeed.frames.render import checked, select_sql
from hispeed.frames.trigger import Trigger, emit_of, with_trigger
from hispeed.frames.window import Duration, millis
from hispeed.log.base import Log
from hispeed.plan import python
from hispeed.sql import ast
from hispeed.sql.parser import parse_type


class Host(Protocol):
    """What a frame runs on: the engine (its catalog and statement entry points)."""

    @property
    def catalog(self) -> Catalog: ...

    @property
    def log(self) -> Log: ...

    def execute(self, sql: str, properties: Mapping[str, Any] | None = None) -> list[Any]: ...

    def query(self, sql: str, *, format: str = "rows") -> Any: ...

    def stream(self, sql: str, *, from_beginning: bool | None = None) -> Any: ...


_JOINS = {"inner": "INNER", "left": "LEFT", "right": "RIGHT", "full": "FULL", "outer": "FULL"}
_EMITS = {"changes": "CHANGES", "final": "FINAL"}


@dataclass(frozen=True)
class _Query:
    relation: ast.Relation
    items: tuple[ast.SelectItem | ast.AllColumns, ...] = (ast.AllColumns(),)
    where: ast.Expr | None = None
    window: ast.WindowSpec | None = None
    group_by: tuple[ast.Expr, ...] = ()
    having: ast.Expr | None = None
    partition_by: tuple[ast.Expr, ...] = ()
    limit: int | None = None
    #: columns a table function (EXPLODE) makes: WHERE cannot read them
    exploded: frozenset[str] = frozenset()
    #: map() or map_batches(): a Python function over the selected rows, last
    python: PythonStep | None = None

    @property
    def aggregated(self) -> bool:
        return bool(self.group_by)


def _and(a: ast.Expr | None, b: ast.Expr) -> ast.Expr:
    return b if a is None else ast.BinaryOp("AND", a, b)


def substitute(node: Any, names: Mapping[str, ast.Expr]) -> Any:
    """`node` with each unqualified column reference of `names` replaced by its expression
    (a lambda's parameters are its own, not columns)."""
    if not names:
        return node
    if isinstance(node, ast.ColumnRef):
        return names.get(node.name, node) if node.source is None else node
    if isinstance(node, ast.Lambda):
        inner = {k: v for k, v in names.items() if k not in node.params}
        return dataclasses.replace(node, body=substitute(node.body, inner))
    if isinstance(node, tuple):
        return tuple(substitute(n, names) for n in node)
    if isinstance(node, ast.Expr) and dataclasses.is_dataclass(node):
        changes = {
            f.name: substitute(getattr(node, f.name), names)
            for f in dataclasses.fields(node)
            if f.name != "pos"
        }
        return dataclasses.replace(node, **changes)
    return node


def _columns(node: Any) -> set[str]:
    """The unqualified column names an expression reads."""
    if isinstance(node, ast.ColumnRef):
        return {node.name} if node.source is None else set()
    if isinstance(node, tuple):
        return set().union(*(_columns(n) for n in node)) if node else set()
    if isinstance(node, ast.Expr) and dataclasses.is_dataclass(node):
        return set().union(*(_columns(getattr(node, f.name)) for f in dataclasses.fields(node)))
    return set()


def _item_name(item: ast.SelectItem) -> str | None:
    if item.alias is not None:
        return item.alias
    if isinstance(item.expr, ast.ColumnRef) and item.expr.source is None:
        return item.expr.name
    return None


def _item(expr: Expr, names: Mapping[str, ast.Expr]) -> ast.SelectItem:
    node = substitute(expr.node, names)
    if isinstance(node, ast.ColumnRef) and node.source is None and node.name == expr.name:
        return ast.SelectItem(node)
    return ast.SelectItem(node, expr.name)


def _named(args: tuple[str | Expr, ...], kwargs: Mapping[str, str | Expr]) -> list[Expr]:
    return [as_expr(a) for a in args] + [as_expr(v).alias(k) for k, v in kwargs.items()]


def _props(options: Mapping[str, Any]) -> dict[str, ast.Property]:
    return {k.upper(): ast.Property(v) for k, v in options.items() if v is not None}


class Frame:
    """A query over streams and tables, built with methods and run as SQL.

    >>> clicks = engine.frame("clicks")
    >>> (clicks.filter(col("status") == 200)
    ...        .group_by("user_id", window=window.tumbling("10s", grace="1s"))
    ...        .agg(n=col("*").count(), slow=col("ms").max())
    ...        .to_table("user_stats", emit="final"))
    """

    def __init__(self, host: Host, query: _Query) -> None:
        self._host = host
        self._query = query

    @classmethod
    def source(cls, host: Host, name: str) -> Frame:
        """Every row of the stream or table `name` (SQL's rule: unquoted names are upper
        case)."""
        found = identifier(name)
        if found not in host.catalog.sources:
            known = ", ".join(sorted(host.catalog.sources)) or "none yet"
            raise HispeedError(f"no stream or table is named {found} (there are: {known})")
        return cls(host, _Query(ast.SourceRef(found)))

    def _with(self, **changes: Any) -> Frame:
        return Frame(self._host, dataclasses.replace(self._query, **changes))

    def _defined(self) -> dict[str, ast.Expr]:
        """Each named output column that is not a plain pass-through, to its expression."""
        out: dict[str, ast.Expr] = {}
        for item in self._query.items:
            if isinstance(item, ast.SelectItem):
                name = _item_name(item)
                if name is not None and item.expr != ast.ColumnRef(name):
                    out[name] = item.expr
        return out

    def _expanded(self) -> tuple[ast.SelectItem | ast.AllColumns, ...]:
        """The select list with `*` spelled out as the source's columns (to replace one)."""
        q = self._query
        if not any(isinstance(i, ast.AllColumns) for i in q.items):
            return q.items
        if not isinstance(q.relation, ast.SourceRef):
            raise HispeedError(
                "select the joined columns first: a join's `*` names them after their sources"
            )
        src = self._host.catalog.sources[q.relation.name]
        out: list[ast.SelectItem | ast.AllColumns] = []
        for item in q.items:
            if isinstance(item, ast.AllColumns):
                cols = [*src.key_columns, *src.value_columns]
                out += [ast.SelectItem(ast.ColumnRef(c.name)) for c in cols]
            else:
                out.append(item)
        return tuple(out)

    def _check_open(self, what: str) -> None:
        if self._query.limit is not None:
            raise HispeedError(f"{what} goes before limit()")
        if self._query.python is not None:
            raise HispeedError(
                f"{what} cannot follow map() or map_batches() in one query: write the mapped "
                "rows out (to_stream) and go on from that stream"
            )

    # -- building ------------------------------------------------------------------------

    def alias(self, name: str) -> Frame:
        """This source read as `name`, to qualify its columns in a join: `col("c.user_id")`."""
        rel = self._query.relation
        if not isinstance(rel, ast.SourceRef) or self._query != _Query(rel):
            raise HispeedError("alias() names a source: call it on engine.frame(...) directly")
        return self._with(relation=ast.SourceRef(rel.name, identifier(name)))

    def select(self, *columns: str | Expr, **named: str | Expr) -> Frame:
        """These columns only (names, expressions with `.alias`, or `name=expression`)."""
        self._check_open("select()")
        exprs = _named(columns, named)
        if not exprs:
            raise HispeedError("select() needs at least one column")
        names = self._defined()
        return self._with(items=tuple(_item(e, names) for e in exprs))

    def with_columns(self, *columns: Expr, **named: str | Expr) -> Frame:
        """Every column, with these added (or replaced, where one has the same name)."""
        self._check_open("with_columns()")
        exprs = _named(columns, named)
        names = self._defined()
        items = list(self._query.items)
        for e in exprs:
            if e.name is None:
                raise HispeedError(f"with_columns() needs a name for {e}: .alias(name)")
            item = _item(e, names)
            at = [
                i
                for i, it in enumerate(items)
                if isinstance(it, ast.SelectItem) and _item_name(it) == e.name
            ]
            if not at and any(isinstance(it, ast.AllColumns) for it in items):
                rel = self._query.relation
                if isinstance(rel, ast.SourceRef):
                    src = self._host.catalog.sources[rel.name]
                    if src.column(e.name) is not None:  # replaces a column `*` stands for
                        items = list(self._with(items=tuple(items))._expanded())
                        at = [
                            i
                            for i, it in enumerate(items)
                            if isinstance(it, ast.SelectItem) and _item_name(it) == e.name
                        ]
            if at:
                items[at[0]] = item
            else:
                items.append(item)
        return self._with(items=tuple(items))

    def filter(self, condition: Expr) -> Frame:
        """The rows where `condition` holds (WHERE; after `agg`, HAVING)."""
        self._check_open("filter()")
        q = self._query
        node = substitute(condition.node, self._defined())
        if q.aggregated:
            return self._with(having=_and(q.having, node))
        if q.partition_by:
            raise HispeedError("filter() goes before partition_by()")
        late = _columns(condition.node) & q.exploded
        if late:
            raise HispeedError(
                f"filter() cannot read {', '.join(sorted(late))}, made by explode() in the same "
                "query: write the exploded rows out (to_stream) and filter that stream"
            )
        return self._with(where=_and(q.where, node))

    def explode(self, column: str, alias: str | None = None) -> Frame:
        """A row per element of the ARRAY column (SQL's EXPLODE), named as the column (or
        `alias`); the other columns repeat."""
        self._check_open("explode()")
        if self._query.aggregated:
            raise HispeedError("explode() goes before group_by()")
        name = identifier(column)
        target = identifier(alias) if alias else name
        names = self._defined()
        items = list(self._expanded())
        node = ast.FunctionCall("EXPLODE", (names.get(name, ast.ColumnRef(name)),))
        at = [
            i
            for i, it in enumerate(items)
            if isinstance(it, ast.SelectItem) and _item_name(it) == name
        ]
        if not at:
            raise HispeedError(f"explode(): no column {name}")
        items[at[0]] = ast.SelectItem(node, target)
        return self._with(items=tuple(items), exploded=self._query.exploded | {target})

    def group_by(self, *keys: str | Expr, window: ast.WindowSpec | None = None) -> GroupBy:
        """Group the rows by `keys` (in `window`s: `window.tumbling/hopping/session`); then
        `.agg(...)` says what each group holds."""
        self._check_open("group_by()")
        if self._query.aggregated:
            raise HispeedError(
                "this frame is aggregated already: write it out (to_table) and group that table"
            )
        if self._query.partition_by:
            raise HispeedError("group_by() and partition_by() do not go in one query")
        if not keys:
            raise HispeedError("group_by() needs at least one key")
        return GroupBy(self, [as_expr(k) for k in keys], window)

    def partition_by(self, *keys: str | Expr) -> Frame:
        """The rows re-keyed by `keys` (PARTITION BY): written to the partition of the new
        key."""
        self._check_open("partition_by()")
        if self._query.aggregated:
            raise HispeedError("group_by() and partition_by() do not go in one query")
        if not keys:
            raise HispeedError("partition_by() needs at least one key")
        names = self._defined()
        return self._with(partition_by=tuple(substitute(as_expr(k).node, names) for k in keys))

    def join(
        self,
        other: Frame,
        on: Expr,
        how: str = "inner",
        *,
        within: Duration | tuple[Duration, Duration] | None = None,
        grace: Duration | None = None,
    ) -> Frame:
        """This source joined with `other` (`how`: inner, left, right or full) where `on`
        holds; a stream-stream join needs `within` (a duration, or (before, after)), and may
        take a `grace` period. Qualify columns by source name or alias: `col("c.user_id")`."""
        kind = _JOINS.get(how.lower())
        if kind is None:
            raise HispeedError(f"how= is inner, left, right or full, not {how!r}")
        for frame, side in ((self, "left"), (other, "right")):
            q = frame._query
            if q != _Query(q.relation):
                raise HispeedError(
                    f"join the sources first: the {side} side already selects, filters or "
                    "groups; do that after the join"
                )
        right = other._query.relation
        if not isinstance(right, ast.SourceRef):
            raise HispeedError("the right side of a join is one stream or table")
        spec = None
        if within is not None:
            before, after = within if isinstance(within, tuple) else (within, within)
            spec = ast.WithinSpec(
                millis(before), millis(after), None if grace is None else millis(grace)
            )
        elif grace is not None:
            raise HispeedError("grace= goes with within= (a stream-stream join)")
        return Frame(self._host, _Query(ast.Join(self._query.relation, right, kind, on.node, spec)))

    def map(
        self, function: Callable[[dict[str, Any]], dict[str, Any] | None], schema: Any = None
    ) -> Frame:
        """Each row through `function`, the escape hatch for what SQL cannot say: it gets a
        dict of the row's columns and returns a dict of the value columns (or None to drop
        the row); the key columns pass through. `schema`: the value columns it returns, as
        {name: SQL type} (default: the columns it is given). Slower than expressions (a
        Python call per row); a persistent query needs a top-level function of a module."""
        return self._mapped("MAP", function, schema)

    def map_batches(
        self, function: Callable[[Any], Any], schema: Any = None, *, polars: bool = False
    ) -> Frame:
        """Each batch of rows through `function`, vectorized: it gets an Arrow RecordBatch
        (a Polars DataFrame with `polars=True`) of the key and value columns and ROWTIME,
        and returns the value columns for the same rows (with the key columns and ROWTIME
        when it drops or adds rows). `schema` as for `map`."""
        return self._mapped("MAP_POLARS" if polars else "MAP_BATCHES", function, schema)

    def process(
        self, function: Callable[..., Any], schema: Any = None, *, key: str | None = None
    ) -> Frame:
        """Stateful processing (Kafka Streams' Processor API): `function(key, records, state,
        timers)` is called once per key of each batch with that key's records (dicts of the
        value columns and ROWTIME), its `state` (get/put/delete, changelogged and restored
        as an aggregation's) and `timers` (event_time(ms), processing_time(ms); a timer's
        call gets no records and `timers.fired`); it returns the value columns of the records
        to write (dicts, or None). `key`: re-key first (PARTITION BY). `schema` as for
        `map`. Runs as a persistent query (to_stream, to_topic); see the README's "The Python
        stream API"."""
        frame = self.partition_by(key) if key is not None else self
        return frame._mapped("PROCESS", function, schema)

    def _mapped(self, kind: str, function: Callable[..., Any], schema: Any) -> Frame:
        self._check_open(f"{kind.lower()}()")
        if not callable(function):
            raise HispeedError(f"map() takes a function, not {type(function).__name__}")
        columns = None
        if schema is not None:
            if not isinstance(schema, Mapping) or not schema:
                raise HispeedError('schema= is {name: SQL type}, like {"gross": "DOUBLE"}')
            columns = tuple((identifier(n), parse_type(str(t))) for n, t in schema.items())
        return self._with(python=PythonStep(kind, function, columns))

    def limit(self, n: int) -> Frame:
        """At most `n` rows (for `collect` and `stream`; a persistent query has no limit)."""
        return self._with(limit=n)

    # -- the statement ---------------------------------------------------------------------

    def _select(self, emit: str | None) -> ast.Select:
        q = self._query
        return ast.Select(
            q.items,
            q.relation,
            q.where,
            q.window,
            q.group_by,
            q.partition_by,
            q.having,
            emit,
            q.limit,
        )

    def sql(self, emit: str | None = None) -> str:
        """The SELECT this frame stands for (`emit`: "changes" or "final" for a push query)."""
        return select_sql(self._select(_emit(emit)))

    def __repr__(self) -> str:
        return f"<Frame {self.sql()}>"

    def _kind(self) -> str:
        """TABLE for an aggregation or a query over tables only, else STREAM (as the
        planner decides; it checks it again)."""
        if self._query.aggregated:
            return "TABLE"
        rel: ast.Relation = self._query.relation
        names = []
        while isinstance(rel, ast.Join):
            names.append(rel.right.name)
            rel = rel.left
        assert isinstance(rel, ast.SourceRef)
        names.append(rel.name)
        kinds = {self._host.catalog.sources[n].kind for n in names}
        return "TABLE" if kinds == {"TABLE"} else "STREAM"

    def _create(self, kind: str, name: str, emit: str, options: Mapping[str, Any]) -> str:
        step = self._query.python
        if step is not None:
            # kept in the statement, so the command topic keeps it and a restart loads it
            options = {
                **options,
                python.FUNCTION_PROPERTY: python.reference_of(step.function),
                python.KIND_PROPERTY: step.kind,
            }
            if step.schema is not None:
                options[python.SCHEMA_PROPERTY] = python.schema_text(list(step.schema))
        stmt = ast.CreateAsSelect(kind, identifier(name), self._select(emit), _props(options))
        if self._query.limit is not None:
            raise HispeedError("a persistent query has no limit(): drop it to write the rows")
        text = checked(stmt, self._host.catalog.types)
        (result,) = self._host.execute(text)
        return str(result.query_id)

    # -- running --------------------------------------------------------------------------

    def to_stream(self, name: str, *, trigger: Trigger | None = None, **options: Any) -> str:
        """Write the rows into a new stream `name`, as a persistent query (CREATE STREAM
        ... AS SELECT); `options` are its WITH properties (`kafka_topic`, `value_format`,
        `partitions`, ...); `trigger`: when it runs a batch (frames/trigger.py). Returns the
        query's id."""
        return self._create("STREAM", name, "CHANGES", with_trigger(options, trigger))

    def to_table(
        self,
        name: str,
        emit: str | None = None,
        *,
        trigger: Trigger | None = None,
        output_mode: str | None = None,
        **options: Any,
    ) -> str:
        """Write the rows into a new table `name`, as a persistent query (CREATE TABLE ...
        AS SELECT ... EMIT CHANGES, or EMIT FINAL for a windowed aggregation's final
        results). `trigger` and `output_mode` ("append", "update", "complete") are Spark's
        (frames/trigger.py says how they map onto emit modes); `output_mode` goes instead
        of `emit`. Returns the query's id."""
        frame = self
        if output_mode is not None:
            if emit is not None:
                raise HispeedError("give emit= or output_mode=, not both")
            emit, window = emit_of(output_mode, self._query.window)
            frame = self._with(window=window)
        options = with_trigger(options, trigger)
        return frame._create("TABLE", name, _emit(emit or "changes") or "CHANGES", options)

    def to_parquet(
        self,
        path: str | Path,
        *,
        name: str,
        trigger: Trigger | None = None,
        output_mode: str | None = None,
        parquet: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> str:
        """Write the rows as Parquet files into directory `path` (Spark's
        `writeStream.format("parquet")`): a persistent query into a stream (a table for an
        aggregation) `name`, with `trigger`/`output_mode` as `to_table`'s, and the Parquet
        sink connector over it (`parquet`: its properties, `flush_records=...`; exactly
        once). Returns the query's id."""
        query_id = self._written(name, trigger, output_mode, options)
        parquet_files.parquet_sink(self._host.execute, name, path, parquet or {})
        return query_id

    def to_connector(
        self,
        connector: str,
        properties: Mapping[str, Any],
        *,
        name: str | None = None,
        trigger: Trigger | None = None,
        output_mode: str | None = None,
        **options: Any,
    ) -> str:
        """Write the rows through the sink connector `connector`, as `CREATE SINK CONNECTOR
        connector WITH (...)` does; `properties` are its WITH properties, 'connector.class'
        and the class's own (docs/connectors.md), all but 'source':

            >>> hot.to_connector("hot_out", {"connector.class": "file-sink",
            ...                              "file.path": "/data/out/hot.jsonl"}, name="hot")

        A stream or table as it is (`engine.frame("alerts")`) is the connector's source
        itself; any other frame is first a persistent query into the stream (the table, for
        an aggregation) `name`, with `trigger`, `output_mode` and `options` as `to_table`'s
        and `to_stream`'s, and the connector reads that. Returns the connector's name."""
        rel = self._query.relation
        if isinstance(rel, ast.SourceRef) and self._query == _Query(rel) and rel.alias is None:
            if name is not None or trigger is not None or output_mode is not None or options:
                raise HispeedError(
                    f"the connector reads {rel.name} as it is: there is no query to name or "
                    "trigger (give name=... to a frame that selects, filters or aggregates)"
                )
            return parquet_files.sink_connector(self._host.execute, connector, rel.name, properties)
        if name is None:
            raise HispeedError(
                "to_connector(..., name=...) names the stream (or table) of the rows the "
                "connector reads"
            )
        self._written(name, trigger, output_mode, options)
        return parquet_files.sink_connector(self._host.execute, connector, name, properties)

    def _written(
        self,
        name: str,
        trigger: Trigger | None,
        output_mode: str | None,
        options: Mapping[str, Any],
    ) -> str:
        """The rows as a persistent query into stream `name` (a table for an aggregation);
        the query's id."""
        if self._kind() == "TABLE":
            return self.to_table(name, trigger=trigger, output_mode=output_mode, **options)
        if output_mode not in (None, "append", "update"):
            raise HispeedError(f"output_mode={output_mode!r} needs an aggregation")
        return self.to_stream(name, trigger=trigger, **options)

    def to_topic(
        self,
        topic: str,
        *,
        name: str | None = None,
        emit: str = "changes",
        **options: Any,
    ) -> str:
        """Write the rows into the topic `topic` (a stream, or a table for an aggregation,
        named `name`, by default after the topic). Returns the query's id."""
        kind = self._kind()
        sink = name or "".join(c if c.isalnum() else "_" for c in topic)
        return self._create(kind, sink, _emit(emit) or "CHANGES", {**options, "kafka_topic": topic})

    def explain(self, emit: str = "changes") -> str:
        """The plan of this query, as EXPLAIN prints it for the same SQL."""
        select = self._select(_emit(emit))
        text = checked(ast.Explain(ast.QueryStatement(select)), self._host.catalog.types)
        (result,) = self._host.execute(text)
        step = self._query.python
        if step is None:
            return str(result.message)
        plan = stage_plan(self._host.catalog, self._host.log, select, step)
        return explained(str(result.message), plan)

    def collect(self, format: str = "rows") -> Any:
        """The rows there are now (a pull query): "rows" (a list of dicts), "polars" or
        "pandas"."""
        select = self._select(None)
        text = checked(ast.QueryStatement(select), self._host.catalog.types)
        step = self._query.python
        if step is None:
            return self._host.query(text, format=format)
        plan = stage_plan(self._host.catalog, self._host.log, select, step)
        rows = list(mapped_rows(self._host.query(text), plan, whole=True))
        if format == "rows":
            return rows
        return _frame_of(rows, format)

    def stream(self, *, emit: str = "changes", from_beginning: bool | None = None) -> Any:
        """The rows as they happen (a push query): iterate it (or `async for`), close it when
        done (`with frame.stream() as rows: ...`)."""
        select = self._select(_emit(emit))
        text = checked(ast.QueryStatement(select), self._host.catalog.types)
        step = self._query.python
        if step is None:
            return self._host.stream(text, from_beginning=from_beginning)
        plan = stage_plan(self._host.catalog, self._host.log, select, step)
        return _MappedStream(self._host.stream(text, from_beginning=from_beginning), plan)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        """The push query's rows (from the source's beginning), until `limit()` rows came."""
        with self.stream(from_beginning=True) as rows:
            yield from rows


class _MappedStream:
    """A push query's rows through a frame's Python function, in this process."""

    def __init__(self, query: Any, plan: Any) -> None:
        self.query = query
        self.plan = plan

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return mapped_rows(self.query, self.plan, whole=False)

    def close(self) -> None:
        """Stop the push query."""
        self.query.close()

    def __enter__(self) -> _MappedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _frame_of(rows: list[dict[str, Any]], format: str) -> Any:
    if format == "polars":
        import polars as pl

        return pl.DataFrame(rows)
    if format == "pandas":
        import pandas as pd

        return pd.DataFrame(rows)
    raise HispeedError(f"format must be rows, polars or pandas, not {format!r}")


def _emit(emit: str | None) -> str | None:
    if emit is None:
        return None
    found = _EMITS.get(emit.lower())
    if found is None:
        raise HispeedError(f"emit= is 'changes' or 'final', not {emit!r}")
    return found


class GroupBy:
    """Rows grouped by keys (and windows), waiting for `.agg(...)`."""

    def __init__(self, frame: Frame, keys: list[Expr], window: ast.WindowSpec | None) -> None:
        self._frame = frame
        self._keys = keys
        self._window = window

    def agg(self, *aggregates: Expr, **named: Expr) -> Frame:
        """One row per group: the keys, and each aggregate (`n=col("*").count()`,
        `top=col("price").max()`, any aggregate SQL has)."""
        exprs = _named(aggregates, named)
        if not exprs:
            raise HispeedError("agg() needs at least one aggregate")
        for e in exprs:
            if e.name is None:
                raise HispeedError(f"agg() needs a name for {e}: name=... or .alias(name)")
        frame = self._frame
        names = frame._defined()
        keys = [_item(k, names) for k in self._keys]
        items = [*keys, *(_item(e, names) for e in exprs)]
        return frame._with(
            items=tuple(items),
            group_by=tuple(k.expr for k in keys),
            window=self._window,
        )
