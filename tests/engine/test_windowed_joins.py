"""A stream joined to a windowed table (confluentinc/ksql#4736, plan/windowed_joins.py): each
stream record meets the windows of its key that hold its time, as they are when it comes;
checked against DuckDB over the same records, with the table's rows updated and deleted
(HAVING drops a window past its bound: a tombstone) between the stream's batches."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

SOURCES = (
    "CREATE STREAM clicks (user STRING KEY, page INT) "
    "WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
    "CREATE STREAM buys (id INT, user STRING, amount INT) "
    "WITH (kafka_topic='buys', value_format='JSON', partitions=1);"
)


def _outputs(engine: Engine, topic: str) -> Counter[tuple[Any, ...]]:
    table = engine.log.read_table(topic, 0)
    return Counter(
        tuple(json.loads(v).values()) for v in table.column("value").to_pylist() if v is not None
    )


@pytest.mark.parametrize(
    ("window", "size", "advance", "kind"),
    [
        ("TUMBLING (SIZE 10 SECONDS)", 10_000, 10_000, "INNER"),
        ("HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS)", 10_000, 5_000, "LEFT"),
    ],
)
def test_each_record_meets_the_windows_holding_its_time(
    tmp_path: Path, window: str, size: int, advance: int, kind: str
) -> None:
    rnd = random.Random(11)
    users = ["a", "b", "c", "d"]
    rounds = []
    for r in range(3):  # clicks, then buys that see the windows as those clicks left them
        clicks = [(rnd.choice(users), rnd.randint(0, 60_000)) for _ in range(80)]
        buys = [
            (r * 1000 + i, rnd.choice([*users, "z"]), rnd.randint(1, 9), rnd.randint(0, 70_000))
            for i in range(60)
        ]
        rounds.append((clicks, buys))
    con = duckdb.connect(":memory:")
    con.execute("create table clicks_t (r int, usr varchar, ts bigint)")
    con.execute("create table buys_t (r int, id int, usr varchar, amount int, ts bigint)")
    for r, (clicks, buys) in enumerate(rounds):
        con.executemany("insert into clicks_t values (?, ?, ?)", [(r, *c) for c in clicks])
        con.executemany("insert into buys_t values (?, ?, ?, ?, ?)", [(r, *b) for b in buys])
    # every window a click falls in, counted over the clicks before each round of buys;
    # HAVING n <= 8 drops (deletes) a window once it has more
    windows = (
        "with w as (select distinct c.usr, s.ws from clicks_t c, "
        f"range(0, 80000, {advance}) s(ws) where s.ws <= c.ts and c.ts < s.ws + {size}), "
        "counted as (select b.r, w.usr, w.ws, count(*) as n from (select distinct r from "
        "buys_t) b, w, clicks_t c where c.r <= b.r and c.usr = w.usr and w.ws <= c.ts "
        f"and c.ts < w.ws + {size} group by all having count(*) <= 8) "
    )
    join = "join" if kind == "INNER" else "left join"
    expected = Counter(
        con.sql(
            windows + "select b.id, b.amount, k.n, k.ws from buys_t b "
            f"{join} counted k on k.r = b.r and k.usr = b.usr and k.ws <= b.ts "
            f"and b.ts < k.ws + {size}"
        ).fetchall()
    )
    assert sum(expected.values()) > 80
    # the table's rows change between rounds: windows grow, and some are deleted
    gone = con.sql(
        windows + "select count(*) from counted a where a.r < 2 and not exists (select 1 "
        "from counted b where b.r = a.r + 1 and b.usr = a.usr and b.ws = a.ws)"
    ).fetchall()
    assert gone[0][0] > 0
    assert any(n is None for _, _, n, _ in expected) == (kind == "LEFT")
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            f"CREATE TABLE per_user AS SELECT user, COUNT(*) AS n FROM clicks "
            f"WINDOW {window} GROUP BY user HAVING COUNT(*) <= 8 EMIT CHANGES;"
        )
        engine.execute(
            "CREATE STREAM enriched AS SELECT b.user AS user, b.id AS id, "
            "b.amount AS amount, p.n AS n, "
            f"p.WINDOWSTART AS ws FROM buys b {kind} JOIN per_user p ON b.user = p.user "
            "EMIT CHANGES;"
        )
        for clicks, buys in rounds:
            engine.insert_many("CLICKS", [{"USER": u, "PAGE": 1, "ROWTIME": t} for u, t in clicks])
            engine.drain()
            engine.insert_many(
                "BUYS",
                [{"ID": i, "USER": u, "AMOUNT": a, "ROWTIME": t} for i, u, a, t in buys],
            )
            engine.drain()
        assert _outputs(engine, "ENRICHED") == expected


def test_windows_survive_a_restart(tmp_path: Path) -> None:
    """The join's windows are state: kept in the changelog, read back on a restart."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            "CREATE TABLE per_user AS SELECT user, COUNT(*) AS n FROM clicks "
            "WINDOW SESSION (5 SECONDS) GROUP BY user EMIT CHANGES;"
            "CREATE STREAM enriched AS SELECT b.user AS user, b.id AS id, p.n AS n "
            "FROM buys b LEFT JOIN per_user p ON b.user = p.user EMIT CHANGES;"
        )
        for t in (1000, 3000, 20_000):
            engine.insert("CLICKS", {"USER": "a", "PAGE": 1}, t)
        engine.drain()
    with Engine(tmp_path / "data") as engine:
        # a session holds its end (its last click's time); 10,000 is in no session
        for i, t in enumerate((999, 1000, 3000, 10_000, 20_000)):
            engine.insert("BUYS", {"ID": i, "USER": "a", "AMOUNT": 1}, t)
        engine.drain()
        got = sorted(_outputs(engine, "ENRICHED"))
    assert got == [(0, None), (1, 2), (2, 2), (3, None), (4, 1)]


