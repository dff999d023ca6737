"""ROW_NUMBER() OVER: Top-N and deduplication kept up to date, compared with DuckDB's window
functions over the same rows (decoded with `json`, not hispeed), including the changes a
row leaving the top N makes, a table input's updates and deletes, and the errors for the
shapes that are not supported."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError
from hispeed.testing.wait import wait_for

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

STREAM = (
    "CREATE STREAM s (k STRING KEY, g STRING, v BIGINT, t BIGINT) WITH (kafka_topic='s', "
    "partitions=1, value_format='JSON', timestamp='t');"
)


def _rows(n: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    values = rng.sample(range(1_000_000), n)  # no ties: any order of equal values is right
    return [
        {"K": f"k{i}", "G": f"g{rng.randrange(7)}", "V": values[i], "T": 1000 + rng.randrange(n)}
        for i in range(n)
    ]


def _feed(engine: Engine, rows: list[dict[str, Any]], chunk: int) -> None:
    """Append the rows a chunk at a time, running the query after each: the top N changes
    across many batches, not once."""
    for start in range(0, len(rows), chunk):
        part = rows[start : start + chunk]
        engine.log.append("s", [(r["K"].encode(), json.dumps(r).encode()) for r in part])
        engine.drain()


def _changes(engine: Engine, topic: str) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    out = []
    for p in range(len(engine.log.describe_topic(topic).partitions)):
        for r in engine.log.read_table(topic, p).to_pylist():
            value = None if r["value"] is None else json.loads(r["value"])
            out.append((json.loads(r["key"]), value))
    return out


def _final(changes: list[tuple[dict[str, Any], dict[str, Any] | None]]) -> set[tuple[Any, ...]]:
    """The table the changelog leaves: each key's last value, tombstones deleting."""
    latest: dict[str, dict[str, Any] | None] = {}
    for key, value in changes:
        latest[json.dumps(key, sort_keys=True)] = None if value is None else {**key, **value}
    return {tuple(sorted(v.items())) for v in latest.values() if v is not None}


def _duckdb(rows: list[dict[str, Any]], sql: str) -> set[tuple[Any, ...]]:
    data = [{**r, "POS": i} for i, r in enumerate(rows)]
    s = DUCK.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(f"('{r['K']}', '{r['G']}', {r['V']}, {r['T']}, {r['POS']})" for r in data)
        + ") as t(k, g, v, t, pos)"
    )
    got = DUCK.sql(sql)
    names = [c.upper() for c in got.columns]
    return {tuple(sorted(zip(names, row, strict=True))) for row in got.fetchall()}


def test_top_n_follows_duckdb_as_rows_enter_and_leave(tmp_path: Path) -> None:
    rows = _rows(400, 1)
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(
            "CREATE TABLE top3 WITH (key_format='JSON') AS SELECT * FROM (SELECT g, k, v, "
            "ROW_NUMBER() OVER (PARTITION BY g ORDER BY v DESC) AS rn FROM s) WHERE rn <= 3 "
            "EMIT CHANGES;"
        )
        _feed(engine, rows, 9)
        changes = _changes(engine, "TOP3")
        pulled = engine.execute("SELECT * FROM top3;")[0].rows
    expected = _duckdb(
        rows,
        "select * from (select g, k, v, row_number() over (partition by g order by v desc) "
        "as rn from s) where rn <= 3",
    )
    assert len(expected) == 21
    assert _final(changes) == expected
    assert {tuple(sorted(r.items())) for r in pulled} == expected
    # rows left the top 3 as better ones came: their ranks were written again and again
    assert len(changes) > 2 * len(expected)
    ranks = [k["RN"] for k, _ in changes]
    assert set(ranks) == {1, 2, 3}


