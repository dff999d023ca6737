"""Check a pull query as ksqlDB does, and find how it reads a table: by key, by range, or all.

ksqlDB refuses some pull queries outright (JOIN, GROUP BY, ROWOFFSET...) and others only when
table scans are disabled (`ksql.query.pull.table.scan.enabled=false`). Its WHERE analysis
rewrites IN and BETWEEN into comparisons, puts the predicate in disjunctive normal form and
looks at each disjunct for equalities on every key column. This module does the same on the
AST, before the planner sees the query, so that the messages are ksqlDB's. Whatever the
access path, the full WHERE clause is applied to the rows it yields: the path is an index,
never a change of meaning.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Catalog, Source
from hispeed.errors import HispeedError, SqlError
from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Scope
from hispeed.functions.registry import EvalContext
from hispeed.plan.scope import compile_clause, error_at
from hispeed.plan.timestamps import magic_timestamps
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql

TABLE_SCAN_ENABLED = "ksql.query.pull.table.scan.enabled"
RANGE_SCAN_ENABLED = "ksql.query.pull.range.scan.enabled"
LIMIT_ENABLED = "ksql.query.pull.limit.clause.enabled"

SYNTAX_HELP = (
    " See https://cnfl.io/queries for more info.\n"
    "Add EMIT CHANGES if you intended to issue a push query."
)
#: pseudo columns a pull query may not read: a table's row has no single offset
DISALLOWED = ("ROWPARTITION", "ROWOFFSET")
WINDOW_BOUNDS = ("WINDOWSTART", "WINDOWEND")
_COMPARISONS = {
    "=": "EQUAL",
    "!=": "NOT_EQUAL",
    "<>": "NOT_EQUAL",
    "<": "LESS_THAN",
    "<=": "LESS_THAN_OR_EQUAL",
    ">": "GREATER_THAN",
    ">=": "GREATER_THAN_OR_EQUAL",
}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "=": "=", "!=": "!=", "<>": "<>"}


@dataclass
class PullAccess:
    """How a pull query reads a table: the keys to look up, or a scan of every row.

    `keys` holds one tuple per looked-up key, in the order of the source's key columns.
    `exact` is true when the WHERE clause says nothing but those keys, so the rows found
    need no further filtering.
    """

    kind: str  # "lookup" "range" "scan"
    keys: list[tuple[Any, ...]] = field(default_factory=list)
    exact: bool = False


def _truthy(properties: dict[str, Any], name: str, default: bool) -> bool:
    """A BOOLEAN property as ksqlDB's ConfigDef reads it: true or false (any case, as text or
    a boolean); anything else is refused naming the property, as ksqlDB refuses it."""
    value = properties.get(name)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise HispeedError(
        f"Invalid value {value} for configuration {name}: Expected value to be either true or false"
    )


def check_pull(select: ast.Select, catalog: Catalog, properties: dict[str, Any]) -> ast.Select:
    """Refuse what ksqlDB's analyzer refuses in a pull query; returns the query to plan.

    The query returned has window bounds given as text (`WINDOWSTART >= '2020-02-23T23:45'`)
    turned into epoch milliseconds, as ksqlDB reads them.
    """
    rule = _first_broken_rule(select, properties)
    if rule:
        raise HispeedError(rule + SYNTAX_HELP)
    assert isinstance(select.from_, ast.SourceRef)
    ref = select.from_
    line, col = ref.pos
    source = catalog.get(ref.name, line=line or 1, column=col or 1)
    windowed = source.window is not None
    if select.where is not None:
        _check_where_types(select.where, source, ref.label, windowed)
        if windowed:
            select = dataclasses.replace(
                select, where=magic_timestamps(select.where, WINDOW_BOUNDS)
            )
    return select


def pull_access(
    select: ast.Select, source: Source, label: str, properties: dict[str, Any]
) -> PullAccess:
    """How a checked pull query reads its source; refuses what needs a scan when scans are
    disabled, and tables that no query materializes."""
    if source.kind != "TABLE":
        return PullAccess("scan")
    windowed = source.window is not None
    table_scans = _truthy(properties, TABLE_SCAN_ENABLED, True)
    range_scans = _truthy(properties, RANGE_SCAN_ENABLED, True)
    access = _access(select.where, source, label, table_scans, windowed)
    if not (source.writer or source.source_table):
        name = source.name
        raise HispeedError(
            f"The `{name}` table isn't queryable. To derive a queryable table, you can do "
            f"'CREATE TABLE QUERYABLE_{name} AS SELECT * FROM {name}'." + SYNTAX_HELP
        )
    if access.kind == "range" and (not range_scans or windowed):
        access = PullAccess("scan")
    if access.kind == "scan" and not table_scans:
        raise HispeedError(
            "Query requires table scan to be enabled. Table scans can be enabled by setting "
            f"{TABLE_SCAN_ENABLED}=true"
        )
    return access


def _first_broken_rule(select: ast.Select, properties: dict[str, Any]) -> str:
    if isinstance(select.from_, ast.Join):
        return "Pull queries don't support JOIN clauses."
    if isinstance(select.from_, ast.Subquery):
        return (
            "Pull queries don't support subqueries in FROM: a Top-N or deduplication query "
            "runs as a push query (EMIT CHANGES) or as a persistent one (CREATE TABLE ... AS "
            "SELECT), whose table a pull query reads."
        )
    if select.window is not None:
        return "Pull queries don't support WINDOW clauses."
    if isinstance(select.from_, ast.WindowTvf):
        return (
            f"Pull queries don't support window table functions ({select.from_.kind}): add "
            "EMIT FINAL (or EMIT CHANGES) for a push query, or CREATE TABLE ... AS SELECT."
        )
    if select.group_by:
        return "Pull queries don't support GROUP BY clauses."
    if select.partition_by:
        return "Pull queries don't support PARTITION BY clauses."
    if select.having is not None:
        return "Pull queries don't support HAVING clauses."
    if select.limit is not None:
        if not _truthy(properties, LIMIT_ENABLED, True):
            return (
                "LIMIT clause in pull queries is currently disabled. You can enable them by "
                f"setting {LIMIT_ENABLED}=true."
            )
        if select.limit < 0:
            return "Pull queries don't support negative integers in the LIMIT clause."
    used = [
        c
        for item in select.items
        if isinstance(item, ast.SelectItem)
        for c in _columns(item.expr)
        if c in DISALLOWED
    ]
    if used:
        names = ", ".join(f"`{c}`" for c in dict.fromkeys(used))
        return f"Pull queries don't support the following columns in SELECT clauses: {names}\n"
    used = [c for c in _columns(select.where) if c in DISALLOWED] if select.where else []
    if used:
        names = ", ".join(f"`{c}`" for c in dict.fromkeys(used))
        return f"Pull queries don't support the following columns in WHERE clauses: {names}\n"
    return ""


def expressions_in(e: Any) -> list[ast.Expr]:
    """Every expression in `e` (an expression, a tuple of them, or anything else), parents
    first."""
    out: list[ast.Expr] = []
    if isinstance(e, ast.Expr):
        out.append(e)
        for value in vars(e).values():
            out += expressions_in(value)
    elif isinstance(e, tuple):
        for item in e:
            out += expressions_in(item)
    return out


def _columns(e: ast.Expr | None) -> list[str]:
    return [x.name for x in expressions_in(e) if isinstance(x, ast.ColumnRef)]


def _column(e: ast.Expr, label: str) -> str | None:
    """The column `e` names directly, or None."""
    if isinstance(e, ast.ColumnRef) and (e.source is None or e.source.upper() == label.upper()):
        return e.name
    return None


def _check_where_types(where: ast.Expr, source: Source, label: str, windowed: bool) -> None:
    """The comparisons ksqlDB's analyzer refuses before it looks for keys."""
    for e in expressions_in(where):
        names = [_column(e, label)] if isinstance(e, ast.ColumnRef) else []
        for name in names:
            if name in WINDOW_BOUNDS and not windowed:
                raise HispeedError(f"WHERE column '{name}' cannot be resolved.")
        if isinstance(e, ast.Like):
            name = _column(e.operand, label)
            column = source.column(name) if name else None
            if column is not None and column.type.name != "STRING":
                raise _invalid_where(
                    "The column type for Like condition must be VARCHAR. The column type is "
                    f"{column.type}",
                    windowed,
                )
        if not (isinstance(e, ast.BinaryOp) and e.op in _COMPARISONS):
            continue
        for col_side, other in ((e.left, e.right), (e.right, e.left)):
            name = _column(col_side, label)
            column = source.column(name) if name else None
            if column is None or not isinstance(other, ast.Literal):
                continue
            left, right = (column.type, other) if col_side is e.left else (other, column.type)
            if other.value is None:
                raise _where_error(
                    e,
                    where,
                    f"Comparison with NULL not supported: {_type_name(left)} {e.op} "
                    f"{_type_name(right)}\nUse 'IS NULL' or 'IS NOT NULL' instead.",
                )
            if column.type.is_numeric and isinstance(other.value, str):
                raise _where_error(
                    e,
                    where,
                    f"Cannot compare {name} ({column.type}) to {sql(other)} (STRING) with "
                    f"{_COMPARISONS[e.op]}.",
                )


