"""The runtime manager: what one engine runs, and the loop that runs it.

`QueryManager` owns the running side of an engine: its query tasks by id (a `QueryTask`, or
on a shared Kafka log a `DistributedTask`), starting, stopping and draining them, the
background thread that runs them, the push-query feeds (`runtime/feeds.py`) and the pull
views (`runtime/pull.py`). It receives the engine's `QueryContext`, never the engine: the
engine is the facade above it and delegates here.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from hispeed.catalog import QueryInfo, Source
from hispeed.errors import HispeedError
from hispeed.plan.model import QueryPlan
from hispeed.runtime.context import QueryContext
from hispeed.runtime.distributed import DistributedTask
from hispeed.runtime.feeds import PushFeeds
from hispeed.runtime.pull import PullViews
from hispeed.runtime.task import QueryTask

log = logging.getLogger(__name__)


class QueryManager:
    """One engine's running queries, push-query feeds and pull views."""

    def __init__(self, context: QueryContext) -> None:
        self.context = context
        #: the running queries by id: persistent ones and transient push queries
        self.tasks: dict[str, QueryTask | DistributedTask] = {}
        #: the shared readers of push queries that filter and project a stream
        self.feeds = PushFeeds(context.log)
        #: the tables' in-memory views and the prepared pull queries
        self.views = PullViews(context)
        self._query_counter = 0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def running(self) -> bool:
        """Whether the background loop (`start`) runs the queries."""
        return self._thread is not None

    def next_query_id(self, base: str) -> str:
        """A new persistent query's id: `base` numbered by how many queries came before."""
        self._query_counter += 1
        if base.startswith("INSERTQUERY"):
            return f"INSERTQUERY_{self._query_counter - 1}"
        return f"{base}_{self._query_counter - 1}"

    def start_query(
        self,
        query_id: str,
        text: str,
        plan: QueryPlan,
        sink: Source,
        props: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a persistent query in the catalog and start its task."""
        catalog, context = self.context.catalog, self.context
        join = plan.join
        sources = [s.source.name for s in join.sides] if join is not None else [plan.source.name]
        catalog.queries[query_id] = QueryInfo(query_id, text, sink.name, sources)
        if context.log.shared:
            # on Kafka, the application's workers share the query (runtime/distributed.py)
            self.tasks[query_id] = DistributedTask(context, query_id, plan, sink, properties=props)
        else:
            self.tasks[query_id] = QueryTask(context, query_id, plan, sink, properties=props)

    def stop_query(self, query_id: str) -> None:
        """Stop a persistent query's task and forget it in the catalog."""
        task = self.tasks.pop(query_id, None)
        if task is not None:
            task.close()
        self.context.catalog.queries.pop(query_id, None)

    def drain(self, max_rounds: int = 1000, timeout: float = 60.0) -> int:
        """Run every query until none has anything left to read; returns records processed.

        On a shared log (Kafka) records arrive from the broker a moment after they are
        written: a query has nothing left only when its consumer has reached the end of every
        partition it reads, so this waits (up to `timeout` s without progress) until then.
        """
        lock, shared = self.context.lock, self.context.log.shared
        total = 0
        rounds = 0
        wait = 0.0
        deadline = time.monotonic() + timeout
        while rounds < max_rounds:
            with lock:
                tasks = list(self.tasks.values())
                done = sum(task.poll(wait) for task in tasks)
            total += done
            rounds += 1
            if done:
                wait = 0.0
                deadline = time.monotonic() + timeout
                continue
            if not shared or max_rounds == 1:
                break
            with lock:
                if all(task.consumer.caught_up() for task in tasks):
                    break
            if time.monotonic() > deadline:
                raise HispeedError(f"queries made no progress for {timeout:.0f} s")
            rounds -= 1  # waiting for records on their way is not a round
            wait = 0.01
        return total

    def start(self, each_round: Callable[[], None]) -> None:
        """Run the queries on a background thread until `close()`; `each_round` runs before
        each round (the engine applies what other workers recorded)."""
        if self._thread is not None:
            return

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    each_round()
                    if self.drain(max_rounds=1) == 0:
                        self.context.log.wait(0.05)
                except Exception:
                    log.exception("query loop failed; retrying")
                    time.sleep(0.5)

        self._thread = threading.Thread(target=loop, name="hispeed-engine", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the loop and close every task."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        for task in self.tasks.values():
            task.close()
        self.tasks.clear()
