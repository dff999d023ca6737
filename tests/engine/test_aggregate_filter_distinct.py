"""Aggregate calls with DISTINCT and FILTER (WHERE ...) over streams and tables (past ksqlDB:
docs/sql.md), against DuckDB's computation over the same rows; tables' retractions included."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

AGGREGATES = (
    "COUNT(*) AS n, COUNT(*) FILTER (WHERE p < 10) AS cheap, "
    "COUNT(DISTINCT b) AS kinds, COUNT(DISTINCT b) FILTER (WHERE p >= 10) AS dear_kinds, "
    "SUM(p) FILTER (WHERE b = 1) AS ones, MAX(DISTINCT p) FILTER (WHERE b > 2) AS top, "
    "SUM(DISTINCT p) AS distinct_sum"
)
#: DuckDB's: SUM over no rows is NULL there, 0 in ksqlDB's SUM (which FILTER keeps)
DUCKDB = AGGREGATES.replace(
    "SUM(p) FILTER (WHERE b = 1)", "COALESCE(SUM(p) FILTER (WHERE b = 1), 0)"
)
DUCKDB = DUCKDB.replace("SUM(DISTINCT p)", "COALESCE(SUM(DISTINCT p), 0)")
COLUMNS = ("N", "CHEAP", "KINDS", "DEAR_KINDS", "ONES", "TOP", "DISTINCT_SUM")


def _latest(engine: Engine, topic: str) -> dict[bytes, dict[str, Any]]:
    """Each key's last value in a table's changelog (tombstones delete)."""
    table = engine.log.read_table(topic, 0)
    out: dict[bytes, dict[str, Any]] = {}
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        if v is None:
            out.pop(k, None)
        else:
            out[k] = json.loads(v)
    return out


def _rows(rng: random.Random, n: int) -> list[tuple[str, int | None, int | None]]:
    return [
        (
            rng.choice("abc"),
            rng.choice([None, 0, 1, 2, 3, 4, 5]),
            rng.choice([None, *range(0, 30)]),
        )
        for _ in range(n)
    ]


def test_stream_aggregates_with_filter_and_distinct_match_duckdb(tmp_path: Path) -> None:
    rows = _rows(random.Random(5), 600)
    with Engine(tmp_path / "d", properties={"query.max.poll.records": 50}) as e:
        e.execute(
            "CREATE STREAM s (g STRING KEY, b BIGINT, p BIGINT) WITH (kafka_topic='s', "
            "value_format='JSON', partitions=1);"
        )
        e.execute(f"CREATE TABLE agg AS SELECT g, {AGGREGATES} FROM s GROUP BY g;")
        e.log.append("s", [(g.encode(), json.dumps({"B": b, "P": p}).encode()) for g, b, p in rows])
        e.drain()
        got = {k.decode(): tuple(v[c] for c in COLUMNS) for k, v in _latest(e, "AGG").items()}
    con = duckdb.connect()
    con.execute("create table s (g varchar, b bigint, p bigint)")
    con.executemany("insert into s values (?, ?, ?)", rows)
    expected = {r[0]: r[1:] for r in con.sql(f"select g, {DUCKDB} from s group by g").fetchall()}
    assert got == expected


def test_table_aggregates_take_back_filtered_and_distinct_values(tmp_path: Path) -> None:
    """Rows of a table that change group, value or filter outcome, and rows deleted: each
    change takes the old row's contribution back (a distinct value leaves only with its last
    occurrence). Checked after every step against DuckDB over the table's rows then."""
    rng = random.Random(11)
    current: dict[int, tuple[str, int | None, int | None]] = {}
    with Engine(tmp_path / "d", properties={"query.max.poll.records": 7}) as e:
        e.execute(
            "CREATE TABLE t (id INT PRIMARY KEY, g STRING, b BIGINT, p BIGINT) "
            "WITH (kafka_topic='t', value_format='JSON', partitions=1);"
        )
        e.execute(f"CREATE TABLE agg AS SELECT g, {AGGREGATES} FROM t GROUP BY g;")
        for step in range(8):
            records: list[tuple[bytes, bytes | None]] = []
            for _ in range(40):
                key = rng.randrange(25)
                if key in current and rng.random() < 0.3:
                    del current[key]
                    records.append((key.to_bytes(4, "big"), None))
                    continue
                g, b, p = _rows(rng, 1)[0]
                current[key] = (g, b, p)
                value = json.dumps({"G": g, "B": b, "P": p}).encode()
                records.append((key.to_bytes(4, "big"), value))
            e.log.append("t", records)
            e.drain()
            got = {
                k.decode(): tuple(v[c] for c in COLUMNS)
                for k, v in _latest(e, "AGG").items()
                if v["N"] > 0  # a group whose rows all left stays, counting none
            }
            con = duckdb.connect()
            con.execute("create table t (g varchar, b bigint, p bigint)")
            if current:
                con.executemany("insert into t values (?, ?, ?)", list(current.values()))
            sql = f"select g, {DUCKDB} from t group by g"
            expected = {r[0]: r[1:] for r in con.sql(sql).fetchall()}
            assert got == expected, f"after step {step}"