def _type_name(side: Any) -> str:
    if isinstance(side, T.SqlType):
        return str(side)
    return "NULL" if side.value is None else str(side.type)


def _where_error(e: ast.Expr, where: ast.Expr, message: str) -> SqlError:
    """A type error at `e`, naming the whole WHERE clause as ksqlDB's FilterTypeValidator
    does."""
    line, col = getattr(e, "pos", (1, 1))
    return SqlError(
        f"Error in WHERE expression: {message}\nStatement: {sql(where)}", line or 1, col or 1
    )


# -- the WHERE clause as key constraints ----------------------------------------------------


def _dnf(e: ast.Expr) -> list[list[ast.Expr]]:
    """The predicate as a disjunction of conjunctions, IN and BETWEEN as comparisons."""
    if isinstance(e, ast.BinaryOp) and e.op == "AND":
        return [a + b for a in _dnf(e.left) for b in _dnf(e.right)]
    if isinstance(e, ast.BinaryOp) and e.op == "OR":
        return _dnf(e.left) + _dnf(e.right)
    if isinstance(e, ast.InList) and not e.negated:
        return [[ast.BinaryOp("=", e.operand, item, e.pos)] for item in e.items]
    if isinstance(e, ast.Between) and not e.negated:
        return [
            [
                ast.BinaryOp(">=", e.operand, e.low, e.pos),
                ast.BinaryOp("<=", e.operand, e.high, e.pos),
            ]
        ]
    return [[e]]


