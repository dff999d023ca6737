"""Rows in: INSERT INTO ... VALUES, and the engine's `insert` of Python values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from hispeed.catalog import Catalog, Source
from hispeed.errors import HispeedError, SqlError
from hispeed.expr.values import insert_value
from hispeed.formats.base import Column, FormatContext, get_format, null_batch
from hispeed.functions.registry import EvalContext
from hispeed.log.base import AppendResult, Log
from hispeed.registry import SchemaRegistry
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result


def insert_values(parts: EngineParts, stmt: ast.InsertValues, call: Call) -> Result:
    """INSERT INTO ... VALUES: one row, its expressions evaluated and cast to the columns."""
    target = parts.catalog.sources.get(stmt.target)
    if target is None:
        message = f"Cannot insert values into an unknown stream/table: `{stmt.target}`"
        near = [n for n in parts.catalog.sources if n.upper() == stmt.target.upper()]
        if near and near[0] != near[0].upper():
            message += (
                f'\nDid you mean "{near[0]}"? Hint: wrap the source name in double quotes '
                "to make it case-sensitive."
            )
        elif near:
            message += (
                f"\nDid you mean {near[0]}? Hint: try removing double quotes from the source name."
            )
        raise SqlError(message, *stmt.pos)
    # the order of ksqlDB's InsertValuesExecutor: the source's own checks (windowed,
    # read-only), then the header columns, then the row itself
    if target.window is not None:
        raise HispeedError("Cannot insert values into windowed stream/table!")
    if target.source_table:
        raise HispeedError(
            f"Cannot insert values into read-only {target.kind.lower()}: {target.name}"
        )
    # without a column list every header column is a target, as ksqlDB counts it
    headers = [
        c.name for c, _ in target.header_columns if not stmt.columns or c.name in stmt.columns
    ]
    if headers:
        raise SqlError(f"Cannot insert into HEADER columns: {', '.join(headers)}", *stmt.pos)
    columns = [*target.key_columns, *target.value_columns]
    names = list(stmt.columns) or [c.name for c in columns]
    if len(names) != len(stmt.values):
        raise SqlError(
            "Failed to prepare statement: Expected number columns and values to match: "
            f"{len(names)}, {len(stmt.values)}",
            *stmt.pos,
        )
    for name in names:
        if name in ("ROWPARTITION", "ROWOFFSET", "WINDOWSTART", "WINDOWEND"):
            raise SqlError(f"Inserting into column `{name}` is not allowed.", *stmt.pos)
    by_name = {c.name: c for c in columns}
    ctx = EvalContext()
    values: dict[str, Any] = {}
    timestamp = None
    for name, expr in zip(names, stmt.values, strict=True):
        if name == "ROWTIME":
            timestamp = insert_value(expr, target.name, name, T.BIGINT, ctx)[0].as_py()
            continue
        col = by_name.get(name)
        if col is None:
            raise SqlError(f"Column name {name} does not exist.", *stmt.pos)
        values[name] = insert_value(expr, target.name, name, col.type, ctx)
    insert_row(parts.log, target, values, timestamp, parts.context.schema_registry)
    return Result("status", "Inserted")


def insert_row(
    log: Log,
    target: Source,
    values: Mapping[str, pa.Array],
    timestamp: int | None,
    registry: SchemaRegistry | None = None,
) -> None:
    """Append one row (its columns as one-value arrays) to a source's topic, encoded in its
    formats; `timestamp` None: the log stamps it. `registry`: the schema-registry formats'."""
    stamps = None if timestamp is None else pa.array([timestamp], pa.int64())
    append_rows(log, target, values, stamps, 1, registry)


def append_rows(
    log: Log,
    target: Source,
    values: Mapping[str, pa.Array],
    timestamps: pa.Array | None,
    n: int,
    registry: SchemaRegistry | None = None,
    tombstones: bool = False,
) -> AppendResult:
    """Append n rows (each column an array of n values; a missing column is null) to a
    source's topic in one append, each side encoded once in its format; `timestamps` None:
    the log stamps them. `tombstones`: the records carry the keys only, no value (a table's
    deletes: statements/delete.py)."""
    context = FormatContext(registry, target.topic)
    key_fmt = get_format(target.key_format, target.key_properties, is_key=True, context=context)
    value_fmt = get_format(target.value_format, target.value_properties, context=context)

    def batch(cols: list[Column]) -> pa.RecordBatch:
        if not cols:
            return null_batch(cols, n)
        return pa.RecordBatch.from_arrays(
            [values.get(c.name, pa.nulls(n, c.type.to_arrow())) for c in cols],
            names=[c.name for c in cols],
        )

    key = (
        key_fmt.encode(batch(target.key_columns), target.key_columns)
        if target.key_columns
        else pa.nulls(n, pa.binary())
    )
    value = (
        pa.nulls(n, pa.binary())
        if tombstones
        else value_fmt.encode(batch(target.value_columns), target.value_columns)
    )
    record = {"key": key, "value": value}
    if timestamps is not None:
        record["timestamp"] = timestamps
    return log.append(target.topic, pa.record_batch(record))


def insert(
    catalog: Catalog, log: Log, name: str, row: Mapping[str, Any], timestamp: int | None = None
) -> None:
    """Insert one row into a stream or table from Python values."""
    target = catalog.get(name.upper())
    values = {}
    for c in [*target.key_columns, *target.value_columns]:
        if c.name in row:
            try:
                values[c.name] = pa.array([row[c.name]], c.type.to_arrow())
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
                raise HispeedError(
                    f"{target.name}.{c.name} is {c.type}: {row[c.name]!r} does not fit ({e})"
                ) from None
    insert_row(log, target, values, timestamp)
