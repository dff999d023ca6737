"""DELETE FROM table WHERE key = ...: tombstones, which ksqlDB leaves to its users'
producers (confluentinc/ksql#7073).

A table's topic is its changelog: a record with a key and no value deletes the key's row.
DELETE appends such records for the keys its WHERE clause names, in the table's key format,
so the table, its pull queries and every query that reads it (aggregations over the table,
joins, Top-N, filters) take the row back as they take any tombstone. Only what can be said as
keys is accepted: each key column `= value`, or one key column `IN (values)`; anything else
would need a scan of the table's state the log does not keep, and is refused at its place.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Source
from hispeed.errors import SqlError
from hispeed.expr.values import insert_value
from hispeed.functions.registry import EvalContext
from hispeed.sql import ast
from hispeed.sql.format import sql
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.inserts import append_rows
from hispeed.statements.result import Result

#: what the WHERE clause may say, for the messages
SHAPE = "WHERE key = value [AND key2 = value ...], or WHERE key IN (value, ...)"


def _at(node: object, message: str, fallback: ast.Pos) -> SqlError:
    pos = getattr(node, "pos", ast.NOPOS)
    line, column = pos if pos != ast.NOPOS else fallback
    return SqlError(message, line or 1, column or 1)


def delete(parts: EngineParts, stmt: ast.Delete, call: Call) -> Result:
    """Append a tombstone for each key the WHERE clause names to the table's topic."""
    target = parts.catalog.sources.get(stmt.target)
    if target is None:
        raise SqlError(f"{stmt.target} does not exist.", *stmt.target_pos)
    _check_target(target, stmt, parts)
    if stmt.where is None:
        raise SqlError(
            f"DELETE FROM {target.name} needs a WHERE clause naming the keys to delete: {SHAPE}",
            *stmt.pos,
        )
    keys = _keys(target, stmt.where, stmt.pos)
    n = len(next(iter(keys.values())))
    append_rows(parts.log, target, keys, None, n, parts.context.schema_registry, tombstones=True)
    return Result("status", f"Deleted {n} key{'s' if n != 1 else ''} from {target.name}")


def _check_target(target: Source, stmt: ast.Delete, parts: EngineParts) -> None:
    where = stmt.target_pos
    if target.kind != "TABLE":
        raise SqlError(
            f"DELETE works on tables, and {target.name} is a stream: a stream's records are "
            "events that happened, not rows that a key can take back",
            *where,
        )
    if target.window is not None:
        raise SqlError(
            f"DELETE is not supported on the windowed table {target.name}: its keys are "
            "windows a query makes",
            *where,
        )
    writers = parts.catalog.writers_of(target.name)
    if target.writer is not None or writers:
        query = target.writer or writers[0].id
        raise SqlError(
            f"Cannot delete from {target.name}: its rows are written by query {query}, which "
            "would write them again; delete from the table that query reads instead",
            *where,
        )
    if target.source_table:
        raise SqlError(
            f"Cannot delete from read-only table: {target.name} (CREATE SOURCE TABLE)", *where
        )


def _column(e: ast.Expr, target: Source) -> str | None:
    if isinstance(e, ast.ColumnRef) and e.source in (None, target.name):
        return e.name
    return None


def _keys(target: Source, where: ast.Expr, pos: ast.Pos) -> dict[str, pa.Array]:
    """The keys the WHERE clause names, as one array per key column."""
    key_names = [c.name for c in target.key_columns]
    named: dict[str, list[ast.Expr]] = {}
    conjuncts: list[ast.Expr] = []
    todo = [where]
    while todo:
        e = todo.pop()
        if isinstance(e, ast.BinaryOp) and e.op == "AND":
            todo += [e.right, e.left]
        else:
            conjuncts.append(e)
    for e in conjuncts:
        column: str | None = None
        values: list[ast.Expr] = []
        if isinstance(e, ast.BinaryOp) and e.op == "=":
            for side, value in ((e.left, e.right), (e.right, e.left)):
                if _column(side, target) is not None:
                    column, values = _column(side, target), [value]
                    break
        elif isinstance(e, ast.InList) and not e.negated:
            column, values = _column(e.operand, target), list(e.items)
        if column is None:
            raise _at(
                e,
                f"DELETE deletes rows by their key: {sql(e)} is not supported here; say "
                f"{SHAPE} (the key of {target.name}: {', '.join(key_names)})",
                pos,
            )
        if column not in key_names:
            known = target.column(column) is not None
            raise _at(
                e,
                f"DELETE deletes rows by their key, and {column} is "
                f"{'a value column' if known else 'no column'} of {target.name} (its key: "
                f"{', '.join(key_names)}); say {SHAPE}",
                pos,
            )
        if column in named:
            raise _at(e, f"the key column {column} is named twice in WHERE; say {SHAPE}", pos)
        named[column] = values
    missing = [k for k in key_names if k not in named]
    if missing:
        raise _at(
            where,
            f"DELETE needs the whole key of {target.name}: WHERE names no value for "
            f"{', '.join(missing)}",
            pos,
        )
    if len(key_names) > 1 and any(len(v) != 1 for v in named.values()):
        raise _at(where, f"IN is for a table with one key column; {target.name} has several", pos)
    ctx = EvalContext()
    out: dict[str, pa.Array] = {}
    for col in target.key_columns:
        arrays = []
        for value in named[col.name]:
            if isinstance(value, ast.Literal) and value.value is None:
                raise _at(value, f"a key is never NULL: no row of {target.name} has it", pos)
            array = insert_value(value, target.name, col.name, col.type, ctx)
            if array.null_count:  # e.g. CAST(NULL AS BIGINT): a record with no key at all
                raise _at(value, f"a key is never NULL: no row of {target.name} has it", pos)
            arrays.append(array)
        out[col.name] = pa.concat_arrays(arrays)
    if len(out) == 1:  # IN (1, 2, 2): each key deleted once, and counted once
        name, array = next(iter(out.items()))
        out[name] = pc.unique(array)
    return out