def test_a_distinct_value_leaves_with_its_last_occurrence(tmp_path: Path) -> None:
    with Engine(tmp_path / "d") as e:
        e.execute(
            "CREATE TABLE t (id INT PRIMARY KEY, g STRING, b BIGINT, p BIGINT) "
            "WITH (kafka_topic='t', value_format='JSON', partitions=1);"
        )
        e.execute(
            "CREATE TABLE agg AS SELECT g, COUNT(DISTINCT b) AS kinds, "
            "COUNT(DISTINCT b) FILTER (WHERE p > 5) AS dear FROM t GROUP BY g;"
        )
        seen = []

        def put(key: int, value: dict[str, Any] | None) -> None:
            body = None if value is None else json.dumps(value).encode()
            e.log.append("t", [(key.to_bytes(4, "big"), body)])
            e.drain()
            row = _latest(e, "AGG")[b"g"]
            seen.append((row["KINDS"], row["DEAR"]))

        put(1, {"G": "g", "B": 7, "P": 9})
        put(2, {"G": "g", "B": 7, "P": 1})
        put(1, {"G": "g", "B": 8, "P": 9})  # 7 stays (row 2), 8 comes
        put(2, None)  # the last 7 leaves
        put(1, {"G": "g", "B": 8, "P": 2})  # 8 fails the filter now
    assert seen == [(1, 1), (1, 1), (2, 1), (1, 1), (1, 0)]


def test_state_with_distinct_values_survives_a_restart(tmp_path: Path) -> None:
    ddl = (
        "CREATE STREAM s (g STRING KEY, b BIGINT) WITH (kafka_topic='s', value_format='JSON', "
        "partitions=1);"
    )
    with Engine(tmp_path / "d") as e:
        e.execute(ddl)
        e.execute("CREATE TABLE agg AS SELECT g, COUNT(DISTINCT b) AS kinds FROM s GROUP BY g;")
        e.log.append("s", [(b"g", json.dumps({"B": b}).encode()) for b in (1, 2, 2)])
        e.drain()
    with Engine(tmp_path / "d") as e:
        e.log.append("s", [(b"g", json.dumps({"B": b}).encode()) for b in (2, 3)])
        e.drain()
        assert _latest(e, "AGG")[b"g"]["KINDS"] == 3


