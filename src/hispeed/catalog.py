"""The catalog: streams, tables, custom types and running queries.

It is rebuilt on start by replaying the command topic (every statement that changed it, in
order), as ksqlDB does, so a restart brings back every source and query.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hispeed.errors import HispeedError, SqlError
from hispeed.formats.base import Column
from hispeed.sql.flink import FlinkTable, FlinkView
from hispeed.sql.types import SqlType

#: a Source's `timestamp` that is not a column but the processing time: the wall clock when the
#: query reads the record (a window TVF's `DESCRIPTOR(PROCTIME())`, Flink's PROCTIME())
PROCESSING_TIME = "PROCTIME()"


@dataclass(frozen=True)
class WindowInfo:
    kind: str  # TUMBLING HOPPING SESSION
    size_ms: int | None = None


@dataclass
class Source:
    """A stream or a table over a topic."""

    name: str
    kind: str  # STREAM TABLE
    key_columns: list[Column]
    value_columns: list[Column]
    topic: str
    key_format: str
    value_format: str
    key_properties: dict[str, Any] = field(default_factory=dict)
    value_properties: dict[str, Any] = field(default_factory=dict)
    #: header columns: column -> header key ('' for the whole HEADERS array)
    header_columns: list[tuple[Column, str]] = field(default_factory=list)
    timestamp: str | None = None
    timestamp_format: str | None = None
    window: WindowInfo | None = None
    statement: str = ""
    #: the query that writes this source (CREATE ... AS SELECT), if any
    writer: str | None = None
    source_table: bool = False

    @property
    def columns(self) -> list[Column]:
        return [*self.key_columns, *self.value_columns, *(c for c, _ in self.header_columns)]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)

    def schema_text(self) -> str:
        parts = [
            f"`{c.name}` {c.type} {'PRIMARY KEY' if self.kind == 'TABLE' else 'KEY'}"
            for c in self.key_columns
        ]
        parts += [f"`{c.name}` {c.type}" for c in self.value_columns]
        parts += [
            f"`{c.name}` {c.type} HEADER('{k}')" if k else f"`{c.name}` {c.type} HEADERS"
            for c, k in self.header_columns
        ]
        return ", ".join(parts)


@dataclass
class QueryInfo:
    id: str
    statement: str
    sink: str | None
    sources: list[str]
    #: RUNNING, ERROR while the query fails (runtime/manager.py retries it), or FINISHED once
    #: a ONCE or AVAILABLE_NOW trigger's query has processed its backlog (runtime/trigger.py)
    state: str = "RUNNING"
    #: in ERROR: why
    error: str | None = None
    #: True for a query whose statement failed when the command topic was replayed (a UDF
    #: module or a source gone): it has no task, stays in ERROR until TERMINATE or a DROP of
    #: its sink, and its sink (a CREATE ... AS SELECT's) is not in the catalog
    unmade: bool = False
    #: an unmade CREATE ... AS SELECT's topic (what DROP ... DELETE TOPIC deletes)
    sink_topic: str | None = None


class Catalog:
    def __init__(self) -> None:
        self.sources: dict[str, Source] = {}
        self.types: dict[str, SqlType] = {}
        self.queries: dict[str, QueryInfo] = {}
        #: Flink tables declared and not made (a Nexmark source, a sink its INSERT INTO makes:
        #: statements/flink.py)
        self.flink: dict[str, FlinkTable] = {}
        #: Flink views inlined where they are read (a processing-time view:
        #: statements/flink_views.py)
        self.flink_views: dict[str, FlinkView] = {}

    def get(self, name: str, *, line: int = 1, column: int = 1) -> Source:
        source = self.sources.get(name)
        if source is None:
            known = ", ".join(sorted(self.sources)) or "none yet"
            raise SqlError(
                f"{name} does not exist; the streams and tables are: {known}", line, column
            )
        return source

    def add(self, source: Source, *, replace: bool = False) -> None:
        if source.name in self.sources and not replace:
            existing = self.sources[source.name]
            raise HispeedError(
                f"Cannot add {source.kind.lower()} '{source.name}': A "
                f"{existing.kind.lower()} with the same name already exists"
            )
        self.sources[source.name] = source

    def writers_of(self, name: str) -> list[QueryInfo]:
        return [q for q in self.queries.values() if q.sink == name]

    def readers_of(self, name: str) -> list[QueryInfo]:
        return [q for q in self.queries.values() if name in q.sources]
