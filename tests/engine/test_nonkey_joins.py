"""Table-table joins on non-key columns (ksqlDB's issue 9352), checked against DuckDB.

Each test puts its inputs into DuckDB too (as upserts and deletes by key), asks it for
the join of those, and compares it with the result table that the sink's changelog gives
(keys and values decoded with `json`, not with hispeed's serdes). The changelog is checked as
it goes: a retraction deletes only a row that is there.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.log.base import Record

T1 = (
    "CREATE TABLE t1 (id STRING PRIMARY KEY, a STRING, x INT) "
    "WITH (kafka_topic='t1', format='JSON', partitions=1);"
)
T2 = (
    "CREATE TABLE t2 (id STRING PRIMARY KEY, b STRING, c STRING, y INT) "
    "WITH (kafka_topic='t2', format='JSON', partitions=1);"
)
T3 = (
    "CREATE TABLE t3 (id STRING PRIMARY KEY, z INT) "
    "WITH (kafka_topic='t3', format='JSON', partitions=1);"
)

#: each result table and its query: the same text runs in hispeed and in DuckDB
QUERIES = {
    "INNER_J": "SELECT t1.id, t2.id, x, y FROM t1 JOIN t2 ON t1.a = t2.b",
    "LEFT_J": "SELECT t1.id, t2.id, x, y FROM t1 LEFT JOIN t2 ON t1.a = t2.b",
    # a condition past the equality: an inner join's is a filter that retracts pairs
    "INNER_COND_J": ("SELECT t1.id, t2.id, x, y FROM t1 JOIN t2 ON t1.a = t2.b AND t2.y > t1.x"),
    # ... an outer join's decides which pairs match; unmatched left rows stay
    "LEFT_COND_J": (
        "SELECT t1.id, t2.id, x, y FROM t1 LEFT JOIN t2 ON t1.a = t2.b AND t2.y > t1.x"
    ),
    # a foreign-key lookup after the many-to-many join: the pair stays the key
    "CHAIN_J": (
        "SELECT t1.id, t2.id, x, y, z FROM t1 JOIN t2 ON t1.a = t2.b LEFT JOIN t3 ON t2.c = t3.id"
    ),
}

#: RIGHT and FULL OUTER: a right row that matches nothing is keyed by NULL and its key
OUTER_QUERIES = {
    "RIGHT_J": "SELECT t1.id, t2.id, x, y FROM t1 RIGHT JOIN t2 ON t1.a = t2.b",
    "FULL_J": "SELECT t1.id, t2.id, x, y FROM t1 FULL OUTER JOIN t2 ON t1.a = t2.b",
    # a condition past the equality decides which pairs match; both sides' rows stay
    "RIGHT_COND_J": (
        "SELECT t1.id, t2.id, x, y FROM t1 RIGHT JOIN t2 ON t1.a = t2.b AND t2.y > t1.x"
    ),
    "FULL_COND_J": (
        "SELECT t1.id, t2.id, x, y FROM t1 FULL JOIN t2 ON t1.a = t2.b AND t2.y > t1.x"
    ),
    # a foreign-key lookup for each pair, unmatched ones too
    "FULL_CHAIN_J": (
        "SELECT t1.id, t2.id, x, y, z FROM t1 FULL JOIN t2 ON t1.a = t2.b "
        "LEFT JOIN t3 ON t2.c = t3.id"
    ),
}


def open_engine(path: Path, **properties: str) -> Engine:
    props = {"ksql.streams.cache.max.bytes.buffering": "0", **properties}
    return Engine(path, fsync="never", properties=props)


def send(engine: Engine, topic: str, key: str, value: dict[str, Any] | None, ts: int) -> None:
    """One record, processed before the next."""
    raw = json.dumps(value).encode() if value is not None else None
    engine.log.append(topic, [Record(raw, json.dumps(key).encode(), ts)], partition=0)
    engine.drain()


class Changelog:
    """A result table as its sink's records build it, read on from where it was."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.read = 0
        self.rows: dict[tuple[Any, ...], dict[str, Any]] = {}

    def follow(self, engine: Engine, key_names: list[str]) -> None:
        records = engine.log.read_table(self.topic, 0).to_pylist()
        for r in records[self.read :]:
            decoded = json.loads(r["key"])
            # a key of one column is its bare value, of several an object
            key = tuple(decoded[n] for n in key_names) if len(key_names) > 1 else (decoded,)
            if r["value"] is None:
                # a retraction takes back a row that is there, never one that is not
                assert key in self.rows, f"{self.topic}: a tombstone for {key}, not a row"
                del self.rows[key]
            else:
                self.rows[key] = json.loads(r["value"])
        self.read = len(records)


