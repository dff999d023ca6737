"""SQL for tests that check window operators against DuckDB: the rows TUMBLE, HOP and
CUMULATE windows keep under Flink's rules as hispeed maps them (tests/ops/test_window_rank.py,
tests/engine/test_window_join.py)."""

from __future__ import annotations

import json
import random
from typing import Any, Protocol

import duckdb


class _Log(Protocol):
    def append(self, topic: str, records: list[tuple[bytes, bytes]]) -> Any: ...


class _Engine(Protocol):
    @property
    def log(self) -> _Log: ...

    def drain(self) -> Any: ...


def jittered_batches(seed: int) -> list[list[dict[str, Any]]]:
    """Batches of rows of stream `s` (`G` key, `V`, `T` time), times mostly rising, some up
    to 150 ms early (out of order, and some late for their first windows or all of them)."""
    rng = random.Random(seed)
    batches = []
    clock = 1000
    for _ in range(60):
        rows = []
        for _ in range(rng.randrange(1, 5)):
            clock += rng.randrange(12)
            back = rng.randrange(150) if rng.random() < 0.2 else 0
            rows.append({"G": f"k{rng.randrange(3)}", "V": rng.randrange(1000), "T": clock - back})
        batches.append(rows)
    return batches


def session_bursts(seed: int, count: int) -> list[dict[str, Any]]:
    """About `count` rows (`G` key, `V`, `T` time) in the order they are read, for SESSION
    checks: each key's rows come in bursts (under 5 ms apart; a key's bursts 30 ms or more
    apart, so no row falls less than the gap of 10 ms from a session closed before it), the
    keys' bursts interleaved, each row read up to 3 ms early (out of order, never late),
    and now and then a row 200 ms or more behind (late)."""
    rng = random.Random(seed)
    rows: list[tuple[int, dict[str, Any]]] = []
    last = {f"k{i}": -1000 for i in range(4)}
    clock = 1000
    while len(rows) < count:
        clock += rng.randrange(1, 8)
        key = rng.choice([k for k in last if clock - last[k] >= 30] or [None])
        if key is None:
            continue
        t = clock
        for _ in range(rng.randrange(1, 4)):
            rows.append((t + rng.randrange(4), {"G": key, "V": rng.randrange(1000), "T": t}))
            last[key] = t
            t += rng.randrange(1, 5)
        if rng.random() < 0.1:
            late = {"G": key, "V": rng.randrange(1000), "T": clock - 200 - rng.randrange(200)}
            rows.append((clock, late))
    return [r for _, r in sorted(rows, key=lambda a: a[0])]


def append_rows(engine: _Engine, rows: list[dict[str, Any]]) -> None:
    """Write rows to topic `s` as JSON keyed by `G`, and let the queries read them."""
    engine.log.append("s", [(r["G"].encode(), json.dumps(r).encode()) for r in rows])
    engine.drain()


def duckdb_rows(batches: list[list[dict[str, Any]]]) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection of its own with table `s` (`pos`, the order rows are read in,
    `g`, `v`, `t`) holding the batches' rows."""
    con = duckdb.connect()
    con.execute("create table s (pos int, g varchar, v bigint, t bigint)")
    rows = [r for part in batches for r in part]
    con.executemany(
        "insert into s values (?, ?, ?, ?)",
        [(i, r["G"], r["V"], r["T"]) for i, r in enumerate(rows)],
    )
    return con


#: the window table functions the DuckDB checks run (size 100 ms; HOP slides 50 ms,
#: CUMULATE steps 25 ms), as a query over stream `s` writes them
TVF_CALLS = {
    "TUMBLE": "TUMBLE(TABLE {s}, DESCRIPTOR(t), INTERVAL '100' MILLISECONDS)",
    "HOP": "HOP(TABLE {s}, DESCRIPTOR(t), INTERVAL '50' MILLISECONDS, INTERVAL '100' MILLISECONDS)",
    "CUMULATE": "CUMULATE(TABLE {s}, DESCRIPTOR(t), INTERVAL '25' MILLISECONDS, "
    "INTERVAL '100' MILLISECONDS)",
}


def window_rows_sql(kind: str, table: str) -> str:
    """DuckDB: each row of `table` (column `t`, its time) once per window of `TVF_CALLS[kind]`
    that holds it, with the window's start `ws` and end `we`, from Flink's definitions alone:
    TUMBLE's one window; HOP's windows every 50 ms; CUMULATE's ends every 25 ms of the 100 ms
    window holding the row, from the first after the row."""
    if kind == "TUMBLE":
        return f"select *, t // 100 * 100 as ws, t // 100 * 100 + 100 as we from {table}"
    if kind == "HOP":
        return f"""select *, ws + 100 as we from (
              select *, unnest(generate_series(t // 50 * 50 - 100, t // 50 * 50, 50)) as ws
              from {table})
            where ws <= t and ws + 100 > t"""
    return f"""select * from (
          select *, t // 100 * 100 as ws,
                 unnest(generate_series(t // 100 * 100 + 25, t // 100 * 100 + 100, 25)) as we
          from {table})
        where we > t"""


def kept_windows_sql(kind: str, table: str, partition: str | None = None) -> str:
    """DuckDB CTE `kept` over `table` (columns `pos`, the order rows are read in, and `t`):
    each row in each of its windows (`window_rows_sql`) that had not closed when it was read:
    the watermark then, the least over the input's partitions (`partition`: the column naming
    a row's; None: one partition) of the newest time each had read before the row, had not
    reached the window's end (a partition that had read nothing holds it back)."""
    own = f"b.{partition}" if partition else "0"
    parts = f"select distinct {partition} as part from {table}" if partition else "select 0 as part"
    return f"""
        kept as (
          select * from ({window_rows_sql(kind, table)}) w
          where w.we > (
            select min(coalesce((select max(b.t) from {table} b
                                 where b.pos < w.pos and {own} = p.part), -1))
            from ({parts}) p))"""


def watermark_sql(table: str, partition: str | None = None) -> str:
    """DuckDB: the watermark once all of `table` is read: the least over its partitions
    (`partition`, as for `kept_windows_sql`) of their newest times."""
    group = f" group by {partition}" if partition else ""
    return f"(select min(m) from (select max(t) as m from {table}{group}))"
