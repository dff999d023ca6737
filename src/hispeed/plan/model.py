"""The query plan model: what a query task runs, and its parts.

`QueryPlan` holds a query's source, its compiled WHERE, key and value columns, and, where the
query has them, its aggregation (`AggregationPlan`, `AggregateCall`), its table functions
(`TableCall`) and its join (`JoinPlan`, `JoinStep`, `JoinSide`). The planners
(plan/planner.py, plan/aggregates.py, plan/joins.py) build it; runtime and operators read it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hispeed.catalog import Source, WindowInfo
from hispeed.errors import HispeedError
from hispeed.expr.scope import Compiled, Scope, ScopeColumn
from hispeed.formats.base import Column
from hispeed.functions.aggregates import Aggregate, AggregateSpec
from hispeed.sql import ast
from hispeed.sql import types as T

PSEUDO_COLUMNS = {"ROWTIME": T.BIGINT, "ROWPARTITION": T.INTEGER, "ROWOFFSET": T.BIGINT}
WINDOW_COLUMNS = {"WINDOWSTART": T.BIGINT, "WINDOWEND": T.BIGINT}
DEFAULT_GRACE_MS = 24 * 3600 * 1000


class UnsupportedError(HispeedError):
    """A query shape hispeed does not run yet: the message says which."""


def field_name(label: str, name: str) -> str:
    """The field of a frame that holds column `name` of the source read as `label`."""
    return f"{label}.{name}"


@dataclass
class AggregateCall:
    spec: AggregateSpec
    logic: Aggregate
    args: list[Compiled]  # the per-record value arguments
    column: ScopeColumn  # where the result sits after aggregation


@dataclass
class AggregationPlan:
    group_exprs: list[Compiled]
    group_columns: list[ScopeColumn]
    calls: list[AggregateCall]
    window: ast.WindowSpec | None
    grace_ms: int
    post_scope: Scope
    #: each aggregate's row time (the newest record time it has seen), kept beside the
    #: calls' states; no select item reads it
    row_time: AggregateCall
    #: per GROUP BY expression, the column it names when it is a plain column reference
    group_names: list[str | None] = dataclasses.field(default_factory=list)

    @property
    def close_ms(self) -> int:
        """How long after its end a window still takes records: the grace period, and for a
        session its gap as well (Kafka Streams' session aggregate and its suppression both
        close a session at end + grace + gap)."""
        if self.window is not None and self.window.kind == "SESSION":
            return self.grace_ms + (self.window.size_ms or 0)
        return self.grace_ms

    @property
    def state_calls(self) -> list[AggregateCall]:
        """The calls whose states the aggregation keeps: the query's, then `row_time`."""
        return [*self.calls, self.row_time]


@dataclass
class OutputColumn:
    name: str
    type: T.SqlType
    expr: Compiled


@dataclass(frozen=True)
class TableCall(ScopeColumn):
    """A table function in the select list: the column of its values, and how to get them."""

    function: Any = None  # functions.tables.TableFunction
    args: tuple[Compiled, ...] = ()
    arg_types: tuple[T.SqlType, ...] = ()


@dataclass(frozen=True)
class LagCall(ScopeColumn):
    """`LAG(value [, offset [, default]]) OVER (PARTITION BY ... ORDER BY time)` in the
    select list: the column of its values (ops/lag.py fills it; plan/lag.py makes it)."""

    value: Any = None  # Compiled
    offset: int = 1
    default: Any = None  # Compiled, or None: NULL
    partition: tuple[Any, ...] = ()  # Compiled
    #: LAG, or the aggregate over a frame (plan/over_frames.py): AVG SUM COUNT MIN MAX;
    #: value None for COUNT(*)
    function: str = "LAG"
    #: an aggregate's frame: ("ROWS", n preceding) or ("RANGE", ms preceding); None: unbounded
    frame: tuple[str, int | None] | None = None
    #: over a table: the ORDER BY, (Compiled, descending) (plan/lag.py; ops/over_table.py)
    order: tuple[Any, ...] = ()


#: the joined frame's own columns are `$J.<name>`
LABEL = "$J"
ROWKEY = "ROWKEY"


@dataclass
class JoinSide:
    source: Source
    label: str


