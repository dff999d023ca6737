"""Flink's SESSION window table function: `SESSION(TABLE s PARTITION BY k, DESCRIPTOR(t),
gap)` (Flink 1.19's syntax, also with named arguments). A row joins its key's session while
less than the gap after the session's last row, a session ends a gap after its last row and
closes when stream time reaches that end; a row whose session had closed when it came is
late and dropped. Checked against DuckDB's computation of those rules over the same rows
(out of order, late, across a restart), decoded with `json` and `struct`, not hispeed."""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.testing.windows import append_rows, duckdb_rows, session_bursts

GAP = 10
STREAM = (
    "CREATE STREAM s (g STRING KEY, v BIGINT, t BIGINT) WITH "
    "(kafka_topic='s', partitions=1, value_format='JSON', timestamp='t');"
)


def _feed(seed: int) -> list[list[dict[str, Any]]]:
    """`session_bursts`'s rows in batches of 1 to 5."""
    rng = random.Random(seed)
    arrived = session_bursts(seed, 240)
    batches = []
    while arrived:
        n = rng.randrange(1, 6)
        batches.append(arrived[:n])
        arrived = arrived[n:]
    return batches


def sessions_sql(
    batches: list[list[dict[str, Any]]], partition: str = "g"
) -> duckdb.DuckDBPyConnection:
    """DuckDB: table `kept`, the rows not late (their time plus the gap past the newest time
    read before them), each with its key's session (`ws`, `we`), sessions found as islands
    of rows less than the gap apart (per `partition`); `now`, the stream time at the end."""
    con = duckdb_rows(batches)
    con.execute(
        f"""
        create table kept as
        with ok as (
          select * from s a
          where coalesce(a.t + {GAP} > (select max(b.t) from s b where b.pos < a.pos), true)),
        marked as (
          select *, case when t - lag(t) over (partition by {partition} order by t, pos) < {GAP}
                         then 0 else 1 end as new from ok),
        numbered as (
          select *, sum(new) over (partition by {partition} order by t, pos
                                   rows unbounded preceding) as island from marked)
        select pos, g, v, t,
               min(t) over (partition by {partition}, island) as ws,
               max(t) over (partition by {partition}, island) + {GAP} as we
        from numbered
        """
    )
    con.execute("create table now as select max(t) as now from s")
    return con


SESSION_CALLS = [
    f"SESSION(TABLE s PARTITION BY g, DESCRIPTOR(t), INTERVAL '{GAP}' MILLISECONDS)",
    f"SESSION(DATA => TABLE s PARTITION BY (g), TIMECOL => DESCRIPTOR(t), "
    f"GAP => INTERVAL '{GAP}' MILLISECONDS)",
]


