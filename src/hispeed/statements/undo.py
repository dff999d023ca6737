"""Statements are all or nothing: what a statement made is unmade when a later step fails.

A statement first checks everything it can (names, formats, properties) and only then makes
things: a topic, a catalog entry, a query's task, a connector, its record in the command
topic. When a step after the first one fails, `all_or_nothing` puts the engine back as it
was: the streams, tables, types and queries the statement added go (a replaced one comes
back), new query tasks and connectors stop, the query counter goes back (query ids, and so
the queries' consumer groups, stay the same after a restart), and the topics it created are
deleted. A handler says which topics it is about to create with `creating_topic`, so that a
topic someone else creates meanwhile (a producer's auto-created topic) is never touched.

What a statement removes (DROP, TERMINATE, DROP CONNECTOR) cannot be brought back once
stopped, so those handlers check everything, and do the step that may fail (deleting the
topic) before the ones that cannot.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from hispeed.log.base import Log
from hispeed.statements.base import Call, EngineParts

log = logging.getLogger(__name__)

T = TypeVar("T")


def creating_topic(parts: EngineParts, call: Call, *topics: str) -> None:
    """Call before creating `topics` (exist_ok): those that do not exist yet are deleted when
    the statement fails after this point."""
    log_ = parts.log
    existing = set(log_.list_topics(internal=True))
    for topic in topics:
        if topic not in existing:
            call.undo.append(functools.partial(delete_topic, log_, topic))


def delete_topic(log_: Log, topic: str) -> None:
    """Delete `topic` if it is there (an undo step)."""
    if topic in log_.list_topics(internal=True):
        log_.delete_topic(topic)


def all_or_nothing(parts: EngineParts, call: Call, run: Callable[[], T]) -> T:
    """Run a statement (`run`: its handler, then its record in the command topic); if it
    raises, unmake what it made, then raise what it raised."""
    catalog, runtime, connectors = parts.catalog, parts.runtime, parts.connectors
    sources = dict(catalog.sources)
    types = dict(catalog.types)
    queries = set(catalog.queries)
    tasks = set(runtime.tasks)
    runners = set(connectors.runners)
    counter = runtime.query_counter
    try:
        return run()
    except BaseException:
        # the newest first: a query stops before the topic it writes goes
        for query_id in [q for q in list(catalog.queries) if q not in queries]:
            _quietly(functools.partial(runtime.stop_query, query_id))
        for query_id in [t for t in list(runtime.tasks) if t not in tasks]:
            _quietly(functools.partial(runtime.stop_query, query_id))
        for name in [c for c in list(connectors.runners) if c not in runners]:
            runner = connectors.runners.pop(name)
            _quietly(runner.stop)
        for undo in reversed(call.undo):
            _quietly(undo)
        for name in [s for s in list(catalog.sources) if s not in sources]:
            del catalog.sources[name]
        for name, source in sources.items():
            if catalog.sources.get(name) is not source and name in catalog.sources:
                catalog.sources[name] = source  # CREATE OR REPLACE: the one it replaced
        for name in [t for t in list(catalog.types) if t not in types]:
            del catalog.types[name]
        runtime.query_counter = counter
        raise


def _quietly(step: Callable[[], object]) -> None:
    """One step of undoing: its own failure is logged, and the other steps still run (the
    user sees the statement's error, which is the one that matters)."""
    try:
        step()
    except Exception:
        log.exception("could not undo part of a failed statement")
