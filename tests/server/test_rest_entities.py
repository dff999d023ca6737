"""Every REST entity hispeed answers with, field by field, against ksqlDB's rest-model classes.

The expectations are written here from ksqlDB's REST API reference and its rest-model classes
(io.confluent.ksql.rest.entity: CommandStatus, CommandStatusEntity, CommandStatuses,
ServerInfo, HealthCheckResponse, SourceInfo, StreamsList, TablesList, KafkaTopicInfo,
RunningQuery, PropertiesList.Property, SchemaInfo, FieldInfo, TypeList, SimpleFunctionInfo,
FunctionDescriptionList, FunctionInfo, ArgumentInfo, SourceDescription, QueryDescription,
KsqlErrorMessage, KsqlStatementErrorMessage) as ksqlDB's ApiJsonMapper serializes them: every
field present, an empty Optional as null. hispeed may add a field of its own inside an object
(ksqlDB's classes all ignore unknown fields when they read), listed in EXTRAS with its reason;
never beside the one key of a wrapper object (ServerInfo, CommandStatuses), which ksqlDB's
Jackson readers refuse.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.server.app import create_app
from hispeed.udf import udf, unregister

ENTITY = {"@type", "statementText", "warnings"}  # KsqlEntity
FIELDS: dict[str, set[str]] = {
    "CommandStatus": {"status", "message", "queryId"},
    "CommandStatusEntity": ENTITY | {"commandId", "commandStatus", "commandSequenceNumber"},
    "ServerInfo": {"version", "kafkaClusterId", "ksqlServiceId", "serverStatus"},
    "HealthCheckResponse": {"isHealthy", "details", "serverState"},
    "SourceInfo": {"type", "name", "topic", "keyFormat", "valueFormat", "isWindowed"},
    "StreamsList": ENTITY | {"streams"},
    "TablesList": ENTITY | {"tables"},
    "KafkaTopicsList": ENTITY | {"topics"},
    "KafkaTopicInfo": {"name", "replicaInfo"},
    "Queries": ENTITY | {"queries"},
    "RunningQuery": {
        "queryString",
        "sinks",
        "sinkKafkaTopics",
        "id",
        "statusCount",
        "queryType",
        "state",
    },
    "PropertiesList": ENTITY | {"properties", "overwrittenProperties", "defaultProperties"},
    "Property": {"name", "scope", "value", "editable", "level"},
    "TypeList": ENTITY | {"types"},
    "FunctionNameList": ENTITY | {"functions"},
    "SimpleFunctionInfo": {"name", "type", "category"},
    "FunctionDescriptionList": ENTITY
    | {"name", "description", "author", "version", "path", "functions", "type"},
    "FunctionInfo": {"arguments", "returnType", "description"},
    "ArgumentInfo": {"name", "type", "description", "isVariadic"},
    "SourceDescriptionEntity": ENTITY | {"sourceDescription"},
    "SourceDescription": {
        "name",
        "windowType",
        "readQueries",
        "writeQueries",
        "fields",
        "type",
        "timestamp",
        "statistics",
        "errorStats",
        "extended",
        "keyFormat",
        "valueFormat",
        "topic",
        "partitions",
        "replication",
        "statement",
        "queryOffsetSummaries",
        "sourceConstraints",
        "clusterStatistics",
        "clusterErrorStats",
    },
    "QueryDescriptionEntity": ENTITY | {"queryDescription"},
    "QueryDescription": {
        "id",
        "statementText",
        "windowType",
        "fields",
        "sources",
        "sinks",
        "topology",
        "executionPlan",
        "overriddenProperties",
        "ksqlHostQueryStatus",
        "queryType",
        "queryErrors",
        "tasksMetadata",
        "consumerGroupId",
        "state",
    },
    "QueryError": {"timestamp", "errorMessage", "type"},
    "SourceDescriptionList": ENTITY | {"sourceDescriptions"},
    "QueryDescriptionList": ENTITY | {"queryDescriptions"},
    "KsqlErrorMessage": {"@type", "error_code", "message"},
    "KsqlStatementErrorMessage": {"@type", "error_code", "message", "statementText", "entities"},
}
EXTRAS: dict[str, set[str]] = {
    # why a query is in ERROR: hispeed's shell and client print it beside the state
    "RunningQuery": {"error"},
    # the argument types alone: hispeed's client prints a function's signatures from them
    "FunctionInfo": {"argumentTypes"},
    # the data directory and uptime, inside the wrapper's object, not beside it
    "ServerInfo": {"hispeed"},
}


def check(obj: Any, entity: str) -> dict[str, Any]:
    """`obj` is a JSON object with every field of `entity` and no other but hispeed's own."""
    assert isinstance(obj, dict), (entity, obj)
    missing = FIELDS[entity] - set(obj)
    assert not missing, f"{entity} lacks {sorted(missing)}: {obj}"
    unknown = set(obj) - FIELDS[entity] - EXTRAS.get(entity, set())
    assert not unknown, f"{entity} has fields ksqlDB's has not: {sorted(unknown)}"
    return obj


