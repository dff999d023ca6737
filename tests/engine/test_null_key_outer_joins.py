"""A record whose join key is NULL joins nothing. In Flink's joins (a temporal join, FOR
SYSTEM_TIME AS OF; a window join; an interval join of time bounds) an outer side still sends
it, NULL-padded, as SQL's LEFT JOIN does; in ksqlDB's stream-stream join (WITHIN) it is dropped,
as Kafka Streams 3.4's KStreamKStreamJoin (ksqlDB 0.29's) skips a record with a NULL key.
Checked against DuckDB's joins of the same records (NULL never equal to NULL), 1 and 2
partitions, with a restart half way."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pytest

from hispeed.engine import Engine
from tests.engine.test_interval_outer_windows import joined_pairs, read_values
from tests.engine.test_joins import open_engine

STREAMS = (
    "CREATE STREAM a (k STRING KEY, g STRING, x INT, t BIGINT) "
    "WITH (kafka_topic='a', value_format='JSON', partitions={p}, timestamp='t');"
    "CREATE STREAM b (k STRING KEY, g STRING, y INT, t BIGINT) "
    "WITH (kafka_topic='b', value_format='JSON', partitions={p}, timestamp='t');"
)
SIZE = 5000
TUMBLE = "(SELECT * FROM TABLE(TUMBLE(TABLE {s}, DESCRIPTOR(t), INTERVAL '5' SECOND))) {s}"
SESSION = (
    "(SELECT * FROM TABLE(SESSION(TABLE {s} PARTITION BY g, DESCRIPTOR(t), INTERVAL '2' SECOND)))"
    " {s}"
)
#: name -> (query's FROM, DuckDB's join condition)
JOINS = {
    "interval": (
        "a {kind} JOIN b ON a.g = b.g AND b.t BETWEEN a.t - INTERVAL '2' SECOND "
        "AND a.t + INTERVAL '2' SECOND",
        "a.g = b.g AND b.t BETWEEN a.t - 2000 AND a.t + 2000",
    ),
    "window": (
        TUMBLE.format(s="a")
        + " {kind} JOIN "
        + TUMBLE.format(s="b")
        + " ON a.window_start = b.window_start AND a.window_end = b.window_end AND a.g = b.g",
        f"a.g = b.g AND a.t // {SIZE} = b.t // {SIZE}",
    ),
    "session": (
        SESSION.format(s="a")
        + " {kind} JOIN "
        + SESSION.format(s="b")
        + " ON a.window_start = b.window_start AND a.window_end = b.window_end AND a.g = b.g",
        "a.g = b.g AND a.ws = b.ws AND a.we = b.we",
    ),
    # ksqlDB's form: a NULL-key record is dropped, not padded
    "within": (
        "a {kind} JOIN b WITHIN 2 SECONDS GRACE PERIOD 0 SECONDS ON a.g = b.g",
        "a.g = b.g AND b.t BETWEEN a.t - 2000 AND a.t + 2000",
    ),
}


def _records(seed: int) -> list[tuple[str, str | None, int, int]]:
    """(side, g, value, time) in time order, a quarter of them with g NULL."""
    rnd = random.Random(seed)
    recs = [
        (s, rnd.choice(["p", "q", "r", None]), i, rnd.randrange(0, 40_000))
        for s in "ab"
        for i in range(80)
    ]
    return sorted(recs, key=lambda r: (r[3], r[0]))


def _send(e: Engine, side: str, g: str | None, value: int, t: int) -> None:
    # the last records (value -1) go to every partition: a window join's watermark is the
    # least of its partitions' newest times
    for key in [f"k{value % 5}"] if value >= 0 else [f"k{i}" for i in range(5)]:
        e.insert(side, {"K": key, "G": g, "X" if side == "a" else "Y": value, "T": t})
    e.drain()


def _duck(recs: list[tuple[str, str | None, int, int]]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for side, col in (("a", "x"), ("b", "y")):
        con.execute(f"CREATE TABLE {side} (g VARCHAR, {col} INT, t BIGINT)")
        rows = [(g, v, t) for s, g, v, t in recs if s == side]
        con.executemany(f"INSERT INTO {side} VALUES (?, ?, ?)", rows)
        # each row's session of its g (NULL's too): a new one where the gap (2 s) is reached
        con.execute(
            f"CREATE TABLE {side}_s AS SELECT *, min(t) OVER (PARTITION BY g, sid) AS ws, "
            "max(t) OVER (PARTITION BY g, sid) + 2000 AS we FROM (SELECT *, sum(new) OVER "
            "(PARTITION BY g ORDER BY t ROWS UNBOUNDED PRECEDING) AS sid FROM (SELECT *, "
            "CASE WHEN t - lag(t) OVER (PARTITION BY g ORDER BY t) < 2000 THEN 0 ELSE 1 END "
            f"AS new FROM {side}))"
        )
        con.execute(f"DROP TABLE {side}")
        con.execute(f"ALTER TABLE {side}_s RENAME TO {side}")
    return con


@pytest.mark.parametrize("partitions", [1, 2])
@pytest.mark.parametrize("kind", ["LEFT", "FULL"])
@pytest.mark.parametrize("join", sorted(JOINS))
def test_outer_stream_stream_joins_pad_null_keys_in_flinks_forms_only(
    tmp_path: Path, join: str, kind: str, partitions: int
) -> None:
    query, cond = JOINS[join]
    recs = _records(len(join) + partitions)
    e = open_engine(tmp_path / "data")
    e.execute(STREAMS.format(p=partitions))
    key = "ROWKEY" if kind == "FULL" else "a.g"
    e.execute(f"CREATE STREAM j AS SELECT {key} AS jk, x, y FROM {query.format(kind=kind)};")
    got = sorted(joined_pairs(e, tmp_path / "data", recs, _send), key=repr)
    duck = "FULL OUTER" if kind == "FULL" else kind
    sql = f"SELECT x, y FROM a {duck} JOIN b ON {cond}"
    if join == "within":  # ksqlDB: an outer record with a NULL key is dropped
        sql += " WHERE (x IS NULL OR a.g IS NOT NULL) AND (y IS NULL OR b.g IS NOT NULL)"
    con = _duck(recs)
    want = sorted(con.execute(sql).fetchall(), key=repr)
    nulls = con.execute("SELECT count(*) FROM a WHERE g IS NULL").fetchone()
    assert nulls is not None
    assert nulls[0] > 5  # the case tests something
    assert got == want


@pytest.mark.parametrize("partitions", [1, 2])
def test_a_left_temporal_join_pads_a_null_key(tmp_path: Path, partitions: int) -> None:
    """Flink's LEFT temporal join sends every stream row; one with a NULL key with NULLs."""
    rnd = random.Random(partitions)
    versions = [
        (rnd.choice(["EUR", "USD", "GBP"]), rnd.randrange(0, 100_000), rnd.randrange(1, 50))
        for _ in range(40)
    ]
    orders = [
        (i, rnd.choice(["EUR", "USD", "GBP", None]), rnd.randrange(0, 110_000)) for i in range(120)
    ]
    e = open_engine(tmp_path / "data")
    e.execute(
        "CREATE TABLE rates (cur STRING PRIMARY KEY, rate INT, ts BIGINT) WITH (kafka_topic="
        f"'rates', value_format='JSON', timestamp='ts', partitions={partitions});"
        "CREATE STREAM orders (id INT, cur STRING, ts BIGINT) WITH (kafka_topic='orders', "
        f"value_format='JSON', timestamp='ts', partitions={partitions});"
        "CREATE STREAM priced AS SELECT o.id AS id, o.cur, r.rate AS rate FROM orders o "
        "LEFT JOIN rates FOR SYSTEM_TIME AS OF o.ts AS r ON o.cur = r.cur EMIT CHANGES;"
    )
    try:
        # each currency's versions at distinct times (the later insert of one time wins)
        versions = list({(c, ts): (c, ts, v) for c, ts, v in versions}.values())
        for cur, ts, rate in versions:
            e.insert("rates", {"CUR": cur, "RATE": rate, "TS": ts}, timestamp=ts)
        e.drain()
        for n, (i, cur, ts) in enumerate(orders):  # out of time order
            e.insert("orders", {"ID": i, "CUR": cur, "TS": ts}, timestamp=ts)
            if n == len(orders) // 2:
                e.drain()
                e.close()
                e = open_engine(tmp_path / "data")
        e.drain()
        got = sorted(((r["ID"], r["RATE"]) for r in read_values(e, "PRICED")), key=repr)
    finally:
        e.close()
    con = duckdb.connect()
    con.execute("CREATE TABLE r (cur VARCHAR, ts BIGINT, rate INT)")
    con.executemany("INSERT INTO r VALUES (?, ?, ?)", versions)
    con.execute("CREATE TABLE o (id INT, cur VARCHAR, ts BIGINT)")
    con.executemany("INSERT INTO o VALUES (?, ?, ?)", orders)
    sql = "SELECT o.id, r.rate FROM o ASOF LEFT JOIN r ON o.cur = r.cur AND o.ts >= r.ts"
    want = sorted(con.execute(sql).fetchall(), key=repr)
    assert sum(1 for _, c, _ in orders if c is None) > 10
    assert got == want
