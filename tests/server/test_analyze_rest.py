"""ANALYZE over `/ksql`: DuckDB's SQL over the sources' history as hispeed's `analysis`
entity, and its errors as ksqlDB's statement errors (400, with line and column)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hispeed.client import Client, to_result
from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.server.app import create_app
from hispeed.testing.server import RunningServer


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.load(None, env={}, data_dir=tmp_path / "data")
    engine = Engine(tmp_path / "data", fsync="never")
    engine.execute(
        "CREATE STREAM readings (id STRING KEY, x DOUBLE) "
        "WITH (kafka_topic='readings', value_format='JSON', partitions=2);"
    )
    engine.insert_many("readings", [{"ID": f"d{i % 4}", "X": float(i)} for i in range(40)])
    with TestClient(create_app(engine, settings)) as c:
        yield c


def test_analyze_answers_rows_in_column_order(client: TestClient) -> None:
    sql = "ANALYZE SELECT id, sum(x) AS total, count(*) AS n FROM readings GROUP BY id ORDER BY id;"
    response = client.post("/ksql", json={"ksql": sql})
    assert response.status_code == 200
    [entity] = response.json()
    assert entity["@type"] == "analysis"
    assert entity["columns"] == ["ID", "total", "n"]
    want = [
        {"ID": f"d{k}", "total": float(sum(i for i in range(40) if i % 4 == k)), "n": 10}
        for k in range(4)
    ]
    assert entity["rows"] == want
    result = to_result(entity)  # what `hispeed sql` prints
    assert result.kind == "rows"
    assert result.info["columns"] == ["ID", "total", "n"]
    assert result.rows == want


def test_analyze_errors_are_statement_errors_with_their_place(client: TestClient) -> None:
    response = client.post("/ksql", json={"ksql": "ANALYZE SELECT *\nFROM readings\nWHER x > 1;"})
    assert response.status_code == 400
    body = response.json()
    assert body["message"].startswith("line 3:6: syntax error")
    response = client.post("/ksql", json={"ksql": "ANALYZE SELECT * FROM nothing;"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("Line: 1, Col: 23: nothing does not exist")


def test_the_client_analyzes_over_rest(server: RunningServer) -> None:
    server.engine.execute(
        "CREATE STREAM readings (id STRING KEY, x DOUBLE) "
        "WITH (kafka_topic='readings', value_format='JSON', partitions=2);"
    )
    server.engine.insert_many("readings", [{"ID": f"d{i % 4}", "X": float(i)} for i in range(40)])
    sql = "SELECT id, count(*) AS n FROM readings GROUP BY id ORDER BY id"
    want = [{"ID": f"d{k}", "n": 10} for k in range(4)]
    with Client(server.url) as remote:
        assert remote.analyze(sql) == want
        assert remote.analyze(sql + ";", format="pandas").to_dict("records") == want