def scalar(type_name: str) -> dict[str, Any]:
    """SchemaInfo of a primitive type (fields and memberSchema null)."""
    return {"type": type_name, "fields": None, "memberSchema": None}


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.load(None, env={}, data_dir=tmp_path / "data", default_partitions=2)
    engine = Engine(
        tmp_path / "data",
        fsync="never",
        properties={"ksql.streams.auto.offset.reset": "earliest", "ksql.service.id": "svc_"},
    )
    with TestClient(create_app(engine, settings)) as c:
        yield c
    engine.close()


def ksql(client: TestClient, text: str) -> list[Any]:
    r = client.post("/ksql", json={"ksql": text})
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list)
    return body


READINGS = (
    "CREATE STREAM readings (device STRING KEY, x DOUBLE, price DECIMAL(4, 2), "
    "tags ARRAY<STRING>, attrs MAP<STRING, INT>, pos STRUCT<lat DOUBLE, `long` DOUBLE>, "
    "ts BIGINT, src BYTES HEADER('source')) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=2, timestamp='ts');"
)
PEAKS = "CREATE TABLE peaks AS SELECT device, MAX(x) AS peak FROM readings GROUP BY device;"


def test_command_status_and_statuses(client: TestClient) -> None:
    """/ksql's currentStatus, /status/{commandId} (CommandStatus: status, message and
    queryId, null for a command that starts no query) and /status (CommandStatuses: a wrapper
    object whose only key holds command ids to statuses)."""
    created, ctas = ksql(client, READINGS + PEAKS)
    for entity in (created, ctas):
        check(entity, "CommandStatusEntity")
        assert entity["@type"] == "currentStatus"
        check(entity["commandStatus"], "CommandStatus")
    assert created["commandId"] == "stream/`READINGS`/create"
    assert created["commandStatus"]["queryId"] is None
    assert ctas["commandStatus"]["queryId"] == "CTAS_PEAKS_0"
    assert isinstance(ctas["commandSequenceNumber"], int)

    one = client.get("/status/table/`PEAKS`/create").json()
    assert check(one, "CommandStatus") == {
        "status": "SUCCESS",
        "message": ctas["commandStatus"]["message"],
        "queryId": "CTAS_PEAKS_0",
    }
    assert client.get("/status/stream/`READINGS`/create").json()["queryId"] is None
    statuses = client.get("/status").json()
    assert statuses == {
        "commandStatuses": {
            "stream/`READINGS`/create": "SUCCESS",
            "table/`PEAKS`/create": "SUCCESS",
        }
    }


def test_server_info_and_health(client: TestClient) -> None:
    info = client.get("/info").json()
    assert set(info) == {"KsqlServerInfo"}  # a wrapper object: one key, nothing beside it
    check(info["KsqlServerInfo"], "ServerInfo")
    health = client.get("/healthcheck").json()
    check(health, "HealthCheckResponse")
    assert health["isHealthy"] is True
    assert health["serverState"] == "READY"  # ServerState.State
    assert set(health["details"]) == {"metastore", "kafka", "commandRunner"}
    assert all(d == {"isHealthy": True} for d in health["details"].values())