@pytest.mark.parametrize("call", SESSION_CALLS)
def test_session_window_aggregation_per_partition_matches_duckdb_across_a_restart(
    tmp_path: Path, call: str
) -> None:
    batches = _feed(3)
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(
            "CREATE TABLE a AS SELECT g, window_start, window_end, SUM(v) AS total, "
            f"COUNT(*) AS n FROM TABLE({call}) GROUP BY g, window_start, window_end;"
        )
        for rows in batches[: len(batches) // 2]:
            append_rows(engine, rows)
        first = engine.log.read_table("A", 0).to_pylist()
    with Engine(tmp_path / "data") as engine:  # the open sessions come back from the changelog
        for rows in batches[len(batches) // 2 :]:
            append_rows(engine, rows)
        table = engine.log.read_table("A", 0).to_pylist()
    got = []
    for r in table:
        value = json.loads(r["value"])
        key = r["key"]
        end, start = struct.unpack(">qq", key[-16:])  # session key: key, last row, first row
        assert (value["WINDOW_START"], value["WINDOW_END"]) == (start, end + GAP)
        got.append((key[:-16].decode(), start, end + GAP, value["TOTAL"], value["N"]))
    con = sessions_sql(batches)
    expected = con.execute(
        "select g, ws, we, sum(v), count(*) from kept where we <= (select now from now) "
        "group by g, ws, we"
    ).fetchall()
    late = con.execute("select count(*) from s where pos not in (select pos from kept)")
    assert late.fetchone()[0] > 5  # type: ignore[index]
    assert any(n > 1 for *_, n in expected)
    assert len(expected) > 50
    assert len(got) == len(set(got))  # a session's row is written once, when it closes
    assert sorted(got) == sorted(expected)
    assert 0 < len(first) < len(table)


@pytest.mark.parametrize("partitioned", [True, False])
def test_session_rows_come_out_when_their_session_closes_as_duckdb_says(
    tmp_path: Path, partitioned: bool
) -> None:
    """Without aggregation, each row comes out once its session has closed, with the
    session's bounds; without PARTITION BY the whole stream's rows make the sessions (here
    one key's rows: the feed's bursts keep its keys' sessions apart, not the stream's)."""
    batches = _feed(7)
    if not partitioned:
        batches = [b for b in ([r for r in rows if r["G"] == "k0"] for rows in batches) if b]
    by = " PARTITION BY g" if partitioned else ""
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(
            f"CREATE STREAM r AS SELECT * FROM TABLE(SESSION(TABLE s{by}, DESCRIPTOR(t), "
            f"INTERVAL '{GAP}' MILLISECONDS)) WHERE v >= 0;"
        )
        for rows in batches[: len(batches) // 2]:
            append_rows(engine, rows)
        first = engine.log.read_table("R", 0).to_pylist()
    with Engine(tmp_path / "data") as engine:  # the open sessions come back from the changelog
        for rows in batches[len(batches) // 2 :]:
            append_rows(engine, rows)
        table = engine.log.read_table("R", 0).to_pylist()
    got = []
    for r in table:
        value = json.loads(r["value"])
        assert value["WINDOW_TIME"] == value["WINDOW_END"] - 1
        got.append(
            (r["key"].decode(), value["V"], value["T"], value["WINDOW_START"], value["WINDOW_END"])
        )
    con = sessions_sql(batches, "g" if partitioned else "1")
    expected = con.execute(
        "select g, v, t, ws, we from kept where we <= (select now from now)"
    ).fetchall()
    assert len(expected) > 40
    assert any(we - ws > GAP for *_, ws, we in expected)  # sessions of several rows
    assert sorted(got) == sorted(expected)  # each row once, when its session has closed
    ends = [we for *_, we in got]
    assert ends == sorted(ends)  # sessions come out in the order they end
    assert 0 < len(first) < len(table)


@pytest.mark.parametrize(
    ("order", "bound", "sql_order", "n"),
    [("v DESC", "rn <= 2", "v desc", 2), ("t DESC", "rn = 1", "t desc", 1)],
)
def test_session_window_top_n_and_dedup_match_duckdb_across_a_restart(
    tmp_path: Path, order: str, bound: str, sql_order: str, n: int
) -> None:
    """Window Top-N (the 2 highest values of each key's session) and window deduplication
    (each session's last row) over SESSION's rows: ranked once the session closes, ties to
    the row that came first."""
    batches = _feed(9)
    query = (
        "CREATE TABLE top WITH (key_format='JSON') AS SELECT * FROM (SELECT g, v, t, "
        "window_start, window_end, ROW_NUMBER() OVER (PARTITION BY window_start, window_end, g "
        f"ORDER BY {order}) AS rn FROM TABLE(SESSION(TABLE s PARTITION BY g, DESCRIPTOR(t), "
        f"INTERVAL '{GAP}' MILLISECONDS))) WHERE {bound};"
    )
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(query)
        for rows in batches[: len(batches) // 2]:
            append_rows(engine, rows)
        first = engine.log.read_table("TOP", 0).to_pylist()
    with Engine(tmp_path / "data") as engine:  # the open sessions come back from the changelog
        for rows in batches[len(batches) // 2 :]:
            append_rows(engine, rows)
        table = engine.log.read_table("TOP", 0).to_pylist()
    got = []
    for r in table:
        key, value = json.loads(r["key"]), json.loads(r["value"])
        rank = key.get("RN", value.get("RN"))
        got.append((key["G"], key["WINDOW_START"], key["WINDOW_END"], rank, value["V"], value["T"]))
    expected = (
        sessions_sql(batches)
        .execute(
            f"""select * from (
                  select g, ws, we, row_number() over (partition by g, ws, we
                                                       order by {sql_order}, pos) as rn, v, t
                  from kept where we <= (select now from now))
                where rn <= {n}"""
        )
        .fetchall()
    )
    assert len(expected) > 50
    assert len(got) == len(set(got))  # each rank written once, when its session closes
    assert sorted(got) == sorted(expected)
    assert 0 < len(first) < len(table)


@pytest.mark.parametrize(
    ("statement", "place", "words"),
    [
        (
            "SELECT g, COUNT(*) AS n FROM TABLE(SESSION(TABLE s PARTITION BY g, DESCRIPTOR(t), "
            "INTERVAL '1' SECOND)) GROUP BY window_start, window_end;",
            (1, 114),
            "groups by its PARTITION BY columns and the window: GROUP BY g, window_start",
        ),
        (
            "SELECT COUNT(*) AS n FROM TABLE(SESSION(TABLE s PARTITION BY nope, DESCRIPTOR(t), "
            "INTERVAL '1' SECOND)) GROUP BY window_start, window_end;",
            (1, 62),
            "PARTITION BY NOPE: S has no such column",
        ),
        (
            "SELECT COUNT(*) AS n FROM TABLE(TUMBLE(TABLE s PARTITION BY g, DESCRIPTOR(t), "
            "INTERVAL '1' SECOND)) GROUP BY window_start, window_end;",
            (1, 48),
            "TUMBLE takes no PARTITION BY",
        ),
    ],
)
def test_session_mistakes_are_refused_at_their_place(
    tmp_path: Path, statement: str, place: tuple[int, int], words: str
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        with pytest.raises(SqlError) as err:
            engine.execute(f"CREATE TABLE e AS\n{statement}")
        assert (err.value.line - 1, err.value.column) == place
        assert words in str(err.value)
