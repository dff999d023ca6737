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

    def __init__(
        self, context: QueryContext, worker_id: str, server: Mapping[str, Any] | None = None
    ) -> None:
        """`server`: the properties the server gave (its Redis's URL...), which belong to each
        run and are never recorded with a statement."""
        self.context = context
        #: who this engine is among the workers sharing a (Kafka) log's command topic
        self.worker_id = worker_id
        #: the next command-topic offset this engine has not applied
        self.offset = 0
        self.synced_at = 0.0
        #: the properties every statement starts from in this run (the server's, defaults)
        self.given = dict(context.properties)
        self.server = dict(server or {})
        # the statements are the catalog: never deleted by time or size (ksqlDB's is the same)
        context.log.create_topic(
            COMMAND_TOPIC, 1, {"retention.ms": -1, "retention.bytes": -1}, exist_ok=True
        )

    def record(
        self, text: str, properties: Mapping[str, Any], overrides: Mapping[str, Any] | None = None
    ) -> None:
        """Keep a statement that ran, with the properties the user gave it (SET, or the
        request's): not the server's own, which the replaying server gives (its embedded
        Redis on a port of this run, not of the run that recorded the statement)."""
        overrides = overrides or {}
        props = {
            k: v
            for k, v in {**properties, **overrides}.items()
            if isinstance(v, str | int | float | bool)
            and (k in overrides or k not in self.given or self.given[k] != v)
        }
        # "own": the properties are the user's alone (entries without it carry the server's)
        entry = {"statement": text, "properties": props, "worker": self.worker_id, "own": 1}
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
        #: statements that failed, by what they make: a later DROP of it means it is gone
        #: anyway, and neither says anything above debug level
        failed: dict[str, tuple[str, HispeedError]] = {}
        for batch in log_.read(COMMAND_TOPIC, 0, position):
            offsets = batch.column("offset").to_pylist()
            for offset, value in zip(offsets, batch.column("value").to_pylist(), strict=True):
                self.offset = offset + 1
                entry = msgspec.json.decode(value)
                if not own and entry.get("worker") == self.worker_id:
                    continue
                saved = dict(properties)
                try:
                    recorded = entry.get("properties", {})
                    if not entry.get("own"):  # recorded with the server's: this run's win
                        recorded = {k: v for k, v in recorded.items() if k not in self.server}
                    properties.update(recorded)
                    for parsed in parse_iter(entry["statement"], catalog.types):
                        _replay_one(run, parsed, failed)
                except HispeedError as e:  # a statement that no longer parses
                    log.warning("skipped on replay: %s (%s)", entry["statement"], e)
                finally:  # in place: the runtime holds this very dict
                    properties.clear()
                    properties.update(saved)
        for statement, error in failed.values():
            log.warning("skipped on replay: %s (%s)", statement, error)


def _made_key(stmt: ast.Statement) -> str | None:
    """What a CREATE makes or a DROP removes, as replay matches them (None: neither)."""
    if isinstance(stmt, ast.CreateSource | ast.CreateAsSelect | ast.Drop):
        return f"source:{stmt.name.upper()}"
    if isinstance(stmt, ast.CreateConnector | ast.DropConnector):
        return f"connector:{stmt.name.upper()}"
    return None


def _replay_one(
    run: Callable[[ast.ParsedStatement], object],
    parsed: ast.ParsedStatement,
    failed: dict[str, tuple[str, HispeedError]],
) -> None:
    """Replay one statement; a CREATE that fails waits in `failed` for a DROP of its object
    (then nothing is lost and nothing is said), else it is reported once replay ends."""
    stmt = parsed.statement
    made = _made_key(stmt)
    dropping = isinstance(stmt, ast.Drop | ast.DropConnector)
    try:
        run(parsed)
    except HispeedError as e:
        gone = failed.pop(made, None) if dropping and made else None
        if gone is not None:
            log.debug("replay: %s failed, and was dropped later (%s)", gone[0], gone[1])
        elif made is not None and not dropping:
            failed[made] = (parsed.text, e)
        else:
            log.warning("skipped on replay: %s (%s)", parsed.text, e)
        return
    if made is not None and failed.pop(made, None) is not None:  # made again: nothing lost
        log.debug("replay: %s made again after an earlier statement failed", made)