def _disjunct_text(atoms: list[ast.Expr]) -> str:
    text = sql(atoms[0])
    for atom in atoms[1:]:
        text = f"({text} AND {sql(atom)})"
    return text


class _TableScanNeededError(Exception):
    """The WHERE clause cannot be answered from keys alone."""


def _invalid_where(message: str, windowed: bool) -> HispeedError:
    extra = (
        "\n - (optionally) limits the time bounds of the windowed table.\n"
        "\t Bounds on [`WINDOWSTART`, `WINDOWEND`] are supported\n"
        "\t Supported operators are [EQUAL, GREATER_THAN, GREATER_THAN_OR_EQUAL, LESS_THAN, "
        "LESS_THAN_OR_EQUAL]"
        if windowed
        else ""
    )
    return HispeedError(
        f"{message}.{SYNTAX_HELP}\n"
        "Pull queries require a WHERE clause that:\n"
        " - includes a key equality expression, e.g. `SELECT * FROM X WHERE <key-column> = Y;`.\n"
        " - in the case of a multi-column key, is a conjunction of equality expressions that "
        "cover all key columns.\n"
        " - to support range expressions, e.g.,  SELECT * FROM X WHERE <key-column> < Y;`, range "
        f"scans need to be enabled by setting {RANGE_SCAN_ENABLED}=true{extra}\n"
        "If more flexible queries are needed, , table scans can be enabled by setting "
        f"{TABLE_SCAN_ENABLED}=true."
    )


def _access(
    where: ast.Expr | None, source: Source, label: str, table_scans: bool, windowed: bool
) -> PullAccess:
    if where is None:
        return PullAccess("scan")
    disjuncts = _dnf(where)
    try:
        for atoms in disjuncts:
            _validate(atoms, source, label, table_scans, windowed)
    except _TableScanNeededError:
        return PullAccess("scan")
    keys: list[tuple[Any, ...]] = []
    ranged = 0
    exact = True
    for atoms in disjuncts:
        found = _key_constraint(atoms, source, label)
        if found is None:
            return PullAccess("scan")
        key, equal, only_keys = found
        if equal:
            keys.append(key)
            exact = exact and only_keys
        else:
            ranged += 1
    if ranged:
        return PullAccess("range" if ranged == 1 and len(disjuncts) == 1 else "scan")
    unique = {hashable_key(k): k for k in keys}
    return PullAccess("lookup", list(unique.values()), exact=exact and not windowed)


