"""What a statement handler is given: the engine's parts and the statement's own run.

A handler is `handler(parts, stmt, call) -> Result`: `parts` are the engine's context (log,
catalog, properties, lock), runtime manager and connectors, never the engine itself; `call`
is this statement's text, properties and whether it is replayed from the command topic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hispeed.catalog import Catalog
from hispeed.connectors.runner import Connectors
from hispeed.log.base import Log
from hispeed.runtime.context import QueryContext
from hispeed.runtime.manager import QueryManager
from hispeed.statements.result import Result


@dataclass
class EngineParts:
    """The parts of one engine that its statements act on."""

    context: QueryContext
    runtime: QueryManager
    connectors: Connectors

    @property
    def log(self) -> Log:
        """The engine's log."""
        return self.context.log

    @property
    def catalog(self) -> Catalog:
        """The engine's streams, tables, types and queries."""
        return self.context.catalog

    @property
    def properties(self) -> dict[str, Any]:
        """The engine's properties (the very dict: SET changes them for everyone)."""
        return self.context.properties


@dataclass
class Call:
    """One run of one statement."""

    #: the statement's text, as kept in the command topic
    text: str
    #: the engine's properties with the request's overrides
    props: dict[str, Any]
    #: replayed from the command topic (topics exist already, nothing is recorded again)
    replay: bool
    #: whether the statement goes to the command topic; a handler clears it when it did
    #: nothing worth replaying
    record: bool
    #: what to do, newest last, to unmake what this statement made if a later step fails
    #: (`statements/undo.py`)
    undo: list[Callable[[], object]] = field(default_factory=list)


#: a statement handler: `handler(parts, stmt, call)`, `stmt` being its kind of statement
Handler = Callable[[EngineParts, Any, Call], Result]
