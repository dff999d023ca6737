"""Functions for `.process` tests (a persistent query loads them by module reference, in
this process and in the kill -9 test's child)."""

from __future__ import annotations

from typing import Any

from hispeed.frames import KeyState, Timers

#: a session closes this long after its key's last record (event time, ms)
GAP = 10_000


def running_count(
    key: Any, records: list[dict[str, Any]], state: KeyState, timers: Timers
) -> list[dict[str, Any]]:
    """A record per input: the key's count and sum so far (as COUNT(*) and SUM(v) would)."""
    n, total = state.get("n", 0), state.get("total", 0)
    out = []
    for r in records:
        n += 1
        total += r["V"]
        out.append({"N": n, "TOTAL": total, "ROWTIME": r["ROWTIME"]})
    state.put("n", n)
    state.put("total", total)
    return out


def sessions(
    key: Any, records: list[dict[str, Any]], state: KeyState, timers: Timers
) -> list[dict[str, Any]]:
    """A key's records until GAP of event time without one, written when the gap passes
    (a pause among the records of one call closes the session there too)."""
    out = []
    last = state.get("last")
    if timers.fired:
        (fired,) = timers.fired
        if last is not None and fired.time == last + GAP:
            out.append({"N": state.get("n"), "TOTAL": state.get("total"), "ROWTIME": fired.time})
            for name in ("n", "total", "last"):
                state.delete(name)
        return out
    if last is not None:
        timers.cancel_event_time(last + GAP)
    n, total = state.get("n", 0), state.get("total", 0)
    for r in sorted(records, key=lambda r: r["ROWTIME"]):
        if last is not None and r["ROWTIME"] > last + GAP:
            out.append({"N": n, "TOTAL": total, "ROWTIME": last + GAP})
            n, total = 0, 0
        n, total, last = n + 1, total + r["V"], r["ROWTIME"]
    state.put("n", n)
    state.put("total", total)
    state.put("last", last)
    timers.event_time(last + GAP)
    return out


def fails_on_bad(
    key: Any, records: list[dict[str, Any]], state: KeyState, timers: Timers
) -> list[dict[str, Any]]:
    """As running_count, but a key of "bad" raises."""
    if key == "bad":
        state.put("n", -1000)
        raise ValueError("bad key")
    return running_count(key, records, state, timers)


def wrong_type(
    key: Any, records: list[dict[str, Any]], state: KeyState, timers: Timers
) -> list[dict[str, Any]]:
    """Returns a string where N is a BIGINT for the key "odd"."""
    return [{"N": "x" if key == "odd" else 1, "TOTAL": 0} for _ in records]


def lacks_total(
    key: Any, records: list[dict[str, Any]], state: KeyState, timers: Timers
) -> list[dict[str, Any]]:
    """Returns no TOTAL for the key "short"."""
    return [{"N": 1} if key == "short" else {"N": 1, "TOTAL": 0} for _ in records]


def ping_later(
    key: Any, records: list[dict[str, Any]], state: KeyState, timers: Timers
) -> list[dict[str, Any]]:
    """A processing-time timer 50 ms after each key's first batch; it writes a record."""
    if timers.fired:
        return [{"N": -1, "TOTAL": 0}]
    timers.processing_time(timers.now + 50)
    return []