@dataclass
class JoinStep:
    """One binary join: the result so far (sides 0 .. right - 1) with side `right`."""

    kind: str  # INNER LEFT RIGHT FULL
    right: int
    left_key: Compiled  # over the fields of sides 0 .. right - 1
    right_key: Compiled  # over the fields of side `right`
    left_kind: str  # STREAM or TABLE
    right_kind: str
    before_ms: int = 0
    after_ms: int = 0
    #: stream-stream joins: how long after a window closes records may still join it; None
    #: when no GRACE PERIOD is given (then unmatched rows of outer joins are sent at once)
    grace_ms: int | None = None
    #: a table-table join on the right table's key from a left value column
    foreign_key: bool = False
    #: (left source, right source) whose partitions must match: both joined on their keys
    copartitioned: tuple[str, str] | None = None
    #: the rest of an outer join's ON clause past its key equality (plan/join_conditions.py):
    #: joined rows in, whether each pair matches out; a pair that does not is no match
    residual: Callable[[list[dict[str, Any]]], list[bool]] | None = None
    #: a temporal join (FOR SYSTEM_TIME AS OF): the left field holding each stream record's
    #: time, whose version of the table row it joins (plan/temporal.py)
    as_of: str | None = None
    #: a table-table join on a column other than the right table's key (#9352, many to many;
    #: plan/nonkey_joins.py): the left input's key fields and the right table's, which
    #: together key its result
    pair_key: tuple[list[str], list[str]] | None = None
    #: the join's condition as ksqlDB's messages show it (a non-key join's, for its errors)
    condition: str = ""
    #: Flink's window join (plan/window_join.py): the TUMBLE window (size, offset in
    #: milliseconds) each side's records are put in; joined when it closes
    #: (ops/join_window.py)
    window: tuple[int, int] | None = None
    #: a window join of HOP's or CUMULATE's rows: the windows each record is put in, one copy
    #: per window, its end in each side's `ROW_WINDOW_END` column (None: TUMBLE's one window)
    row_windows: RowWindows | None = None
    #: a stream-stream join in Flink's form (interval bounds): an outer side's record with a
    #: NULL key joins nothing and is sent NULL-padded when its window closes, as Flink sends
    #: it; in ksqlDB's (WITHIN) it is dropped, as Kafka Streams 3.4's KStreamKStreamJoin
    #: (ksqlDB 0.29's) skips a record with a NULL key
    pad_null_keys: bool = False

    @property
    def result(self) -> str:
        return "TABLE" if self.left_kind == "TABLE" and self.right_kind == "TABLE" else "STREAM"


@dataclass
class JoinPlan:
    sides: list[JoinSide]
    steps: list[JoinStep]
    key_type: T.SqlType
    #: fields of the result key: the join expression's columns, or `$J.ROWKEY`
    key_fields: list[str]
    synthetic_key: bool
    #: the name of the synthetic key column (ROWKEY, or ROWKEY_n if the sources have that)
    key_name: str = ROWKEY
    #: inner joins' conditions past their key equalities: a filter the query adds to WHERE
    filter: ast.Expr | None = None

    @property
    def kind(self) -> str:
        return self.steps[-1].result

    @property
    def paired(self) -> bool:
        """Whether a join on non-key columns keys the result by both tables' keys."""
        return any(step.pair_key is not None for step in self.steps)

    @property
    def text_key(self) -> bool:
        """Whether the result's key has several columns (a non-key join's pair, a
        foreign-key join's left key of several columns): the frame's `$J.ROWKEY` then holds
        the text of all of them (ops/join.py), which WHERE and GROUP BY over the join tell
        rows apart by."""
        first = self.sides[0].source
        return self.paired or (self.steps[0].foreign_key and len(first.key_columns) > 1)


@dataclass
class PythonStage:
    """A Python function over the select list's rows, before they are written: the stream
    API's `.map` (per row) and `.map_batches` (per batch, Arrow or Polars). plan/python.py
    makes it; ops/python_map.py runs it."""

    kind: str  # MAP MAP_BATCHES MAP_POLARS
    #: `module:function`, what the statement keeps and a restart loads
    reference: str
    function: Callable[[Any], Any]
    #: the select list's value columns, which the function reads (with the key columns)
    inputs: list[OutputColumn]


#: the column a HOP's or CUMULATE's copy of a row carries its window's end in (window
#: Top-N over their rows); no name a user can write
ROW_WINDOW_END = "$WINDOW_END"


#: the columns a SESSION row carries its session's start and end in, once the session closes
#: (ops/session_rows.py); no names a user can write
SESSION_START, SESSION_END = "$SESSION_START", "$SESSION_END"


