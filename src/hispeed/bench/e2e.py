"""`hispeed bench e2e`: persistent queries end to end, from the log to committed outputs.

Each case is a user's path: JSON events are appended to a topic first (not timed); then the
case's persistent query is created and `Engine.drain()` runs it from the earliest offset until
it has caught up, every output, state change and input offset committed to the log, as a
server would. The figures per case: events per second of wall clock and per CPU-second of
the process (the machine may be busy: CPU time is the steadier figure), the CPU seconds, and
the peak RSS while the query ran, the state store's own bytes per key (not the RSS) where
the query keeps keyed state, and for the GROUP BY case the first pull query by key against
the table it made (ms). Each case runs in a subprocess of its own, so its memory is
its own. After the run the case reads its outputs back from the sink topic and checks them
against what it computes itself from the generated events (every window present, exactly
once for EMIT FINAL; every count, sum and average): `complete` is false, with a reason,
otherwise.

The events: `DEVICE STRING KEY, READING DOUBLE, AMOUNT BIGINT`, 1,000 devices, 1,000 events
per second of event time, in time order. The GROUP BY case instead spreads its events over
`keys` distinct devices, each twice (2 x keys events); `groupby_keys_spilled` runs it with a
state memory budget far below the state's size, so its state spills to files.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.engine import Engine

Progress = Callable[[str, int], Any] | None

#: event time starts on a whole minute this long before now, so that the topic's retention
#: (7 days, by record time, as Kafka's) never deletes events while a slow run reads them
START_AGE_MS = 3 * 24 * 3_600_000
EVENTS_PER_S = 1_000
DEVICES = 1_000
CHUNK = 100_000
SIZE_MS = 60_000
ADVANCE_MS = 10_000
GAP_MS = 5_000
GRACE_MS = 10_000
REGIONS = 10

EVENTS = (
    "CREATE STREAM events (DEVICE STRING KEY, READING DOUBLE, AMOUNT BIGINT) "
    "WITH (kafka_topic='events', key_format='KAFKA', value_format='JSON', partitions=1);"
)
DEVICES_TABLE = (
    "CREATE TABLE devices (ID STRING PRIMARY KEY, REGION STRING) "
    "WITH (kafka_topic='devices', key_format='KAFKA', value_format='JSON', partitions=1);"
)
_GRACE = f"GRACE PERIOD {GRACE_MS // 1000} SECONDS"
_TUMBLING = f"WINDOW TUMBLING (SIZE {SIZE_MS // 1000} SECONDS, {_GRACE})"
_HOPPING = (
    f"WINDOW HOPPING (SIZE {SIZE_MS // 1000} SECONDS, ADVANCE BY {ADVANCE_MS // 1000} SECONDS, "
    f"{_GRACE})"
)
_SESSION = f"WINDOW SESSION ({GAP_MS // 1000} SECONDS, {_GRACE})"
_WINDOWED = (
    "CREATE TABLE out AS SELECT DEVICE, COUNT(*) AS N, AVG(READING) AS MEAN FROM events {window} "
    "GROUP BY DEVICE EMIT {emit};"
)


@dataclass(frozen=True)
class Case:
    """A bench case: its query, its window (None, or (kind, size, advance)), its emit mode."""

    sql: str
    window: tuple[str, int, int] | None = None
    final: bool = False
    #: the GROUP BY case: events over `keys` devices
    many_keys: bool = False
    join: bool = False
    #: the engine's properties (a state memory budget: the spilled case)
    properties: tuple[tuple[str, Any], ...] = ()


def _windowed(kind: str, clause: str, final: bool) -> Case:
    size, advance = (GAP_MS, 0) if kind == "SESSION" else (SIZE_MS, SIZE_MS)
    if kind == "HOPPING":
        advance = ADVANCE_MS
    emit = "FINAL" if final else "CHANGES"
    return Case(_WINDOWED.format(window=clause, emit=emit), (kind, size, advance), final)


CASES: dict[str, Case] = {
    "tumbling_changes": _windowed("TUMBLING", _TUMBLING, False),
    "tumbling_final": _windowed("TUMBLING", _TUMBLING, True),
    "hopping_changes": _windowed("HOPPING", _HOPPING, False),
    "hopping_final": _windowed("HOPPING", _HOPPING, True),
    "session_changes": _windowed("SESSION", _SESSION, False),
    "session_final": _windowed("SESSION", _SESSION, True),
    "groupby_keys": Case(
        "CREATE TABLE out AS SELECT DEVICE, COUNT(*) AS N, SUM(AMOUNT) AS TOTAL FROM events "
        "GROUP BY DEVICE EMIT CHANGES;",
        many_keys=True,
    ),
    # the same with a state memory budget of 16 MB, far below the state: spilled to files
    "groupby_keys_spilled": Case(
        "CREATE TABLE out AS SELECT DEVICE, COUNT(*) AS N, SUM(AMOUNT) AS TOTAL FROM events "
        "GROUP BY DEVICE EMIT CHANGES;",
        many_keys=True,
        properties=(("state.memory.budget.bytes", 16 << 20),),
    ),
    "stream_table_join": Case(
        "CREATE STREAM out AS SELECT e.DEVICE AS DEVICE, READING, REGION FROM events e "
        "JOIN devices d ON e.DEVICE = d.ID EMIT CHANGES;",
        join=True,
    ),
}


# -- the events ------------------------------------------------------------------------------


@dataclass
class Events:
    """The generated events as columns: device number, reading, amount, timestamp."""

    device: np.ndarray[Any, Any]
    reading: np.ndarray[Any, Any]
    amount: np.ndarray[Any, Any]
    stamp: np.ndarray[Any, Any]


def start_ms() -> int:
    """The first event's time: a whole minute, START_AGE_MS before now."""
    now = time.time_ns() // 1_000_000 - START_AGE_MS
    return now - now % 60_000


