"""Pull queries: a table's current rows from memory, or what a stream's topic holds.

Each queryable table gets a `TableView`: its rows by key, read from the table's topic as the
query that writes it commits, and caught up (only what is new) before every pull query. So a
pull query sees exactly the outputs already emitted, and a key lookup is a dictionary get.

Prepared pull queries are cached by SQL text. Lookups that differ only in the key literal
(`SELECT ... FROM t WHERE k = 'x'`) share one prepared plan: the literal is read with a
regular expression and the row is projected without Arrow, which keeps a lookup in the tens
of microseconds.
"""

from __future__ import annotations

import dataclasses
import decimal
import re
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Source
from hispeed.errors import HispeedError
from hispeed.functions.registry import EvalContext
from hispeed.log.base import PolledBatch, TopicPartition
from hispeed.ops.decode import SourceDecoder
from hispeed.plan.model import PSEUDO_COLUMNS, WINDOW_COLUMNS, QueryPlan, field_name
from hispeed.plan.pull import (
    LIMIT_ENABLED,
    RANGE_SCAN_ENABLED,
    TABLE_SCAN_ENABLED,
    OrderKey,
    PullAccess,
    check_pull,
    coerce_key,
    expressions_in,
    hashable_key,
    is_unresolved,
    order_keys,
    pull_access,
    sort_rows,
)
from hispeed.plan.query import plan_query
from hispeed.plan.subquery import flatten
from hispeed.runtime.context import QueryContext
from hispeed.sql import ast
from hispeed.sql.parser import parse_query
from hispeed.sql.windows import ENDS_IN_KEY

#: pseudo columns a pull query cannot read, so a view does not keep them
_NOT_KEPT = ("ROWPARTITION", "ROWOFFSET")
_CACHE_SIZE = 1024

#: the engine property bounding the rows of a pull query over a stream (the server's setting
#: `max_pull_rows`), and its default: the answer is built in memory before it is sent
PULL_MAX_ROWS = "pull.max.rows"
DEFAULT_PULL_MAX_ROWS = 100_000

#: a table's rows by key from the state of the query that writes it (runtime/state_view.py):
#: key tuples -> rows in a `TableView`'s form, or None when the state cannot answer
StateRows = Callable[[list[str], list[tuple[Any, ...]]], list[tuple[Any, ...]] | None]


