"""Spark Structured Streaming's triggers and output modes for `Frame.to_table`/`to_stream`.

    >>> stats.to_table("user_stats", trigger=Trigger.processing_time("5s"), output_mode="update")

A trigger says when the query runs a batch (runtime/trigger.py runs it); it is kept in the
statement as the sink's `TRIGGER` (and `TRIGGER_INTERVAL`) properties, so SQL says the same and
a restart runs the query with it again. An output mode is one of hispeed's emit modes:

- `append`: each window's row once, final, when stream time passes its end plus grace: EMIT
  FINAL (a windowed aggregation only, as Spark's append needs a watermark), with a retention
  that outputs every window however far stream time jumps past it, as Spark does.
- `update`: the rows that changed, once per batch: EMIT CHANGES.
- `complete`: the whole result table after each batch: EMIT CHANGES into a table that keeps
  every window (its grace made unbounded, as Spark keeps all state in complete mode and the
  watermark drops nothing); the table (a pull query, `collect()`) is the whole result.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from hispeed.errors import HispeedError
from hispeed.frames.window import Duration, millis
from hispeed.sql import ast

OUTPUT_MODES = ("append", "update", "complete")
#: complete mode's grace: 100 years, so that no window ever closes
KEEP_ALL_MS = 36_500 * 86_400_000


@dataclasses.dataclass(frozen=True)
class Trigger:
    """When a persistent query runs a batch: `Trigger.processing_time("5s")`,
    `Trigger.available_now()`, `Trigger.once()`, or `Trigger.continuous()` (the default)."""

    kind: str = "CONTINUOUS"
    interval_ms: int | None = None

    @classmethod
    def processing_time(cls, interval: Duration) -> Trigger:
        """Every `interval` ('5s', '500ms', ms or a timedelta), one batch of what arrived."""
        ms = millis(interval)
        if ms <= 0:
            raise HispeedError(f"a processing-time trigger's interval is above 0, not {interval!r}")
        return cls("PROCESSING_TIME", ms)

    @classmethod
    def available_now(cls) -> Trigger:
        """What the sources hold now, in batches of the poll size, then stop."""
        return cls("AVAILABLE_NOW")

    @classmethod
    def once(cls) -> Trigger:
        """What the sources hold now, in one batch, then stop."""
        return cls("ONCE")

    @classmethod
    def continuous(cls) -> Trigger:
        """Process records as they arrive (hispeed's default)."""
        return cls("CONTINUOUS")

    def properties(self) -> dict[str, Any]:
        """The sink's WITH properties that say this trigger."""
        if self.kind == "CONTINUOUS":
            return {}
        if self.interval_ms is None:
            return {"trigger": self.kind}
        return {"trigger": self.kind, "trigger_interval": f"{self.interval_ms}ms"}


def with_trigger(options: Mapping[str, Any], trigger: Trigger | None) -> dict[str, Any]:
    """`options` with the trigger's properties added."""
    if trigger is None:
        return dict(options)
    if not isinstance(trigger, Trigger):
        raise HispeedError(f"trigger= is a Trigger (Trigger.once(), ...), not {trigger!r}")
    return {**options, **trigger.properties()}


def emit_of(output_mode: str, window: ast.WindowSpec | None) -> tuple[str, ast.WindowSpec | None]:
    """The emit mode ("FINAL" or "CHANGES") and the window an output mode runs with."""
    mode = str(output_mode).lower()
    if mode not in OUTPUT_MODES:
        raise HispeedError(f"output_mode= is one of {', '.join(OUTPUT_MODES)}, not {output_mode!r}")
    if mode == "update":
        return "CHANGES", window
    if window is None:
        # Spark refuses append without a watermark and complete without an aggregation; a
        # windowed aggregation is what has both here
        raise HispeedError(
            f"output_mode={mode!r} needs a windowed aggregation: "
            "group_by(..., window=window.tumbling(...)).agg(...)"
        )
    if mode == "append":
        # Spark outputs every window the watermark passes; ksqlDB's EMIT FINAL loses a window
        # its store no longer retains by then (a jump in stream time beyond size + grace:
        # ops/window.py, final_retained_from). A retention as long as complete mode's grace
        # keeps them: a window leaves the store when it is output final anyway.
        if window.retention_ms is None:
            window = dataclasses.replace(window, retention_ms=KEEP_ALL_MS)
        return "FINAL", window
    # complete: no window is ever closed, so a record however late still counts
    return "CHANGES", dataclasses.replace(window, grace_ms=KEEP_ALL_MS)