def make_events(
    n: int, devices: int, *, spread: bool = False, seed: int = 0, start: int | None = None
) -> Events:
    """n events in time order over `devices` devices; `spread`: each device in turn (every
    device before any repeats), else at random. Sessions need devices that go quiet: a
    device is active for about 20 s of event time (its number follows the event count)."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64)
    if spread:
        device = (ids * 7_919) % devices if math.gcd(7_919, devices) == 1 else ids % devices
    else:
        device = rng.integers(0, devices, n, dtype=np.int64)
    reading = np.round(rng.random(n) * 100, 2)
    amount = rng.integers(1, 1_000, n, dtype=np.int64)
    stamp = (start_ms() if start is None else start) + ids * 1_000 // EVENTS_PER_S
    return Events(device, reading, amount, stamp)


def session_events(n: int, seed: int = 0) -> Events:
    """Devices that come and go: device d sends during about 20 s of event time, so sessions
    open, grow and close all along."""
    events = make_events(n, DEVICES, seed=seed)
    rng = np.random.default_rng(seed + 1)
    ids = np.arange(n, dtype=np.int64)
    events.device = ids // 200 + rng.integers(0, 100, n, dtype=np.int64)
    return events


def device_name(numbers: np.ndarray[Any, Any]) -> list[bytes]:
    """Device numbers as the keys' bytes (the KAFKA format's STRING: UTF-8)."""
    return [b"d%d" % d for d in numbers.tolist()]


def append_events(engine: Engine, events: Events) -> None:
    """Append the events to the `events` topic as JSON, a chunk at a time."""
    n = len(events.stamp)
    for a in range(0, n, CHUNK):
        b = min(a + CHUNK, n)
        values = [
            b'{"READING":%r,"AMOUNT":%d}' % (r, m)
            for r, m in zip(events.reading[a:b].tolist(), events.amount[a:b].tolist(), strict=True)
        ]
        batch = pa.record_batch(
            {
                "key": pa.array(device_name(events.device[a:b]), pa.binary()),
                "value": pa.array(values, pa.binary()),
                "timestamp": pa.array(events.stamp[a:b]),
            }
        )
        engine.log.append("events", batch, partition=0)


def region(numbers: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The region the devices table gives each device."""
    return numbers % REGIONS


