"""The statement model: what the parser makes of ksqlDB SQL.

Nodes are frozen dataclasses; `pos` (line, column) is kept for error messages and is left
out of equality, so that `GROUP BY a + 1` matches `SELECT a + 1` wherever each is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hispeed.sql.types import SqlType

Pos = tuple[int, int]
NOPOS: Pos = (0, 0)


def _pos() -> Any:
    return field(default=NOPOS, compare=False, repr=False)


# -- expressions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Expr:
    pass


@dataclass(frozen=True)
class Literal(Expr):
    value: Any  # None, bool, int, float, decimal.Decimal, str, bytes
    type: SqlType | None  # None for the NULL literal
    pos: Pos = _pos()


@dataclass(frozen=True)
class ColumnRef(Expr):
    name: str
    source: str | None = None  # the qualifier in `s.col`
    pos: Pos = _pos()


@dataclass(frozen=True)
class Dereference(Expr):
    """`expr->field` on a STRUCT."""

    base: Expr
    field: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class StructStar(Expr):
    """`expr->*` in a select list: every field of a STRUCT, each a column of its own."""

    base: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class Subscript(Expr):
    """`expr[index]` on an ARRAY (1-based; negative from the end) or a MAP."""

    base: Expr
    index: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class FunctionCall(Expr):
    name: str
    args: tuple[Expr, ...]
    distinct: bool = False
    star: bool = False  # COUNT(*)
    pos: Pos = _pos()
    #: an aggregate's `FILTER (WHERE condition)` (sql/aggregate_clauses.py)
    filter: Expr | None = None


@dataclass(frozen=True)
class OverCall(Expr):
    """`ROW_NUMBER() OVER (PARTITION BY ... ORDER BY ...)`, `LAG(x, 1) OVER (...)`: a
    window function over the rows of a partition in an order (past ksqlDB: docs/sql.md)."""

    name: str
    args: tuple[Expr, ...]
    partition_by: tuple[Expr, ...]
    #: (expression, descending) in order of precedence
    order_by: tuple[tuple[Expr, bool], ...]
    #: the frame of an aggregate over a window (sql/over.py): ("ROWS", n preceding rows) or
    #: ("RANGE", milliseconds preceding); n or milliseconds None: UNBOUNDED PRECEDING
    frame: tuple[str, int | None] | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Lambda(Expr):
    params: tuple[str, ...]
    body: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class BinaryOp(Expr):
    op: str  # + - * / % || = != < <= > >= AND OR
    left: Expr
    right: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class UnaryOp(Expr):
    op: str  # NOT - +
    operand: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class IsNull(Expr):
    operand: Expr
    negated: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class InList(Expr):
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class InSubquery(Expr):
    """`operand [NOT] IN (SELECT key FROM table ...)`: a semi-join (anti-join) against a
    table, planned by plan/semijoin.py (past ksqlDB: docs/sql.md)."""

    operand: Expr
    query: Select
    negated: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class Exists(Expr):
    """`EXISTS (SELECT ... FROM table WHERE table.key = outer.column ...)` (NOT EXISTS is
    NOT over it): a semi-join against a table, planned by plan/semijoin.py."""

    query: Select
    pos: Pos = _pos()


@dataclass(frozen=True)
class Between(Expr):
    operand: Expr
    low: Expr
    high: Expr
    negated: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class Like(Expr):
    operand: Expr
    pattern: Expr
    escape: str | None = None
    negated: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class Case(Expr):
    operand: Expr | None  # CASE x WHEN ... (simple) or CASE WHEN ... (searched)
    whens: tuple[tuple[Expr, Expr], ...]
    default: Expr | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Cast(Expr):
    operand: Expr
    type: SqlType
    pos: Pos = _pos()


@dataclass(frozen=True)
class ArrayConstructor(Expr):
    items: tuple[Expr, ...]
    pos: Pos = _pos()


@dataclass(frozen=True)
class MapConstructor(Expr):
    entries: tuple[tuple[Expr, Expr], ...]
    pos: Pos = _pos()


@dataclass(frozen=True)
class StructConstructor(Expr):
    fields: tuple[tuple[str, Expr], ...]
    pos: Pos = _pos()


# -- queries --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SelectItem:
    expr: Expr
    alias: str | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class AllColumns:
    """`*` or `s.*` in a select list."""

    source: str | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Relation:
    pass


@dataclass(frozen=True)
class SourceRef(Relation):
    name: str
    alias: str | None = None
    pos: Pos = _pos()

    @property
    def label(self) -> str:
        return self.alias or self.name


@dataclass(frozen=True)
class WindowTvf(Relation):
    """A windowing table function in FROM, as Flink SQL writes it:
    `TUMBLE(TABLE src, DESCRIPTOR(t), size [, offset])`, `HOP(TABLE src, DESCRIPTOR(t),
    slide, size [, offset])`, `CUMULATE(TABLE src, DESCRIPTOR(t), step, max size [, offset])`
    or `SESSION(TABLE src [PARTITION BY k, ...], DESCRIPTOR(t), gap)`, optionally inside
    `TABLE(...)`. Durations in milliseconds; `step_ms` is HOP's slide and CUMULATE's step;
    `partition_by` SESSION's keys (each column's name and place), sessions kept per key."""

    kind: str  # TUMBLE HOP CUMULATE SESSION
    source: SourceRef
    time_column: str
    size_ms: int  # TUMBLE's and HOP's size, CUMULATE's max size, SESSION's gap
    step_ms: int | None = None
    offset_ms: int = 0
    alias: str | None = None
    time_pos: Pos = _pos()
    pos: Pos = _pos()
    partition_by: tuple[ColumnRef, ...] = ()

    @property
    def label(self) -> str:
        return self.alias or self.source.label


@dataclass(frozen=True)
class WindowJoin(Relation):
    """Flink's window join: `L [LEFT|RIGHT|FULL] JOIN R ON L.window_start = R.window_start AND
    L.window_end = R.window_end AND ...`, each side a window table function's rows (a
    `WindowTvf`, or a `Subquery` selecting its rows); past ksqlDB: docs/sql.md."""

    left: Relation
    right: Relation
    kind: str  # INNER LEFT RIGHT FULL
    on: Expr
    pos: Pos = _pos()


@dataclass(frozen=True)
class Subquery(Relation):
    """`FROM (SELECT ...) [alias]`: a query read as a relation (past ksqlDB: docs/sql.md)."""

    query: Select
    alias: str | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class WithinSpec:
    before_ms: int
    after_ms: int
    grace_ms: int | None = None
    #: from an interval join's time bounds (`b.t BETWEEN a.t - ... AND a.t + ...`), Flink's
    #: form, not ksqlDB's WITHIN: an outer side's records with a NULL key are sent NULL-padded
    interval: bool = False


@dataclass(frozen=True)
class Join(Relation):
    left: Relation
    right: SourceRef
    kind: str  # INNER LEFT RIGHT FULL
    on: Expr
    within: WithinSpec | None = None
    pos: Pos = _pos()
    #: `FROM a, b`: an inner join whose condition is in WHERE (`on` is TRUE)
    comma: bool = False
    #: FOR SYSTEM_TIME AS OF's time: a temporal join with the right table's versions
    as_of: Expr | None = None
    #: a Flink statement's join of streams: without time bounds, a regular join keeping each
    #: side this many milliseconds (Flink's state TTL: statements/flink_views.py)
    unbounded_ms: int | None = None


@dataclass(frozen=True)
class WindowSpec:
    kind: str  # TUMBLING HOPPING SESSION; CUMULATING: CUMULATE's, only planned (plan/window_tvf.py)
    size_ms: int
    advance_ms: int | None = None
    grace_ms: int | None = None
    retention_ms: int | None = None
    pos: Pos = _pos()
    #: a window table function's offset (plan/window_tvf.py): windows start at `offset_ms +
    #: k * advance` (TUMBLING, HOPPING) or `offset_ms + k * size` (CUMULATING); never parsed
    offset_ms: int = 0
    #: a window table function's (Flink's): its windows close on the watermark over the input's
    #: partitions (ops/watermark.py), not on one partition's stream time
    watermark: bool = False