#: each table's value columns, in DuckDB's order
_COLUMNS = {"t1": ["a", "x"], "t2": ["b", "c", "y"], "t3": ["z"]}


class DuckDB:
    """The tables' rows in DuckDB (its own connection), and the joins it computes of them."""

    def __init__(self) -> None:
        self.con = duckdb.connect()
        self.con.execute("CREATE TABLE t1 (id VARCHAR PRIMARY KEY, a VARCHAR, x INTEGER)")
        self.con.execute(
            "CREATE TABLE t2 (id VARCHAR PRIMARY KEY, b VARCHAR, c VARCHAR, y INTEGER)"
        )
        self.con.execute("CREATE TABLE t3 (id VARCHAR PRIMARY KEY, z INTEGER)")

    def put(self, table: str, key: str, row: dict[str, Any] | None) -> None:
        """Upsert or (None) delete one row, as the table's record does."""
        self.con.execute(f"DELETE FROM {table} WHERE id = ?", [key])
        if row is not None:
            cols = _COLUMNS[table]
            values = [row.get(c.upper()) for c in cols]
            marks = ", ".join("?" for _ in range(len(cols) + 1))
            self.con.execute(f"INSERT INTO {table} VALUES ({marks})", [key, *values])

    def join(self, sql: str) -> dict[Any, Any]:
        """DuckDB's answer, keyed as the result is (its first two columns)."""
        return {(r[0], r[1]): list(r[2:]) for r in self.con.execute(sql).fetchall()}

    def groups(self) -> dict[Any, Any]:
        """Each left row's count and sum of its pairs (of the inner join)."""
        sql = "SELECT t1.id, COUNT(*), SUM(y) FROM t1 JOIN t2 ON t1.a = t2.b GROUP BY t1.id"
        return {r[0]: [r[1], r[2]] for r in self.con.execute(sql).fetchall()}

    def close(self) -> None:
        self.con.close()


def _pairs(log: Changelog) -> dict[Any, Any]:
    return {k: list(v.values()) for k, v in log.rows.items()}


def _started(path: Path, queries: dict[str, str]) -> Engine:
    """An engine with the three tables and a result table of each query."""
    engine = open_engine(path)
    for ddl in (T1, T2, T3):
        engine.execute(ddl)
    for name, query in queries.items():
        engine.execute(f"CREATE TABLE {name} AS {query};")
    return engine


def _random_change(
    rnd: random.Random, ts: int, spread: bool
) -> tuple[str, str, dict[str, Any] | None]:
    """One table's upsert or deletion: join values of three and NULL, keys of four a table;
    the numbers are its time, or (`spread`) drawn from 0 to 99."""

    def number() -> int:
        return rnd.randrange(100) if spread else ts

    topic = rnd.choice(["t1", "t1", "t2", "t2", "t3"])
    key = f"{topic[1]}{rnd.randrange(4)}"
    values = ["v", "w", "u", None]
    if rnd.random() < 0.2:
        return topic, key, None
    if topic == "t1":
        return topic, key, {"A": rnd.choice(values), "X": number()}
    if topic == "t2":
        return topic, key, {"B": rnd.choice(values), "C": f"3{rnd.randrange(3)}", "Y": number()}
    return topic, key, {"Z": ts}