@pytest.mark.parametrize(
    ("query", "place"),
    [
        # an unwindowed table joined to a windowed table (the windowed one must come first)
        (
            "CREATE TABLE j AS SELECT * FROM users u\n"
            "  JOIN per_user p ON p.user = u.id EMIT CHANGES;",
            (2, 3),
        ),
        # the windowed side on the left: a table-stream join, refused for any table
        (
            "CREATE STREAM j AS SELECT * FROM per_user p "
            "JOIN buys b ON p.user = b.user EMIT CHANGES;",
            (1, 45),
        ),
    ],
)
def test_other_mixes_stay_refused_with_their_place(
    tmp_path: Path, query: str, place: tuple[int, int]
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            "CREATE TABLE users (id STRING PRIMARY KEY, name STRING) "
            "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
            "CREATE TABLE per_user AS SELECT user, COUNT(*) AS n FROM clicks "
            "WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY user EMIT CHANGES;"
        )
        with pytest.raises(SqlError) as caught:
            engine.execute(query)
        assert "Can not join windowed source to non-windowed source" in str(caught.value)
        assert (caught.value.line, caught.value.column) == place


def test_windows_past_the_retention_are_let_go(tmp_path: Path) -> None:
    """The join keeps a window `query.temporal.retention.ms` past its end behind the stream's
    time: a record later than that meets it no more (the state stays bounded)."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            "CREATE TABLE per_user AS SELECT user, COUNT(*) AS n FROM clicks "
            "WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY user EMIT CHANGES;"
        )
        engine.execute(
            "CREATE STREAM enriched AS SELECT b.user AS user, b.id AS id, p.n AS n "
            "FROM buys b LEFT JOIN per_user p ON b.user = p.user EMIT CHANGES;",
            {"query.temporal.retention.ms": 60_000},
        )
        engine.insert("CLICKS", {"USER": "a", "PAGE": 1}, 1000)
        engine.drain()
        # 5,000: within the retention; then the stream's time passes 10,000 + 60,000
        for i, t in enumerate((5000, 8000, 200_000, 9000)):
            engine.insert("BUYS", {"ID": i, "USER": "a", "AMOUNT": 1}, t)
            engine.drain()
        got = sorted(_outputs(engine, "ENRICHED"))
    assert got == [(0, 1), (1, 1), (2, None), (3, None)]


@pytest.mark.parametrize("kind", ["INNER", "LEFT"])
def test_each_window_is_enriched_by_its_keys_row(tmp_path: Path, kind: str) -> None:
    """A windowed table joined to a table: each window's row meets its key's row; a change
    or deletion of that row sends every window of the key again (compared as the result's
    last row per window, against DuckDB over the final rows)."""
    rnd = random.Random(5)
    users = ["a", "b", "c", "d", "e"]
    con = duckdb.connect(":memory:")
    con.execute("create table clicks_t (usr varchar, ts bigint)")
    con.execute("create table users_t (id varchar, name varchar)")
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            "CREATE TABLE users (id STRING PRIMARY KEY, name STRING) "
            "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
            "CREATE TABLE per_user AS SELECT user, COUNT(*) AS n FROM clicks "
            "WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) GROUP BY user EMIT CHANGES;"
            "CREATE TABLE enriched AS SELECT p.user AS user, p.n AS n, u.name AS name, "
            f"p.WINDOWSTART AS ws FROM per_user p {kind} JOIN users u ON p.user = u.id "
            "EMIT CHANGES;"
        )
        names: dict[str, str] = {}
        for r in range(4):  # clicks, then changes and deletions of users
            clicks = [(rnd.choice(users), rnd.randint(0, 40_000)) for _ in range(40)]
            engine.insert_many("CLICKS", [{"USER": u, "PAGE": 1, "ROWTIME": t} for u, t in clicks])
            con.executemany("insert into clicks_t values (?, ?)", clicks)
            engine.drain()
            for u in rnd.sample(users, 3):
                if u in names and rnd.random() < 0.4:
                    engine.execute(f"DELETE FROM users WHERE id = '{u}';")
                    del names[u]
                else:
                    names[u] = f"{u}{r}"
                    engine.insert("USERS", {"ID": u, "NAME": names[u]}, 50_000 + r)
                engine.drain()
        last: dict[bytes, bytes | None] = {}
        table = engine.log.read_table("ENRICHED", 0)
        keys, values = table.column("key").to_pylist(), table.column("value").to_pylist()
        for k, v in zip(keys, values, strict=True):
            last[k] = v
        got = Counter(tuple(json.loads(v).values()) for v in last.values() if v is not None)
    con.executemany("insert into users_t values (?, ?)", list(names.items()))
    join = "join" if kind == "INNER" else "left join"
    expected = Counter(
        con.sql(
            "with w as (select c.usr, s.ws, count(*) as n from clicks_t c, "
            "range(0, 50000, 5000) s(ws) where s.ws <= c.ts and c.ts < s.ws + 10000 "
            f"group by all) select w.n, u.name, w.ws from w {join} users_t u on u.id = w.usr"
        ).fetchall()
    )
    assert sum(expected.values()) > 15
    assert any(name is None for _, name, _ in expected) == (kind == "LEFT")
    assert got == expected


def test_a_deletion_first_after_a_restart_deletes_every_window(tmp_path: Path) -> None:
    """The windows are state: after a restart a table row's deletion, the first record the
    query takes, still deletes each window of its key."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            "CREATE TABLE users (id STRING PRIMARY KEY, name STRING) "
            "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
            "CREATE TABLE per_user AS SELECT user, COUNT(*) AS n FROM clicks "
            "WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY user EMIT CHANGES;"
            "CREATE TABLE enriched AS SELECT p.user AS user, p.n AS n, u.name AS name "
            "FROM per_user p JOIN users u ON p.user = u.id EMIT CHANGES;"
        )
        engine.insert("USERS", {"ID": "a", "NAME": "Ann"}, 1)
        engine.drain()
        for t in (1000, 2000, 15_000):
            engine.insert("CLICKS", {"USER": "a", "PAGE": 1}, t)
        engine.drain()
    with Engine(tmp_path / "data") as engine:
        engine.execute("DELETE FROM users WHERE id = 'a';")
        engine.drain()
        table = engine.log.read_table("ENRICHED", 0)
        keys, values = table.column("key").to_pylist(), table.column("value").to_pylist()
    last = dict(zip(keys, values, strict=True))
    assert len(last) == 2  # two windows: [0, 10 s) and [10 s, 20 s)
    assert list(last.values()) == [None, None]
