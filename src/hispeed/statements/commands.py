"""The command topic: every statement that changed the catalog, in order.

Opening the same data directory again replays it, so every stream, table, connector and query
comes back where it left off. On a shared (Kafka) log the workers of one application share
the topic: a statement sent to any worker is recorded there and applied by all.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from hispeed.errors import HispeedError
from hispeed.runtime.context import QueryContext
from hispeed.sql import ast
from hispeed.sql.parser import parse_iter

log = logging.getLogger(__name__)

COMMAND_TOPIC = "_hispeed_command_topic"


class CommandTopic:
    """One engine's place in the command topic: what it recorded and what it applied."""

    def __init__(self, context: QueryContext, worker_id: str) -> None:
        self.context = context
        #: who this engine is among the workers sharing a (Kafka) log's command topic
        self.worker_id = worker_id
        #: the next command-topic offset this engine has not applied
        self.offset = 0
        self.synced_at = 0.0
        context.log.create_topic(COMMAND_TOPIC, 1, exist_ok=True)

    def record(self, text: str, properties: Mapping[str, Any]) -> None:
        """Keep a statement that ran, with the properties it ran with."""
        props = {k: v for k, v in properties.items() if isinstance(v, str | int | float | bool)}
        entry = {"statement": text, "properties": props, "worker": self.worker_id}
        result = self.context.log.append(
            COMMAND_TOPIC, [(None, msgspec.json.encode(entry))], partition=0
        )
        if int(result.offsets[0]) == self.offset:
            self.offset += 1  # nothing from another worker came in between

    def sync(self, run: Callable[[ast.ParsedStatement], object], every: float = 0.0) -> None:
        """Apply the statements other workers of a shared (Kafka) log have recorded since the
        last call (at most every `every` s), running each with `run`."""
        if not self.context.log.shared or time.monotonic() - self.synced_at < every:
            return
        with self.context.lock:
            self.apply(run, own=False)
            self.synced_at = time.monotonic()

    def apply(self, run: Callable[[ast.ParsedStatement], object], own: bool) -> None:
        """The command topic from where this engine stands, each statement run with `run`
        under the properties it was recorded with; `own`: also this worker's own statements
        (a restart replays everything)."""
        log_, properties, catalog = self.context.log, self.context.properties, self.context.catalog
        start, end = log_.offsets(COMMAND_TOPIC, 0)
        position = max(start, self.offset)
        if end <= position:
            return
        for batch in log_.read(COMMAND_TOPIC, 0, position):
            offsets = batch.column("offset").to_pylist()
            for offset, value in zip(offsets, batch.column("value").to_pylist(), strict=True):
                self.offset = offset + 1
                entry = msgspec.json.decode(value)
                if not own and entry.get("worker") == self.worker_id:
                    continue
                saved = dict(properties)
                try:
                    properties.update(entry.get("properties", {}))
                    for parsed in parse_iter(entry["statement"], catalog.types):
                        run(parsed)
                except HispeedError as e:  # a statement that no longer applies
                    log.warning("skipped on replay: %s (%s)", entry["statement"], e)
                finally:  # in place: the runtime holds this very dict
                    properties.clear()
                    properties.update(saved)
