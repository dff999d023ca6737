"""The runtime manager: what one engine runs, and the loop that runs it.

`QueryManager` owns the running side of an engine: its query tasks by id (a `QueryTask`, or
on a shared Kafka log a `DistributedTask`), starting, stopping and draining them, the
background thread that runs them, the push-query feeds (`runtime/feeds.py`) and the pull
views (`runtime/pull.py`). It receives the engine's `QueryContext`, never the engine: the
engine is the facade above it and delegates here.

A query's failure stays that query's: an exception out of one task's poll puts that query in
the ERROR state (its message kept, shown by SHOW QUERIES, EXPLAIN, /metrics and the
dashboard), and every other query goes on. As ksqlDB does, a query in ERROR is retried after
a backoff that doubles from `ksql.query.retry.backoff.initial.ms` (15 s) up to
`ksql.query.retry.backoff.max.ms` (15 min); its batch is read again from its last commit, so
nothing is skipped. A `RetriableError` (a lookup's server away) is retried sooner (0.5 s,
doubling up to 5 s). A retry that succeeds puts the query back in RUNNING. A user recovers
from a query that fails every time by fixing the cause (the input, the UDF) and waiting for
the next retry, or by TERMINATE and CREATE again.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hispeed.catalog import QueryInfo, Source
from hispeed.errors import HispeedError, RetriableError
from hispeed.ops.repartition import repartition_topic
from hispeed.plan.model import QueryPlan
from hispeed.runtime.context import QueryContext
from hispeed.runtime.distributed import DistributedTask, owner_topic
from hispeed.runtime.feeds import PushFeeds
from hispeed.runtime.pull import PullViews, StateRows
from hispeed.runtime.state_view import table_rows
from hispeed.runtime.task import QueryTask
from hispeed.runtime.trigger import FINISHED, TriggeredTask, TriggerSpec
from hispeed.state.changelog import changelog_topic

log = logging.getLogger(__name__)

#: ksqlDB's names and defaults for the backoff of a query in ERROR (ms)
RETRY_INITIAL = ("ksql.query.retry.backoff.initial.ms", 15_000)
RETRY_MAX = ("ksql.query.retry.backoff.max.ms", 900_000)
#: a RetriableError (a server away) passes by itself: retried sooner
RETRIABLE_INITIAL_MS, RETRIABLE_MAX_MS = 500, 5_000


@dataclass
class QueryFailure:
    """Why a query is in ERROR, and when it is tried again."""

    #: what went wrong, as shown to users
    message: str
    #: failures in a row (the backoff doubles with each)
    attempts: int
    #: `time.monotonic()` of the next retry
    retry_at: float
    #: the exception itself (the conformance runner reports it as the case's outcome)
    error: BaseException


def failure_message(error: BaseException) -> str:
    """An exception as a query's error message: a HispeedError says it for users already;
    anything else is named by its type too, since it is a defect of hispeed's own."""
    if isinstance(error, HispeedError):
        return str(error)
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