@pytest.mark.parametrize(("direction", "which"), [("ASC", "first"), ("DESC", "last")])
def test_dedup_keeps_the_first_or_the_last_row(tmp_path: Path, direction: str, which: str) -> None:
    rows = _rows(300, 2)
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(
            "CREATE TABLE d AS SELECT g, k, v, t FROM (SELECT *, ROW_NUMBER() OVER "
            f"(PARTITION BY g ORDER BY t {direction}) AS rn FROM s) WHERE rn = 1 EMIT CHANGES;"
        )
        _feed(engine, rows, 13)
        changes = _changes_plain(engine, "D")
    # ties in t go to the row that came first, either way (as Flink's deduplication)
    expected = _duckdb(
        rows,
        f"select g, k, v, t from (select *, row_number() over (partition by g order by t "
        f"{direction}, pos) as rn from s) where rn = 1",
    )
    assert len(expected) == 7
    assert _final(changes) == expected, which


def _changes_plain(
    engine: Engine, topic: str
) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """A KAFKA-keyed sink of one STRING key column G."""
    out = []
    for r in engine.log.read_table(topic, 0).to_pylist():
        value = None if r["value"] is None else json.loads(r["value"])
        out.append(({"G": r["key"].decode()}, value))
    return out


def test_a_table_input_retracts_rows_leaving_the_top_n(tmp_path: Path) -> None:
    """Over a table, an update moves a row and a delete takes it out: the next row comes
    in, and a rank left empty is deleted with a tombstone."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE TABLE items (id STRING PRIMARY KEY, cat STRING, price BIGINT) WITH "
            "(kafka_topic='items', partitions=1, value_format='JSON');"
        )
        engine.execute(
            "CREATE TABLE best WITH (key_format='JSON') AS SELECT * FROM (SELECT cat, id, "
            "price, ROW_NUMBER() OVER (PARTITION BY cat ORDER BY price DESC) AS rn FROM items "
            "WHERE price > 0) WHERE rn <= 2 EMIT CHANGES;"
        )
        state: dict[str, tuple[str, int]] = {}

        def put(key: str, value: tuple[str, int] | None) -> None:
            if value is None:
                state.pop(key, None)
                engine.log.append("items", [(key.encode(), None)])
            else:
                state[key] = value
                body = {"CAT": value[0], "PRICE": value[1]}
                engine.log.append("items", [(key.encode(), json.dumps(body).encode())])
            engine.drain()

        put("a", ("x", 10))
        put("b", ("x", 20))
        put("c", ("x", 5))
        put("d", ("y", 7))
        put("b", None)  # the best leaves: a moves up, c comes in
        put("a", ("x", 1))  # an update moves a below c
        put("d", ("y", -1))  # fails the WHERE: y's only rank is left empty
        changes = _changes(engine, "BEST")
        rng = random.Random(3)
        for _ in range(120):
            key = f"i{rng.randrange(15)}"
            put(
                key, None if rng.random() < 0.3 else (f"c{rng.randrange(3)}", rng.randrange(-5, 99))
            )
        final = _final(_changes(engine, "BEST"))
    assert ({"CAT": "y", "RN": 1}, None) in changes  # the tombstone of y's empty rank
    assert ({"CAT": "x", "RN": 1}, {"ID": "c", "PRICE": 5}) in changes
    table = [(k, c, p) for k, (c, p) in state.items()]
    items = DUCK.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values " + ", ".join(f"('{k}', '{c}', {p})" for k, c, p in table) + ") "
        "as t(id, cat, price)"
    )
    got = DUCK.sql(
        "select * from (select cat, id, price, row_number() over (partition by cat order by "
        "price desc, id) as rn from items where price > 0) where rn <= 2"
    )
    names = [c.upper() for c in got.columns]
    expected = {tuple(sorted(zip(names, r, strict=True))) for r in got.fetchall()}
    # equal prices may rank either way: compare what is kept per partition and its prices
    assert _by_rank(final) == _by_rank(expected)


def _by_rank(rows: set[tuple[Any, ...]]) -> set[tuple[Any, ...]]:
    return {(d["CAT"], d["RN"], d["PRICE"]) for d in (dict(r) for r in rows)}


ERRORS = [
    (
        "SELECT g, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn FROM s EMIT CHANGES;",
        (1, "ROW_NUMBER"),
        "in a subquery whose rank the outer query bounds",
    ),
    (
        "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn "
        "FROM s) EMIT CHANGES;",
        (1, "SELECT"),
        "needs the outer query to bound the rank",
    ),
    (
        "SELECT * FROM (SELECT g, v,\n  RANK() OVER (PARTITION BY g ORDER BY v) AS rn "
        "FROM s) WHERE rn <= 2 EMIT CHANGES;",
        (2, "RANK"),
        "RANK() ranks a table's rows",
    ),
    (
        "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn "
        "FROM s) WHERE rn = 2 EMIT CHANGES;",
        (1, "rn = 2"),
        "RN = 2 is not supported",
    ),
    (
        "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn "
        "FROM s) WHERE rn <= 2 AND v > 3 EMIT CHANGES;",
        (1, "rn <= 2 AND"),
        "filter the rows in the subquery's WHERE",
    ),
    (
        "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g) AS rn "
        "FROM s) WHERE rn <= 2 EMIT CHANGES;",
        (1, "ROW_NUMBER"),
        "needs ORDER BY",
    ),
    (
        "SELECT v, rn FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn "
        "FROM s) WHERE rn <= 2 EMIT CHANGES;",
        (1, "g ORDER"),
        "select G in the outer query",
    ),
    (
        "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v "
        "ROWS BETWEEN 1 PRECEDING AND CURRENT ROW) AS rn FROM s) WHERE rn <= 2 EMIT CHANGES;",
        (1, "ROWS"),
        "a frame (ROWS or RANGE BETWEEN ...) is not supported",
    ),
    (
        "CREATE STREAM bad AS SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g "
        "ORDER BY v) AS rn FROM s) WHERE rn <= 2 EMIT CHANGES;",
        (1, "SELECT"),
        "CREATE TABLE ... AS SELECT, not as a STREAM",
    ),
]


@pytest.mark.parametrize(("text", "where", "says"), ERRORS)
def test_unsupported_shapes_are_refused_where_they_are(
    tmp_path: Path, text: str, where: tuple[int, str], says: str
) -> None:
    line, marker = where
    column = text.split("\n")[line - 1].index(marker) + 1
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        run = engine.stream if text.startswith("SELECT") else engine.execute
        with pytest.raises(SqlError) as err:
            run(text)
    assert says in str(err.value)
    assert (err.value.line, err.value.column) == (line, column), str(err.value)


def test_a_pull_query_over_a_subquery_says_what_runs_instead(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        with pytest.raises(HispeedError) as err:
            engine.execute(
                "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS "
                "rn FROM s) WHERE rn <= 2;"
            )
    assert "don't support subqueries in FROM" in str(err.value)


def test_a_push_query_ranks_as_rows_arrive(tmp_path: Path) -> None:
    rows = [
        {"K": "k0", "G": "a", "V": 1, "T": 1},
        {"K": "k1", "G": "a", "V": 5, "T": 2},
        {"K": "k2", "G": "b", "V": 3, "T": 3},
    ]
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        _feed(engine, rows, 3)
        text = (
            "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v DESC) "
            "AS rn FROM s) WHERE rn <= 2 EMIT CHANGES;"
        )
        got: list[dict[str, Any]] = []
        with engine.stream(text, from_beginning=True) as query:
            wait_for(lambda: got.extend(query.poll(0.2)) or len(got) >= 3)
    assert sorted(got, key=lambda r: (r["G"], r["RN"])) == [
        {"G": "a", "V": 5, "RN": 1},
        {"G": "a", "V": 1, "RN": 2},
        {"G": "b", "V": 3, "RN": 1},
    ]


@pytest.mark.parametrize("function", ["RANK", "DENSE_RANK"])
def test_rank_over_a_table_keeps_ties_keyed_by_the_tables_key(
    tmp_path: Path, function: str
) -> None:
    """RANK/DENSE_RANK() ... WHERE rk <= 3 over a table: every row tied within the bound is
    kept (a result keyed by the partition and the input's key, the rank a value), updated,
    moved and deleted rows followed; the final table equals DuckDB's rank()/dense_rank()."""
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE TABLE items (id STRING PRIMARY KEY, cat STRING, price BIGINT) WITH "
            "(kafka_topic='items', partitions=1, value_format='JSON');"
        )
        engine.execute(
            f"CREATE TABLE best WITH (key_format='JSON') AS SELECT cat, id, price, rk FROM "
            f"(SELECT cat, id, price, {function}() OVER (PARTITION BY cat ORDER BY price DESC) "
            "AS rk FROM items WHERE price > 0) WHERE rk <= 3 EMIT CHANGES;"
        )
        state: dict[str, tuple[str, int]] = {}
        rng = random.Random(9)
        for n in range(300):
            key = f"i{rng.randrange(30)}"
            if rng.random() < 0.2:
                state.pop(key, None)
                engine.log.append("items", [(key.encode(), None)])
            else:
                value = (f"c{rng.randrange(3)}", rng.randrange(-2, 8))  # ties are common
                state[key] = value
                body = {"CAT": value[0], "PRICE": value[1]}
                engine.log.append("items", [(key.encode(), json.dumps(body).encode())])
            if n % 5 == 0:
                engine.drain()
        engine.drain()
        changes = _changes(engine, "BEST")
    items = DUCK.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(f"('{k}', '{c}', {p})" for k, (c, p) in state.items())
        + ") as t(id, cat, price)"
    )
    got = DUCK.sql(
        f"select * from (select cat, id, price, {function.lower()}() over (partition by cat "
        "order by price desc) as rk from items where price > 0) where rk <= 3"
    )
    names = [c.upper() for c in got.columns]
    expected = {tuple(sorted(zip(names, r, strict=True))) for r in got.fetchall()}
    assert len(expected) > 9  # ties: more than 3 rows in some partition
    assert _final(changes) == expected
    assert any(value is None for _, value in changes)  # rows left with tombstones