def hashable_key(v: Any) -> Any:
    """A key value a dict can hold: lists and structs as nested tuples."""
    if isinstance(v, list | tuple):
        return tuple(hashable_key(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, hashable_key(x)) for k, x in v.items()))
    return v


def _validate(
    atoms: list[ast.Expr], source: Source, label: str, table_scans: bool, windowed: bool
) -> None:
    """ksqlDB's checks of one disjunct; raises _TableScanNeededError when a scan must answer."""
    key_names = [c.name for c in source.key_columns]
    seen: set[str] = set()

    def scan_or_raise(message: str, win: bool = windowed) -> None:
        if table_scans:
            raise _TableScanNeededError
        raise _invalid_where(message, win)

    for atom in atoms:
        if isinstance(atom, ast.BinaryOp) and atom.op in _COMPARISONS:
            name = _column(atom.right, label) or _column(atom.left, label)
            if name is None:
                scan_or_raise("A comparison must directly reference a key column")
                continue
            other = atom.left if _column(atom.right, label) else atom.right
            if _columns(other):
                scan_or_raise(
                    "A comparison must be between a key column and a resolvable expression"
                )
                continue
            if name in WINDOW_BOUNDS:
                if atom.op in ("!=", "<>"):
                    raise _invalid_where(f"Unsupported {name} bounds: NOT_EQUAL", True)
                continue
            if name in key_names:
                if atom.op in ("!=", "<>"):
                    keys = ", ".join(f"`{c.name}` {c.type} KEY" for c in source.key_columns)
                    scan_or_raise(f"Bound on key columns '[{keys}]' must currently be '='")
                if name in seen and not table_scans:
                    raise _invalid_where(
                        "A comparison condition on the key column cannot be combined with other "
                        "comparisons such as an IN predicate",
                        windowed,
                    )
                seen.add(name)
            continue
        if isinstance(atom, ast.Like):
            name = _column(atom.operand, label)
            if name is None:
                scan_or_raise("Like condition must be between strings")
                continue
            column = source.column(name)
            if column is not None and column.type.name != "STRING":
                raise _invalid_where(
                    "The column type for Like condition must be VARCHAR. The column type is "
                    f"{column.type}",
                    windowed,
                )
            continue
        scan_or_raise(f"Unsupported expression in WHERE clause: {sql(atom)}", False)
    if not seen:
        scan_or_raise(f"WHERE clause missing key column for disjunct: {_disjunct_text(atoms)}")
    if len(seen) != len(key_names):
        named = ", ".join(f"`{n}`" for n in key_names if n in seen)
        expected = ", ".join(f"`{c.name}` {c.type} KEY" for c in source.key_columns)
        scan_or_raise(
            f"Multi-column sources must specify every key in the WHERE clause. Specified: "
            f"[{named}] Expected: [{expected}]"
        )


def _key_constraint(
    atoms: list[ast.Expr], source: Source, label: str
) -> tuple[tuple[Any, ...], bool, bool] | None:
    """(key values, all equalities, nothing but key equalities) of one disjunct; None if
    its keys cannot be known before reading (an expression hispeed does not fold)."""
    key_columns = source.key_columns
    values: dict[str, Any] = {}
    ops: dict[str, str] = {}
    only_keys = True
    for atom in atoms:
        if not (isinstance(atom, ast.BinaryOp) and atom.op in _COMPARISONS):
            only_keys = False
            continue
        name = _column(atom.right, label) or _column(atom.left, label)
        column = next((c for c in key_columns if c.name == name), None)
        if column is None:
            only_keys = False
            continue
        other = atom.left if _column(atom.right, label) else atom.right
        op = atom.op if other is atom.right else _FLIPPED[atom.op]
        value = _resolve_key(other, column, atom)
        if ops.get(column.name) == "=":
            only_keys = False
            continue
        if op == "=" or column.name not in ops:
            if column.name in ops:
                only_keys = False
            values[column.name] = value
            ops[column.name] = op
        else:
            only_keys = False
    if any(v is _UNRESOLVED for v in values.values()):
        return None
    equal = all(op == "=" for op in ops.values())
    if not equal and (
        len(ops) > 1 or key_columns[0].type.name not in ("STRING", "BYTES") or len(key_columns) > 1
    ):
        return None
    key = tuple(values.get(c.name) for c in key_columns)
    return key, equal, only_keys


_UNRESOLVED = object()


