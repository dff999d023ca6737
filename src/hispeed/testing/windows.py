"""SQL for tests that check window operators against DuckDB: the rows a TUMBLE window keeps
under Flink's rules as hispeed maps them (tests/ops/test_window_rank.py,
tests/engine/test_window_join.py)."""

from __future__ import annotations


def kept_rows_sql(table: str, size_ms: int) -> str:
    """DuckDB CTEs `timed` and `kept` over `table` (columns `pos`, the order rows are read in,
    and `t`, their time): each row's TUMBLE window start `ws`, and the rows that are not late.
    A row is late when stream time (the newest time read before it) had reached its window's
    end. Written apart from the operators, from the rule alone."""
    return f"""
        timed as (
          select *, t // {size_ms} * {size_ms} as ws,
                 max(t) over (order by pos rows between unbounded preceding and 1 preceding)
                   as before
          from {table}),
        kept as (select * from timed where before is null or ws + {size_ms} > before)"""
