"""The PostgreSQL sink against a real PostgreSQL: upserts by key, deletes, the table made
from the stream's columns, bad records, and a restart of PostgreSQL mid-stream."""

from __future__ import annotations

import datetime
import decimal
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import psycopg
import pytest

from hispeed.connectors.base import ConnectorError, SinkBatch, connector_class
from hispeed.connectors.postgres import PostgresSink
from hispeed.engine import Engine
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.testing.services import PostgresProcess
from hispeed.testing.wait import wait_for

pytestmark = pytest.mark.services

_tables = itertools.count()


@pytest.fixture
def table() -> str:
    """A table name of the test's own."""
    return f"t{next(_tables)}_{datetime.datetime.now().strftime('%H%M%S%f')}"


@pytest.fixture
def pg(postgres_server: PostgresProcess) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(postgres_server.url, autocommit=True) as conn:
        yield conn


def batch_of(
    rows: list[dict[str, Any] | None], keys: list[Any], types: dict[str, str] | None = None
) -> SinkBatch:
    n = len(rows)
    return SinkBatch(
        topic="readings",
        partition=0,
        offsets=list(range(n)),
        timestamps=[0] * n,
        keys=keys,
        rows=rows,
        key_columns=["ID"] if types is not None else [],
        column_types=types or {},
    )


TYPES = {
    "ID": "STRING",
    "N": "INTEGER",
    "BIG": "BIGINT",
    "X": "DOUBLE",
    "OK": "BOOLEAN",
    "PRICE": "DECIMAL(6, 2)",
    "TAGS": "ARRAY<STRING>",
    "ATTRS": "MAP<STRING, INTEGER>",
    "AT": "TIMESTAMP",
    "DAY": "DATE",
}


def row(i: str, n: int, **more: Any) -> dict[str, Any]:
    base = {
        "ID": i,
        "N": n,
        "BIG": n * 10_000_000_000,
        "X": n / 4,
        "OK": n % 2 == 0,
        "PRICE": decimal.Decimal(f"{n}.25"),
        "TAGS": ["a", str(n)],
        "ATTRS": [("k", n)],
        "AT": datetime.datetime(2026, 1, 2, 3, 4, 5),
        "DAY": datetime.date(2026, 1, n % 28 + 1),
    }
    return base | more


def test_the_sink_answers_to_its_class_names() -> None:
    for name in ("postgres", "postgresql", "PostgresSink"):
        assert connector_class(name, "SINK") is PostgresSink


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "needs 'postgres.url'"),
        ({"connection.url": "postgresql://x", "auto.create": "maybe"}, "must be true or false"),
    ],
)
def test_a_bad_configuration_is_an_error_naming_the_connector(
    config: dict[str, str], message: str
) -> None:
    with pytest.raises(ConnectorError, match="pg_sink") as e:
        PostgresSink("pg_sink", config)
    assert message in str(e.value)


def test_rows_are_upserted_by_key_into_a_table_made_from_the_columns(
    postgres_server: PostgresProcess, pg: psycopg.Connection[Any], table: str
) -> None:
    sink = PostgresSink("pg_sink", {"connection.url": postgres_server.url, "table": table})
    sink.start()
    try:
        b = batch_of([row("a", 1), row("b", 2), row("a", 3)], ["a", "b", "a"], TYPES)
        sink.write(b)
        assert b.failures == []
        sink.write(batch_of([row("b", 4), None], ["b", "a"], TYPES))
    finally:
        sink.stop()
    types = dict(
        pg.execute(
            "SELECT column_name, data_type FROM information_schema.columns WHERE table_name = %s",
            (table,),
        ).fetchall()
    )
    assert types == {
        "id": "text",
        "n": "integer",
        "big": "bigint",
        "x": "double precision",
        "ok": "boolean",
        "price": "numeric",
        "tags": "jsonb",
        "attrs": "jsonb",
        "at": "timestamp without time zone",
        "day": "date",
    }
    key = pg.execute(
        "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = %s::regclass AND i.indisprimary",
        (table,),
    ).fetchall()
    assert key == [("id",)]
    rows = pg.execute(f"SELECT * FROM {table} ORDER BY id").fetchall()
    assert rows == [  # 'a' was deleted by the tombstone; 'b' upserted twice
        (
            "b",
            4,
            40_000_000_000,
            1.0,
            True,
            decimal.Decimal("4.25"),
            ["a", "4"],
            {"k": 4},
            datetime.datetime(2026, 1, 2, 3, 4, 5),
            datetime.date(2026, 1, 5),
        )
    ]


