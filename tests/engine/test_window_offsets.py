"""Window aggregation over TUMBLE, HOP and CUMULATE with an offset, as Flink's: the windows
start at `offset + k * slide` (TUMBLE's slide is its size; CUMULATE's windows at `offset + k *
max size`). Each query's output, across batches with rows out of order and late and a
restart, is checked against DuckDB's computation of Flink's windows from their definitions
(decoded with `json` and `struct`, not hispeed)."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.testing.windows import append_rows, duckdb_rows, jittered_batches

STREAM = (
    "CREATE STREAM s (g STRING KEY, v BIGINT, t BIGINT) WITH "
    "(kafka_topic='s', partitions=1, value_format='JSON', timestamp='t');"
)

#: each function with an offset, and DuckDB's windows of a row at `t` under it: columns
#: `ws` and `we` (size 100 ms; HOP slides 50 ms, CUMULATE steps 25 ms)
CASES = {
    # a negative offset, as Flink allows: -70 ms gives the windows 30 ms gives
    "TUMBLE": (
        "TUMBLE(TABLE s, DESCRIPTOR(t), INTERVAL '100' MILLISECONDS, INTERVAL '-70' MILLISECONDS)",
        "select *, (t - 30) // 100 * 100 + 30 as ws, (t - 30) // 100 * 100 + 130 as we from s",
    ),
    "HOP": (
        "HOP(TABLE s, DESCRIPTOR(t), INTERVAL '50' MILLISECONDS, INTERVAL '100' MILLISECONDS, "
        "INTERVAL '20' MILLISECONDS)",
        """select *, ws + 100 as we from (
             select *, unnest(generate_series((t - 20) // 50 * 50 - 80, (t - 20) // 50 * 50 + 20,
                                              50)) as ws from s)
           where ws <= t and ws + 100 > t""",
    ),
    "CUMULATE": (
        "CUMULATE(TABLE s, DESCRIPTOR(t), INTERVAL '25' MILLISECONDS, "
        "INTERVAL '100' MILLISECONDS, INTERVAL '10' MILLISECONDS)",
        """select * from (
             select *, (t - 10) // 100 * 100 + 10 as ws,
                    unnest(generate_series((t - 10) // 100 * 100 + 35,
                                           (t - 10) // 100 * 100 + 110, 25)) as we from s)
           where we > t""",
    ),
}


def _expected(kind: str, batches: list[list[dict[str, Any]]]) -> list[Any]:
    """DuckDB: each row in its windows that stream time (the newest time read before it) had
    not closed when it was read, summed per window and group; the windows stream time has
    reached the end of."""
    con = duckdb_rows(batches)
    return con.execute(
        f"""
        with w as ({CASES[kind][1]}),
        kept as (
          select * from w
          where coalesce(w.we > (select max(b.t) from s b where b.pos < w.pos), true))
        select g, ws, we, sum(v), count(*) from kept
        where we <= (select max(t) from s)
        group by g, ws, we
        """
    ).fetchall()


@pytest.mark.parametrize("kind", list(CASES))
def test_window_aggregation_with_an_offset_matches_duckdb_across_a_restart(
    tmp_path: Path, kind: str
) -> None:
    batches = jittered_batches(11)
    query = (
        "CREATE TABLE o AS SELECT window_start, window_end, g, SUM(v) AS total, COUNT(*) AS n "
        f"FROM TABLE({CASES[kind][0]}) GROUP BY window_start, window_end, g;"
    )
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(query)
        for rows in batches[:30]:
            append_rows(engine, rows)
        first = engine.log.read_table("O", 0).to_pylist()
    with Engine(tmp_path / "data") as engine:  # the open windows come back from the changelog
        for rows in batches[30:]:
            append_rows(engine, rows)
        table = engine.log.read_table("O", 0).to_pylist()
    got = []
    for r in table:
        value = json.loads(r["value"])
        key = r["key"]
        if kind == "CUMULATE":  # Kafka Streams' session key layout: key, end, start
            end, start = struct.unpack(">qq", key[-16:])
            group = key[:-16]
        else:  # a time window's: key, start
            (start,) = struct.unpack(">q", key[-8:])
            end = value["WINDOW_END"]
            group = key[:-8]
        assert (value["WINDOW_START"], value["WINDOW_END"]) == (start, end)
        got.append((group.decode(), start, end, value["TOTAL"], value["N"]))
    expected = _expected(kind, batches)
    assert len(expected) > 20
    # each window's start is the offset past a multiple of the slide (or max size)
    offset = {"TUMBLE": 30, "HOP": 20, "CUMULATE": 10}[kind]
    assert all((start - offset) % 50 == 0 for _, start, *_ in got)
    assert len(got) == len(set(got))  # written once, when the window closes
    assert sorted(got) == sorted(expected)
    assert 0 < len(first) < len(table)
