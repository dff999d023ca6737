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
- a **source** returns `SourceRecord`s from `poll()`; each carries its position in the
  outside system, committed with the records in one log transaction, and given back to
  `start(position)` after a restart.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

# the errors a connector raises are part of its contract; they are defined with the other
# errors so that the Redis client (hispeed.resp), below the connectors, raises them too
from hispeed.errors import ConnectorError, RetriableError


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
    #: (row index, message) of records the sink could not write; the runner logs them
    failures: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offsets)

    def fail(self, i: int, message: str) -> None:
        """Record i could not be written: it goes to the processing log; the rest go on."""
        self.failures.append((i, message))


@dataclass
class SourceRecord:
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None
    #: where the outside system is after this record (committed with it)
    position: Any = None
    #: the topic it goes to, when not the connector's own ('kafka.topic')
    topic: str | None = None


@dataclass
class ConnectorStatus:
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
    kind = "SINK"

    @abstractmethod
    def start(self) -> None:
        """Connect; raise RetriableError while the outside system cannot be reached."""

    @abstractmethod
    def write(self, batch: SinkBatch) -> None:
        """Write every record of the batch (or `batch.fail()` it); raise RetriableError to
        have the whole batch tried again later. Must be safe to repeat after a crash."""


class SourceConnector(Connector):
    kind = "SOURCE"

    @abstractmethod
    def start(self, position: Any) -> None:
        """Connect and resume after `position` (None: from where the source says)."""

    def default_topic(self) -> str | None:
        """The topic records go to when the WITH clause names none (None: it must)."""
        return None

    @abstractmethod
    def poll(self, timeout: float) -> list[SourceRecord]:
        """Records that arrived within `timeout` seconds (maybe none)."""


_REGISTRY: dict[str, type[Connector]] = {}
_lock = threading.Lock()


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator: make a connector available to `'connector.class'='name'`."""
    with _lock:
        for n in cls.names:
            _REGISTRY[n.lower()] = cls
    return cls


def connector_class(name: str, kind: str) -> type[Connector]:
    """The registered connector class called `name` (any case), which must be of `kind`
    (SINK or SOURCE); `hispeed.connectors` imports (so registers) the built-in ones."""
    cls = _REGISTRY.get(name.lower())
    if cls is None:
        known = ", ".join(sorted(n for n, c in _REGISTRY.items() if c.kind == kind)) or "none"
        raise ConnectorError(f"no {kind.lower()} connector class '{name}' (known: {known})")
    if cls.kind != kind:
        raise ConnectorError(f"'{name}' is a {cls.kind.lower()} connector, not a {kind.lower()}")
    return cls


__all__ = [
    "Connector",
    "ConnectorError",
    "ConnectorStatus",
    "RetriableError",
    "SinkBatch",
    "SinkConnector",
    "SourceConnector",
    "SourceRecord",
    "connector_class",
    "register",
]