@dataclass
class SessionRowsPlan:
    """SESSION's rows without aggregation: each held until its session (of rows less than
    `gap_ms` apart, per value of `partition`, SESSION's PARTITION BY) closes."""

    gap_ms: int
    partition: list[Compiled]


@dataclass(frozen=True)
class RowWindows:
    """The windows of a HOP or CUMULATE table function (milliseconds; `step_ms` is HOP's
    slide and CUMULATE's step, `size_ms` HOP's size and CUMULATE's max size); SESSION's in a
    window join (`size_ms` its gap)."""

    kind: str  # HOP CUMULATE SESSION
    size_ms: int
    step_ms: int
    offset_ms: int


def window_fields(windows: RowWindows) -> tuple[str, ...]:
    """The columns a window join's side rows carry their window in: HOP's and CUMULATE's
    copies their window's end, SESSION's rows their session's start and end."""
    return (SESSION_START, SESSION_END) if windows.kind == "SESSION" else (ROW_WINDOW_END,)


@dataclass
class RankingPlan:
    """Top-N and deduplication: `ROW_NUMBER() OVER (PARTITION BY p ORDER BY o) AS rn` in a
    subquery filtered by `rn <= limit` (plan/ranking.py makes it; ops/topn.py runs it)."""

    function: str  # ROW_NUMBER
    partition: list[Compiled]
    #: (expression, descending) in order of precedence
    order: list[tuple[Compiled, bool]]
    limit: int
    #: the index in `QueryPlan.outputs` of the rank column (None: not selected)
    rank_index: int | None
    #: the input table's key columns (None: the input is a stream, kept top-N rows only)
    table_key: list[Compiled] | None = None
    #: function OVER: the aggregates over frames of a table's rows (ops/over_table.py)
    frames: list[LagCall] = field(default_factory=list)
    #: window Top-N and deduplication over a window table function's rows: each row's
    #: window end (epoch milliseconds); the ranks are output once, when it closes
    #: (ops/window_rank.py)
    window_end: Compiled | None = None
    #: over HOP's and CUMULATE's rows: the windows each row is put in, one copy of the row
    #: per window with its end in the `ROW_WINDOW_END` column (None: TUMBLE's one window)
    row_windows: RowWindows | None = None
    #: Flink's keep-last deduplication (a stream's rows, `ORDER BY <time> DESC`, rn = 1):
    #: of rows at the same time the later one replaces the kept one, as Flink's does
    keep_last: bool = False


@dataclass
class QueryPlan:
    source: Source
    label: str
    scope: Scope
    where: Compiled | None
    key: list[OutputColumn]
    value: list[OutputColumn]
    aggregation: AggregationPlan | None = None
    having: Compiled | None = None
    sink_kind: str = "STREAM"
    #: PARTITION BY: the key is recomputed; the output goes to the partition of the new key
    repartition: bool = False
    #: PARTITION BY over a stream: the key columns whose expression reads more than the old
    #: key; a null value (passed on) gets them null, as ksqlDB evaluates them on a null row
    #: (PartitionByParamsFactory: only a key-only expression is evaluated on the key)
    value_keys: tuple[int, ...] = ()
    limit: int | None = None
    emit: str | None = None
    window_info: WindowInfo | None = None
    notes: list[str] = field(default_factory=list)
    #: every output column in the order of the select list
    outputs: list[OutputColumn] = field(default_factory=list)
    #: a join's sides and steps: the query reads every side and runs over the joined rows
    join: JoinPlan | None = None
    #: table functions (EXPLODE...): each row becomes as many rows as they give values
    table_functions: list[TableCall] = field(default_factory=list)
    #: a Python function between the select list and the sink (`value` is then its output)
    python: PythonStage | None = None
    #: ROW_NUMBER's Top-N or deduplication over the rows (key: the partition and the rank)
    ranking: RankingPlan | None = None
    #: LAG calls of the select list, computed over each partition's earlier rows
    lags: list[LagCall] = field(default_factory=list)
    #: SESSION's rows without aggregation, held until their session closes
    session_rows: SessionRowsPlan | None = None

    @property
    def key_columns(self) -> list[Column]:
        return [Column(c.name, c.type) for c in self.key]

    @property
    def value_columns(self) -> list[Column]:
        return [Column(c.name, c.type) for c in self.value]