# -- running a case --------------------------------------------------------------------------


def _rss_reset() -> bool:
    """Reset the kernel's peak RSS of this process (Linux: /proc/self/clear_refs, 5)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _status_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _peak_rss_mb() -> float:
    kb = _status_kb("VmHWM")
    if kb is None:
        import resource

        kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(kb / 1024, 1)


def run_case(name: str, events_n: int, keys: int, directory: str | None) -> dict[str, Any]:
    """Run one case in this process: append, then the query until caught up; its figures."""
    case = CASES[name]
    root = tempfile.mkdtemp(prefix=f"hispeed-bench-e2e-{name}-", dir=directory)
    try:
        with Engine(Path(root) / "data", properties=dict(case.properties)) as engine:
            engine.execute(EVENTS)
            if case.many_keys:
                events = make_events(2 * keys, keys, spread=True)
            elif case.window is not None and case.window[0] == "SESSION":
                events = session_events(events_n)
            else:
                events = make_events(events_n, DEVICES)
            n = len(events.stamp)
            first = int(events.stamp[0])
            if case.join:
                engine.execute(DEVICES_TABLE)
                numbers = np.arange(DEVICES, dtype=np.int64)
                rows = [
                    {"key": k, "value": b'{"REGION":"r%d"}' % r, "timestamp": first - 1}
                    for k, r in zip(device_name(numbers), region(numbers).tolist(), strict=True)
                ]
                engine.log.append("devices", rows, partition=0)
            append_events(engine, events)
            rss_before = (_status_kb("VmRSS") or 0) / 1024
            reset = _rss_reset()
            (result,) = engine.execute(case.sql)
            task = engine.tasks[str(result.query_id)]
            wall0, cpu0 = time.perf_counter(), time.process_time()
            drains = 0
            processed = 0
            while True:
                processed += engine.drain()
                drains += 1
                if task.consumer.caught_up() and task.id not in engine.runtime.failed:
                    break
                if task.id in engine.runtime.failed:
                    raise RuntimeError(engine.runtime.failed[task.id].message)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            peak = _peak_rss_mb() if reset else None
            state = _state_figures(task)
            if case.many_keys:
                state |= _first_pull(engine, events)
            complete, why, outputs = check(engine, case, events)
            inputs = n + (DEVICES if case.join else 0)  # the join reads the table too
            if processed != inputs:
                complete, why = False, f"the query read {processed} of {inputs} records"
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "events": n,
        "processed": processed,
        "events_per_s": round(n / wall),
        "events_per_cpu_s": round(n / cpu) if cpu > 0 else None,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mb": peak,
        "rss_before_mb": round(rss_before, 1),
        "drain_calls": drains,
        **state,
        "outputs": outputs,
        "complete": complete,
        "why": why,
    }


def _state_figures(task: Any) -> dict[str, Any]:
    """The keyed state store's own size (`KeyedStateStore.nbytes`: keys, hashes, hash table
    and states in use; `capacity`: what its arrays have reserved), per key; not the process's
    RSS. Empty for a query whose state is kept otherwise."""
    store = getattr(getattr(task, "aggregator", None), "store", None)
    if store is None or not hasattr(store, "nbytes") or not len(store):
        return {}
    keys = len(store)
    return {
        "state_keys": keys,
        "state_bytes_per_key": round(store.nbytes() / keys, 1),
        "state_reserved_bytes_per_key": round(store.capacity() / keys, 1),
        "state_spilled": store.spilled,
    }


def _first_pull(engine: Engine, events: Events) -> dict[str, Any]:
    """The first pull query by key against the table (ms), and a second one, each checked."""
    device = int(events.device[len(events.device) // 2])
    want = int((events.device == device).sum())
    out: dict[str, Any] = {}
    for name in ("first_pull_ms", "second_pull_ms"):
        t0 = time.perf_counter()
        rows = engine.query(f"SELECT DEVICE, N FROM out WHERE DEVICE = 'd{device}';")
        out[name] = round((time.perf_counter() - t0) * 1000, 2)
        if rows != [{"DEVICE": f"d{device}", "N": want}]:
            raise RuntimeError(f"pull query: {rows}, expected N = {want}")
    return out


# -- checking the outputs --------------------------------------------------------------------


def _outputs(engine: Engine) -> pa.Table:
    return engine.log.read_table("OUT", 0)


Window = tuple[bytes, int, int]


def _expected_windows(case: Case, events: Events) -> dict[Window, tuple[int, float]]:
    """(device key, window start, window end) -> (count, mean): every window of the events,
    computed here without the engine."""
    assert case.window is not None
    kind, size, advance = case.window
    device, stamp, reading = events.device, events.stamp, events.reading
    found: dict[Window, tuple[int, float]] = {}
    if kind == "SESSION":
        order = np.lexsort((stamp, device))
        d, t, r = device[order], stamp[order], reading[order]
        new = np.r_[True, (d[1:] != d[:-1]) | (t[1:] - t[:-1] > size)]
        starts = np.flatnonzero(new)
        ends = np.r_[starts[1:], len(d)]
        names = device_name(d[starts])
        for key, a, b in zip(names, starts.tolist(), ends.tolist(), strict=True):
            found[(key, int(t[a]), int(t[b - 1]))] = (b - a, float(np.mean(r[a:b])))
        return found
    first = stamp // advance * advance
    parts_d, parts_s, parts_r = [], [], []
    for k in range(size // advance):
        parts_d.append(device)
        parts_s.append(first - k * advance)
        parts_r.append(reading)
    d = np.concatenate(parts_d)
    s = np.concatenate(parts_s)
    r = np.concatenate(parts_r)
    order = np.lexsort((s, d))
    d, s, r = d[order], s[order], r[order]
    new = np.r_[True, (d[1:] != d[:-1]) | (s[1:] != s[:-1])]
    starts = np.flatnonzero(new)
    counts = np.diff(np.r_[starts, len(d)])
    sums = np.add.reduceat(r, starts)
    for key, start, c, total in zip(
        device_name(d[starts]), s[starts].tolist(), counts.tolist(), sums.tolist(), strict=True
    ):
        found[(key, start, start + size)] = (c, total / c)
    return found


def check(engine: Engine, case: Case, events: Events) -> tuple[bool, str | None, int]:
    """Whether the sink holds what the case's query must output; why not; how many records."""
    table = _outputs(engine)
    n = table.num_rows
    keys = table.column("key").to_pylist()
    values = [None if v is None else json.loads(v) for v in table.column("value").to_pylist()]
    if case.join:
        return (*_check_join(keys, values, events), n)
    if case.window is None:
        return (*_check_groupby(keys, values, events), n)
    expected = _expected_windows(case, events)
    session = case.window[0] == "SESSION"
    latest: dict[tuple[bytes, int, int], Any] = {}
    seen: dict[tuple[bytes, int, int], int] = {}
    for key, value in zip(keys, values, strict=True):
        if session:  # the key, then the window's end and start (Kafka Streams' session key)
            wkey = (
                key[:-16],
                int.from_bytes(key[-8:], "big"),
                int.from_bytes(key[-16:-8], "big"),
            )
        else:  # the key, then the window's start
            start = int.from_bytes(key[-8:], "big")
            wkey = (key[:-8], start, start + case.window[1])
        latest[wkey] = value
        seen[wkey] = seen.get(wkey, 0) + 1
    live = {k: v for k, v in latest.items() if v is not None}
    if case.final:
        now = int(events.stamp.max())
        twice = [k for k, c in seen.items() if c > 1]
        if twice:
            return False, f"{len(twice)} windows emitted more than once, e.g. {twice[0]}", n
        if any(v is None for v in latest.values()):
            return False, "EMIT FINAL output a tombstone", n
        # a time window closes at its end + grace; a session at its end + grace + gap, as
        # Kafka Streams' session aggregation and its suppression close them
        close = GRACE_MS + (GAP_MS if session else 0)
        expected = {k: v for k, v in expected.items() if k[2] + close <= now}
    return (*_compare(live, expected), n)


