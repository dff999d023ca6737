"""Errors users see speak of their own text: over `/ksql`, as a client calls it, a mistake
is a 400 whose message names the user's columns, functions and tables at their line and
column, never a name hispeed made up while rewriting the query (`SEMIJOIN_1_...`, the join's
`$J`), a parser class (`OverCall`, `InSubquery`) or an empty list of columns."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.server.app import create_app

SOURCES = """
CREATE STREAM orders (id INT KEY, cu_id INT, amount DOUBLE)
  WITH (kafka_topic='orders', value_format='JSON', partitions=1);
CREATE TABLE customers (cu_id INT PRIMARY KEY, name STRING, region STRING)
  WITH (kafka_topic='customers', value_format='JSON', partitions=1);
CREATE TABLE regions (region STRING PRIMARY KEY, ok BOOLEAN)
  WITH (kafka_topic='regions', value_format='JSON', partitions=1);
"""

#: what must never reach a user: names of hispeed's own making and Python's
INTERNAL = re.compile(r"SEMIJOIN|\$J|OverCall|InSubquery|Exists\b|ColumnRef|<hispeed|object at 0x")


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.load(None, env={}, data_dir=tmp_path / "data")
    engine = Engine(tmp_path / "data", fsync="never")
    engine.execute(SOURCES)
    with TestClient(create_app(engine, settings)) as c:
        yield c
    engine.close()


def refused(client: TestClient, sql: str) -> str:
    """The message of a statement `/ksql` refuses as the user's mistake (400, not 500)."""
    response = client.post("/ksql", json={"ksql": sql})
    assert response.status_code == 400, response.text
    message: str = response.json()["message"]
    assert not INTERNAL.search(message), message
    return message


def test_a_nested_in_is_refused_at_the_inner_in_in_the_users_words(client: TestClient) -> None:
    message = refused(
        client,
        "CREATE STREAM big AS SELECT * FROM orders\n"
        "WHERE cu_id IN (SELECT cu_id FROM customers\n"
        "                WHERE region IN (SELECT region FROM regions));",
    )
    assert message.startswith("line 3:30: a subquery inside the subquery of IN is not supported")


def test_an_unknown_column_in_a_subquery_lists_the_users_columns(client: TestClient) -> None:
    message = refused(
        client,
        "CREATE STREAM big AS SELECT * FROM orders\n"
        "WHERE cu_id IN (SELECT cu_id FROM customers WHERE nope = 1);",
    )
    assert message.startswith("Line: 2, Col: 51: WHERE column 'NOPE' cannot be resolved.")
    listed = message.split("The columns here are: ")[1].split(", ")
    assert "CUSTOMERS.REGION" in listed
    assert "ORDERS.AMOUNT" in listed


def test_a_type_error_in_a_subquery_shows_the_users_condition(client: TestClient) -> None:
    message = refused(
        client,
        "CREATE STREAM big AS SELECT * FROM orders o\n"
        "WHERE o.cu_id IN (SELECT cu_id FROM customers c WHERE c.region = 1);",
    )
    assert message.startswith("line 2:64: Error in WHERE expression: Cannot compare C.REGION")
    # the user's condition alone, not the WHERE the query was rewritten into
    assert message.endswith("Statement: (C.REGION = 1)")


def test_in_of_another_type_than_the_key_is_said_of_the_in(client: TestClient) -> None:
    message = refused(
        client,
        "CREATE STREAM big AS SELECT * FROM orders\n"
        "WHERE CAST(cu_id AS STRING) IN (SELECT cu_id FROM customers);",
    )
    assert message.startswith("line 2:29: IN (SELECT CU_ID FROM CUSTOMERS) compares")
    assert "join" not in message.lower()