def _resolve_key(e: ast.Expr, column: Any, atom: ast.Expr) -> Any:
    """A literal as the key column's type, strictly, as ksqlDB's lookups read it."""
    if not isinstance(e, ast.Literal):
        value = _fold(e)
        if value is _UNRESOLVED:
            return _UNRESOLVED
        e = ast.Literal(value, column.type, getattr(e, "pos", (1, 1)))
    if e.value is None:
        raise HispeedError(f"Primary key columns can not be NULL: {sql(atom)}")
    coerced = coerce_key(e.value, column.type)
    if coerced is _UNRESOLVED:
        raise HispeedError(
            f"'{e.value}' can not be converted to the type of the key column: "
            f"{column.name} {column.type} KEY"
        )
    return coerced


def _fold(e: ast.Expr) -> Any:
    """The value of an expression without columns (`10 + 1`), or _UNRESOLVED."""
    try:
        compiled = compile_expr(e, Scope([]))
        one = pa.RecordBatch.from_arrays([pa.array([0])], names=["_"])
        return compiled(one, EvalContext())[0].as_py()
    except Exception:  # not a constant hispeed can fold: the WHERE clause filters instead
        return _UNRESOLVED


def coerce_key(value: Any, type_: T.SqlType) -> Any:
    """`value` as a key of `type_` holds it in memory, or _UNRESOLVED when it cannot be."""
    name = type_.name
    if isinstance(value, bool):
        return value if name == "BOOLEAN" else _UNRESOLVED
    if name in ("INTEGER", "BIGINT"):
        return value if isinstance(value, int) else _UNRESOLVED
    if name == "DOUBLE":
        if isinstance(value, int | float | decimal.Decimal):
            return float(value)
        return _UNRESOLVED
    if name == "DECIMAL":
        if isinstance(value, int | decimal.Decimal):
            return decimal.Decimal(value).quantize(decimal.Decimal(1).scaleb(-(type_.scale or 0)))
        return _UNRESOLVED
    if name == "STRING":
        return value if isinstance(value, str) else _UNRESOLVED
    if name == "BYTES":
        return value if isinstance(value, bytes) else _UNRESOLVED
    if name in ("ARRAY", "STRUCT"):
        return value if isinstance(value, list | dict) else _UNRESOLVED
    if name == "TIMESTAMP":
        return value if isinstance(value, dt.datetime) else _UNRESOLVED
    if name == "DATE":
        return value if isinstance(value, dt.date) else _UNRESOLVED
    if name == "TIME":
        return value if isinstance(value, dt.time) else _UNRESOLVED
    return _UNRESOLVED


def is_unresolved(value: Any) -> bool:
    return value is _UNRESOLVED


# -- ORDER BY ... [LIMIT n] in a pull query over a table (confluentinc/ksql#4750) -----------

#: the types whose values ORDER BY compares (Arrow orders them); not ARRAY, MAP or STRUCT
ORDERABLE = {
    "BOOLEAN",
    "INTEGER",
    "BIGINT",
    "DOUBLE",
    "DECIMAL",
    "STRING",
    "BYTES",
    "DATE",
    "TIME",
    "TIMESTAMP",
}
ORDER_HELP = (
    "ORDER BY sorts the answer of a pull query over a table (SELECT ... FROM table ORDER BY "
    "... LIMIT n)"
)


@dataclass(frozen=True)
class OrderKey:
    """One ORDER BY key compiled over the table's rows: its values, and how they sort."""

    values: Callable[[pa.RecordBatch, EvalContext], pa.Array]
    descending: bool
    nulls_first: bool


def refuse_order_by(select: ast.Select, sink_kind: str | None) -> None:
    """ORDER BY outside a pull query is refused at its place, saying what to do instead
    (the planner calls this; a pull query's ORDER BY is taken off before it plans)."""
    if isinstance(select.from_, ast.Subquery) and select.from_.query.order_by:
        item = select.from_.query.order_by[0]
        raise error_at(
            item,
            "ORDER BY in a subquery is not supported: the subquery's rows are a set to the "
            f"query over it. {ORDER_HELP}; ROW_NUMBER() OVER (... ORDER BY ...) ranks rows "
            "in a subquery",
        )
    if not select.order_by:
        return
    what = (
        f"a persistent query (CREATE {sink_kind} ... AS SELECT) writes its rows as they come"
        if sink_kind is not None
        else "a push query's rows (EMIT CHANGES) come as they happen and never end"
        if select.emit is not None
        # EXPLAIN: the plans it shows are of queries that run on (a pull query's ORDER BY
        # sorts its answer after the plan; EXPLAIN the query without it)
        else "EXPLAIN shows the plan of a query that runs on, whose rows come as they happen"
    )
    raise error_at(
        select.order_by[0],
        f"ORDER BY is not supported here: {what}, so they cannot be sorted. {ORDER_HELP}; "
        "for the N first rows per key as they change, use ROW_NUMBER() OVER (PARTITION BY "
        "... ORDER BY ...) in a subquery bounded by WHERE rn <= N (Top-N)",
    )