@dataclass(frozen=True)
class OrderItem:
    """One `expr [ASC | DESC] [NULLS FIRST | LAST]` of a pull query's ORDER BY
    (sql/order_by.py); `nulls_first` None: the default, nulls last either way."""

    expr: Expr
    descending: bool = False
    nulls_first: bool | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Select:
    items: tuple[SelectItem | AllColumns, ...]
    from_: Relation
    where: Expr | None = None
    window: WindowSpec | None = None
    group_by: tuple[Expr, ...] = ()
    partition_by: tuple[Expr, ...] = ()
    having: Expr | None = None
    emit: str | None = None  # CHANGES, FINAL, or None (a pull query)
    limit: int | None = None
    pos: Pos = _pos()
    order_by: tuple[OrderItem, ...] = ()


# -- statements -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    pass


@dataclass(frozen=True)
class ColumnDef:
    name: str
    type: SqlType
    key: bool = False  # KEY (streams)
    primary_key: bool = False  # PRIMARY KEY (tables)
    headers: str | None = None  # HEADERS, or HEADER('k') -> 'k'; '' for all headers
    pos: Pos = _pos()


@dataclass(frozen=True)
class Property:
    value: Any  # str, int, float, bool
    pos: Pos = _pos()


@dataclass(frozen=True)
class CreateSource(Statement):
    kind: str  # STREAM TABLE
    name: str
    columns: tuple[ColumnDef, ...]
    properties: dict[str, Property]
    or_replace: bool = False
    if_not_exists: bool = False
    source: bool = False  # CREATE SOURCE TABLE: read-only, materialized
    pos: Pos = _pos()


