"""Windowed sources joined to unwindowed ones (confluentinc/ksql#4736), past the two-sided
joins of tests/engine/test_windowed_joins.py: a windowed table enriched by several tables,
checked against DuckDB across restarts; and the mixes whose meaning is not defined, each
refused with why at its line and column."""

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
    "CREATE TABLE users (id STRING PRIMARY KEY, name STRING, region STRING) "
    "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
    "CREATE TABLE regions (id STRING PRIMARY KEY, rname STRING) "
    "WITH (kafka_topic='regions', value_format='JSON', partitions=1);"
)

USERS = ["a", "b", "c", "d", "e"]
REGIONS = ["n", "s", "w"]


def _last_rows(engine: Engine, topic: str) -> Counter[tuple[Any, ...]]:
    """The result table's rows: the changelog's last value per (windowed) key."""
    last: dict[bytes, bytes | None] = {}
    table = engine.log.read_table(topic, 0)
    keys, values = table.column("key").to_pylist(), table.column("value").to_pylist()
    for k, v in zip(keys, values, strict=True):
        last[k] = v
    return Counter(tuple(json.loads(v).values()) for v in last.values() if v is not None)


def _create(path: Path, statements: str) -> None:
    """The sources and `statements` in a new engine's data directory."""
    with Engine(path) as engine:
        engine.execute(SOURCES)
        engine.execute(statements)


class Tables:
    """The users and regions tables as they are, in DuckDB (its own connection) too."""

    def __init__(self) -> None:
        self.con = duckdb.connect(":memory:")
        self.con.execute("create table clicks_t (usr varchar, ts bigint)")
        self.con.execute("create table users_t (id varchar, name varchar, region varchar)")
        self.con.execute("create table regions_t (id varchar, rname varchar)")

    def change(self, engine: Engine, rnd: random.Random, r: int) -> None:
        """Upsert or delete a few users (moving between regions) and regions."""
        for u in rnd.sample(USERS, 3):
            if rnd.random() < 0.3:
                engine.execute(f"DELETE FROM users WHERE id = '{u}';")
                self.con.execute("delete from users_t where id = ?", [u])
            else:
                row = {"ID": u, "NAME": f"{u}{r}", "REGION": rnd.choice([*REGIONS, None])}
                engine.insert("USERS", row, 50_000 + r)
                self.con.execute("delete from users_t where id = ?", [u])
                self.con.execute("insert into users_t values (?, ?, ?)", list(row.values()))
            engine.drain()
        for g in rnd.sample(REGIONS, 2):
            self.con.execute("delete from regions_t where id = ?", [g])
            if rnd.random() < 0.25:
                engine.execute(f"DELETE FROM regions WHERE id = '{g}';")
            else:
                engine.insert("REGIONS", {"ID": g, "RNAME": f"{g}{r}"}, 50_000 + r)
                self.con.execute("insert into regions_t values (?, ?)", [g, f"{g}{r}"])
            engine.drain()

    def expected(self, first: str, second: str) -> Counter[tuple[Any, ...]]:
        return Counter(
            self.con.sql(
                "with w as (select c.usr, s.ws, count(*) as n from clicks_t c, "
                "range(0, 50000, 5000) s(ws) where s.ws <= c.ts and c.ts < s.ws + 10000 "
                f"group by all) select w.n, u.name, r.rname, w.ws from w {first} users_t u "
                f"on u.id = w.usr {second} regions_t r on r.id = u.region"
            ).fetchall()
        )


