"""A cumulating window's key holds its end and its start (sql/windows.py ENDS_IN_KEY): a
CUMULATE aggregation joined to a table (#4736), and a windowed stream declared over its topic
with WINDOW_TYPE='CUMULATING' joined to a table, keep each window's own key, so every window
[s, s+step), [s, s+2 step), ... is a row of its own (they all had the key start + max size,
and a table read over the result kept one). Checked against DuckDB's own windows."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb

from hispeed.engine import Engine

STEP, SIZE = 2000, 6000


def _expected(clicks: list[tuple[str, int]], names: dict[str, str], bound: int) -> set[tuple]:
    """(user, start, end, count, name) of each cumulating window ending by `bound`."""
    con = duckdb.connect(":memory:")
    con.execute("create table c (u varchar, ts bigint)")
    con.executemany("insert into c values (?, ?)", clicks)
    con.execute("create table n (id varchar, name varchar)")
    con.executemany("insert into n values (?, ?)", list(names.items()))
    rows = con.execute(
        f"""
        with w as (
          select u, ts - ts % {SIZE} as ws, ts - ts % {SIZE} + k * {STEP} as we
          from c, range(1, {SIZE // STEP} + 1) r(k)
          where ts < ts - ts % {SIZE} + k * {STEP}
        )
        select w.u, ws, we, count(*), n.name from w join n on w.u = n.id
        where we <= {bound} group by all
        """
    ).fetchall()
    con.close()
    return set(rows)


def test_each_cumulating_window_keeps_its_own_key_through_a_table_join(tmp_path: Path) -> None:
    rng = random.Random(13)
    users = ["a", "b", "c"]
    clicks = [(rng.choice(users), rng.randrange(0, 30_000)) for _ in range(60)]
    clicks.sort(key=lambda c: c[1])
    names = {u: f"name-{u}" for u in users}
    with Engine(tmp_path / "data", fsync="never") as e:
        e.execute(
            "CREATE STREAM clicks (u VARCHAR KEY, x INT) "
            "WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
            "CREATE TABLE users (id VARCHAR PRIMARY KEY, name VARCHAR) "
            "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
            "CREATE TABLE cum AS SELECT u, window_start, window_end, COUNT(*) AS n FROM TABLE("
            "CUMULATE(TABLE clicks, DESCRIPTOR(ROWTIME), INTERVAL '2' SECOND, INTERVAL '6' SECOND))"
            " GROUP BY u, window_start, window_end;"
            "CREATE STREAM cum_s (u VARCHAR KEY, n BIGINT) WITH (kafka_topic='CUM', "
            "value_format='JSON', window_type='CUMULATING', window_size='6 SECONDS');"
            "CREATE TABLE jc AS SELECT c.u, c.n, us.name FROM cum c JOIN users us ON c.u = us.id;"
            "CREATE STREAM js AS SELECT s.u, s.n, us.name, s.WINDOWSTART AS ws, "
            "s.WINDOWEND AS we FROM cum_s s JOIN users us ON s.u = us.id;"
        )
        for u, name in names.items():
            e.insert("users", {"ID": u, "NAME": name}, timestamp=0)
        e.drain()
        for u, ts in clicks:
            e.insert("clicks", {"U": u, "X": 1}, timestamp=ts)
        e.insert("clicks", {"U": "zz", "X": 1}, timestamp=100_000)  # closes the windows
        e.drain()
        expected = _expected(clicks, names, 30_000)
        assert len(expected) > 20
        table = {
            (r["U"], r["WINDOWSTART"], r["WINDOWEND"], r["N"], r["NAME"])
            for r in e.query("SELECT * FROM jc;")
        }
        assert table == expected
        stream = e.log.read_table("JS", 0)
        keys = stream.column("key").to_pylist()
        assert len(set(keys)) == len(keys) == len(expected)  # one key a window
        rows = e.query("SELECT * FROM js;")
        assert {
            (r["U"], r["WINDOWSTART"], r["WINDOWEND"], r["N"], r["NAME"]) for r in rows
        } == expected
        assert all((r["WINDOWSTART"], r["WINDOWEND"]) == (r["WS"], r["WE"]) for r in rows)