def test_records_postgres_refuses_fail_alone(
    postgres_server: PostgresProcess, pg: psycopg.Connection[Any], table: str
) -> None:
    sink = PostgresSink("pg_sink", {"connection.url": postgres_server.url, "table": table})
    sink.start()
    try:
        rows: list[dict[str, Any] | None] = [
            row("ok1", 1),
            row("nul", 2, ID="nul", TAGS=None, X=1.5) | {"ID": "nul\x00byte"},
            row("big", 3, PRICE=decimal.Decimal("123456.78")),  # past numeric(6, 2)
            row("nokey", 4) | {"ID": None},
            row("ok2", 5),
        ]
        b = batch_of(rows, [r["ID"] for r in rows if r is not None], TYPES)
        sink.write(b)
    finally:
        sink.stop()
    failed = dict(b.failures)
    assert sorted(failed) == [1, 2, 3]
    assert "0x00" in failed[1]
    assert "numeric field overflow" in failed[2]
    assert "no value for key" in failed[3]
    ids = pg.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()
    assert ids == [("ok1",), ("ok2",)]


def test_a_json_topic_gets_types_from_its_values_and_pk_columns_upsert(
    postgres_server: PostgresProcess, pg: psycopg.Connection[Any], table: str
) -> None:
    config = {"postgres.url": postgres_server.url, "table": table, "pk.columns": "ID"}
    sink = PostgresSink("pg_sink", config)
    sink.start()
    try:
        sink.write(
            batch_of(
                [{"ID": "a", "V": 1, "NOTE": None}, {"ID": "a", "V": 2, "NOTE": {"x": 1}}],
                ["a", "a"],
            )
        )
        sink.write(batch_of([{"ID": "b", "V": 3, "NOTE": None, "EXTRA": "dropped"}], ["b"]))
    finally:
        sink.stop()
    rows = pg.execute(f"SELECT id, v, note FROM {table} ORDER BY id").fetchall()
    assert rows == [("a", 2, {"x": 1}), ("b", 3, None)]


@pytest.mark.slow
def test_a_sql_sink_waits_out_a_postgres_restart_and_loses_nothing(
    tmp_path: Path, postgres_server: PostgresProcess, pg: psycopg.Connection[Any], table: str
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM orders (id STRING KEY, customer STRING, amount DOUBLE) "
            "WITH (kafka_topic='orders', value_format='JSON', partitions=1);"
            "CREATE TABLE spend AS SELECT customer, SUM(amount) AS total, COUNT(*) AS n "
            "FROM orders GROUP BY customer;"
            "CREATE SINK CONNECTOR spend_pg WITH ('connector.class'='postgres', "
            f"'connection.url'='{postgres_server.url}', 'source'='SPEND', 'table'='{table}');"
        )
        engine.start()
        engine.insert("orders", {"ID": "o0", "CUSTOMER": "ann", "AMOUNT": 1.0})
        engine.insert("orders", {"ID": "o1", "CUSTOMER": "bad\x00name", "AMOUNT": 1.0})

        def totals() -> dict[str, Any]:
            sql = f"SELECT customer, total, n FROM {table}"
            with psycopg.connect(postgres_server.url, connect_timeout=2) as conn:
                try:
                    return {r[0]: (r[1], r[2]) for r in conn.execute(sql).fetchall()}
                except psycopg.errors.UndefinedTable:  # not made yet by the sink
                    return {}

        wait_for(lambda: totals() == {"ann": (1.0, 1)})
        wait_for(lambda: engine.log.offsets(PROCESSING_LOG, 0)[1] >= 1)
        error = msgspec.json.decode(
            engine.log.read_table(PROCESSING_LOG, 0).column("value")[0].as_py()
        )
        assert "0x00" in error["message"]
        pg.close()

        def state() -> str:
            return str(engine.execute("DESCRIBE CONNECTOR SPEND_PG;")[0].info["state"])

        postgres_server.stop("immediate")  # as a crash
        try:
            for i in range(2, 42):
                customer = ("ann", "bo", "cy")[i % 3]
                engine.insert("orders", {"ID": f"o{i}", "CUSTOMER": customer, "AMOUNT": 1.0})
            wait_for(lambda: state() == "RETRYING", timeout=30)
        finally:
            postgres_server.start()
        wait_for(lambda: totals() == {"ann": (14.0, 14), "bo": (13.0, 13), "cy": (14.0, 14)}, 60)
        wait_for(lambda: state() == "RUNNING")
        info = engine.execute("DESCRIBE CONNECTOR SPEND_PG;")[0].info
        assert info["errors"] == 1
