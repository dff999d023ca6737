"""Flink's CUMULATE window aggregation: windows start at each multiple of the max size and
end every step up to it; a row counts in each window of its max-size span that ends after
it, unless stream time had reached that window's end when it was read (late: dropped there);
one row per window and group, written once when stream time reaches the window's end.
Checked against DuckDB's computation of those rules over the same rows (out of order and
late ones among them), decoded with `json` and `struct`, across batches and a restart."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.testing.windows import (
    TVF_CALLS,
    append_rows,
    duckdb_rows,
    jittered_batches,
    kept_windows_sql,
)

STREAM = (
    "CREATE STREAM s (g STRING KEY, v BIGINT, t BIGINT) WITH "
    "(kafka_topic='s', partitions=1, value_format='JSON', timestamp='t');"
)
QUERY = (
    "CREATE TABLE c AS SELECT window_start, window_end, g, SUM(v) AS total, COUNT(*) AS n "
    f"FROM TABLE({TVF_CALLS['CUMULATE'].format(s='s')}) GROUP BY window_start, window_end, g;"
)


def _expected(batches: list[list[dict[str, Any]]]) -> list[Any]:
    """DuckDB: each row in its CUMULATE windows still open when it was read, summed per
    window and group; the windows stream time (the newest time read) has reached."""
    con = duckdb_rows(batches)
    return con.execute(
        f"""
        with {kept_windows_sql("CUMULATE", "s")}
        select g, ws, we, sum(v), count(*) from kept
        where we <= (select max(t) from s)
        group by g, ws, we
        """
    ).fetchall()


def test_cumulate_window_aggregation_matches_duckdb_across_a_restart(tmp_path: Path) -> None:
    batches = jittered_batches(5)
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(QUERY)
        for rows in batches[:30]:
            append_rows(engine, rows)
        first = engine.log.read_table("C", 0).to_pylist()
    with Engine(tmp_path / "data") as engine:  # the open windows come back from the changelog
        for rows in batches[30:]:
            append_rows(engine, rows)
        table = engine.log.read_table("C", 0).to_pylist()
    got = []
    for r in table:
        # Kafka Streams' session key layout: the key, then the window's end and its start
        key = r["key"]
        end, start = struct.unpack(">qq", key[-16:])
        value = json.loads(r["value"])
        assert (value["WINDOW_START"], value["WINDOW_END"]) == (start, end)
        got.append((key[:-16].decode(), start, end, value["TOTAL"], value["N"]))
    expected = _expected(batches)
    assert len(expected) > 50
    # once each: a window's row is written when it closes, never updated
    assert len(got) == len(set(got))
    assert sorted(got) == sorted(expected)
    assert 0 < len(first) < len(table)


def test_a_cumulate_window_is_written_when_stream_time_reaches_its_end(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(QUERY)
        append_rows(engine, [{"G": "a", "V": 1, "T": 1010}, {"G": "a", "V": 2, "T": 1030}])
        append_rows(engine, [{"G": "a", "V": 4, "T": 1049}])
        ends = [
            struct.unpack(">q", r["key"][-16:-8])[0]
            for r in engine.log.read_table("C", 0).to_pylist()
        ]
        assert ends == [1025]  # 1050's window is still open at 1049
        append_rows(engine, [{"G": "a", "V": 8, "T": 1050}])
        rows = [json.loads(r["value"]) for r in engine.log.read_table("C", 0).to_pylist()]
        assert [(r["WINDOW_END"], r["TOTAL"]) for r in rows] == [(1025, 1), (1050, 7)]
        # a pull query gives each window of the key: they share their start
        pulled = engine.execute("SELECT * FROM c WHERE g = 'a';")[-1].rows
        assert [(r["WINDOWSTART"], r["WINDOWEND"], r["TOTAL"]) for r in pulled] == [
            (1000, 1025, 1),
            (1000, 1050, 7),
        ]


def test_too_many_cumulate_windows_a_row_are_refused(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        with pytest.raises(SqlError, match=r"query\.window\.max\.per\.row"):
            engine.execute(
                "CREATE TABLE w AS SELECT window_start, window_end, g, SUM(v) AS total "
                "FROM TABLE(CUMULATE(TABLE s, "
                "DESCRIPTOR(t), INTERVAL '1' MILLISECOND, INTERVAL '1' DAY)) "
                "GROUP BY window_start, window_end, g;"
            )