def order_keys(
    order: tuple[ast.OrderItem, ...],
    plan: Any,
    limit: int | None,
    most: int,
) -> list[OrderKey]:
    """Compile a pull query's ORDER BY over its plan (`plan`: plan/model.py's QueryPlan):
    a key names an output column (by its name or its position, 1 first) or is an expression
    over the table's columns. `most`: the setting bounding the rows of an answer."""
    source = plan.source
    if source.kind != "TABLE":
        raise error_at(
            order[0],
            f"ORDER BY is not supported over the stream {source.name}: {ORDER_HELP}. Read "
            "the stream into a table (CREATE TABLE ... AS SELECT) and sort that",
        )
    if limit is not None and 0 <= most < limit:
        raise error_at(
            order[0],
            f"LIMIT {limit} with ORDER BY is past the most rows a pull query answers, "
            f"{most:,} (the server's max_pull_rows, the engine property 'pull.max.rows')",
        )
    outputs = {c.name: c for c in plan.outputs}
    keys = []
    for item in order:
        e = item.expr
        if isinstance(e, ast.Literal) and isinstance(e.value, int) and e.type is not None:
            if not 1 <= e.value <= len(plan.outputs):
                raise error_at(
                    e,
                    f"ORDER BY {e.value}: the select list has {len(plan.outputs)} columns, "
                    "numbered from 1",
                )
            values, type_ = plan.outputs[e.value - 1].expr, plan.outputs[e.value - 1].type
        elif isinstance(e, ast.ColumnRef) and e.source is None and e.name in outputs:
            values, type_ = outputs[e.name].expr, outputs[e.name].type
        else:
            if isinstance(e, ast.ColumnRef) and e.source == plan.label:
                e = dataclasses.replace(e, source=None)
            compiled = compile_clause(e, plan.scope, "ORDER BY")
            values, type_ = compiled, compiled.type
        if type_ is None or type_.name not in ORDERABLE:
            raise error_at(
                e,
                f"ORDER BY cannot sort {sql(e)}, of type {type_ or 'NULL'}: it sorts numbers, "
                "text, bytes, booleans, dates and times",
            )
        nulls_first = bool(item.nulls_first)
        keys.append(OrderKey(values, item.descending, nulls_first))
    return keys


def sort_rows(
    frame: pa.RecordBatch,
    keys: list[OrderKey],
    limit: int | None,
    most: int,
    ctx: EvalContext,
) -> pa.RecordBatch:
    """The rows in ORDER BY's order (ties keep the table's own order), cut to `limit`;
    without a LIMIT, more rows than `most` are refused (the answer is built in memory)."""
    if limit is None and 0 <= most < frame.num_rows:
        raise HispeedError(
            f"A pull query with ORDER BY returns at most {most:,} rows (the server's "
            "max_pull_rows, the engine property 'pull.max.rows'), and this one has "
            f"{frame.num_rows:,}: add a LIMIT, or a WHERE clause that keeps fewer rows."
        )
    columns: dict[str, pa.Array] = {}
    sort_keys: list[tuple[str, str]] = []
    for i, key in enumerate(keys):
        values = key.values(frame, ctx)
        # nulls placed by a key of their own before the values, so each key has its own
        # NULLS FIRST or LAST (Arrow's null_placement is one for all keys)
        columns[f"n{i}"] = pc.is_null(values)
        columns[f"v{i}"] = values
        sort_keys.append((f"n{i}", "descending" if key.nulls_first else "ascending"))
        direction = "descending" if key.descending else "ascending"
        if pa.types.is_floating(values.type):
            # NaN is the greatest number (Java's Double.compare, DuckDB): Arrow puts it last
            # either way, so it is placed by a key of its own too
            columns[f"x{i}"] = pc.fill_null(pc.is_nan(values), False)
            sort_keys.append((f"x{i}", direction))
        sort_keys.append((f"v{i}", direction))
    order = pc.sort_indices(pa.table(columns), sort_keys=sort_keys)
    if limit is not None:
        order = order[:limit]
    return frame.take(order)