def test_lists(client: TestClient) -> None:
    ksql(client, READINGS + PEAKS + "CREATE TYPE point AS STRUCT<x INT, y DECIMAL(5, 1)>;")
    streams, tables, topics, queries, properties, types, functions = ksql(
        client,
        "SHOW STREAMS; SHOW TABLES; SHOW TOPICS; SHOW QUERIES; SHOW PROPERTIES; SHOW TYPES; "
        "SHOW FUNCTIONS;",
    )
    check(streams, "StreamsList")
    [stream] = streams["streams"]
    assert check(stream, "SourceInfo") == {
        "type": "STREAM",
        "name": "READINGS",
        "topic": "readings",
        "keyFormat": "KAFKA",
        "valueFormat": "JSON",
        "isWindowed": False,
    }
    check(tables, "TablesList")
    assert [check(t, "SourceInfo")["type"] for t in tables["tables"]] == ["TABLE"]
    check(topics, "KafkaTopicsList")
    listed = {check(t, "KafkaTopicInfo")["name"]: t["replicaInfo"] for t in topics["topics"]}
    assert listed["readings"] == [1, 1]  # a replica count per partition

    check(queries, "Queries")
    [query] = queries["queries"]
    check(query, "RunningQuery")
    assert query["id"] == "CTAS_PEAKS_0"
    assert query["sinks"] == ["PEAKS"]
    assert query["sinkKafkaTopics"] == ["PEAKS"]
    assert query["statusCount"] == {"RUNNING": 1}
    assert (query["queryType"], query["state"]) == ("PERSISTENT", "RUNNING")

    check(properties, "PropertiesList")
    props = {check(p, "Property")["name"]: p for p in properties["properties"]}
    # auto.offset.reset is one of PropertiesList.QueryLevelProperties: a query's, editable
    assert props["ksql.streams.auto.offset.reset"] == {
        "name": "ksql.streams.auto.offset.reset",
        "scope": "KSQL",
        "value": "earliest",
        "editable": True,
        "level": "QUERY",
    }
    assert (props["ksql.service.id"]["editable"], props["ksql.service.id"]["level"]) == (
        False,
        "SERVER",
    )

    check(types, "TypeList")
    assert types["types"]["POINT"] == {
        "type": "STRUCT",
        "fields": [
            {"name": "X", "schema": scalar("INTEGER")},
            {
                "name": "Y",
                "schema": {
                    **scalar("DECIMAL"),
                    "parameters": {"precision": 5, "scale": 1},
                },
            },
        ],
        "memberSchema": None,
    }
    check(functions, "FunctionNameList")
    by_name = {check(f, "SimpleFunctionInfo")["name"]: f for f in functions["functions"]}
    assert by_name["SUBSTRING"]["type"] == "SCALAR"
    assert by_name["COUNT"]["type"] == "AGGREGATE"
    assert by_name["EXPLODE"]["type"] == "TABLE"


def test_describe_function(client: TestClient) -> None:
    @udf(name="rest_entity_fn", description="Scales a number.")
    def scaled(x: float, factor: int) -> float:
        return x * factor

    try:
        [described] = ksql(client, "DESCRIBE FUNCTION rest_entity_fn;")
    finally:
        unregister("REST_ENTITY_FN")
    check(described, "FunctionDescriptionList")
    assert described["@type"] == "describe_function"
    assert (described["name"], described["type"]) == ("REST_ENTITY_FN", "SCALAR")
    assert described["description"] == "Scales a number."
    [overload] = described["functions"]
    check(overload, "FunctionInfo")
    assert overload["returnType"] == "DOUBLE"
    assert [check(a, "ArgumentInfo") for a in overload["arguments"]] == [
        {"name": "x", "type": "DOUBLE", "description": "", "isVariadic": False},
        {"name": "factor", "type": "BIGINT", "description": "", "isVariadic": False},
    ]