def _compare(
    live: dict[Any, Any], expected: dict[Any, tuple[int, float]]
) -> tuple[bool, str | None]:
    missing = [k for k in expected if k not in live]
    if missing:
        return False, f"{len(missing)} of {len(expected)} windows missing, e.g. {missing[0]}"
    extra = [k for k in live if k not in expected]
    if extra:
        return False, f"{len(extra)} windows not expected, e.g. {extra[0]}"
    for k, (count, mean) in expected.items():
        got = live[k]
        if got["N"] != count or not math.isclose(got["MEAN"], mean, rel_tol=1e-9):
            return False, f"window {k}: got {got}, expected N={count} MEAN={mean}"
    return True, None


def _check_groupby(keys: list[bytes], values: list[Any], events: Events) -> tuple[bool, str | None]:
    latest = dict(zip(keys, values, strict=True))
    order = np.argsort(events.device, kind="stable")
    d = events.device[order]
    starts = np.flatnonzero(np.r_[True, d[1:] != d[:-1]])
    counts = np.diff(np.r_[starts, len(d)])
    totals = np.add.reduceat(events.amount[order], starts)
    names = device_name(d[starts])
    if len(latest) != len(names):
        return False, f"{len(latest)} keys output, {len(names)} expected"
    for key, count, total in zip(names, counts.tolist(), totals.tolist(), strict=True):
        got = latest.get(key)
        if got is None or got["N"] != count or got["TOTAL"] != total:
            return False, f"key {key!r}: got {got}, expected N={count} TOTAL={total}"
    return True, None


