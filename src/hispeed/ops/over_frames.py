"""An aggregate over a window frame, one row at a time (plan/over_frames.py plans it; ops/lag.py
runs it with the LAG calls of the same OVER clause).

Each partition keeps, for each call, what its next row's frame needs: the values of the last
n rows for `ROWS BETWEEN n PRECEDING AND CURRENT ROW`, the (time, value) pairs within the
interval for `RANGE BETWEEN INTERVAL ... PRECEDING AND CURRENT ROW` (older pairs are dropped
as each row arrives: rows come in event-time order, a late one is dropped before it gets
here), and running totals for UNBOUNDED PRECEDING. A row's result covers its frame's rows
and itself; nulls are left out of AVG, SUM, MIN, MAX and COUNT(x), as SQL's aggregates do.
"""

from __future__ import annotations

from typing import Any

from hispeed.plan.model import LagCall


def initial(call: LagCall) -> Any:
    """A partition's state for `call` before its first row."""
    if call.frame is None or call.frame[1] is None:
        return (0, None, None, None)  # non-null count, sum, min, max
    return []


def step(call: LagCall, state: Any, value: Any, ts: int) -> tuple[Any, Any]:
    """The result for a row of `value` at time `ts` and the partition's state after it."""
    function = call.function
    if call.frame is None or call.frame[1] is None:
        count, total, low, high = state
        if value is not None:
            count += 1
            total = value if total is None else total + value
            low = value if low is None or value < low else low
            high = value if high is None or value > high else high
        state = (count, total, low, high)
        return _running(function, state), state
    kind, size = call.frame
    assert size is not None
    if kind == "ROWS":
        values = [*state, value]
        kept = values[-size:] if size else []
        return aggregate(function, values), kept
    start = ts - size
    pairs = [p for p in state if p[0] >= start]
    pairs.append((ts, value))
    return aggregate(function, [v for _, v in pairs]), pairs


def _running(function: str, state: tuple[int, Any, Any, Any]) -> Any:
    count, total, low, high = state
    if function == "COUNT":
        return count
    if function == "AVG":
        return None if count == 0 else float(total) / count
    return {"SUM": total, "MIN": low, "MAX": high}[function]


def aggregate(function: str, values: list[Any]) -> Any:
    """`function` over a frame's values (nulls left out)."""
    present = [v for v in values if v is not None]
    if function == "COUNT":
        return len(present)
    if not present:
        return None
    if function == "AVG":
        return float(sum(present)) / len(present)
    if function == "SUM":
        return sum(present)
    return min(present) if function == "MIN" else max(present)