@pytest.mark.parametrize("seed", [7, 2026])
def test_non_key_joins_match_duckdb_through_moves_deletes_and_a_restart(
    tmp_path: Path, seed: int
) -> None:
    """Rows move between join values, are updated and deleted on both sides, NULL values
    join nothing; after every record the INNER, LEFT and chained results, and an aggregation
    over the pairs, equal DuckDB's over the tables as they are, and a restart from the
    committed state goes on from there."""
    rnd = random.Random(seed)
    path = tmp_path / "data"
    oracle = DuckDB()
    logs = {name: Changelog(name) for name in QUERIES}
    engine = _started(path, QUERIES)
    # an aggregation over the pairs: a pair's retraction takes it out of its group
    engine.execute(
        "CREATE TABLE AGG_J AS SELECT t1.id, COUNT(*) AS n, SUM(y) AS s FROM t1 "
        "JOIN t2 ON t1.a = t2.b GROUP BY t1.id;"
    )
    groups = Changelog("AGG_J")
    try:
        for ts in range(1, 91):
            if ts == 45:  # a restart from what was committed
                engine.close()
                engine = open_engine(path)
            _change_and_compare(engine, oracle, rnd, ts, QUERIES, logs, spread=False)
            groups.follow(engine, ["T1_ID"])
            counted = {k[0]: [v["N"], v["S"]] for k, v in groups.rows.items() if v["N"]}
            assert counted == oracle.groups(), ts
    finally:
        engine.close()
        oracle.close()
    # the inputs were enough to exercise what the test is about
    assert any(len(v) > 1 for v in _by_left(logs["INNER_J"]).values())


def _by_left(log: Changelog) -> dict[Any, list[Any]]:
    out: dict[Any, list[Any]] = {}
    for left, right in log.rows:
        out.setdefault(left, []).append(right)
    return out


def _change_and_compare(
    engine: Engine,
    oracle: DuckDB,
    rnd: random.Random,
    ts: int,
    queries: dict[str, str],
    logs: dict[str, Changelog],
    spread: bool,
) -> None:
    """One random change to the engine and to DuckDB; then each result equals DuckDB's."""
    topic, key, row = _random_change(rnd, ts, spread)
    send(engine, topic, key, row, ts)
    oracle.put(topic, key, row)
    for name, sql in queries.items():
        logs[name].follow(engine, ["T1_ID", "T2_ID"])
        assert _pairs(logs[name]) == oracle.join(sql), (name, ts)


def _changes(engine: Engine, topic: str, key_names: list[str]) -> list[tuple[Any, Any]]:
    """A result's changelog from its start: (key, value or None) a record."""
    out = []
    for r in engine.log.read_table(topic, 0).to_pylist():
        decoded = json.loads(r["key"])
        value = json.loads(r["value"]) if r["value"] is not None else None
        out.append((tuple(decoded[n] for n in key_names), value))
    return out


