"""What the runtime and the connectors are given by the engine that owns them.

A query task, a push-query feed, a pull view or a connector needs the log, the catalog, the
engine's properties, the lock that statements and the query loop share and the schema
registry the schema-registry formats read and register with; never the engine
itself (the engine is the facade above them: `docs/architecture.md`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hispeed.catalog import Catalog
from hispeed.errors import ConfigError
from hispeed.log.base import Log
from hispeed.registry import MemoryRegistry, SchemaRegistry


def wall_clock_ms() -> int:
    """The wall clock in epoch milliseconds: the processing time by default."""
    return time.time_ns() // 1_000_000


@dataclass
class QueryContext:
    """The log, catalog, properties, lock and schema registry of one engine."""

    log: Log
    catalog: Catalog
    #: the engine's properties (the very dict: a SET is seen by every holder)
    properties: dict[str, Any]
    #: held by statements and by each round of the query loop
    lock: threading.RLock = field(default_factory=threading.RLock)
    #: the schemas of the AVRO, PROTOBUF and JSON_SR formats: an external registry at
    #: `ksql.schema.registry.url`, else the engine's own (`hispeed.registry`)
    schema_registry: SchemaRegistry = field(default_factory=MemoryRegistry)
    #: the processing time that PROCTIME() reads, epoch milliseconds: the wall clock unless
    #: the engine was given another (`Engine(clock=...)`: tests hold time still)
    clock: Callable[[], int] = wall_clock_ms

    def offset_reset(self, properties: Any = None) -> str:
        """Where a new query starts: the statement's `auto.offset.reset`, else the engine's."""
        props = properties if properties is not None else self.properties
        return check_offset_reset(props.get("auto.offset.reset", "earliest"))


def check_offset_reset(value: Any) -> str:
    """An `auto.offset.reset` value, checked before a statement makes anything with it."""
    reset = str(value).lower()
    if reset not in ("earliest", "latest"):
        raise ConfigError(
            f"Invalid value {value!r} for property 'auto.offset.reset': use 'earliest' (from "
            "the first record) or 'latest' (from now on)"
        )
    return reset
