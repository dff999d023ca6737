"""Flink's filesystem tables read as bounded sources: a `'connector' = 'filesystem'` table
(or the legacy `'connector.type' = 'filesystem'`) with a CSV file that a query reads.

Flink's filesystem connector is a source and a sink; hispeed tells them apart by use. A
declared filesystem table that an INSERT INTO (or a view) reads is read once, as the
statement runs: every line of its file (or of each file of its directory, in name order)
becomes a record of a topic of the table's name, stamped at time 0 so that every stream
record comes after it, and the table is a hispeed TABLE over that topic, keyed by its PRIMARY
KEY (NOT ENFORCED) or, without one, its first column (a key's last line wins). A topic of
that name already holding records (a restart, a replay) is kept as it is: the file is read
once. Refused at the table's line and column: another format than CSV, a path that is not a
local file (`file://` or a plain path), a line that does not parse as the columns' types.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from hispeed.errors import SqlError
from hispeed.formats.base import Column, get_format
from hispeed.ops.base import positive_setting
from hispeed.sql import ast
from hispeed.sql.flink import FlinkTable, JoinedSubquery
from hispeed.statements import sources
from hispeed.statements.base import Call, EngineParts

#: the engine property bounding the bytes of one filesystem source read (all of it is
#: read into memory and appended at once)
MAX_BYTES = "flink.filesystem.max.bytes"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


def read_sources(parts: EngineParts, query: ast.Select, call: Call) -> None:
    """Make each declared filesystem table `query` reads a TABLE over its file's lines."""
    for ref in _sources(query.from_):
        table = parts.catalog.flink.get(ref.name)
        if table is None or table.connector != "filesystem":
            continue
        if ref.name not in parts.catalog.sources:
            _read(parts, table, call)


def _sources(rel: ast.Relation | None) -> list[ast.SourceRef]:
    if isinstance(rel, JoinedSubquery):
        return _sources(rel.query.from_) if rel.query is not None else []
    if isinstance(rel, ast.SourceRef):
        return [rel]
    if isinstance(rel, ast.WindowTvf):
        return [rel.source]
    if isinstance(rel, ast.Subquery):
        return _sources(rel.query.from_)
    if isinstance(rel, ast.Join):
        return [*_sources(rel.left), *_sources(rel.right)]
    return []


def _path(table: FlinkTable) -> Path:
    options = table.options
    raw = options.get("path", options.get("connector.path"))
    if raw is None:
        raise SqlError(f"filesystem table {table.name} names no 'path'", *table.pos)
    text = raw.removeprefix("file://") if raw.startswith("file://") else raw
    if "://" in text:
        raise SqlError(
            f"filesystem table {table.name}: hispeed reads local files ('file:///...' or a "
            f"plain path), not '{raw}'",
            *table.pos,
        )
    return Path(text)


def _lines(table: FlinkTable, path: Path, max_bytes: int) -> list[bytes]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
    elif path.is_file():
        files = [path]
    else:
        raise SqlError(f"filesystem table {table.name}: no file {path}", *table.pos)
    if sum(f.stat().st_size for f in files) > max_bytes:
        raise SqlError(
            f"filesystem table {table.name}: {path} holds more than {MAX_BYTES} "
            f"({max_bytes} bytes) allows: raise it, or read the data from a topic",
            *table.pos,
        )
    lines: list[bytes] = []
    for f in files:
        lines.extend(line.rstrip(b"\r") for line in f.read_bytes().split(b"\n") if line.strip())
    return lines


def _read(parts: EngineParts, table: FlinkTable, call: Call) -> None:
    fmt = table.options.get("format", table.options.get("format.type", "")).lower()
    if fmt != "csv":
        raise SqlError(
            f"filesystem table {table.name}: hispeed reads its files as 'csv' only, not "
            f"'{fmt or '(none named)'}'",
            *table.pos,
        )
    physical = [c for c in table.columns if c.type is not None]
    keys = table.primary_key or (physical[0].name,) if physical else ()
    if len(physical) != len(table.columns) or len(keys) >= len(physical):
        raise SqlError(
            f"filesystem table {table.name}: a file read as a table has physical columns "
            "only, its key (the PRIMARY KEY, else the first column) and at least one other",
            *table.pos,
        )
    columns = [Column(c.name, c.type) for c in physical if c.type is not None]
    key_cols = [c for c in columns if c.name in keys]
    value_cols = [c for c in columns if c.name not in keys]
    topic = table.name
    many = len(key_cols) > 1
    props = {
        "KAFKA_TOPIC": ast.Property(topic, pos=table.pos),
        "KEY_FORMAT": ast.Property("JSON" if many else "KAFKA", pos=table.pos),
        "VALUE_FORMAT": ast.Property("DELIMITED", pos=table.pos),
        "PARTITIONS": ast.Property(1, pos=table.pos),
    }
    defs = tuple(
        ast.ColumnDef(c.name, c.type, primary_key=c.name in keys, pos=table.pos) for c in columns
    )
    fresh = topic not in parts.log.list_topics()
    batch = None
    if fresh:
        max_bytes = positive_setting(MAX_BYTES, parts.properties.get(MAX_BYTES), DEFAULT_MAX_BYTES)
        lines = _lines(table, _path(table), max_bytes)
        batch = _records(table, lines, columns, key_cols, value_cols)
    create = ast.CreateSource("TABLE", table.name, defs, props, pos=table.pos)
    sources.create_source(parts, create, call)
    if batch is not None and batch.num_rows:
        parts.log.append(topic, batch, partition=0)


def _records(
    table: FlinkTable,
    lines: list[bytes],
    columns: list[Column],
    key_cols: list[Column],
    value_cols: list[Column],
) -> pa.RecordBatch:
    """The file's lines as records: key and value bytes, time 0."""
    decoded = get_format("DELIMITED").decode(pa.array(lines, pa.binary()), columns)
    if decoded.errors:
        row, reason = decoded.errors[0]
        raise SqlError(
            f"filesystem table {table.name}, line {row + 1} of its file: {reason}", *table.pos
        )
    rows = decoded.batch
    key_format = get_format("JSON" if len(key_cols) > 1 else "KAFKA", is_key=True)
    key = key_format.encode(rows, key_cols)
    value = get_format("DELIMITED").encode(rows, value_cols)
    stamps = pa.array(np.zeros(rows.num_rows, np.int64))
    return pa.record_batch({"key": key, "value": value, "timestamp": stamps})


__all__ = ["DEFAULT_MAX_BYTES", "MAX_BYTES", "read_sources"]