@pytest.mark.parametrize("seed", [11])
def test_right_and_full_non_key_joins_match_duckdb_across_restarts(
    tmp_path: Path, seed: int
) -> None:
    """RIGHT and FULL OUTER joins on non-key columns: after every record the result equals
    DuckDB's join of the tables as they are, as rows move between values, are updated and
    deleted on both sides (right rows that match nothing come out with NULLs for the left
    key, go when a match comes and come back when it goes), through three restarts; at the
    end the changelog read from its start, its last value per key, is DuckDB's join too."""
    rnd = random.Random(seed)
    path = tmp_path / "data"
    oracle = DuckDB()
    logs = {name: Changelog(name) for name in OUTER_QUERIES}
    key_names = ["T1_ID", "T2_ID"]
    engine = _started(path, OUTER_QUERIES)
    try:
        for ts in range(1, 91):
            if ts in (25, 50, 75):  # a restart from what was committed
                engine.close()
                engine = open_engine(path)
            _change_and_compare(engine, oracle, rnd, ts, OUTER_QUERIES, logs, spread=True)
        for name, sql in OUTER_QUERIES.items():
            last: dict[Any, Any] = {}
            changes = _changes(engine, name, key_names)
            for k, value in changes:
                last[k] = value
            final = {k: list(v.values()) for k, v in last.items() if v is not None}
            assert final == oracle.join(sql), name
            # the inputs were enough: a right row alone came out and was taken back
            alone = [v for (left, _), v in changes if left is None]
            assert any(v is None for v in alone), name
            assert any(v is not None for v in alone), name
            if name.startswith("FULL"):
                assert any(right is None for (_, right), _ in changes), name
    finally:
        engine.close()
        oracle.close()


def test_a_right_row_alone_goes_when_a_match_comes_and_comes_back_when_it_goes(
    tmp_path: Path,
) -> None:
    """The changelog of a RIGHT join on a non-key column, record by record."""
    with open_engine(tmp_path / "data") as e:
        for ddl in (T1, T2):
            e.execute(ddl)
        e.execute(
            "CREATE TABLE j AS SELECT t1.id, t2.id, x, y FROM t1 RIGHT JOIN t2 ON t1.a = t2.b;"
        )
        send(e, "t2", "r", {"B": "v", "Y": 1}, 1)  # matches nothing: NULL for t1's key
        send(e, "t1", "l1", {"A": "v", "X": 2}, 2)  # its match: the row alone goes
        send(e, "t1", "l2", {"A": "v", "X": 3}, 3)  # a second match
        send(e, "t1", "l1", {"A": "w", "X": 4}, 4)  # moves away: one match left
        send(e, "t1", "l2", None, 5)  # the last match goes: the row alone comes back
        changes = _changes(e, "J", ["T1_ID", "T2_ID"])
    assert changes == [
        ((None, "r"), {"X": None, "Y": 1}),
        ((None, "r"), None),
        (("l1", "r"), {"X": 2, "Y": 1}),
        (("l2", "r"), {"X": 3, "Y": 1}),
        (("l1", "r"), None),
        (("l2", "r"), None),
        ((None, "r"), {"X": None, "Y": 1}),
    ]