@pytest.mark.parametrize(
    ("text", "place", "words"),
    [
        (
            "SELECT g, COUNT(*) FILTER (WHERE p + 1) FROM s\nGROUP BY g;",
            (1, 36),  # at its operator
            "FILTER (WHERE ...) of COUNT must be a condition (BOOLEAN), not BIGINT",
        ),
        (
            "SELECT g,\n  SUM(p) FILTER (WHERE COUNT(*) > 1) FROM s GROUP BY g;",
            (2, 24),
            "FILTER (WHERE ...) of SUM cannot call an aggregate function",
        ),
        (
            "SELECT g, COUNT(*),\n UCASE(g) FILTER (WHERE g <> 'x') FROM s GROUP BY g;",
            (2, 2),
            "FILTER (WHERE ...) is for aggregate functions; UCASE is not one",
        ),
        (
            "SELECT g, COUNT(*), UCASE(DISTINCT g) FROM s GROUP BY g;",
            (1, 21),
            "DISTINCT is for aggregate functions; UCASE is not one",
        ),
        (
            "SELECT g, TOPK(DISTINCT p, 2) FROM s GROUP BY g;",
            (1, 11),
            "TOPK(DISTINCT ...) takes one column or expression",
        ),
        (
            "SELECT g, COUNT(*) FILTER (WHERE p > 1 FROM s GROUP BY g;",
            (1, 40),
            "')' closing FILTER (WHERE ...",
        ),
    ],
)
def test_refused_with_line_and_column(
    tmp_path: Path, text: str, place: tuple[int, int], words: str
) -> None:
    with Engine(tmp_path / "d") as e:
        e.execute(
            "CREATE STREAM s (g STRING KEY, b BIGINT, p BIGINT) WITH (kafka_topic='s', "
            "value_format='JSON', partitions=1);"
        )
        with pytest.raises(SqlError) as caught:
            e.execute("CREATE TABLE x AS\n" + text)
    assert (caught.value.line - 1, caught.value.column) == place
    assert words in str(caught.value)


def test_a_batch_per_group_matches_duckdb_and_record_by_record(tmp_path: Path) -> None:
    """The aggregates ops/aggregate_batch.py adds a group's values at once for (COUNT, MIN,
    MAX, DISTINCT, FILTER), with NULL groups, a WHERE and NULL values: the table it leaves
    is DuckDB's, and the one record-by-record changes leave (the record cache off)."""
    rng = random.Random(3)
    rows = [
        (
            rng.choice(["a", "b", "c", None]),
            rng.choice([None, 1, 2, 3, 4]),
            rng.choice([None, "x", "y", "zz"]),
        )
        for _ in range(900)
    ]
    calls = (
        "COUNT(*) AS n, COUNT(b) AS nb, COUNT(*) FILTER (WHERE b > 2) AS big, "
        "COUNT(DISTINCT s) AS kinds, COUNT(DISTINCT b) FILTER (WHERE s <> 'x') AS not_x, "
        "MAX(s) AS top, MIN(s) FILTER (WHERE b = 1) AS low, MIN(b) AS least"
    )
    names = ("N", "NB", "BIG", "KINDS", "NOT_X", "TOP", "LOW", "LEAST")
    tables = []
    for cache in (None, 0):
        properties: dict[str, Any] = {"query.max.poll.records": 100}
        if cache is not None:
            properties["ksql.streams.cache.max.bytes.buffering"] = cache
        with Engine(tmp_path / f"d{cache}", properties=properties) as e:
            e.execute(
                "CREATE STREAM s (id INT KEY, g STRING, b BIGINT, s STRING) WITH "
                "(kafka_topic='s', value_format='JSON', partitions=1);"
            )
            e.execute(
                f"CREATE TABLE agg AS SELECT g, {calls} FROM s WHERE b IS NULL OR b <> 4 "
                "GROUP BY g;"
            )
            e.log.append(
                "s",
                [
                    (i.to_bytes(4, "big"), json.dumps({"G": g, "B": b, "S": s}).encode())
                    for i, (g, b, s) in enumerate(rows)
                ],
            )
            e.drain()
            tables.append(
                {k.decode(): tuple(v[c] for c in names) for k, v in _latest(e, "AGG").items()}
            )
    con = duckdb.connect()
    con.execute("create table s (g varchar, b bigint, s varchar)")
    con.executemany("insert into s values (?, ?, ?)", rows)
    query = f"select g, {calls} from s where (b is null or b <> 4) and g is not null group by g"
    expected = {r[0]: r[1:] for r in con.sql(query).fetchall()}
    assert tables[0] == expected
    assert tables[1] == expected
