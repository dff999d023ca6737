"""A Top-N and a window join on the Kafka log (the broker the tests start), as the embedded
log's tests run them: the Top-N over a stream of four partitions (a bidder's bids sit in
every one of them, so the query ranks them in one place), the window join over TUMBLE's
rows of two streams. Each checked against DuckDB's computation over the same inputs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.log.kafka import KafkaLog
from hispeed.testing.services import Service

pytestmark = [pytest.mark.services, pytest.mark.kafka]

# recent times: the broker deletes records older than its retention (7 days) by their time
NOW_MS = time.time_ns() // 1_000_000
SIZE = 1000
BASE_MS = NOW_MS - NOW_MS % SIZE - 3_600_000


def tumbled(stream: str) -> str:
    """`stream`'s rows with their TUMBLE windows."""
    return (
        f"(SELECT * FROM TABLE(TUMBLE(TABLE {stream}, DESCRIPTOR(t), "
        f"INTERVAL '{SIZE}' MILLISECONDS)))"
    )


@pytest.fixture
def engine(kafka_server: Service) -> Iterator[Engine]:
    prefix = f"r{uuid.uuid4().hex[:8]}."
    log = KafkaLog(
        kafka_server.bootstrap,
        prefix=prefix,
        app_id="test",
        guarantee="exactly_once",
        transactional_id=f"{prefix}worker",
    )
    with Engine(log_=log, worker_id="w1") as e:
        yield e


def test_a_top_n_on_kafka_matches_duckdb(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM bid (auction BIGINT KEY, bidder BIGINT, price BIGINT) "
        "WITH (kafka_topic='bid', partitions=4, value_format='JSON');"
        "CREATE TABLE top2 WITH (key_format='JSON') AS SELECT bidder, rn, auction, price "
        "FROM (SELECT *, ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY price DESC) AS rn "
        "FROM bid) WHERE rn <= 2 EMIT CHANGES;"
    )
    # distinct prices (7919 and 10007 are coprime), so each rank has one answer
    bids = [(i % 13, i % 7, i * 7919 % 10007) for i in range(400)]
    for auction, bidder, price in bids:
        engine.insert("BID", {"AUCTION": auction, "BIDDER": bidder, "PRICE": price})
    engine.drain()
    got = {
        (r["BIDDER"], r["RN"], r["AUCTION"], r["PRICE"])
        for r in engine.query("SELECT * FROM top2;")
    }
    con = duckdb.connect()
    con.execute("create table bid (auction bigint, bidder bigint, price bigint)")
    con.executemany("insert into bid values (?, ?, ?)", bids)
    want = con.execute(
        "select bidder, rn, auction, price from (select *, row_number() over "
        "(partition by bidder order by price desc) as rn from bid) where rn <= 2"
    ).fetchall()
    assert len(want) == 14
    assert got == set(want)


def test_a_window_join_on_kafka_matches_duckdb(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM l (id STRING KEY, v BIGINT, t BIGINT) WITH "
        "(kafka_topic='l', partitions=1, value_format='JSON', timestamp='t');"
        "CREATE STREAM r (id STRING KEY, w BIGINT, t BIGINT) WITH "
        "(kafka_topic='r', partitions=1, value_format='JSON', timestamp='t');"
        "CREATE STREAM j AS SELECT L.id AS id, L.v, R.w, L.window_start AS ws "
        f"FROM {tumbled('l')} L JOIN {tumbled('r')} R ON L.window_start = R.window_start "
        "AND L.window_end = R.window_end AND L.id = R.id;"
    )
    # times in order on each side, so no row is late; the last row of each side (far ahead)
    # closes every window before it
    rows: dict[str, list[tuple[str, int, int]]] = {"L": [], "R": []}
    for i in range(300):
        side = "L" if i % 3 else "R"
        rows[side].append((f"k{i % 5}", i, BASE_MS + 37 * i))
    for side in rows:
        rows[side].append(("end", -1, BASE_MS + 100 * SIZE))
    for side, column in (("L", "V"), ("R", "W")):
        for key, x, t in rows[side]:
            engine.insert(side, {"ID": key, column: x, "T": t})
    engine.drain()
    got = {(r["ID"], r["V"], r["W"], r["WS"]) for r in engine.query("SELECT * FROM j;")}
    con = duckdb.connect()
    for side in rows:
        con.execute(f"create table {side} (id varchar, x bigint, t bigint)")
        con.executemany(f"insert into {side} values (?, ?, ?)", rows[side])
    want: list[Any] = con.execute(
        f"select l.id, l.x, r.x, l.t // {SIZE} * {SIZE} from l join r on l.id = r.id "
        f"and l.t // {SIZE} = r.t // {SIZE} where l.id <> 'end'"
    ).fetchall()
    assert len(want) > 100
    assert got == set(want)
