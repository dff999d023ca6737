"""Joins past ksqlDB's one equality (docs/sql.md, "Joins past ksqlDB"): several conditions and
non-equi conditions in ON, with outer joins' matching decided by them; interval joins from
time bounds; comma joins; several foreign-key joins in one query. Each result is compared
with DuckDB's over the same records (decoded with `json`, not hispeed)."""

from __future__ import annotations

import json
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.log.base import Record
from tests.engine.test_joins import open_engine, send

# a database of this module's own: tables made on duckdb's process-wide default connection
# (`s`, `a`, `b`) would shadow other test files' data frames of those names
DB = duckdb.connect()

BIDS = (
    "CREATE STREAM bids (auction STRING KEY, price INT, ch STRING, t BIGINT) "
    "WITH (kafka_topic='bids', value_format='JSON', partitions=1, timestamp='t');"
)
ASKS = (
    "CREATE STREAM asks (auction STRING KEY, floor INT, ch STRING, t BIGINT) "
    "WITH (kafka_topic='asks', value_format='JSON', partitions=1, timestamp='t');"
)
AUCTIONS = (
    "CREATE TABLE auctions (id STRING PRIMARY KEY, reserve INT, ch STRING) "
    "WITH (kafka_topic='auctions', value_format='JSON', partitions=1);"
)
ORDERS = (
    "CREATE TABLE orders (id STRING PRIMARY KEY, cust STRING, prod STRING, qty INT) "
    "WITH (kafka_topic='orders', value_format='JSON', partitions=1);"
)
CUSTOMERS = (
    "CREATE TABLE customers (id STRING PRIMARY KEY, name STRING, cap INT) "
    "WITH (kafka_topic='customers', value_format='JSON', partitions=1);"
)
PRODUCTS = (
    "CREATE TABLE products (id STRING PRIMARY KEY, title STRING, stock INT) "
    "WITH (kafka_topic='products', value_format='JSON', partitions=1);"
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = open_engine(tmp_path / "data")
    for ddl in (BIDS, ASKS, AUCTIONS, ORDERS, CUSTOMERS, PRODUCTS):
        e.execute(ddl)
    yield e
    e.close()


def rows(engine: Engine, topic: str) -> list[tuple[str | None, dict[str, Any] | None]]:
    out = []
    for r in engine.log.read_table(topic, 0).to_pylist():
        key = r["key"].decode() if r["key"] is not None else None
        out.append((key, json.loads(r["value"]) if r["value"] is not None else None))
    return out


def final(engine: Engine, topic: str) -> dict[str | None, dict[str, Any]]:
    """A table's rows as its changelog leaves them: the last value per key, tombstones
    deleting."""
    state: dict[str | None, dict[str, Any]] = {}
    for key, value in rows(engine, topic):
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def table_state(changes: list[tuple[str, dict[str, Any] | None]]) -> dict[str, dict[str, Any]]:
    state: dict[str, dict[str, Any]] = {}
    for key, value in changes:
        if value is None:
            state.pop(key, None)
        else:
            state[key] = value
    return state


def test_stream_table_several_conditions_inner_and_left_match_duckdb(engine: Engine) -> None:
    rng = random.Random(7)
    engine.execute(
        "CREATE STREAM st_left AS SELECT b.auction, price, b.ch AS ch, reserve FROM bids b "
        "LEFT JOIN auctions a ON b.auction = a.id AND b.ch = a.ch AND b.price > a.reserve;"
    )
    engine.execute(
        "CREATE STREAM st_inner AS SELECT b.auction, price, b.ch AS ch, reserve FROM bids b "
        "JOIN auctions a ON a.ch = b.ch AND b.auction = a.id AND b.price > a.reserve;"
    )
    # the table first (updates and deletions included), then the bids: each bid joins the
    # table as it finally is
    changes: list[tuple[str, dict[str, Any] | None]] = []
    for _ in range(60):
        key = f"a{rng.randrange(12)}"
        value = (
            None
            if rng.random() < 0.15
            else {"RESERVE": rng.randrange(50), "CH": rng.choice(["x", "y"])}
        )
        changes.append((key, value))
        send(engine, "auctions", key, value, 1)
    bids = []
    for i in range(150):
        bid = {"auction": f"a{rng.randrange(14)}", "price": rng.randrange(60)}
        bid["ch"] = rng.choice(["x", "y", None])
        bids.append(bid)
        value = {"PRICE": bid["price"], "CH": bid["ch"], "T": 10 + i}
        send(engine, "bids", str(bid["auction"]), value, 10 + i)
    table = table_state(changes)
    DB.sql("CREATE OR REPLACE TEMP TABLE b (auction VARCHAR, price INT, ch VARCHAR)")
    DB.executemany("INSERT INTO b VALUES (?, ?, ?)", [list(x.values()) for x in bids])
    DB.sql("CREATE OR REPLACE TEMP TABLE a (id VARCHAR, reserve INT, ch VARCHAR)")
    DB.executemany(
        "INSERT INTO a VALUES (?, ?, ?)", [[k, v["RESERVE"], v["CH"]] for k, v in table.items()]
    )
    on = "b.auction = a.id AND b.ch = a.ch AND b.price > a.reserve"
    for kind, topic in (("LEFT", "ST_LEFT"), ("INNER", "ST_INNER")):
        want = Counter(
            DB.sql(
                f"SELECT b.auction, b.price, b.ch, a.reserve FROM b {kind} JOIN a ON {on}"
            ).fetchall()
        )
        got = Counter((k, v["PRICE"], v["CH"], v["RESERVE"]) for k, v in rows(engine, topic) if v)
        assert got == want, kind
    # the left join keeps every bid, matched or not
    assert len(rows(engine, "ST_LEFT")) == len(bids)


def _interval_events(rng: random.Random) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    bids, asks = [], []
    t = 1_000
    for _ in range(300):
        t += rng.randrange(0, 400)
        key = f"k{rng.randrange(6)}"
        if rng.random() < 0.5:
            bids.append({"auction": key, "price": rng.randrange(30), "t": t})
        else:
            asks.append({"auction": key, "floor": rng.randrange(30), "t": t})
    return bids, asks


def _send_in_time_order(engine: Engine, bids: list[Any], asks: list[Any]) -> None:
    events = [("bids", b, "PRICE", "price") for b in bids] + [
        ("asks", a, "FLOOR", "floor") for a in asks
    ]
    events.sort(key=lambda e: e[1]["t"])
    for topic, ev, name, field in events:
        send(engine, topic, ev["auction"], {name: ev[field], "CH": "x", "T": ev["t"]}, ev["t"])
    # a record on each side far later, in a key nothing joins, closes every window
    end = events[-1][1]["t"] + 60_000
    send(engine, "bids", "end", {"PRICE": 0, "CH": "x", "T": end}, end)
    send(engine, "asks", "end", {"FLOOR": 0, "CH": "x", "T": end + 1}, end + 1)


def _load_interval(bids: list[Any], asks: list[Any]) -> None:
    DB.sql("CREATE OR REPLACE TEMP TABLE b (auction VARCHAR, price INT, t BIGINT)")
    DB.executemany("INSERT INTO b VALUES (?, ?, ?)", [list(x.values()) for x in bids])
    DB.sql("CREATE OR REPLACE TEMP TABLE s (auction VARCHAR, floor INT, t BIGINT)")
    DB.executemany("INSERT INTO s VALUES (?, ?, ?)", [list(x.values()) for x in asks])


def test_interval_join_bounds_and_residual_match_duckdb_for_each_kind(engine: Engine) -> None:
    """`b.t BETWEEN s.t - INTERVAL '1' SECOND AND s.t + 500 ms` and `b.price > s.floor`:
    an unmatched row of an outer side comes out once its window closes, NULL-padded."""
    rng = random.Random(11)
    bids, asks = _interval_events(rng)
    cond = (
        "b.auction = s.auction AND b.t BETWEEN s.t - INTERVAL '1' SECOND "
        "AND s.t + INTERVAL '500' MILLISECOND AND b.price > s.floor"
    )
    for kind in ("INNER", "LEFT", "RIGHT", "FULL"):
        key = "ROWKEY AS k" if kind == "FULL" else "b.auction"
        engine.execute(
            f"CREATE STREAM iv_{kind} AS SELECT {key}, price, floor FROM bids b {kind} JOIN "
            f"asks s ON {cond};"
        )
    _send_in_time_order(engine, bids, asks)
    _load_interval(bids, asks)
    in_duckdb = (
        "b.auction = s.auction AND b.t BETWEEN s.t - 1000 AND s.t + 500 AND b.price > s.floor"
    )
    for kind in ("INNER", "LEFT", "RIGHT", "FULL"):
        want = Counter(
            DB.sql(f"SELECT b.price, s.floor FROM b {kind} JOIN s ON {in_duckdb}").fetchall()
        )
        got = Counter(
            (v["PRICE"], v["FLOOR"])
            for k, v in rows(engine, f"IV_{kind}")
            if v is not None and k != "end"
        )
        assert got == want, kind
        assert sum(want.values()) > 0


def test_comma_join_takes_keys_and_time_bounds_from_where(engine: Engine) -> None:
    """Flink's `FROM a, b WHERE a.x = b.y AND a.t >= b.t - ... AND a.t <= b.t`."""
    rng = random.Random(5)
    bids, asks = _interval_events(rng)
    engine.execute(
        "CREATE STREAM comma AS SELECT b.auction, price, floor FROM bids b, asks s "
        "WHERE b.auction = s.auction AND b.t >= s.t - INTERVAL '2' SECOND AND b.t <= s.t "
        "AND b.price < s.floor;"
    )
    _send_in_time_order(engine, bids, asks)
    _load_interval(bids, asks)
    want = Counter(
        DB.sql(
            "SELECT b.auction, b.price, s.floor FROM b, s WHERE b.auction = s.auction AND "
            "b.t >= s.t - 2000 AND b.t <= s.t AND b.price < s.floor"
        ).fetchall()
    )
    got = Counter((k, v["PRICE"], v["FLOOR"]) for k, v in rows(engine, "COMMA") if v)
    assert got == want
    assert want


def _table_changes(rng: random.Random) -> list[tuple[str, str, dict[str, Any] | None]]:
    changes: list[tuple[str, str, dict[str, Any] | None]] = []
    for _ in range(200):
        r = rng.random()
        if r < 0.4:
            key = f"o{rng.randrange(15)}"
            value = {
                # (not NULL: ksqlDB's inner foreign-key join leaves a row's old result when
                # its key turns NULL, where SQL would drop it)
                "CUST": f"c{rng.randrange(5)}",
                "PROD": f"p{rng.randrange(5)}",
                "QTY": rng.randrange(10),
            }
            changes.append(("orders", key, None if rng.random() < 0.1 else value))
        elif r < 0.7:
            value = {"NAME": rng.choice(["Ada", "Bob", "Cy"]), "CAP": rng.randrange(10)}
            changes.append(("customers", f"c{rng.randrange(5)}", None if r < 0.45 else value))
        else:
            value = {"TITLE": rng.choice(["pen", "ink"]), "STOCK": rng.randrange(10)}
            changes.append(("products", f"p{rng.randrange(5)}", None if r < 0.75 else value))
    return changes


def _load_tables(changes: list[tuple[str, str, dict[str, Any] | None]]) -> None:
    for name, cols in (
        ("orders", "id VARCHAR, cust VARCHAR, prod VARCHAR, qty INT"),
        ("customers", "id VARCHAR, name VARCHAR, cap INT"),
        ("products", "id VARCHAR, title VARCHAR, stock INT"),
    ):
        state = table_state([(k, v) for t, k, v in changes if t == name])
        DB.sql(f"CREATE OR REPLACE TEMP TABLE {name} ({cols})")
        width = cols.count(",") + 1
        if state:
            DB.executemany(
                f"INSERT INTO {name} VALUES ({', '.join('?' * width)})",
                [[k, *v.values()] for k, v in state.items()],
            )


def test_table_joins_with_residuals_and_several_foreign_keys_match_duckdb(
    engine: Engine,
) -> None:
    """Two foreign keys in one query (ksqlDB's issue 8576), each with a condition past its
    key, through updates and deletions on every table: the result table's final rows are
    DuckDB's join of the final tables."""
    engine.execute(
        "CREATE TABLE fk2 AS SELECT o.id, name, title, qty FROM orders o "
        "JOIN customers c ON o.cust = c.id AND o.qty <= c.cap "
        "LEFT JOIN products p ON o.prod = p.id AND o.qty < p.stock;"
    )
    engine.execute(
        "CREATE TABLE pk_left AS SELECT c.id, name, title FROM customers c "
        "LEFT JOIN products p ON c.id = p.id AND c.cap > p.stock;"
    )
    rng = random.Random(3)
    changes = _table_changes(rng)
    # products keyed like customers for the primary-key join
    for i, (topic, key, value) in enumerate(changes):
        send(engine, topic, key, value, i + 1)
        if topic == "products":
            send(engine, "products", "c" + key[1:], value, i + 1)
    extra = [("products", "c" + k[1:], v) for t, k, v in changes if t == "products"]
    _load_tables(changes + extra)
    want = {
        r[0]: {"NAME": r[1], "TITLE": r[2], "QTY": r[3]}
        for r in DB.sql(
            "SELECT o.id, c.name, p.title, o.qty FROM orders o "
            "JOIN customers c ON o.cust = c.id AND o.qty <= c.cap "
            "LEFT JOIN products p ON o.prod = p.id AND o.qty < p.stock"
        ).fetchall()
    }
    assert final(engine, "FK2") == want
    assert want
    want_pk = {
        r[0]: {"NAME": r[1], "TITLE": r[2]}
        for r in DB.sql(
            "SELECT c.id, c.name, p.title FROM customers c "
            "LEFT JOIN products p ON c.id = p.id AND c.cap > p.stock"
        ).fetchall()
    }
    assert final(engine, "PK_LEFT") == want_pk
    assert want_pk


@pytest.mark.parametrize(
    ("statement", "message", "at"),
    [
        (
            "CREATE STREAM e1 AS SELECT * FROM bids b JOIN asks s ON b.auction = s.auction "
            "AND b.price BETWEEN s.floor - 5 AND s.floor;",
            "B.PRICE is not the time of `B`'s records",
            "b.price BETWEEN",
        ),
        (
            "CREATE STREAM e2 AS SELECT * FROM bids b JOIN asks s ON b.auction = s.auction "
            "AND b.t >= s.t;",
            "bounds the time between the two sides' records on one side only",
            ">= s.t",  # a comparison is placed at its operator
        ),
        (
            "CREATE STREAM e3 AS SELECT * FROM bids b, asks s WHERE b.price > 3;",
            "nothing in WHERE joins `S` to the sources before it",
            ", asks",
        ),
        (
            "CREATE TABLE e4 AS SELECT * FROM customers c FULL JOIN products p ON c.id = p.id "
            "AND c.cap > p.stock;",
            "a FULL OUTER join of tables joins on its key alone",
            "> p.stock",
        ),
        (
            "CREATE STREAM e5 AS SELECT * FROM bids b JOIN asks s WITHIN 1 SECOND "
            "ON b.price > s.floor AND b.ch <> s.ch;",
            "a join needs an equality between a column",
            "AND b.ch",  # the ON condition, at its AND
        ),
        (
            "CREATE STREAM e6 AS SELECT * FROM bids b JOIN auctions a ON b.auction = a.id "
            "AND b.ch > 5;",
            "Cannot compare B.CH (STRING) to 5 (INTEGER)",  # ON's, though it runs as a filter
            "> 5",
        ),
        (
            # one bound from the record times, the other from a column that is not one
            "CREATE STREAM e7 AS SELECT * FROM bids b, asks s WHERE b.auction = s.auction "
            "AND b.t BETWEEN s.t AND s.floor;",
            "S.FLOOR is not the time of `S`'s records (ROWTIME or T)",
            "s.floor;",
        ),
    ],
)
def test_refused_join_conditions_say_where(
    engine: Engine, statement: str, message: str, at: str
) -> None:
    with pytest.raises(HispeedError) as raised:
        engine.execute(statement)
    err = raised.value
    assert message in str(err)
    where = (getattr(err, "line", None), getattr(err, "column", None))
    assert where == (1, statement.index(at) + 1)


def test_joins_on_a_key_of_several_columns_match_duckdb(engine: Engine) -> None:
    """`ON s.a = t.k1 AND s.b = t.k2` against a table keyed by (k1, k2): the join key is
    the STRUCT of both, which keys the result (ROWKEY)."""
    for ddl in (
        "CREATE STREAM ev (a STRING KEY, b STRING, v INT) "
        "WITH (kafka_topic='ev', format='JSON', partitions=1);",
        "CREATE TABLE t2 (k1 STRING PRIMARY KEY, k2 STRING PRIMARY KEY, w INT) "
        "WITH (kafka_topic='t2', format='JSON', partitions=1);",
        "CREATE TABLE u2 (k1 STRING PRIMARY KEY, k2 STRING PRIMARY KEY, z INT) "
        "WITH (kafka_topic='u2', format='JSON', partitions=1);",
        "CREATE TABLE tu AS SELECT ROWKEY AS k, w, z FROM t2 LEFT JOIN u2 "
        "ON t2.k2 = u2.k2 AND t2.k1 = u2.k1 AND t2.w < u2.z;",
    ):
        engine.execute(ddl)
    rng = random.Random(9)
    changes: dict[str, list[tuple[str, dict[str, Any] | None]]] = {"t2": [], "u2": []}
    for i in range(150):
        topic = rng.choice(["t2", "u2"])
        key = {"K1": rng.choice("ab"), "K2": rng.choice("xyz")}
        name = "W" if topic == "t2" else "Z"
        value = None if rng.random() < 0.15 else {name: rng.randrange(10)}
        raw = json.dumps(value).encode() if value is not None else None
        engine.log.append(topic, [Record(raw, json.dumps(key).encode(), i + 1)], partition=0)
        engine.drain()
        changes[topic].append((json.dumps(key, sort_keys=True), value))
    db = duckdb.connect()  # its own: tables on the default connection hide other tests' frames
    for name, col in (("t2", "w"), ("u2", "z")):
        state = table_state(changes[name])
        db.sql(f"CREATE TABLE {name} (k1 VARCHAR, k2 VARCHAR, {col} INT)")
        if state:
            db.executemany(
                f"INSERT INTO {name} VALUES (?, ?, ?)",
                [[*json.loads(k).values(), *v.values()] for k, v in state.items()],
            )
    want = {
        (k1, k2): {"W": w, "Z": z}
        for k1, k2, w, z in db.sql(
            "SELECT t2.k1, t2.k2, w, z FROM t2 LEFT JOIN u2 "
            "ON t2.k2 = u2.k2 AND t2.k1 = u2.k1 AND t2.w < u2.z"
        ).fetchall()
    }
    got = {}
    for key, value in final(engine, "TU").items():
        assert key is not None
        parts = json.loads(key)
        got[(parts["K1"], parts["K2"])] = value
    assert got == want
    assert want
    assert (
        engine.catalog.get("TU")
        .schema_text()
        .startswith("`K` STRUCT<`K1` STRING, `K2` STRING> PRIMARY KEY")
    )
