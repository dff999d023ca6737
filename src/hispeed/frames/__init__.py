"""The Python stream API: frames and column expressions over the SQL engine's plan.

    >>> from hispeed import col, window
    >>> stats = (engine.frame("clicks").filter(col("status") == 200)
    ...          .group_by("user_id", window=window.tumbling("10s", grace="1s"))
    ...          .agg(n=col("*").count(), slow=col("ms").max()))
    >>> stats.to_table("user_stats", emit="final")

A frame is a SELECT of the statement model, run as the SQL it prints (`frames/frame.py`).
"""

from __future__ import annotations

from hispeed.frames import window
from hispeed.frames.expressions import Expr, col, func, lit
from hispeed.frames.files import read_files
from hispeed.frames.frame import Frame, GroupBy, Host
from hispeed.frames.trigger import Trigger
from hispeed.ops.stateful import Fired, KeyState, Timers

__all__ = [
    "Expr",
    "Fired",
    "Frame",
    "GroupBy",
    "Host",
    "KeyState",
    "Timers",
    "Trigger",
    "col",
    "func",
    "lit",
    "read_files",
    "window",
]