def test_describe_source(client: TestClient) -> None:
    """SourceDescription as ksqlDB's SourceDescriptionFactory fills it, its fields as
    EntityUtil builds them: KEY and HEADER columns typed (a header column's key beside it),
    a STRUCT's fields, an ARRAY's element or a MAP's value as memberSchema, a DECIMAL's
    precision and scale as parameters."""
    ksql(
        client,
        READINGS + PEAKS + "CREATE TABLE per_minute AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device;",
    )
    readings, windowed = ksql(client, "DESCRIBE readings; DESCRIBE per_minute;")
    check(readings, "SourceDescriptionEntity")
    description = check(readings["sourceDescription"], "SourceDescription")
    assert description["fields"] == [
        {"name": "DEVICE", "schema": scalar("STRING"), "type": "KEY"},
        {"name": "X", "schema": scalar("DOUBLE")},
        {
            "name": "PRICE",
            "schema": {**scalar("DECIMAL"), "parameters": {"precision": 4, "scale": 2}},
        },
        {"name": "TAGS", "schema": {**scalar("ARRAY"), "memberSchema": scalar("STRING")}},
        {"name": "ATTRS", "schema": {**scalar("MAP"), "memberSchema": scalar("INTEGER")}},
        {
            "name": "POS",
            "schema": {
                **scalar("STRUCT"),
                "fields": [
                    {"name": "LAT", "schema": scalar("DOUBLE")},
                    {"name": "long", "schema": scalar("DOUBLE")},
                ],
            },
        },
        {"name": "TS", "schema": scalar("BIGINT")},
        {"name": "SRC", "schema": scalar("BYTES"), "type": "HEADER", "headerKey": "source"},
    ]
    assert (description["name"], description["type"]) == ("READINGS", "STREAM")
    assert description["windowType"] is None
    assert description["timestamp"] == "TS"
    assert (description["keyFormat"], description["valueFormat"]) == ("KAFKA", "JSON")
    assert (description["topic"], description["partitions"]) == ("readings", 2)
    assert description["replication"] == 1
    assert description["extended"] is False
    assert [q["id"] for q in description["readQueries"]] == ["CTAS_PEAKS_0", "CTAS_PER_MINUTE_1"]
    for q in description["readQueries"]:
        check(q, "RunningQuery")
    assert description["writeQueries"] == []
    assert description["sourceConstraints"] == ["PEAKS", "PER_MINUTE"]
    assert description["statement"].startswith("CREATE STREAM readings")

    per_minute = check(windowed["sourceDescription"], "SourceDescription")
    assert per_minute["windowType"] == "TUMBLING"
    assert [q["id"] for q in per_minute["writeQueries"]] == ["CTAS_PER_MINUTE_1"]


def test_explain_a_query(client: TestClient) -> None:
    ksql(client, READINGS + PEAKS)
    [explained] = ksql(client, "EXPLAIN CTAS_PEAKS_0;")
    check(explained, "QueryDescriptionEntity")
    description = check(explained["queryDescription"], "QueryDescription")
    assert description["id"] == "CTAS_PEAKS_0"
    assert description["statementText"].startswith("CREATE TABLE peaks AS SELECT")
    assert (description["sources"], description["sinks"]) == (["READINGS"], ["PEAKS"])
    assert description["fields"] == [
        {"name": "DEVICE", "schema": scalar("STRING"), "type": "KEY"},
        {"name": "PEAK", "schema": scalar("DOUBLE")},
    ]
    assert description["windowType"] is None
    assert (description["queryType"], description["state"]) == ("PERSISTENT", "RUNNING")
    assert description["queryErrors"] == []
    assert isinstance(description["overriddenProperties"], dict)
    assert isinstance(description["ksqlHostQueryStatus"], dict)
    assert isinstance(description["tasksMetadata"], list)


def test_extended_lists_and_description(client: TestClient) -> None:
    """SHOW STREAMS/TABLES EXTENDED answer a SourceDescriptionList (source_descriptions) and
    SHOW QUERIES EXTENDED a QueryDescriptionList (query_descriptions), as ksqlDB's
    ListSourceExecutor and ListQueriesExecutor; DESCRIBE EXTENDED says extended."""
    ksql(client, READINGS + PEAKS)
    streams, tables, queries, described = ksql(
        client,
        "SHOW STREAMS EXTENDED; SHOW TABLES EXTENDED; SHOW QUERIES EXTENDED; "
        "DESCRIBE readings EXTENDED;",
    )
    for listed, name in ((streams, "READINGS"), (tables, "PEAKS")):
        assert check(listed, "SourceDescriptionList")["@type"] == "source_descriptions"
        [description] = listed["sourceDescriptions"]
        check(description, "SourceDescription")
        assert (description["name"], description["extended"]) == (name, True)
    assert check(queries, "QueryDescriptionList")["@type"] == "query_descriptions"
    [query] = queries["queryDescriptions"]
    assert check(query, "QueryDescription")["id"] == "CTAS_PEAKS_0"
    assert (query["sources"], query["sinks"]) == (["READINGS"], ["PEAKS"])
    assert check(described["sourceDescription"], "SourceDescription")["extended"] is True


def test_errors(client: TestClient) -> None:
    generic = client.get("/status/no/such/command")
    assert generic.status_code == 404
    assert check(generic.json(), "KsqlErrorMessage")["@type"] == "generic_error"
    r = client.post("/ksql", json={"ksql": READINGS + "DROP STREAM nowhere;"})
    assert r.status_code == 400
    body = check(r.json(), "KsqlStatementErrorMessage")
    assert body["@type"] == "statement_error"
    assert isinstance(body["error_code"], int)
    assert body["statementText"] == "DROP STREAM nowhere;"
    [created] = body["entities"]
    check(created, "CommandStatusEntity")