def _check_join(keys: list[bytes], values: list[Any], events: Events) -> tuple[bool, str | None]:
    if len(values) != len(events.stamp):
        return False, f"{len(values)} rows output, {len(events.stamp)} expected"
    names = device_name(events.device)
    regions = region(events.device).tolist()
    for k, v, name, r in zip(keys, values, names, regions, strict=True):
        if k != name or v is None or v["REGION"] != f"r{r}":
            return False, f"row {k!r} {v}: expected {name!r} in region r{r}"
    return True, None


# -- the command -----------------------------------------------------------------------------


def run(
    events: int = 1_000_000,
    keys: int = 1_000_000,
    cases: list[str] | None = None,
    directory: str | None = None,
    progress: Progress = None,
) -> dict[str, Any]:
    """Each case's figures (see the module docstring), each case in a subprocess."""
    names = cases or list(CASES)
    unknown = [c for c in names if c not in CASES]
    if unknown:
        raise ValueError(f"unknown case {unknown[0]!r}; the cases are: {', '.join(CASES)}")
    results: dict[str, Any] = {}
    for i, name in enumerate(names):
        if progress:
            progress(name, i)
        argv = [sys.executable, "-m", "hispeed.bench.e2e", name, str(events), str(keys)]
        if directory:
            argv.append(directory)
        done = subprocess.run(argv, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
            results[name] = {"error": tail[0]}
            continue
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def main(argv: list[str]) -> None:
    """The subprocess of one case: `python -m hispeed.bench.e2e CASE EVENTS KEYS [DIR]`."""
    name, events, keys = argv[0], int(argv[1]), int(argv[2])
    directory = argv[3] if len(argv) > 3 else None
    print(json.dumps(run_case(name, events, keys, directory)))


if __name__ == "__main__":
    main(sys.argv[1:])
