"""Connectors: sinks that write a topic's records somewhere else, sources that bring records in.

A connector is a plugin: a class with a `connector.class` name, made from the properties of
`CREATE SINK|SOURCE CONNECTOR name WITH (...)`. hispeed runs each on a thread of its own:

- a **sink** reads its topics in a consumer group of its own (`_hispeed_connector_NAME`),
  decoded with the schema of the stream or table it was given (`'source'='TABLE'`) or as
  JSON objects (`'topics'='a,b'`), and hands `write()` one `SinkBatch` at a time. Only when
  `write()` returns are the batch's offsets committed, so a crash repeats at most the batch in
  flight (at-least-once; a sink whose writes are idempotent makes that effectively once).
  `write()` raises `RetriableError` for a failure that may pass (a server restarting): the
  runner keeps the batch (the buffer is that one batch: nothing more is read meanwhile) and
  retries with exponential backoff, the connector's state `RETRYING` with the error.
  A record the sink cannot write (a wrong type at its key) is reported with
  `SinkBatch.fail(i, message)`: it goes to the processing log and the rest go on.
- a **source** returns `SourceRecord`s (or `SourceBatch`es: many records as Arrow columns,
  for a source that reads in bulk) from `poll()`; each carries its position in the outside
  system, committed with the records in one log transaction, and given back to
  `start(position)` after a restart.
- a sink that keeps its own progress where it writes (file names that say which offsets they
  hold) returns it from `resume_offsets()`: the runner starts reading there, whatever the
  group committed, so a sink that buffers across batches (flushing in `flush()`) loses
  nothing and, skipping offsets it already holds, writes each record once.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, ClassVar

import pyarrow as pa

# the errors a connector raises are part of its contract; they are defined with the other
# errors so that the Redis client (hispeed.resp), below the connectors, raises them too
from hispeed.errors import ConnectorError, RetriableError
from hispeed.log.base import TopicPartition


@dataclass
class SinkBatch:
    """Decoded records of one partition, in offset order.

    `rows[i]` holds every column of record i by name (key columns, value columns, and
    WINDOWSTART/WINDOWEND for a windowed source), or is None for a tombstone (a deleted
    table row: then only `keys[i]` is known).
    """

    topic: str
    partition: int
    offsets: list[int]
    timestamps: list[int]
    #: each record's key: one value for a single key column, a dict for several, None for none
    keys: list[Any]
    rows: list[dict[str, Any] | None]
    key_columns: list[str] = field(default_factory=list)
    #: each column's SQL type as ksqlDB writes it ("STRING", "DECIMAL(10, 2)",
    #: "ARRAY<STRING>"...), key columns first; empty for a topic with no stream or table over
    #: it (its rows are JSON objects). What a sink that creates tables makes its columns from.
    column_types: dict[str, str] = field(default_factory=dict)
    #: (row index, message) of records the sink could not write; the runner logs them
    failures: list[tuple[int, str]] = field(default_factory=list)
    #: the same records as Arrow columns, typed as the stream or table declares them (the
    #: names of `rows`; a tombstone's value columns null), for a sink that writes columns
    #: (Parquet); None for topics read as JSON objects
    columns: pa.Table | None = None
    #: with `columns`: which records are tombstones (a table's deleted rows), as a list of
    #: booleans (the sink of `rows_needed = False` has no `rows` to tell it)
    deleted: list[bool] | None = None

    def __len__(self) -> int:
        return len(self.offsets)

    def fail(self, i: int, message: str) -> None:
        """Record i could not be written: it goes to the processing log; the rest go on."""
        self.failures.append((i, message))


@dataclass
class SourceRecord:
    """One record a source brings in: key and value bytes as they go into the topic (encode
    them in the format the stream over the topic declares, JSON usually), and where the
    outside system is after it."""

    key: bytes | None
    value: bytes | None
    timestamp: int | None = None
    #: where the outside system is after this record (committed with it)
    position: Any = None
    #: the topic it goes to, when not the connector's own ('kafka.topic')
    topic: str | None = None


@dataclass
class SourceBatch:
    """Many records read at once, as Arrow columns: what a bulk source returns from `poll()`.

    `records` has a binary `value` column and may have `key` (binary) and `timestamp`
    (milliseconds; a null is the time of the append). `errors` are what the source could not
    read (processing-log entries: at least a `message`), committed in the same transaction
    as the records and the position; a batch may hold only errors.
    """

    records: pa.RecordBatch | pa.Table
    #: where the outside system is after these records (committed with them)
    position: Any = None
    #: the topic it goes to, when not the connector's own ('kafka.topic')
    topic: str | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.records.num_rows)


@dataclass
class ConnectorStatus:
    """What SHOW/DESCRIBE CONNECTOR show of a running connector (kept by the runner)."""

    state: str  # RUNNING, RETRYING, FAILED, STOPPED
    records: int = 0
    errors: int = 0
    last_error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Connector(ABC):
    """The base of sinks and sources. `config` holds the WITH properties, names lower-cased."""

    kind: ClassVar[str]  # "SINK" or "SOURCE"
    #: the `connector.class` names this class answers to
    names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        self.name = name
        self.config = dict(config)

    def option(self, key: str, default: str | None = None) -> str:
        """A required property (or its default), with an error naming the connector."""
        value = self.config.get(key, default)
        if value is None:
            raise ConnectorError(f"connector {self.name} needs '{key}' in its WITH clause")
        return value

    @abstractmethod
    def stop(self) -> None:
        """Release what the connector holds (connections, threads)."""

    def details(self) -> dict[str, Any]:
        """What DESCRIBE CONNECTOR shows besides the counts (the Redis server, the mode...)."""
        return {}


class SinkConnector(Connector):
    """A connector that writes a topic's records elsewhere: `start`, `write` per batch, `stop`.

    `__init__(name, config)` checks the configuration (raise ConnectorError naming the
    property) but connects to nothing: `start` does, and may raise RetriableError."""

    kind = "SINK"
    #: False: the sink writes `SinkBatch.columns` (with `deleted`) only, so the runner does
    #: not make `keys` and `rows` (left empty) for a stream's or table's records: no Python
    #: object per record (a topic read as JSON objects still comes as `rows`)
    rows_needed: ClassVar[bool] = True

    @abstractmethod
    def start(self) -> None:
        """Connect; raise RetriableError while the outside system cannot be reached."""

    @abstractmethod
    def write(self, batch: SinkBatch) -> None:
        """Write every record of the batch (or `batch.fail()` it); raise RetriableError to
        have the whole batch tried again later. Must be safe to repeat after a crash."""

    def resume_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int] | None:
        """Where to read each partition from, when the sink keeps that itself (None: from the
        group's committed offsets). Called after `start()`, before the first batch."""
        return None

    def flush(self) -> None:
        """Write what `write()` buffered, when its time has come; the runner calls it after
        every poll (an empty one too), so a buffering sink flushes on time when idle."""


class SourceConnector(Connector):
    """A connector that brings records in: `start(position)`, `poll` repeatedly, `stop`.

    Each record's `position` is committed with it; after a restart `start` gets the last
    committed one back, and must go on after it."""

    kind = "SOURCE"

    @abstractmethod
    def start(self, position: Any) -> None:
        """Connect and resume after `position` (None: from where the source says)."""

    def default_topic(self) -> str | None:
        """The topic records go to when the WITH clause names none (None: it must)."""
        return None

    @abstractmethod
    def poll(self, timeout: float) -> list[SourceRecord] | list[SourceBatch]:
        """Records that arrived within `timeout` seconds (maybe none), one by one or in
        batches; the position of the last one is committed with them."""


_REGISTRY: dict[str, type[Connector]] = {}
_lock = threading.Lock()

#: the entry point group through which installed packages offer connectors: each entry point's
#: name is a `connector.class` name, its value the class (`package.module:Class`)
ENTRY_POINT_GROUP = "hispeed.connectors"


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator: make a connector available to `'connector.class'='name'` for each of
    its `names` (any case). A name another class already has is an error (a module imported
    again registers its classes again, which is allowed)."""
    if not (isinstance(cls, type) and issubclass(cls, (SinkConnector, SourceConnector))):
        raise ConnectorError(f"{cls!r} is neither a SinkConnector nor a SourceConnector")
    if not cls.names:
        raise ConnectorError(f"connector class {_qualified(cls)} has no `names`")
    with _lock:
        for n in cls.names:
            other = _REGISTRY.get(n.lower())
            if other is not None and _qualified(other) != _qualified(cls):
                raise ConnectorError(
                    f"connector class name '{n}' is taken twice: by {_qualified(other)} and "
                    f"by {_qualified(cls)}"
                )
        for n in cls.names:
            _REGISTRY[n.lower()] = cls
    return cls


def _entry_points(name: str | None = None) -> list[metadata.EntryPoint]:
    """The installed `hispeed.connectors` entry points (those called `name`, in any case)."""
    found = metadata.entry_points(group=ENTRY_POINT_GROUP)
    return [ep for ep in found if name is None or ep.name.lower() == name.lower()]


def _package(ep: metadata.EntryPoint) -> str:
    dist = ep.dist
    return f"package {dist.name}" if dist is not None else "an installed package"


def _from_entry_point(name: str) -> type[Connector] | None:
    """The class an installed package offers as `name`, loaded and registered (None: none)."""
    eps = {ep.value: ep for ep in _entry_points(name)}  # one package seen twice is one
    if not eps:
        return None
    if len(eps) > 1:
        offers = "; ".join(f"{_package(ep)} ({ep.value})" for ep in eps.values())
        raise ConnectorError(
            f"connector class '{name}' is offered by more than one installed package: "
            f"{offers}; uninstall all but one"
        )
    (ep,) = eps.values()
    try:
        cls = ep.load()
    except Exception as e:
        raise ConnectorError(
            f"connector class '{name}' of {_package(ep)} ({ep.value}) failed to import: "
            f"{type(e).__name__}: {e}"
        ) from e
    if not (isinstance(cls, type) and issubclass(cls, (SinkConnector, SourceConnector))):
        raise ConnectorError(
            f"connector class '{name}' of {_package(ep)} ({ep.value}) is not a SinkConnector "
            "or SourceConnector subclass"
        )
    with _lock:
        other = _REGISTRY.get(name.lower())
        if other is not None and other is not cls:
            raise ConnectorError(
                f"connector class name '{name}' is taken twice: by {_qualified(other)} and by "
                f"{_package(ep)} ({ep.value})"
            )
        _REGISTRY[name.lower()] = cls
    return cls


def _check_no_clash(name: str, cls: type[Connector]) -> None:
    """Fail when an installed package offers `name` as well as the registered `cls`."""
    for ep in _entry_points(name):
        try:
            offered = ep.load()  # imported once: later lookups find it in sys.modules
        except Exception as e:
            offered = e
        if offered is not cls:
            raise ConnectorError(
                f"connector class name '{name}' is taken twice: by {_qualified(cls)} and by "
                f"{_package(ep)} ({ep.value}); uninstall that package or rename its entry point"
            )


def known_connectors() -> dict[str, str]:
    """Every `connector.class` name there is, with where it comes from: 'sink' or 'source'
    for the registered classes, 'package NAME' for installed entry points not loaded yet."""
    with _lock:
        known = {n: c.kind.lower() for n, c in _REGISTRY.items()}
    for ep in _entry_points():
        known.setdefault(ep.name.lower(), _package(ep))
    return dict(sorted(known.items()))


def connector_class(name: str, kind: str) -> type[Connector]:
    """The connector class called `name` (any case), which must be of `kind` (SINK or
    SOURCE): a registered one (`hispeed.connectors` imports, so registers, the built-ins),
    else one an installed package offers through the `hispeed.connectors` entry point.

    An installed package that offers a name a registered class has is an error, as is a name
    offered by two packages, or a package that fails to import: each says which package."""
    with _lock:
        cls = _REGISTRY.get(name.lower())
    if cls is not None:
        _check_no_clash(name, cls)
    else:
        cls = _from_entry_point(name)
    if cls is None:
        sinks_or_sources = [n for n, where in known_connectors().items() if where == kind.lower()]
        packages = [n for n, where in known_connectors().items() if where.startswith("package")]
        known = ", ".join(sinks_or_sources) or "none"
        more = f"; from installed packages: {', '.join(packages)}" if packages else ""
        raise ConnectorError(f"no {kind.lower()} connector class '{name}' (known: {known}{more})")
    if cls.kind != kind:
        raise ConnectorError(f"'{name}' is a {cls.kind.lower()} connector, not a {kind.lower()}")
    return cls


__all__ = [
    "ENTRY_POINT_GROUP",
    "Connector",
    "ConnectorError",
    "ConnectorStatus",
    "RetriableError",
    "SinkBatch",
    "SinkConnector",
    "SourceBatch",
    "SourceConnector",
    "SourceRecord",
    "connector_class",
    "known_connectors",
    "register",
]