def test_the_three_tables_of_issue_9352(tmp_path: Path) -> None:
    """ksqlDB's issue 9352: users, their reviewer rows and their e-mail addresses, joined on
    the user id that both of the others hold as a value column. The result is keyed by the
    three tables' keys and follows an address moving to another user."""
    with open_engine(tmp_path / "data") as e:
        e.execute(
            "CREATE TABLE users (userid STRING PRIMARY KEY, name STRING) "
            "WITH (kafka_topic='users', format='JSON', partitions=1);"
        )
        e.execute(
            "CREATE TABLE reviewers (reviewerid STRING PRIMARY KEY, userid STRING) "
            "WITH (kafka_topic='reviewers', format='JSON', partitions=1);"
        )
        e.execute(
            "CREATE TABLE emails (emailid STRING PRIMARY KEY, userid STRING, address STRING) "
            "WITH (kafka_topic='emails', format='JSON', partitions=1);"
        )
        e.execute(
            "CREATE TABLE reviewer_email_user AS SELECT users.userid, reviewerid, emailid, "
            "name, address FROM users JOIN reviewers ON users.userid = reviewers.userid "
            "JOIN emails ON users.userid = emails.userid;"
        )
        send(e, "users", "u1", {"NAME": "Ada"}, 1)
        send(e, "users", "u2", {"NAME": "Bo"}, 2)
        send(e, "reviewers", "r1", {"USERID": "u1"}, 3)
        send(e, "reviewers", "r2", {"USERID": "u1"}, 4)
        send(e, "reviewers", "r3", {"USERID": "u2"}, 5)
        send(e, "emails", "e1", {"USERID": "u1", "ADDRESS": "ada@a"}, 6)
        send(e, "emails", "e2", {"USERID": "u1", "ADDRESS": "ada@b"}, 7)
        send(e, "emails", "e2", {"USERID": "u2", "ADDRESS": "bo@b"}, 8)  # moves to u2
        send(e, "users", "u1", {"NAME": "Ada L"}, 9)
        log = Changelog("REVIEWER_EMAIL_USER")
        log.follow(e, ["USERS_USERID", "REVIEWERID", "EMAILID"])
    assert log.rows == {
        ("u1", "r1", "e1"): {"NAME": "Ada L", "ADDRESS": "ada@a"},
        ("u1", "r2", "e1"): {"NAME": "Ada L", "ADDRESS": "ada@a"},
        ("u2", "r3", "e2"): {"NAME": "Bo", "ADDRESS": "bo@b"},
    }


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = open_engine(tmp_path / "data")
    for ddl in (T1, T2, T3):
        e.execute(ddl)
    e.execute(
        "CREATE TABLE t4 (id STRING PRIMARY KEY, a STRING) "
        "WITH (kafka_topic='t4', value_format='JSON', partitions=1);"
    )
    yield e
    e.close()


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "CREATE TABLE x AS SELECT t1.id, x, y FROM t1 JOIN t2 ON t1.a = t2.b;",
            "Got T1.A = T2.B. hispeed joins on other columns too, keyed by both tables' "
            "primary keys (a left row may join many right rows): the projection must include "
            "the primary key columns of both tables. Missing column: `ID` of `T2`.",
        ),
        (
            # a key join's FULL result is keyed by ROWKEY, not by t1's key: no pair after it
            "CREATE TABLE x AS SELECT t1.id, t4.id, t2.id, x FROM t1 FULL JOIN t4 "
            "ON t1.id = t4.id JOIN t2 ON t1.a = t2.b;",
            "a join on a non-key column may follow only INNER and LEFT joins",
        ),
        (
            # the KAFKA key format (t4's, the default) holds one column
            "CREATE TABLE x AS SELECT t4.id, t2.id, y FROM t4 JOIN t2 ON t4.a = t2.b;",
            "which the KAFKA key format cannot hold (one column only): give the result a key "
            "format of several columns, like WITH (KEY_FORMAT='JSON').",
        ),
    ],
)
def test_non_key_joins_it_does_not_run_say_why(
    engine: Engine, statement: str, message: str
) -> None:
    with pytest.raises(HispeedError) as raised:
        engine.execute(statement)
    text = str(raised.value)
    # ksqlDB's words first (its conformance cases look for them), then hispeed's
    assert "table-table joins require to join on the primary key of the right input" in text
    assert message in text


def test_a_non_key_join_of_a_windowed_table_is_refused(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM s (id STRING KEY, a STRING) "
        "WITH (kafka_topic='s', format='JSON', partitions=1);"
    )
    engine.execute(
        "CREATE TABLE w AS SELECT id, LATEST_BY_OFFSET(a) AS a FROM s "
        "WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY id;"
    )
    with pytest.raises(HispeedError, match="not supported on windowed tables"):
        engine.execute("CREATE TABLE x AS SELECT w.id, t2.id, y FROM w JOIN t2 ON w.a = t2.b;")


def test_a_key_format_of_several_columns_named_in_with_is_taken(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE x WITH (KEY_FORMAT='JSON') AS SELECT t4.id, t2.id, y FROM t4 "
        "JOIN t2 ON t4.a = t2.b;"
    )
    # t4's key in the KAFKA format: the bare text
    engine.log.append("t4", [Record(b'{"A": "v"}', b"k", 1)], partition=0)
    engine.drain()
    send(engine, "t2", "r", {"B": "v", "Y": 5}, 2)
    log = Changelog("X")
    log.follow(engine, ["T4_ID", "T2_ID"])
    assert log.rows == {("k", "r"): {"Y": 5}}


