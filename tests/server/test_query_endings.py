"""How a `/query` answer ends and how it carries a deletion, as ksqlDB's StreamedRow says.

Written from ksqlDB's QueryStreamWriter and StreamedRow: a query that meets its LIMIT ends
with `{"finalMessage": "Limit Reached"}`; a pull query over a stream (run by ksqlDB as a query
that stops at the stream's end) with `{"finalMessage": "Query Completed"}`; a pull query over
a table with no final message. A push query over a table sends a deleted key as a DataRow with
`"tombstone": true`: the key's columns, null elsewhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.server.app import create_app


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    yield e
    e.close()


@pytest.fixture
def client(engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.load(None, env={}, data_dir=tmp_path / "data")
    with TestClient(create_app(engine, settings)) as c:
        yield c


def query(client: TestClient, sql: str, **properties: Any) -> list[dict[str, Any]]:
    r = client.post("/query", json={"ksql": sql, "streamsProperties": properties})
    assert r.status_code == 200, r.text
    body = json.loads(r.text)
    assert isinstance(body, list)
    assert set(body[0]) == {"header"}
    return body[1:]


def test_a_pull_query_over_a_stream_ends_with_query_completed_or_limit_reached(
    engine: Engine, client: TestClient
) -> None:
    engine.execute(
        "CREATE STREAM s1 (mykey INT KEY, myvalue INT) "
        "WITH (kafka_topic='s1', value_format='JSON', partitions=1);"
    )
    for i in range(3):
        engine.insert("s1", {"MYKEY": 10 + i, "MYVALUE": i})
    assert query(client, "SELECT * FROM s1;") == [
        {"row": {"columns": [10, 0]}},
        {"row": {"columns": [11, 1]}},
        {"row": {"columns": [12, 2]}},
        {"finalMessage": "Query Completed"},
    ]
    assert query(client, "SELECT * FROM s1 LIMIT 2;") == [
        {"row": {"columns": [10, 0]}},
        {"row": {"columns": [11, 1]}},
        {"finalMessage": "Limit Reached"},
    ]
    assert query(client, "SELECT * FROM s1 LIMIT 0;") == [{"finalMessage": "Limit Reached"}]
    # more LIMIT than rows: the stream's end came first
    assert query(client, "SELECT * FROM s1 LIMIT 5;")[-1] == {"finalMessage": "Query Completed"}


def test_a_pull_query_over_a_table_has_no_final_message(engine: Engine, client: TestClient) -> None:
    engine.execute(
        "CREATE STREAM s1 (mykey INT KEY, myvalue INT) "
        "WITH (kafka_topic='s1', value_format='JSON', partitions=1);"
        "CREATE TABLE t AS SELECT mykey, COUNT(*) AS n FROM s1 GROUP BY mykey;"
    )
    engine.insert("s1", {"MYKEY": 10, "MYVALUE": 1})
    engine.drain()
    assert query(client, "SELECT * FROM t;") == [{"row": {"columns": [10, 1]}}]


def test_a_push_query_over_a_table_sends_a_deletion_as_a_tombstone(
    engine: Engine, client: TestClient
) -> None:
    engine.execute(
        "CREATE TABLE input (k INT PRIMARY KEY, id INT) "
        "WITH (kafka_topic='test_topic', value_format='JSON', partitions=1);"
    )
    key = b"\x00\x00\x00\x01"  # KAFKA INT 1
    engine.log.append("test_topic", [(key, b'{"ID": 110}'), (key, None), (key, b'{"ID": 111}')])
    rows = query(
        client, "SELECT k, id FROM input EMIT CHANGES LIMIT 3;", **{"auto.offset.reset": "earliest"}
    )
    assert rows == [
        {"row": {"columns": [1, 110]}},
        {"row": {"columns": [1, None], "tombstone": True}},
        {"row": {"columns": [1, 111]}},
        {"finalMessage": "Limit Reached"},
    ]


def test_a_pull_query_reads_the_requests_properties(engine: Engine, client: TestClient) -> None:
    engine.execute(
        "CREATE STREAM s1 (mykey INT KEY, myvalue INT) "
        "WITH (kafka_topic='s1', value_format='JSON', partitions=1);"
        "CREATE TABLE w AS SELECT mykey, COUNT(*) AS n FROM s1 "
        "WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY mykey;"
    )
    engine.insert("s1", {"MYKEY": 10, "MYVALUE": 1}, timestamp=1000)
    engine.drain()
    assert query(client, "SELECT * FROM w;") == [{"row": {"columns": [10, 0, 60000, 1]}}]
    r = client.post(
        "/query",
        json={
            "ksql": "SELECT * FROM w;",
            "streamsProperties": {"ksql.query.pull.table.scan.enabled": False},
        },
    )
    assert r.status_code == 400, r.text
    assert "Query requires table scan to be enabled" in r.json()["message"]
