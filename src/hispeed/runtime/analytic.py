"""Analytical SQL over history: DuckDB's full SQL over every stream's retained records and
every table's current state (`Engine.analyze`, the `ANALYZE SELECT ...` statement).

Each stream or table the query names is handed to DuckDB as an Arrow stream (a
`history.HistoryScan`): the source's records decoded through its formats, vectorized, with
the catalog's column types and ROWTIME, ROWPARTITION and ROWOFFSET. A stream is every
record its topic retains; a table is its current state, each key's latest record unless
that record deleted it (a view over the topic's records that DuckDB computes).

DuckDB runs with no access to files or the network (`enable_external_access` off, locked):
what an analytical query reads is the engine's sources and nothing else, which matters when
the statement comes from a server's users.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa

from hispeed.catalog import Source
from hispeed.errors import HispeedError, SqlError
from hispeed.log.embedded import EmbeddedLog
from hispeed.runtime.context import QueryContext
from hispeed.runtime.history import DELETED, CacheSettings, HistoryScan
from hispeed.sql.windows import ENDS_IN_KEY

#: engine properties (the server's settings of the same names, with `_` for `.`)
CACHE_BYTES = "analyze.cache.bytes"
CACHE_DIR = "analyze.cache.dir"
THREADS = "analyze.threads"
MEMORY_LIMIT = "analyze.memory.limit.bytes"
DEFAULT_CACHE_BYTES = 1 << 30
DEFAULT_MEMORY_LIMIT = 1 << 30

#: called with (records scanned so far, records to scan in all)
ScanProgress = Callable[[int, int], None]

_LINE = re.compile(r"\n*LINE (\d+): ?(.*)\n( *)\^ *$", re.DOTALL)


def _duckdb() -> Any:
    try:
        import duckdb
    except ImportError:  # a dependency; only a broken install lacks it
        raise HispeedError("analytical SQL needs DuckDB: pip install 'duckdb>=1.1'") from None
    return duckdb


def cache_settings(context: QueryContext) -> CacheSettings:
    """Where an engine keeps decoded chunks (its data directory, or `analyze.cache.dir`)."""
    props = context.properties
    limit = int(props.get(CACHE_BYTES, DEFAULT_CACHE_BYTES))
    where = props.get(CACHE_DIR)
    if where:
        return CacheSettings(Path(str(where)), limit)
    if isinstance(context.log, EmbeddedLog):
        return CacheSettings(context.log.data_dir / "analyze-cache", limit)
    return CacheSettings(None, 0)


def sources_named(context: QueryContext, sql: str, con: Any = None) -> dict[str, Source]:
    """The streams and tables `sql` reads, by name; a query that does not parse, is not one
    query, or names an unknown source is a `SqlError` at the place DuckDB's parser gives.

    `con`: a DuckDB connection to parse with (one is made, and closed, without it)."""
    if con is None:
        with _duckdb().connect(config={"enable_external_access": False}) as own:
            return sources_named(context, sql, own)
    tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()[0][0])
    if tree.get("error"):
        message = str(tree.get("error_message", "cannot parse the query"))
        if tree.get("error_type") == "not implemented":  # not a SELECT
            message = f"ANALYZE runs one query (SELECT, WITH ... SELECT): {message}"
        position = tree.get("position")
        if position is None:
            raise SqlError(message, 1, 1)
        raise SqlError(f"{message}", *_line_column(sql, int(position)))
    if len(tree.get("statements", [])) != 1:
        raise SqlError("ANALYZE runs one query; end it at its `;`", 1, 1)
    ctes: set[str] = set()
    tables: list[tuple[str, int]] = []
    _walk(tree["statements"][0], ctes, tables)
    found: dict[str, Source] = {}
    for name, at in tables:
        if name.lower() in ctes:
            continue
        source = context.catalog.sources.get(name.upper())
        if source is None:
            line, column = _line_column(sql, at) if 0 <= at < len(sql) else (1, 1)
            known = ", ".join(sorted(context.catalog.sources)) or "none yet"
            raise SqlError(
                f"{name} does not exist: ANALYZE reads the engine's streams and tables ({known})",
                line,
                column,
                located=True,
            )
        found[source.name] = source
    return found


def _walk(node: Any, ctes: set[str], tables: list[tuple[str, int]]) -> None:
    """Collect the CTE names and the tables (name, character offset) of a parsed query."""
    if isinstance(node, list):
        for item in node:
            _walk(item, ctes, tables)
        return
    if not isinstance(node, dict):
        return
    if node.get("type") == "BASE_TABLE" and node.get("table_name"):
        if not node.get("schema_name") and not node.get("catalog_name"):
            tables.append((str(node["table_name"]), int(node.get("query_location", -1))))
        else:  # a schema-qualified name is no source of the engine's
            tables.append(
                (".".join(str(p) for p in node["qualified_name"]["path"]), node["query_location"])
            )
    for entry in node.get("cte_map", {}).get("map", []) if "cte_map" in node else []:
        ctes.add(str(entry.get("key", "")).lower())
    for value in node.values():
        _walk(value, ctes, tables)


def run_analysis(
    context: QueryContext,
    sql: str,
    *,
    progress: ScanProgress | None = None,
    origin: tuple[int, int] = (1, 1),
) -> pa.Table:
    """Run `sql` (DuckDB's dialect) over the sources it names; its result as an Arrow table.

    `progress` is told the records scanned so far and in all, as the scan goes. `origin`:
    the line and column where `sql` starts in the text the user wrote (an ANALYZE
    statement's query), so an error's place is counted in that text."""
    try:
        return _run(context, sql, progress)
    except SqlError as e:
        line, column = origin
        if e.line == 1:
            column += e.column - 1
        else:
            line, column = line + e.line - 1, e.column
        raise SqlError(e.reason, line, column, located=e.located) from None


def _run(context: QueryContext, sql: str, progress: ScanProgress | None) -> pa.Table:
    duckdb = _duckdb()
    props: Mapping[str, Any] = context.properties
    cache = cache_settings(context)
    config: dict[str, Any] = {
        "memory_limit": f"{int(props.get(MEMORY_LIMIT, DEFAULT_MEMORY_LIMIT))}B",
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "python_enable_replacements": False,  # never a variable of the caller's by its name
    }
    if props.get(THREADS):
        config["threads"] = int(props[THREADS])
    if cache.directory is not None:  # where DuckDB spills what does not fit its memory
        config["temp_directory"] = str(cache.directory / "spill")
    # one connection parses the query and runs it (each connection costs ~15 ms of CPU)
    con = duckdb.connect(config=config)
    try:
        con.execute("SET enable_external_access = false")
        sources = sources_named(context, sql, con)
        scans = [
            HistoryScan(context.log, source, context.schema_registry, cache)
            for source in sources.values()
        ]
        if progress is not None:
            _count(scans, progress)
        for scan in scans:
            _register(con, scan)
        con.execute("SET lock_configuration = true")
        try:
            # the scan may take a while: the engine's queries go on meanwhile (a statement
            # handler holds the engine's lock; the sources are resolved, the log is read
            # without it)
            with _released(context.lock):
                result = con.sql(sql)
                if result is None:
                    raise HispeedError("ANALYZE runs a query (SELECT, WITH ...), not a command")
                table: pa.Table = result.to_arrow_table()
            return table
        except duckdb.Error as e:
            for scan in scans:  # a source that could not be read: its own error
                if scan.failure is not None:
                    raise scan.failure from None
            raise duckdb_error(e, sql) from None
    finally:
        con.close()


@contextlib.contextmanager
def _released(lock: Any) -> Iterator[None]:
    """Let go of an RLock this thread holds (however many times over) for the block, and take
    it back as it was after; nothing when this thread does not hold it. (What
    `threading.Condition.wait` does with the same two methods of the lock.)"""
    try:
        state = lock._release_save()
    except RuntimeError:  # not held by this thread: `Engine.analyze`
        yield
        return
    try:
        yield
    finally:
        lock._acquire_restore(state)


def _count(scans: list[HistoryScan], progress: ScanProgress) -> None:
    """Tell `progress` how far the scans are, as each batch passes."""
    total = sum(scan.total() for scan in scans)
    done = 0

    def step(n: int) -> None:
        nonlocal done
        done += n
        progress(done, max(total, done))

    for scan in scans:
        scan.progress = step
    progress(0, total)


def _register(con: Any, scan: HistoryScan) -> None:
    source = scan.source
    name = _quote(source.name)
    if source.kind != "TABLE":
        con.register(source.name, scan)
        return
    # a table is its current state: each key's (and window's) latest record, unless that
    # record is a tombstone
    raw = f"__{source.name}_records"
    con.register(raw, scan)
    keys = [_quote(c.name) for c in source.key_columns]
    if source.window is not None:
        keys.append('"WINDOWSTART"')
        if source.window.kind in ENDS_IN_KEY:
            keys.append('"WINDOWEND"')
    partition = f"PARTITION BY {', '.join(keys)} " if keys else ""
    con.execute(
        f"CREATE TEMP VIEW {name} AS SELECT * EXCLUDE ({DELETED}) FROM {_quote(raw)} "
        f"QUALIFY row_number() OVER ({partition}ORDER BY ROWOFFSET DESC) = 1 "
        f"AND NOT {DELETED}"
    )


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _place(sql: str, word: str) -> tuple[int, int]:
    """The line and column (1-based) of `word`'s first appearance as a name in `sql`."""
    found = re.search(rf'(?<![\w"]){re.escape(word)}(?![\w"])|"{re.escape(word)}"', sql, re.I)
    return _line_column(sql, found.start() if found else 0)


def _line_column(sql: str, index: int) -> tuple[int, int]:
    before = sql[:index]
    return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1


def duckdb_error(error: Exception, sql: str) -> HispeedError:
    """A DuckDB error as hispeed's: a `SqlError` at its line and column where DuckDB places
    it (its `LINE n:` and caret), else a `HispeedError` with DuckDB's message."""
    text = str(error).strip()
    found = _LINE.search(text)
    if found is None:
        return HispeedError(text)
    message = text[: found.start()].strip()
    line = int(found.group(1))
    shown, caret = found.group(2), len(found.group(3)) - len(f"LINE {found.group(1)}: ")
    column = caret + 1
    lines = sql.split("\n")
    if shown.startswith("...") and 0 < line <= len(lines):
        # DuckDB shows a window of a long line: find where it starts in the line itself
        at = lines[line - 1].find(shown[3:].removesuffix("...")[:40])
        if at >= 0:
            column = at + caret - 3 + 1
    return SqlError(message, line, max(column, 1))


__all__ = [
    "CACHE_BYTES",
    "CACHE_DIR",
    "MEMORY_LIMIT",
    "THREADS",
    "ScanProgress",
    "duckdb_error",
    "run_analysis",
    "sources_named",
]