@dataclass(frozen=True)
class CreateAsSelect(Statement):
    kind: str
    name: str
    query: Select
    properties: dict[str, Property]
    or_replace: bool = False
    if_not_exists: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class InsertInto(Statement):
    target: str
    query: Select
    properties: dict[str, Property] = field(default_factory=dict)
    pos: Pos = _pos()
    target_pos: Pos = _pos()
    #: Flink's `INSERT INTO sink (c1, c2) SELECT ...`: the sink's columns the query's fill,
    #: in order (empty: all, by position), and the list's place
    columns: tuple[str, ...] = ()
    columns_pos: Pos = _pos()


@dataclass(frozen=True)
class InsertValues(Statement):
    target: str
    columns: tuple[str, ...]  # empty: all columns in order
    values: tuple[Expr, ...]
    pos: Pos = _pos()


@dataclass(frozen=True)
class Delete(Statement):
    """`DELETE FROM table WHERE key = ...`: tombstones for the keys (sql/delete.py)."""

    target: str
    where: Expr | None
    pos: Pos = _pos()
    target_pos: Pos = _pos()


@dataclass(frozen=True)
class AlterSource(Statement):
    """ALTER STREAM|TABLE name ADD [COLUMN] col type [, ADD [COLUMN] col type ...]."""

    kind: str  # STREAM TABLE
    name: str
    columns: tuple[ColumnDef, ...]
    pos: Pos = _pos()


@dataclass(frozen=True)
class Drop(Statement):
    kind: str  # STREAM TABLE TYPE
    name: str
    if_exists: bool = False
    delete_topic: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class CreateConnector(Statement):
    kind: str  # SOURCE SINK
    name: str
    #: names in quotes as written (Kafka Connect's keys are case-sensitive), bare names
    #: lower-cased; hispeed's own connectors read them lower-cased
    properties: dict[str, Property]
    if_not_exists: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class DropConnector(Statement):
    name: str
    if_exists: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class Show(Statement):
    what: str  # STREAMS TABLES TOPICS QUERIES PROPERTIES FUNCTIONS TYPES
    extended: bool = False
    #: SHOW SOURCE|SINK CONNECTORS: "SOURCE" or "SINK" (None: all of them)
    scope: str | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class Describe(Statement):
    name: str
    extended: bool = False
    function: bool = False  # DESCRIBE FUNCTION
    connector: bool = False  # DESCRIBE CONNECTOR
    pos: Pos = _pos()


@dataclass(frozen=True)
class Explain(Statement):
    target: Statement | str  # a statement, or a query id
    pos: Pos = _pos()


@dataclass(frozen=True)
class Analyze(Statement):
    """ANALYZE <query>: DuckDB's SQL over the sources' history (`runtime/analytic.py`); the
    query's text is kept as written, with where it starts in the statement's text."""

    sql: str
    line: int = 1
    column: int = 1
    pos: Pos = _pos()


@dataclass(frozen=True)
class Terminate(Statement):
    query_id: str | None  # None: TERMINATE ALL
    pos: Pos = _pos()


@dataclass(frozen=True)
class Print(Statement):
    topic: str
    from_beginning: bool = False
    limit: int | None = None
    interval: int | None = None
    pos: Pos = _pos()


@dataclass(frozen=True)
class SetProperty(Statement):
    name: str
    value: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class UnsetProperty(Statement):
    name: str
    pos: Pos = _pos()


@dataclass(frozen=True)
class CreateType(Statement):
    name: str
    type: SqlType
    if_not_exists: bool = False
    pos: Pos = _pos()


@dataclass(frozen=True)
class QueryStatement(Statement):
    """A bare SELECT: a pull query, or a push query with EMIT CHANGES."""

    query: Select
    pos: Pos = _pos()


@dataclass(frozen=True)
class ParsedStatement:
    """One statement with the exact text it came from."""

    statement: Statement
    text: str
    line: int
    column: int