@pytest.mark.parametrize(("first", "second"), [("JOIN", "JOIN"), ("LEFT JOIN", "LEFT JOIN")])
def test_each_window_is_enriched_by_several_tables(tmp_path: Path, first: str, second: str) -> None:
    """A windowed table joined to a table on its key and to a second table on a column of
    the first (#4736's lookup, one table after another): each window's row meets the rows
    of its key, and a change or deletion of a user or of a region sends every window that
    refers to it again; the result's last row per window equals DuckDB's join of the final
    tables, through a restart after every round."""
    rnd = random.Random(23)
    tables = Tables()
    path = tmp_path / "data"
    _create(
        path,
        "CREATE TABLE per_user AS SELECT user, COUNT(*) AS n FROM clicks "
        "WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) GROUP BY user EMIT CHANGES;"
        "CREATE TABLE enriched AS SELECT p.user AS user, p.n AS n, u.name AS name, "
        f"r.rname AS rname, p.WINDOWSTART AS ws FROM per_user p {first} users u "
        f"ON p.user = u.id {second} regions r ON u.region = r.id EMIT CHANGES;",
    )
    for r in range(4):  # clicks, then changes and deletions of users and regions
        with Engine(path) as engine:
            clicks = [(rnd.choice(USERS), rnd.randint(0, 40_000)) for _ in range(40)]
            engine.insert_many("CLICKS", [{"USER": u, "PAGE": 1, "ROWTIME": t} for u, t in clicks])
            tables.con.executemany("insert into clicks_t values (?, ?)", clicks)
            engine.drain()
            tables.change(engine, rnd, r)
    with Engine(path) as engine:
        got = _last_rows(engine, "ENRICHED")
    kind = "left join" if first.startswith("LEFT") else "join"
    expected = tables.expected(kind, kind)
    tables.con.close()
    assert sum(expected.values()) > 15
    # the inputs were enough: windows with a region and, for LEFT, without a user or region
    assert any(rname is not None for _, _, rname, _ in expected)
    if kind == "left join":
        assert any(name is None for _, name, _, _ in expected)
        assert any(name is not None and rname is None for _, name, rname, _ in expected)
    assert got == expected


@pytest.mark.parametrize("kind", ["JOIN", "LEFT JOIN"])
def test_a_windowed_stream_looks_up_its_keys_row_and_keeps_its_window(
    tmp_path: Path, kind: str
) -> None:
    """A windowed stream (a windowed aggregation's topic read as a stream, `WINDOW_TYPE`)
    joined to a table on its key: each record meets its key's row as the table is when the
    record comes, and the joined record keeps the record's windowed key. Checked against
    DuckDB joining each round's records (decoded from the topic's values) to the users as
    they were, and the output's keys against the input's, through a restart every round."""
    rnd = random.Random(31)
    tables = Tables()
    tables.con.execute("create table recs_t (k blob, usr varchar, ws bigint, n bigint, r int)")
    tables.con.execute("create table users_r (id varchar, name varchar, r int)")
    path = tmp_path / "data"
    _create(
        path,
        "CREATE TABLE per_user AS SELECT user, AS_VALUE(user) AS usr, WINDOWSTART AS ws, "
        "COUNT(*) AS n FROM clicks WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) "
        "GROUP BY user EMIT CHANGES;"
        "CREATE STREAM counts (user STRING KEY, usr STRING, ws BIGINT, n BIGINT) "
        "WITH (kafka_topic='PER_USER', value_format='JSON', WINDOW_TYPE='HOPPING', "
        "WINDOW_SIZE='10 SECONDS');"
        "CREATE STREAM enriched AS SELECT c.user, c.usr AS usr, c.n AS n, u.name AS name, "
        f"c.WINDOWSTART AS ws FROM counts c {kind} users u ON c.user = u.id EMIT CHANGES;",
    )
    read = 0
    for r in range(4):  # users as they are, then clicks whose counts meet them
        with Engine(path) as engine:
            tables.change(engine, rnd, r)
            tables.con.execute("insert into users_r select id, name, ? from users_t", [r])
            clicks = [(rnd.choice(USERS), rnd.randint(0, 40_000)) for _ in range(30)]
            engine.insert_many("CLICKS", [{"USER": u, "PAGE": 1, "ROWTIME": t} for u, t in clicks])
            engine.drain()
            records = engine.log.read_table("PER_USER", 0).to_pylist()
            for rec in records[read:]:
                v = json.loads(rec["value"])
                tables.con.execute(
                    "insert into recs_t values (?, ?, ?, ?, ?)",
                    [rec["key"], v["USR"], v["WS"], v["N"], r],
                )
            read = len(records)
    with Engine(path) as engine:
        out = engine.log.read_table("ENRICHED", 0).to_pylist()
    got = Counter((o["key"], *json.loads(o["value"]).values()) for o in out)
    join = "left join" if kind.startswith("LEFT") else "join"
    expected = Counter(
        tables.con.sql(
            f"select c.k, c.usr, c.n, u.name, c.ws from recs_t c {join} users_r u "
            "on u.id = c.usr and u.r = c.r"
        ).fetchall()
    )
    tables.con.close()
    assert sum(expected.values()) > 50
    assert any(name is None for *_, name, _ in expected) == (kind == "LEFT JOIN")
    assert got == expected