@pytest.mark.parametrize(
    ("sql", "place"),
    [
        (
            "CREATE STREAM j AS SELECT o.id FROM orders o JOIN customers c\n"
            "  ON o.cu_id = c.cu_id AND LAG(o.amount) OVER (PARTITION BY o.cu_id) > 1;",
            "line 2:28: LAG(O.AMOUNT) OVER (PARTITION BY O.CU_ID) is not supported here",
        ),
        (
            "CREATE TABLE t AS SELECT id, LAG(id) OVER (PARTITION BY cu_id) AS l FROM\n"
            "  (SELECT id, cu_id, ROW_NUMBER() OVER (PARTITION BY cu_id ORDER BY amount DESC)"
            " AS rn FROM orders) WHERE rn <= 2;",
            "line 1:30: Invalid Select: LAG(ID) OVER (PARTITION BY CU_ID) is not supported here",
        ),
        (
            "DELETE FROM customers\nWHERE cu_id = LAG(cu_id) OVER (PARTITION BY region);",
            "line 2:15: LAG(CU_ID) OVER (PARTITION BY REGION) is not supported here",
        ),
        (
            "INSERT INTO orders (id, cu_id, amount)\n"
            "VALUES (1, 2 IN (SELECT cu_id FROM customers), 2.0);",
            "line 2:14: (2 IN (SELECT ...)) is not supported here",
        ),
    ],
)
def test_a_window_function_or_subquery_out_of_place_is_named_by_its_text(
    client: TestClient, sql: str, place: str
) -> None:
    assert refused(client, sql).startswith(place)


@pytest.mark.parametrize(
    ("sql", "place"),
    [
        ("INSERT INTO orders (id, cu_id, amount)\nVALUES (1, nope, 2.0);", "Line: 2, Col: 12: "),
        ("DELETE FROM customers\nWHERE cu_id = nope;", "Line: 2, Col: 15: "),
    ],
)
def test_a_name_where_only_values_go_gets_no_empty_column_list(
    client: TestClient, sql: str, place: str
) -> None:
    message = refused(client, sql)
    assert message.startswith(place + "'NOPE' cannot be resolved: no column can be named here")
    assert "The columns here are" not in message


def test_an_unknown_column_of_a_join_lists_no_column_of_the_engines_own(
    client: TestClient,
) -> None:
    message = refused(
        client,
        "CREATE STREAM j AS SELECT o.id FROM orders o JOIN customers c ON o.cu_id = c.cu_id\n"
        "WHERE c.nope = 1;",
    )
    listed = message.split("The columns here are: ")[1].split(", ")
    assert listed == [
        *(f"O.{n}" for n in ("ID", "CU_ID", "AMOUNT", "ROWTIME", "ROWPARTITION", "ROWOFFSET")),
        *(f"C.{n}" for n in ("CU_ID", "NAME", "REGION", "ROWTIME", "ROWPARTITION", "ROWOFFSET")),
    ]


def test_a_binary_record_of_the_wrong_json_kind_is_named_in_jsons_words(
    client: TestClient,
) -> None:
    response = client.post(
        "/topics/bin",
        content=json.dumps({"records": [{"value": 5}, {"value": [1]}]}),
        headers={"content-type": "application/vnd.kafka.binary.v2+json"},
    )
    assert response.status_code == 400
    assert response.json()["message"].endswith(
        "records[0].value must be base64 text (or null), not a number"
    )


def test_semi_joins_still_run_under_the_users_labels(client: TestClient) -> None:
    """The joined table now goes by the user's label: a query whose outer source has the
    same label (and one with two subqueries of one table) still plans and runs."""
    for sql in (
        "CREATE TABLE twice AS SELECT * FROM customers WHERE cu_id IN (SELECT cu_id FROM "
        "customers WHERE name = 'x') AND cu_id NOT IN (SELECT cu_id FROM customers WHERE "
        "region = 'y');",
        "CREATE STREAM known AS SELECT * FROM orders WHERE cu_id IN (SELECT cu_id FROM "
        "customers WHERE region = 'x' AND ROWTIME > 0);",
    ):
        response = client.post("/ksql", json={"ksql": sql})
        assert response.status_code == 200, response.text
