"""Micro-batch triggers, as Spark Structured Streaming's: when a persistent query runs a batch.

A query runs continuously by default: each round of the engine's loop processes what its
sources hold, in batches of the adaptive poll size. A trigger, named in the sink's WITH clause
(`TRIGGER`, and `TRIGGER_INTERVAL` for `PROCESSING_TIME`), runs it in micro-batches instead:

- `PROCESSING_TIME` with `TRIGGER_INTERVAL='5s'`: every interval, one batch of everything that
  arrived since the last (none when nothing did); a batch that takes longer than the interval
  is followed by the next at once, as Spark's ProcessingTimeExecutor does.
- `AVAILABLE_NOW`: what the sources hold when the query starts, in batches of at most
  `query.max.poll.records`, then the query stops reading.
- `ONCE`: what the sources hold when the query starts, in one batch, then it stops reading.
- `CONTINUOUS`: the default.

A query whose `ONCE` or `AVAILABLE_NOW` batches are done is FINISHED in SHOW QUERIES (and the
REST API, the dashboard, the metrics) rather than RUNNING. A trigger is the WITH clause's of
CREATE ... AS SELECT and of INSERT INTO alike.

A batch is one poll of the task, committed in one transaction with its outputs and state
(exactly once, as every query). EMIT CHANGES coalesces a batch's changes to one row per key,
so a trigger's batch outputs each changed row once: Spark's update mode. A query that
stopped after `ONCE` or `AVAILABLE_NOW` reads what arrived since when it starts again (at a
restart), as a Spark query restarted from its checkpoint does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hispeed.errors import HispeedError
from hispeed.log import TopicPartition
from hispeed.runtime.task import QueryTask

#: the WITH properties that name a query's trigger
TRIGGER_PROPERTY = "TRIGGER"
INTERVAL_PROPERTY = "TRIGGER_INTERVAL"
KINDS = ("CONTINUOUS", "PROCESSING_TIME", "AVAILABLE_NOW", "ONCE")
#: the state SHOW QUERIES gives a query whose ONCE or AVAILABLE_NOW trigger has processed
#: everything its sources held at its start (Spark's query that is no longer active)
FINISHED = "FINISHED"
_UNITS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000}


@dataclass(frozen=True)
class TriggerSpec:
    """A query's trigger: its kind, and for PROCESSING_TIME its interval in milliseconds."""

    kind: str = "CONTINUOUS"
    interval_ms: int = 0


def _interval(text: str) -> int:
    """'5s', '500ms', '1m', '2h' (or a number of milliseconds) in milliseconds, above 0."""
    raw = text.strip().lower()
    number = raw.rstrip("smh")
    unit = raw[len(number) :] or "ms"
    if not number.isdigit() or unit not in _UNITS or int(number) <= 0:
        raise HispeedError(
            f"{INTERVAL_PROPERTY} is a duration above 0 like '500ms', '5s', '1m' or '2h', "
            f"not {text!r}"
        )
    return int(number) * _UNITS[unit]


def trigger_of(props: Mapping[str, Any]) -> TriggerSpec:
    """The trigger a sink's WITH clause names (CONTINUOUS without one); an error says what
    is wrong with TRIGGER or TRIGGER_INTERVAL."""
    kind = str(props.get(TRIGGER_PROPERTY, "CONTINUOUS")).strip().upper()
    if kind not in KINDS:
        raise HispeedError(f"{TRIGGER_PROPERTY} is one of {', '.join(KINDS)}, not {kind!r}")
    interval = props.get(INTERVAL_PROPERTY)
    if kind == "PROCESSING_TIME":
        if interval is None:
            raise HispeedError(
                f"{TRIGGER_PROPERTY}='PROCESSING_TIME' needs {INTERVAL_PROPERTY}, like '5s'"
            )
        return TriggerSpec(kind, _interval(str(interval)))
    if interval is not None:
        raise HispeedError(f"{INTERVAL_PROPERTY} goes with {TRIGGER_PROPERTY}='PROCESSING_TIME'")
    return TriggerSpec(kind)


class TriggeredTask(QueryTask):
    """A query task that runs its batches when its trigger says (see the module's doc)."""

    def __init__(self, *args: Any, trigger: TriggerSpec, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trigger = trigger
        #: the clock processing-time triggers read (seconds; tests give a controllable one)
        self.clock: Callable[[], float] = time.monotonic
        #: PROCESSING_TIME: when the next batch is due (None: at the first poll)
        self.next_at: float | None = None
        #: AVAILABLE_NOW and ONCE: the end offsets the query reads up to, fixed at its start
        self.targets: dict[TopicPartition, int] | None = None
        #: AVAILABLE_NOW and ONCE: everything up to the targets is processed; nothing more
        self.finished = False
        #: the batches this task has run (one per trigger that found records)
        self.batches = 0

    def _backlog(self, targets: Mapping[TopicPartition, int]) -> int:
        """Records between each partition's position and its target."""
        return sum(max(0, end - self.consumer.position(tp)) for tp, end in targets.items())

    def _ends(self) -> dict[TopicPartition, int]:
        return {
            tp: self.log.offsets(tp.topic, tp.partition)[1] for tp in self.consumer.assignment()
        }

    def _batch(self, timeout: float, size: int) -> int:
        done = super().poll(timeout, max_records=size)
        if done:
            self.batches += 1
        return done

    def poll(self, timeout: float = 0.0, max_records: int | None = None) -> int:
        """Run a batch if the trigger is due; returns the records read (0 when not due)."""
        kind = self.trigger.kind
        if kind == "CONTINUOUS":
            return super().poll(timeout, max_records)
        if self.finished:
            return 0
        if kind == "PROCESSING_TIME":
            now = self.clock()
            if self.next_at is not None and now < self.next_at:
                return 0
            interval = self.trigger.interval_ms / 1000
            # the next batch is due a whole interval after this one was; one that ran late
            # (a slow batch, a busy machine) is followed by the next at once, never by two
            self.next_at = now + interval if self.next_at is None else self.next_at + interval
            if self.next_at <= now:
                self.next_at = now + interval
            backlog = self._backlog(self._ends())
            return self._batch(0.0, backlog) if backlog else 0
        if self.targets is None:
            self.targets = self._ends()
        backlog = self._backlog(self.targets)
        if backlog == 0 and not (self.queues is not None and self.queues.firsts()):
            self.finished = True
            return 0
        size = backlog if kind == "ONCE" else min(backlog, self.max_poll_records)
        done = self._batch(timeout, max(size, 1))
        if kind == "ONCE" or self._backlog(self.targets) == 0:
            self.finished = True
        return done