@pytest.mark.parametrize(
    ("query", "place", "why"),
    [
        # an unwindowed table first: a row of it would meet every window of its key
        (
            "CREATE TABLE j AS SELECT u.id, n\n  FROM users u JOIN per_user p ON u.id = p.user;",
            (2, 16),
            "with the windowed table first: `FROM PER_USER JOIN USERS ...`",
        ),
        # a table row no window holds would have no window
        (
            "CREATE TABLE j AS SELECT p.user, n, u.name\n"
            "  FROM per_user p RIGHT JOIN users u ON p.user = u.id;",
            (2, 19),
            "a row of the right table that no window of its key holds would have no window",
        ),
        (
            "CREATE TABLE j AS SELECT p.user, n, u.name\n"
            "  FROM per_user p FULL JOIN users u ON p.user = u.id;",
            (2, 19),
            "Join LEFT for every window",
        ),
        # the windowed table on the left of a stream: a table-stream join
        (
            "CREATE STREAM j AS SELECT *\n  FROM per_user p JOIN buys b ON p.user = b.user;",
            (2, 19),
            "write `FROM BUYS JOIN PER_USER ...`",
        ),
        # a windowed stream and an unwindowed one: records with and without windows
        (
            "CREATE STREAM j AS SELECT w.user, w.n, c.page\n"
            "  FROM counts w JOIN clicks c WITHIN 1 MINUTE ON w.user = c.user;",
            (2, 17),
            "the records of an unwindowed stream have none",
        ),
        (
            "CREATE STREAM j AS SELECT c.user, w.n, c.page\n"
            "  FROM clicks c JOIN counts w WITHIN 1 MINUTE ON w.user = c.user;",
            (2, 17),
            "the records of an unwindowed stream have none",
        ),
        # a windowed stream joined on another column than its key: re-keyed windows
        (
            "CREATE STREAM j AS SELECT w.user, w.n, u.name\n"
            "  FROM counts w JOIN users u ON w.usr = u.id;",
            (2, 39),
            "hispeed joins a windowed stream to tables on the stream's key only",
        ),
        # a non-key join of a windowed table
        (
            "CREATE TABLE j AS SELECT p.user, u.id, n\n"
            "  FROM per_user p JOIN users u ON p.user = u.name;",
            (2, 19),
            "join a windowed table on the other table's primary key",
        ),
    ],
)
def test_mixes_without_a_meaning_are_refused_with_why_at_their_place(
    tmp_path: Path, query: str, place: tuple[int, int], why: str
) -> None:
    """Each refusal keeps ksqlDB's words and says why, at the JOIN (or its condition's
    `=`, when the condition is what is refused)."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(SOURCES)
        engine.execute(
            "CREATE TABLE per_user AS SELECT user, AS_VALUE(user) AS usr, COUNT(*) AS n "
            "FROM clicks WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY user EMIT CHANGES;"
            "CREATE STREAM counts (user STRING KEY, usr STRING, n BIGINT) "
            "WITH (kafka_topic='PER_USER', value_format='JSON', WINDOW_TYPE='TUMBLING', "
            "WINDOW_SIZE='10 SECONDS');"
        )
        with pytest.raises(SqlError) as caught:
            engine.execute(query)
    assert why in str(caught.value)
    assert (caught.value.line, caught.value.column) == place