class TableView:
    """A table's current row per key, kept in memory and caught up from its topic on demand.

    Rows are tuples in the order of `names`, followed by the record's raw key bytes (a
    table scan returns rows in the order of those bytes, as ksqlDB's RocksDB store does).
    A windowed table is keyed by (key, window start[, window end]); `windows` maps each key
    to its windows.
    """

    def __init__(self, context: QueryContext, source: Source) -> None:
        self.log = context.log
        self.source = source
        self.decoder = SourceDecoder(source, "", "pull", registry=context.schema_registry)
        self.partitions = len(self.log.describe_topic(source.topic).partitions)
        self.positions: list[int | None] = [None] * self.partitions
        self.rows: dict[Any, tuple[Any, ...]] = {}
        self.windows: dict[Any, dict[Any, None]] | None = {} if source.window is not None else None
        columns = [c.name for c in source.columns] + list(PSEUDO_COLUMNS)
        if source.window is not None:
            columns += list(WINDOW_COLUMNS)
        #: every column of the frame a query evaluates, and its Arrow type once known
        self.columns = columns
        self.names = [c for c in columns if c not in _NOT_KEPT]
        self.index = {name: i for i, name in enumerate(self.names)}
        self.types: dict[str, pa.DataType] = {c.name: c.type.to_arrow() for c in source.columns} | {
            n: t.to_arrow() for n, t in {**PSEUDO_COLUMNS, **WINDOW_COLUMNS}.items()
        }
        self._key_at = [self.index[c.name] for c in source.key_columns]
        self._session = source.window is not None and source.window.kind in ENDS_IN_KEY
        self._ordered: list[tuple[Any, ...]] | None = None
        #: ARRAY, MAP or STRUCT keys: held as nested tuples, which a dict can hash
        self._complex_key = any(
            c.type.name in ("ARRAY", "MAP", "STRUCT") for c in source.key_columns
        )
        #: key lookups from the writing query's state, where it answers them (set by
        #: `PullViews.view`): no copy of the table is read from its topic for them
        self.state: StateRows | None = None

    def key_of(self, key: tuple[Any, ...]) -> Any:
        """The dictionary key of a key tuple (the key columns' values)."""
        out = key[0] if len(key) == 1 else key
        return hashable_key(out) if self._complex_key else out

    def refresh(self) -> None:
        """Read what the table's topic gained since the last call."""
        log, topic = self.log, self.source.topic
        for p in range(self.partitions):
            start, end = log.offsets(topic, p)
            pos = self.positions[p]
            if pos is not None and pos > end:  # the topic was recreated: start over
                self._reset()
                self.refresh()
                return
            pos = start if pos is None else max(pos, start)
            if pos >= end:
                self.positions[p] = pos
                continue
            for batch in log.read(topic, p, pos):
                if batch.num_rows:
                    self._apply(PolledBatch(TopicPartition(topic, p), batch))
                    pos = int(batch.column("offset")[batch.num_rows - 1].as_py()) + 1
            self.positions[p] = max(pos, end)

    def _reset(self) -> None:
        self.positions = [None] * self.partitions
        self.rows.clear()
        if self.windows is not None:
            self.windows.clear()
        self._ordered = None

    def _apply(self, item: PolledBatch) -> None:
        frame, tombstones = self.decoder.decode(item, [])
        if frame.num_rows == 0:
            return
        self._ordered = None
        raw = item.batch.column("key").to_pylist()
        at = np.searchsorted(
            item.batch.column("offset").to_numpy(), frame.column(".ROWOFFSET").to_numpy()
        )
        raws = [raw[i] for i in at.tolist()]
        columns = []
        for name in self.names:
            column = frame.column(f".{name}")
            self.types[name] = column.type
            columns.append(column.to_pylist())
        columns.append(raws)
        rows, windows = self.rows, self.windows
        key_at = self._key_at
        single = len(key_at) == 1
        start_at = self.index.get("WINDOWSTART")
        end_at = self.index.get("WINDOWEND")
        gone = tombstones.tolist()
        hashable = hashable_key if self._complex_key else None
        for row, deleted in zip(zip(*columns, strict=True), gone, strict=True):
            key = row[key_at[0]] if single else tuple(row[i] for i in key_at)
            if hashable is not None:
                key = hashable(key)
            if windows is not None:
                assert start_at is not None and end_at is not None
                full = (key, row[start_at], row[end_at]) if self._session else (key, row[start_at])
                if deleted:
                    rows.pop(full, None)
                    windows.get(key, {}).pop(full, None)
                else:
                    rows[full] = row
                    windows.setdefault(key, {})[full] = None
            elif deleted:
                rows.pop(key, None)
            else:
                rows[key] = row

    def get(self, key: Any) -> tuple[Any, ...] | None:
        """The row of a key given in the view's dictionary form (an unwindowed table)."""
        if self.state is not None:
            rows = self.state(self.names, [key if isinstance(key, tuple) else (key,)])
            if rows is not None:
                return rows[0] if rows else None
        self.refresh()
        return self.rows.get(key)

    def lookup(self, keys: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        """The rows of these keys (every window of each, for a windowed table)."""
        if self.state is not None and self.windows is None:
            found = self.state(self.names, keys)
            if found is not None:
                return found
        self.refresh()
        out = []
        for k in keys:
            key = self.key_of(k)
            if self.windows is None:
                row = self.rows.get(key)
                if row is not None:
                    out.append(row)
            else:
                found = [self.rows[w] for w in self.windows.get(key, ())]
                out += sorted(found, key=lambda r: r[-1])
        return out

    def scan(self) -> list[tuple[Any, ...]]:
        """Every row, in the order of the raw key bytes."""
        if self._ordered is None:
            self._ordered = sorted(self.rows.values(), key=lambda r: r[-1] or b"")
        return self._ordered

    def frame(self, rows: list[tuple[Any, ...]], label: str) -> pa.RecordBatch:
        """Rows as the frame a query's expressions read (columns named for `label`)."""
        arrays = []
        for name in self.columns:
            typ = self.types[name]
            i = self.index.get(name)
            if i is None:
                arrays.append(pa.nulls(len(rows), typ))
            else:
                arrays.append(pa.array([r[i] for r in rows], typ))
        return pa.RecordBatch.from_arrays(
            arrays, names=[field_name(label, n) for n in self.columns]
        )


@dataclass
class PreparedPull:
    """A checked and planned pull query, ready to run again and again."""

    plan: QueryPlan
    access: PullAccess
    source: Source
    #: for a key lookup that only projects columns: (output name, row index) pairs
    projection: list[tuple[str, int]] | None = None
    #: ORDER BY's keys (plan/pull.py), and the most rows the answer may have without LIMIT
    order: list[OrderKey] = field(default_factory=list)
    most: int = DEFAULT_PULL_MAX_ROWS

    def run(self, views: PullViews) -> list[dict[str, Any]]:
        """The query's rows now."""
        if self.source.kind == "TABLE":
            view = views.view(self.source)
            access = self.access
            if access.kind != "lookup":
                view.refresh()
            if access.kind == "lookup":
                if access.exact and self.projection is not None:
                    return _project(view.lookup(access.keys), self.projection, self.plan.limit)
                rows = view.lookup(access.keys)
            else:
                rows = view.scan()
            frame = view.frame(rows, self.plan.label)
            return _evaluate(self.plan, frame, not access.exact, self.order, self.most)
        return _stream_rows(views.context, self.plan)


def _project(
    rows: list[tuple[Any, ...]], projection: list[tuple[str, int]], limit: int | None
) -> list[dict[str, Any]]:
    out = [{name: row[i] for name, i in projection} for row in rows]
    return out if limit is None else out[:limit]


def _evaluate(
    plan: QueryPlan,
    frame: pa.RecordBatch,
    filter_: bool,
    order: list[OrderKey] | None = None,
    most: int = DEFAULT_PULL_MAX_ROWS,
) -> list[dict[str, Any]]:
    ctx = EvalContext()
    if filter_ and plan.where is not None and frame.num_rows:
        frame = frame.filter(pc.fill_null(plan.where(frame, ctx), False))
    if order:
        frame = sort_rows(frame, order, plan.limit, most, ctx)
    elif plan.limit is not None:
        frame = frame.slice(0, plan.limit)
    names = [c.name for c in plan.outputs]
    arrays = [c.expr(frame, ctx) for c in plan.outputs]
    table = pa.Table.from_arrays(arrays, names=names)
    rows: list[dict[str, Any]] = table.to_pylist(maps_as_pydicts="strict")
    return rows


def _stream_rows(context: QueryContext, plan: QueryPlan) -> list[dict[str, Any]]:
    """A stream's pull query: every record its topic holds, in partition and offset order."""
    source = plan.source
    decoder = SourceDecoder(source, plan.label, "pull", registry=context.schema_registry)
    log = context.log
    most = int(context.properties.get(PULL_MAX_ROWS, DEFAULT_PULL_MAX_ROWS))
    out: list[dict[str, Any]] = []
    for p in range(len(log.describe_topic(source.topic).partitions)):
        start, end = log.offsets(source.topic, p)
        if end <= start:
            continue
        for batch in log.read(source.topic, p, start):
            frame, _ = decoder.decode(PolledBatch(TopicPartition(source.topic, p), batch), [])
            out += _evaluate(plan, frame, True)
            if plan.limit is not None and len(out) >= plan.limit:
                return out[: plan.limit]
            if 0 <= most < len(out):
                raise HispeedError(
                    f"A pull query over stream {source.name} returns at most {most:,} rows "
                    f"(the server's max_pull_rows, the engine property '{PULL_MAX_ROWS}'), and "
                    f"this one has more: add a LIMIT, or a WHERE clause that keeps fewer rows, "
                    f"or read the stream as it arrives with a push query (EMIT CHANGES)."
                )
    return out


# -- per-engine state: views and prepared queries --------------------------------------------


class PullViews:
    """One engine's pull-query state: its tables' views and its prepared queries
    (`runtime/manager.py` holds it)."""

    def __init__(self, context: QueryContext) -> None:
        self.context = context
        self.views: dict[str, TableView] = {}
        self.prepared: OrderedDict[Any, PreparedPull] = OrderedDict()
        #: key lookups by the text around their literal, with the view they read
        self.lookups: dict[Any, tuple[PreparedPull, TableView]] = {}
        #: the rows of a table from the state of the query writing it, if it can give them
        #: (set by the runtime manager, which knows the tasks)
        self.state_rows: Callable[[Source], StateRows | None] = lambda source: None

    def view(self, source: Source) -> TableView:
        """The view of a table (a new one when the table is new or was created again)."""
        view = self.views.get(source.name)
        if view is None or view.source is not source:
            view = self.views[source.name] = TableView(self.context, source)
            view.state = self.state_rows(source)
        return view

    def options(self) -> tuple[Any, ...]:
        """The properties a prepared query depends on (part of its cache key)."""
        props = self.context.properties
        return (
            props.get(TABLE_SCAN_ENABLED),
            props.get(RANGE_SCAN_ENABLED),
            props.get(LIMIT_ENABLED),
        )


def prepare(
    views: PullViews, select: ast.Select, properties: Mapping[str, Any] | None = None
) -> PreparedPull:
    """Check and plan a pull query (no EMIT), as ksqlDB would refuse or answer it.

    `properties`: the request's or the statement's (ksqlDB's `ksql.query.pull.*`, the
    bounds a query is checked against) over the engine's."""
    if select.emit is not None:
        raise HispeedError("a push query (EMIT CHANGES) runs with Engine.stream()")
    context = views.context
    props = {**context.properties, **(properties or {})}
    select = check_pull(flatten(select), context.catalog, props)
    order, select = select.order_by, dataclasses.replace(select, order_by=())
    try:
        plan = plan_query(select, context.catalog, context.log, properties=props)
    except HispeedError as e:
        # ksqlDB checks BETWEEN's types only once it has rewritten it into comparisons
        text = str(e)
        if "Error in WHERE expression: Cannot compare" in text and _has_between(select.where):
            raise HispeedError(
                text.replace("Error in WHERE expression: ", "Invalid expression: ")
            ) from e
        raise
    if plan.join is not None:
        raise HispeedError("Pull queries don't support JOIN clauses.")
    if plan.aggregation is not None:
        raise HispeedError(
            "Pull queries don't support GROUP BY clauses or aggregate functions: create a table "
            "with CREATE TABLE ... AS SELECT ... GROUP BY, then query the table"
        )
    if plan.table_functions:
        raise HispeedError("Pull queries don't support table functions.")
    access = pull_access(select, plan.source, plan.label, props)
    prepared = PreparedPull(plan, access, plan.source)
    if order:
        most = int(context.properties.get(PULL_MAX_ROWS, DEFAULT_PULL_MAX_ROWS))
        prepared.order = order_keys(order, plan, plan.limit, most)
        prepared.most = most
    elif plan.source.kind == "TABLE" and access.kind == "lookup" and access.exact:
        prepared.projection = _projection(select, plan, views.view(plan.source))
    return prepared


def _has_between(where: ast.Expr | None) -> bool:
    return any(isinstance(e, ast.Between) for e in expressions_in(where))


def _projection(
    select: ast.Select, plan: QueryPlan, view: TableView
) -> list[tuple[str, int]] | None:
    """(output, row index) pairs when every output is a column as stored, else None."""
    items = select.items
    names: list[str]
    if len(items) == 1 and isinstance(items[0], ast.AllColumns) and items[0].source is None:
        names = [c.name for c in plan.outputs]
    else:
        refs = [i.expr for i in items if isinstance(i, ast.SelectItem)]
        names = [r.name for r in refs if isinstance(r, ast.ColumnRef)]
        if len(names) != len(items):
            return None
    if len(names) != len(plan.outputs):
        return None
    out = []
    for name, column in zip(names, plan.outputs, strict=True):
        i = view.index.get(name)
        if i is None or "MAP" in str(column.type):
            return None  # maps are kept as pairs; Arrow turns them into dicts
        out.append((column.name, i))
    return out


def run_select(
    views: PullViews, select: ast.Select, properties: Mapping[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Rows of a parsed pull query (`properties`: the statement's, over the engine's)."""
    return prepare(views, select, properties).run(views)


# `SELECT <items> FROM <name> WHERE <column> = <literal>`: the shape of a key lookup
_LOOKUP = re.compile(
    r"""^\s*SELECT\s+(?P<items>.+?)\s+FROM\s+(?P<source>[A-Za-z_][A-Za-z0-9_]*)\s+
    WHERE\s+(?P<column>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*
    (?P<literal>'(?:[^']|'')*'|-?[0-9]+(?:\.[0-9]+)?)\s*;?\s*$""",
    re.IGNORECASE | re.DOTALL | re.VERBOSE,
)


def run_sql(views: PullViews, sql: str) -> list[dict[str, Any]]:
    """Rows of a pull query given as text; repeated texts and key lookups skip the planner."""
    catalog = views.context.catalog
    m = _LOOKUP.match(sql)
    template: tuple[Any, ...] | None = None
    if m is not None:
        literal = m["literal"]
        template = (m["items"], m["source"], m["column"], literal[0] == "'", "." in literal)
        found = views.lookups.get(template)
        if found is not None:
            prepared, view = found
            source = prepared.source
            if catalog.sources.get(source.name) is source and view.source is source:
                key = _literal(literal, source)
                if key is not None:
                    row = view.get(key)
                    if row is None:
                        return []
                    assert prepared.projection is not None
                    return [{name: row[i] for name, i in prepared.projection}]
    cache_key = (sql, views.options())
    prepared_ = views.prepared.get(cache_key)
    if prepared_ is None or catalog.sources.get(prepared_.source.name) is not (prepared_.source):
        prepared_ = prepare(views, parse_query(sql, catalog.types))
        views.prepared[cache_key] = prepared_
        if len(views.prepared) > _CACHE_SIZE:
            views.prepared.popitem(last=False)
        if (
            template is not None
            and prepared_.projection is not None
            and prepared_.source.window is None
            and len(prepared_.access.keys) == 1
            and len(prepared_.source.key_columns) == 1
            and prepared_.plan.limit is None
        ):
            views.lookups[template] = (prepared_, views.view(prepared_.source))
    else:
        views.prepared.move_to_end(cache_key)
    return prepared_.run(views)


def _literal(text: str, source: Source) -> Any:
    """The key a lookup's literal names, as its column's type; None to take the slow path."""
    column = source.key_columns[0]
    value: Any
    if text[0] == "'":
        value = text[1:-1].replace("''", "'")
        if column.type.name == "STRING":
            return value
    elif "." in text:
        value = decimal.Decimal(text)
    else:
        value = int(text)
    key = coerce_key(value, column.type)
    return None if is_unresolved(key) else key
