"""SQL for tests that check window operators against DuckDB: the rows TUMBLE, HOP and
CUMULATE windows keep under Flink's rules as hispeed maps them (tests/ops/test_window_rank.py,
tests/engine/test_window_join.py)."""

from __future__ import annotations

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


def kept_windows_sql(kind: str, table: str) -> str:
    """DuckDB CTE `kept` over `table` (columns `pos`, the order rows are read in, and `t`):
    each row in each of its windows (`window_rows_sql`) that had not closed when it was read
    (stream time, the newest time read before it, had not reached the window's end)."""
    return f"""
        kept as (
          select * from ({window_rows_sql(kind, table)}) w
          where coalesce(w.we > (select max(b.t) from {table} b where b.pos < w.pos), true))"""