def test_a_table_partitions_rows_are_bounded_by_a_setting(tmp_path: Path) -> None:
    """query.topn.table.max.rows bounds the rows a table input's partition keeps: the rows
    ranked below it are let go, and the processing log says so; the top N stays right."""
    properties = {"query.topn.table.max.rows": 3}
    with Engine(tmp_path / "data", properties=properties) as engine:
        engine.execute(
            "CREATE TABLE items (id STRING PRIMARY KEY, cat STRING, price BIGINT) WITH "
            "(kafka_topic='items', partitions=1, value_format='JSON');"
        )
        engine.execute(
            "CREATE TABLE best WITH (key_format='JSON') AS SELECT * FROM (SELECT cat, id, "
            "price, ROW_NUMBER() OVER (PARTITION BY cat ORDER BY price DESC) AS rn FROM items) "
            "WHERE rn <= 1 EMIT CHANGES;"
        )
        for i, price in enumerate([5, 9, 1, 7, 3, 8]):
            body = json.dumps({"CAT": "x", "PRICE": price}).encode()
            engine.log.append("items", [(f"i{i}".encode(), body)])
        engine.drain()
        engine.log.append("items", [(b"i1", None)])  # the best leaves: 8 comes up
        engine.drain()
        changes = _changes(engine, "BEST")
        log = engine.log.read_table("hispeed_processing_log", 0).column("value").to_pylist()
    # rn <= 1 keeps one row per partition: keyed by the partition alone, its rank a value
    latest = {json.dumps(key): value for key, value in changes}
    assert latest == {'"x"': {"ID": "i5", "PRICE": 8, "RN": 1}}
    messages = [json.loads(v)["message"] for v in log]
    assert any("query.topn.table.max.rows" in m for m in messages), messages


def test_a_bad_table_rows_setting_is_refused(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", properties={"query.topn.table.max.rows": "lots"}) as engine:
        engine.execute(
            "CREATE TABLE items (id STRING PRIMARY KEY, cat STRING, price BIGINT) WITH "
            "(kafka_topic='items', partitions=1, value_format='JSON');"
        )
        with pytest.raises(HispeedError, match=r"query\.topn\.table\.max\.rows must be"):
            engine.execute(
                "CREATE TABLE best WITH (key_format='JSON') AS SELECT * FROM (SELECT cat, id, "
                "price, ROW_NUMBER() OVER (PARTITION BY cat ORDER BY price DESC) AS rn FROM "
                "items) WHERE rn <= 1 EMIT CHANGES;"
            )
