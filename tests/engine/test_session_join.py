"""Flink's window join of two SESSION window table functions' rows (Flink 1.19, experimental
there): each side's sessions per join key (SESSION's PARTITION BY); a left and a right
session of one key with the same bounds join when stream time reaches their end (every pair
of their rows), and an outer join writes a session's rows that nothing joined with NULLs.
A row whose session had ended when it came is late and dropped. Checked against DuckDB's
computation of those rules (sessions as islands of rows less than the gap apart, per side
and key), with rows out of order and late, across a restart; decoded with `json`."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.testing.windows import session_bursts

GAP = 10
STREAMS = (
    "CREATE STREAM l (id STRING KEY, v BIGINT, t BIGINT) WITH "
    "(kafka_topic='l', partitions=1, value_format='JSON', timestamp='t');"
    "CREATE STREAM r (id STRING KEY, w BIGINT, t BIGINT) WITH "
    "(kafka_topic='r', partitions=1, value_format='JSON', timestamp='t');"
)


def _session(stream: str, by: str = " PARTITION BY id") -> str:
    return (
        f"(SELECT * FROM TABLE(SESSION(TABLE {stream}{by}, DESCRIPTOR(t), "
        f"INTERVAL '{GAP}' MILLISECONDS)))"
    )


def _feed() -> list[tuple[str, dict[str, Any]]]:
    """Rows one at a time, each left row followed by its copy on the right three times in
    four (so the two sides' sessions often have the same bounds, and sometimes not): the
    left rows are `session_bursts`'s (out of order, and late ones)."""
    rng = random.Random(13)
    out: list[tuple[str, dict[str, Any]]] = []
    for burst in session_bursts(13, 200):
        row = {"ID": burst["G"], "V": burst["V"], "T": burst["T"]}
        out.append(("l", row))
        if rng.random() < 0.75:
            out.append(("r", {"ID": row["ID"], "W": row["V"] + 1, "T": row["T"]}))
    return out


def _append(engine: Engine, side: str, row: dict[str, Any]) -> None:
    engine.log.append(side, [(row["ID"].encode(), json.dumps(row).encode())])
    engine.drain()


def _expected(feed: list[tuple[str, dict[str, Any]]], kind: str) -> list[Any]:
    con = duckdb.connect()
    con.execute("create table s (pos int, side varchar, id varchar, x bigint, t bigint)")
    con.executemany(
        "insert into s values (?, ?, ?, ?, ?)",
        [(i, side, r["ID"], r.get("V", r.get("W")), r["T"]) for i, (side, r) in enumerate(feed)],
    )
    join = {"INNER": "join", "LEFT": "left join", "FULL": "full join"}[kind]
    return con.execute(
        f"""
        with ok as (
          select * from s a
          where coalesce(a.t + {GAP} > (select max(b.t) from s b where b.pos < a.pos), true)),
        marked as (
          select *, case when t - lag(t) over (partition by side, id order by t, pos) < {GAP}
                         then 0 else 1 end as new from ok),
        numbered as (
          select *, sum(new) over (partition by side, id order by t, pos
                                   rows unbounded preceding) as island from marked),
        sessions as (
          select side, id, x, min(t) over (partition by side, id, island) as ws,
                 max(t) over (partition by side, id, island) + {GAP} as we
          from numbered),
        l as (select * from sessions where side = 'l'),
        r as (select * from sessions where side = 'r')
        select coalesce(l.id, r.id), l.x, r.x, coalesce(l.ws, r.ws), coalesce(l.we, r.we)
        from l {join} r on l.ws = r.ws and l.we = r.we and l.id = r.id
        where coalesce(l.we, r.we) <= (select max(t) from s)
        """
    ).fetchall()


@pytest.mark.parametrize("kind", ["INNER", "LEFT", "FULL"])
def test_session_window_join_matches_duckdb_across_a_restart(tmp_path: Path, kind: str) -> None:
    feed = _feed()
    key = "ROWKEY" if kind == "FULL" else "L.id"
    query = (
        f"CREATE STREAM j AS SELECT {key} AS id, L.v, R.w, "
        "COALESCE(L.window_start, R.window_start) AS ws, "
        "COALESCE(L.window_end, R.window_end) AS we "
        f"FROM {_session('l')} L {'' if kind == 'INNER' else kind} JOIN {_session('r')} R "
        "ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.id = R.id;"
    )
    half = len(feed) // 2
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAMS)
        engine.execute(query)
        for side, row in feed[:half]:
            _append(engine, side, row)
        first = engine.log.read_table("J", 0).to_pylist()
    with Engine(tmp_path / "data") as engine:  # the open sessions come back from the changelog
        for side, row in feed[half:]:
            _append(engine, side, row)
        table = engine.log.read_table("J", 0).to_pylist()
    got = []
    for r in table:
        value = json.loads(r["value"])
        got.append((r["key"].decode(), value["V"], value["W"], value["WS"], value["WE"]))
    expected = _expected(feed, kind)
    assert sum(1 for _, v, w, *_ in expected if v is not None and w is not None) > 30
    if kind != "INNER":
        assert any(w is None for _, _, w, *_ in expected)  # sessions nothing joined
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert 0 < len(first) < len(table)


@pytest.mark.parametrize(
    ("sides", "words"),
    [
        (
            f"{_session('l', '')} L JOIN {_session('r')} R",
            "keeps each side's sessions per join key: SESSION(TABLE l PARTITION BY id, ...)",
        ),
        (
            f"{_session('l')} L JOIN {_session('r', ' PARTITION BY w')} R",
            "keeps each side's sessions per join key: SESSION(TABLE r PARTITION BY id, ...)",
        ),
    ],
)
def test_session_window_join_mistakes_are_refused(tmp_path: Path, sides: str, words: str) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAMS)
        with pytest.raises(SqlError) as err:
            engine.execute(
                f"CREATE STREAM j AS SELECT L.id AS id, L.v, R.w FROM {sides} "
                "ON L.window_start = R.window_start AND L.window_end = R.window_end "
                "AND L.id = R.id;"
            )
        assert words in str(err.value)
