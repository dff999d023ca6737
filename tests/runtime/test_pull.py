"""Pull queries against tables' in-memory views: lookups, ranges, windows, LIMIT, errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.runtime.pull import run_sql


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(
        tmp_path / "data", fsync="never", properties={"ksql.streams.cache.max.bytes.buffering": "0"}
    )
    e.execute(
        "CREATE STREAM readings (id STRING KEY, x DOUBLE) WITH (kafka_topic='readings', "
        "value_format='JSON', partitions=2);"
        "CREATE TABLE peaks AS SELECT id, MAX(x) AS peak FROM readings GROUP BY id;"
        "CREATE TABLE counts AS SELECT id, COUNT(*) AS n FROM readings "
        "WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY id;"
    )
    for i, (device, x, ts) in enumerate(
        [
            ("a", 1.0, 1000),
            ("b", 5.0, 2000),
            ("a", 3.0, 12000),
            ("c", 2.0, 13000),
            ("d", 4.0, 25000),
        ]
    ):
        e.insert("readings", {"ID": device, "X": x}, timestamp=ts + i)
    e.drain()
    yield e
    e.close()


def ids(rows: list[dict[str, object]]) -> list[object]:
    return sorted(str(r["ID"]) for r in rows)


def test_key_lookups_and_in_lists(engine: Engine) -> None:
    assert engine.query("SELECT * FROM peaks WHERE id = 'a';") == [{"ID": "a", "PEAK": 3.0}]
    assert engine.query("SELECT * FROM peaks WHERE id = 'zz';") == []
    assert ids(engine.query("SELECT * FROM peaks WHERE id IN ('a', 'c', 'zz');")) == ["a", "c"]
    # an expression over the row, and a filter beside the key
    assert engine.query("SELECT peak * 2 AS p FROM peaks WHERE id = 'b';") == [{"P": 10.0}]
    assert engine.query("SELECT * FROM peaks WHERE id = 'b' AND peak > 10;") == []


def test_a_lookup_sees_each_new_output_without_rereading(engine: Engine) -> None:
    sql = "SELECT peak FROM peaks WHERE id = 'a';"
    assert engine.query(sql) == [{"PEAK": 3.0}]
    engine.insert("readings", {"ID": "a", "X": 7.0})
    engine.drain()
    assert engine.query(sql) == [{"PEAK": 7.0}]
    # another literal takes the prepared lookup, and still finds the current row
    assert engine.query("SELECT peak FROM peaks WHERE id = 'b';") == [{"PEAK": 5.0}]


def test_key_ranges_and_between(engine: Engine) -> None:
    assert ids(engine.query("SELECT * FROM peaks WHERE id > 'a' AND id <= 'c';")) == ["b", "c"]
    assert ids(engine.query("SELECT * FROM peaks WHERE id BETWEEN 'b' AND 'd';")) == [
        "b",
        "c",
        "d",
    ]
    assert ids(engine.query("SELECT * FROM peaks WHERE id < 'b' OR id >= 'd';")) == ["a", "d"]


def test_full_scan_in_key_order_with_limit(engine: Engine) -> None:
    rows = engine.query("SELECT * FROM peaks;")
    assert [r["ID"] for r in rows] == ["a", "b", "c", "d"]
    assert [r["ID"] for r in engine.query("SELECT id FROM peaks LIMIT 2;")] == ["a", "b"]
    assert engine.query("SELECT * FROM peaks LIMIT 0;") == []


def test_windowed_lookups_with_window_bounds(engine: Engine) -> None:
    rows = engine.query("SELECT id, windowstart, windowend, n FROM counts WHERE id = 'a';")
    assert [(r["WINDOWSTART"], r["N"]) for r in rows] == [(0, 1), (10000, 1)]
    rows = engine.query("SELECT * FROM counts WHERE id = 'a' AND windowstart >= 10000;")
    assert [r["WINDOWSTART"] for r in rows] == [10000]
    rows = engine.query(
        "SELECT * FROM counts WHERE id = 'a' AND windowstart < '1970-01-01T00:00:10';"
    )
    assert [r["WINDOWSTART"] for r in rows] == [0]
    assert ids(engine.query("SELECT * FROM counts WHERE windowend > 20000;")) == ["d"]


def test_pull_queries_ksqldb_refuses(engine: Engine) -> None:
    cases = {
        "SELECT * FROM peaks p JOIN readings r ON p.id = r.id;": "don't support JOIN",
        "SELECT id, COUNT(*) FROM readings GROUP BY id;": "don't support GROUP BY",
        "SELECT id, ROWOFFSET FROM peaks;": "columns in SELECT clauses: `ROWOFFSET`",
        "SELECT * FROM peaks WHERE ROWPARTITION = 1;": "columns in WHERE clauses: `ROWPARTITION`",
        "SELECT * FROM peaks WHERE windowstart = 1;": "'WINDOWSTART' cannot be resolved",
        "SELECT * FROM peaks WHERE id = NULL;": "Comparison with NULL not supported",
        "SELECT * FROM peaks WHERE id IN (NULL);": "Primary key columns can not be NULL",
    }
    for sql, message in cases.items():
        with pytest.raises(HispeedError, match=message):
            engine.query(sql)


def test_disabled_table_scans_allow_only_key_lookups(engine: Engine) -> None:
    engine.execute("SET 'ksql.query.pull.table.scan.enabled'='false';")
    assert engine.query("SELECT * FROM peaks WHERE id = 'a';") == [{"ID": "a", "PEAK": 3.0}]
    with pytest.raises(HispeedError, match="missing key column for disjunct: \\(PEAK > 1"):
        engine.query("SELECT * FROM peaks WHERE peak > 1;")
    with pytest.raises(HispeedError, match="requires table scan to be enabled"):
        engine.query("SELECT * FROM peaks;")
    with pytest.raises(HispeedError, match="cannot be combined with other comparisons"):
        engine.query("SELECT * FROM peaks WHERE id > 'a' AND id < 'c';")
    engine.execute("SET 'ksql.query.pull.range.scan.enabled'='false';")
    with pytest.raises(HispeedError, match="requires table scan to be enabled"):
        engine.query("SELECT * FROM peaks WHERE id > 'a';")


def test_tables_no_query_materializes_are_not_queryable(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE plain (id STRING PRIMARY KEY, v INT) WITH (kafka_topic='plain', "
        "value_format='JSON', partitions=1);"
    )
    with pytest.raises(HispeedError, match="The `PLAIN` table isn't queryable"):
        engine.query("SELECT * FROM plain;")


def test_limit_clause_can_be_disabled(engine: Engine) -> None:
    engine.execute("SET 'ksql.query.pull.limit.clause.enabled'='false';")
    with pytest.raises(HispeedError, match="LIMIT clause in pull queries is currently disabled"):
        engine.query("SELECT * FROM readings LIMIT 1;")


def test_a_dropped_and_recreated_table_gets_a_new_view(engine: Engine) -> None:
    assert engine.query("SELECT * FROM peaks WHERE id = 'a';") == [{"ID": "a", "PEAK": 3.0}]
    (result,) = engine.execute("SHOW QUERIES;")
    writer = next(r["id"] for r in result.rows if "PEAKS" in str(r["id"]).upper())
    engine.execute(f"TERMINATE {writer}; DROP TABLE peaks;")
    engine.execute("CREATE TABLE peaks AS SELECT id, MIN(x) AS peak FROM readings GROUP BY id;")
    engine.drain()
    assert run_sql(engine.runtime.views, "SELECT * FROM peaks WHERE id = 'a';") == [
        {"ID": "a", "PEAK": 1.0}
    ]


def test_a_pull_query_over_a_stream_is_bounded_by_a_setting(tmp_path: Path) -> None:
    """Its answer is built in memory: past `pull.max.rows` (the server's max_pull_rows) it is
    refused with what to do instead, and a LIMIT or a WHERE within the bound still answers."""
    with Engine(tmp_path / "data", fsync="never", properties={"pull.max.rows": 5}) as e:
        e.execute(
            "CREATE STREAM s (id STRING KEY, x INT) WITH (kafka_topic='s', value_format='JSON', "
            "partitions=2);"
        )
        for i in range(12):
            e.insert("s", {"ID": f"k{i % 3}", "X": i})
        with pytest.raises(HispeedError) as caught:
            e.query("SELECT * FROM s;")
        message = str(caught.value)
        assert "A pull query over stream S returns at most 5 rows" in message
        assert "max_pull_rows" in message
        assert "'pull.max.rows'" in message
        assert "add a LIMIT" in message
        assert "EMIT CHANGES" in message
        assert len(e.query("SELECT * FROM s LIMIT 5;")) == 5
        assert sorted(r["X"] for r in e.query("SELECT * FROM s WHERE x >= 8;")) == [8, 9, 10, 11]


def test_pull_queries_over_a_stream_answer_up_to_a_hundred_thousand_rows_by_default(
    tmp_path: Path,
) -> None:
    with Engine(tmp_path / "data", fsync="never") as e:
        e.execute(
            "CREATE STREAM s (x INT) WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        e.log.append("s", [(None, b'{"X": 1}')] * 100_001, partition=0)
        with pytest.raises(HispeedError, match=r"at most 100,000 rows"):
            e.query("SELECT * FROM s;")
        assert len(e.query("SELECT * FROM s WHERE x = 1 LIMIT 100000;")) == 100_000


def test_a_statements_own_properties_bound_its_pull_query(engine: Engine) -> None:
    # the statement's properties, not only the engine's, decide what a pull query may do
    # (ksqlDB reads ksql.query.pull.* from the request's properties over the server's)
    scans_off = {"ksql.query.pull.table.scan.enabled": "false"}
    for table, rows in (("counts", 5), ("peaks", 4)):  # windowed and not
        with pytest.raises(HispeedError, match="requires table scan to be enabled"):
            engine.execute(f"SELECT * FROM {table};", properties=scans_off)
        assert len(engine.execute(f"SELECT * FROM {table};")[0].rows) == rows
    windowed = "SELECT * FROM counts WHERE id = 'a' AND windowstart >= 10000;"
    assert [r["N"] for r in engine.execute(windowed, properties=scans_off)[0].rows] == [1]
    no_limit = {"ksql.query.pull.limit.clause.enabled": "false"}
    with pytest.raises(HispeedError, match="LIMIT clause in pull queries is currently disabled"):
        engine.execute("SELECT * FROM counts LIMIT 1;", properties=no_limit)