class QueryManager:
    """One engine's running queries, push-query feeds and pull views."""

    def __init__(self, context: QueryContext) -> None:
        self.context = context
        #: the running queries by id: persistent ones and transient push queries
        self.tasks: dict[str, QueryTask | DistributedTask] = {}
        #: the shared readers of push queries that filter and project a stream
        self.feeds = PushFeeds(context.log, context.schema_registry)
        #: the tables' in-memory views and the prepared pull queries
        self.views = PullViews(context)
        self.views.state_rows = self._state_rows
        #: the queries in ERROR by id (persistent and transient)
        self.failed: dict[str, QueryFailure] = {}
        #: how many times each query has failed since it started (the /metrics counter)
        self.failures: dict[str, int] = {}
        #: persistent queries made so far: the number in the next query id
        self.query_counter = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        #: set when a task is added or the loop must stop: the idle loop with no task waits
        #: on it, not on the log, so appends that nobody reads wake no thread
        self._wake = threading.Event()

    def _state_rows(self, source: Source) -> StateRows:
        """Key lookups of a table from the state of the query running now that writes it
        (none, or a state that cannot answer: None, and the view reads the topic)."""

        def rows(names: list[str], keys: list[tuple[Any, ...]]) -> list[tuple[Any, ...]] | None:
            for task in self.tasks.values():
                if isinstance(task, QueryTask) and task.sink is source:
                    return table_rows(task, names, keys)
            return None

        return rows

    @property
    def running(self) -> bool:
        """Whether the background loop (`start`) runs the queries."""
        return self._thread is not None

    def next_query_id(self, base: str) -> str:
        """A new persistent query's id: `base` numbered by how many queries came before."""
        self.query_counter += 1
        if base.startswith("INSERTQUERY"):
            return f"INSERTQUERY_{self.query_counter - 1}"
        return f"{base}_{self.query_counter - 1}"

    def internal_topics(self, query_id: str) -> list[str]:
        """The topics a query's task may create for itself (its changelog; on Kafka its
        repartition and owner topics), named after its id."""
        return [changelog_topic(query_id), repartition_topic(query_id), owner_topic(query_id)]

    def start_query(
        self,
        query_id: str,
        text: str,
        plan: QueryPlan,
        sink: Source,
        props: Mapping[str, Any] | None = None,
        trigger: TriggerSpec | None = None,
    ) -> None:
        """Record a persistent query in the catalog and start its task (`trigger`: its
        micro-batch trigger, runtime/trigger.py; None: continuous)."""
        catalog, context = self.context.catalog, self.context
        join = plan.join
        sources = [s.source.name for s in join.sides] if join is not None else [plan.source.name]
        catalog.queries[query_id] = QueryInfo(query_id, text, sink.name, sources)
        if context.log.shared:
            # on Kafka, the application's workers share the query (runtime/distributed.py)
            self.tasks[query_id] = DistributedTask(context, query_id, plan, sink, properties=props)
        elif trigger is not None and trigger.kind != "CONTINUOUS":
            self.tasks[query_id] = TriggeredTask(
                context, query_id, plan, sink, properties=props, trigger=trigger
            )
        else:
            self.tasks[query_id] = QueryTask(context, query_id, plan, sink, properties=props)
        self.wake()

    def keep_unmade(
        self,
        query_id: str,
        text: str,
        sink: str | None,
        sources: list[str],
        error: HispeedError,
        sink_topic: str | None = None,
    ) -> None:
        """Keep a persistent query whose statement failed on replay (its UDF module or a
        source gone since it was made) in the catalog, in ERROR with why: it has no task and
        is never retried (the statement itself fails), but users see it and can TERMINATE it
        or DROP its sink, and every other query goes on."""
        message = f"could not be started again from the command topic: {failure_message(error)}"
        self.context.catalog.queries[query_id] = QueryInfo(
            query_id, text, sink, sources, "ERROR", message, unmade=True, sink_topic=sink_topic
        )
        self.failed[query_id] = QueryFailure(message, 1, math.inf, error)
        self.failures[query_id] = 1

    def stop_query(self, query_id: str) -> None:
        """Stop a persistent query's task and forget it in the catalog."""
        task = self.tasks.pop(query_id, None)
        if task is not None:
            task.close()
        self.context.catalog.queries.pop(query_id, None)
        self.failed.pop(query_id, None)
        self.failures.pop(query_id, None)

    def state(self, query_id: str) -> tuple[str, str | None]:
        """A query's state (RUNNING, ERROR, or FINISHED: a bounded trigger's query that has
        processed what it was to) and, in ERROR, its error message."""
        failure = self.failed.get(query_id)
        if failure is not None:
            return "ERROR", failure.message
        task = self.tasks.get(query_id)
        if isinstance(task, TriggeredTask) and task.finished:
            return FINISHED, None
        return "RUNNING", None

    def poll_task(self, task: QueryTask | DistributedTask, wait: float = 0.0) -> int:
        """One poll of one query (hold the lock); its failure puts it in ERROR and stays its
        own. A query in ERROR is polled again once its backoff has passed."""
        failure = self.failed.get(task.id)
        if failure is not None and time.monotonic() < failure.retry_at:
            return 0
        try:
            done = task.poll(wait)
        except Exception as e:  # a query's failure stops that query, never the loop
            self._fail(task.id, e, failure)
            return 0
        if failure is not None:
            self._recovered(task.id)
        if isinstance(task, TriggeredTask) and task.finished:
            # ONCE or AVAILABLE_NOW has processed what its sources held at its start: it
            # reads nothing more (until a restart), so SHOW QUERIES says so, not RUNNING
            info = self.context.catalog.queries.get(task.id)
            if info is not None and info.state != FINISHED:
                info.state = FINISHED
        return done

    def _fail(self, query_id: str, error: Exception, failure: QueryFailure | None) -> None:
        message = failure_message(error)
        attempts = 1 if failure is None else failure.attempts + 1
        if isinstance(error, RetriableError):
            first, most = RETRIABLE_INITIAL_MS, RETRIABLE_MAX_MS
        else:
            props = self.context.properties
            first = int(props.get(RETRY_INITIAL[0], RETRY_INITIAL[1]))
            most = int(props.get(RETRY_MAX[0], RETRY_MAX[1]))
        delay = min(first * 2 ** min(attempts - 1, 30), max(first, most)) / 1000
        self.failed[query_id] = QueryFailure(message, attempts, time.monotonic() + delay, error)
        self.failures[query_id] = self.failures.get(query_id, 0) + 1
        info = self.context.catalog.queries.get(query_id)
        if info is not None:
            info.state, info.error = "ERROR", message
        again = "" if failure is None else " again"
        if failure is None and not isinstance(error, RetriableError):
            # the first failure as an error, with its traceback when it is a defect of
            # hispeed's own (not a HispeedError); each retry in one line
            log.error(
                "query %s failed (retrying in %.3g s): %s",
                query_id,
                delay,
                message,
                exc_info=None if isinstance(error, HispeedError) else error,
            )
        else:
            log.warning(
                "query %s failed%s (retrying in %.3g s): %s", query_id, again, delay, message
            )

    def _recovered(self, query_id: str) -> None:
        self.failed.pop(query_id, None)
        info = self.context.catalog.queries.get(query_id)
        if info is not None:
            info.state, info.error = "RUNNING", None
        log.info("query %s runs again", query_id)

    def drain(
        self,
        timeout: float | None = None,
        *,
        max_rounds: int | None = None,
        idle_timeout: float = 60.0,
    ) -> int:
        """Run every query until all have caught up; returns the records processed.

        Caught up: each query has read every partition it reads to its end offset and holds
        no records back (a join waiting for its other input), so a backlog of any size is
        processed in one call. Records appended meanwhile are processed too: a query fed
        without pause is caught up only when `timeout` bounds the call.

        `timeout`: return after this many seconds (at least one round), caught up or not;
        what is left is processed by the next call (or the background loop). None: no bound.
        `max_rounds`: return after this many rounds (a round polls each query once; the
        background loop runs one at a time). `idle_timeout`: on a shared log (Kafka) records
        arrive from the broker a moment after they are written, so this waits for them, and
        raises HispeedError if no query makes progress for this many seconds.

        A query that fails does not stop the others, nor raise here: it is in ERROR
        (`state(query_id)`, SHOW QUERIES) and retried after its backoff.
        """
        lock, shared = self.context.lock, self.context.log.shared
        total = 0
        rounds = 0
        wait = 0.0
        now = time.monotonic()
        stop_at = None if timeout is None else now + timeout
        idle_until = now + idle_timeout
        while max_rounds is None or rounds < max_rounds:
            with lock:
                tasks = list(self.tasks.values())
                done = sum(self.poll_task(task, wait) for task in tasks)
            total += done
            rounds += 1
            now = time.monotonic()
            if stop_at is not None and now >= stop_at:
                break
            if done:
                wait = 0.0
                idle_until = now + idle_timeout
                continue
            # on the embedded log a round that read nothing means nothing is left to read
            if not shared or max_rounds == 1:
                break
            with lock:
                # a query in ERROR waits for its retry: nothing to wait for there
                if all(task.consumer.caught_up() for task in tasks if task.id not in self.failed):
                    break
            if now > idle_until:
                raise HispeedError(f"queries made no progress for {idle_timeout:.0f} s")
            rounds -= 1  # waiting for records on their way is not a round
            wait = 0.01
        return total

    def wake(self) -> None:
        """Tell the background loop a task was added (it may be waiting with none)."""
        self._wake.set()

    def start(self, each_round: Callable[[], None]) -> None:
        """Run the queries on a background thread until `close()`; `each_round` runs before
        each round (the engine applies what other workers recorded)."""
        if self._thread is not None:
            return

        def loop() -> None:
            # a server away (RetriableError: the Kafka broker restarting) fails every round
            # until it is back: said once, not a traceback every 0.5 s
            away: str | None = None
            while not self._stop.is_set():
                try:
                    each_round()
                    if self.drain(max_rounds=1) == 0:
                        if self.tasks:
                            self.context.log.wait(0.05)
                        else:  # nothing reads the log: an append must not wake this thread
                            self._wake.wait(0.05)
                            self._wake.clear()
                    if away is not None:
                        log.warning("query loop resumed after: %s", away)
                        away = None
                except RetriableError as e:
                    if away is None:
                        log.warning("query loop waits (retrying every 0.5 s): %s", e)
                    away = str(e)
                    time.sleep(0.5)
                except Exception:
                    log.exception("query loop failed; retrying")
                    time.sleep(0.5)

        self._thread = threading.Thread(target=loop, name="hispeed-engine", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the loop and close every task."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        for task in self.tasks.values():
            task.close()
        self.tasks.clear()