def test_rows_past_the_bound_of_one_join_value_are_not_joined_and_logged(tmp_path: Path) -> None:
    """`query.join.nonkey.max.rows` bounds the rows of one table with one join value; a row
    past it is left out (as if deleted) and the processing log says which and why."""
    with open_engine(tmp_path / "data", **{"query.join.nonkey.max.rows": "2"}) as e:
        for ddl in (T1, T2):
            e.execute(ddl)
        e.execute("CREATE TABLE j AS SELECT t1.id, t2.id, x, y FROM t1 JOIN t2 ON t1.a = t2.b;")
        send(e, "t1", "l", {"A": "v", "X": 1}, 1)
        for i, ts in ((1, 2), (2, 3), (3, 4)):
            send(e, "t2", f"r{i}", {"B": "v", "Y": i}, ts)
        send(e, "t2", "r1", {"B": "w", "Y": 1}, 5)  # a place under v is free again
        send(e, "t2", "r4", {"B": "v", "Y": 4}, 6)
        log = Changelog("J")
        log.follow(e, ["T1_ID", "T2_ID"])
        errors = [
            json.loads(r["value"])
            for r in e.log.read_table("hispeed_processing_log", 0).to_pylist()
        ]
    assert log.rows == {("l", "r2"): {"X": 1, "Y": 2}, ("l", "r4"): {"X": 1, "Y": 4}}
    messages = [str(err) for err in errors]
    assert len([m for m in messages if "query.join.nonkey.max.rows" in m]) == 1
    assert any("'r3'" in m and "at most 2 rows" in m for m in messages)


def test_a_bound_that_is_not_a_number_of_rows_is_refused(tmp_path: Path) -> None:
    with open_engine(tmp_path / "data", **{"query.join.nonkey.max.rows": "0"}) as e:
        for ddl in (T1, T2):
            e.execute(ddl)
        with pytest.raises(HispeedError, match=r"query\.join\.nonkey\.max\.rows must be a whole"):
            e.execute("CREATE TABLE j AS SELECT t1.id, t2.id, x, y FROM t1 JOIN t2 ON t1.a = t2.b;")


def test_a_non_key_join_after_a_full_one_keys_by_all_three(tmp_path: Path) -> None:
    """A FULL OUTER non-key join, then a LEFT non-key join of t2 again on another column:
    the second join's left input is keyed by the first's pairs (NULLs where a side is
    missing), and its result by all three keys; after every record it equals DuckDB's,
    across a restart."""
    query = (
        "SELECT t1.id, t2.id, u.id, x, t2.y, u.y AS uy FROM t1 FULL JOIN t2 ON t1.a = t2.b "
        "LEFT JOIN t2 AS u ON t2.c = u.c"
    )
    rnd = random.Random(5)
    path = tmp_path / "data"
    oracle = DuckDB()
    log = Changelog("CHAIN3_J")
    names = ["T1_ID", "T2_ID", "U_ID"]
    engine = _started(path, {"CHAIN3_J": query})
    try:
        for ts in range(1, 81):
            if ts == 40:
                engine.close()
                engine = open_engine(path)
            topic, key, row = _random_change(rnd, ts, spread=True)
            send(engine, topic, key, row, ts)
            oracle.put(topic, key, row)
            log.follow(engine, names)
            got = {k: list(v.values()) for k, v in log.rows.items()}
            want = {tuple(r[:3]): list(r[3:]) for r in oracle.con.execute(query).fetchall()}
            assert got == want, ts
    finally:
        engine.close()
        oracle.close()
    assert any(k[0] is None for k in want), "a t2 row alone came out"
    assert any(k[1] is None and k[2] is None for k in want), "a t1 row alone came out"
    assert any(None not in k for k in want), "three rows joined"
