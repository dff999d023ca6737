"""Kafka Connect in Kafka mode: CREATE SOURCE|SINK CONNECTOR with a Java connector.class goes to
a real Kafka Connect worker (Apache Kafka's own runtime and FileStream connectors, the
`kafka_connect` fixture) against the test broker; SHOW/DESCRIBE/DROP CONNECTOR show and act on
its state in ksqlDB's shapes. What the worker says is checked against its own REST API, read
here with httpx apart from hispeed's client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.log.kafka import KafkaLog
from hispeed.processes import free_port
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.server.statements import run_ksql
from hispeed.testing.kafka_connect import ConnectWorker
from hispeed.testing.services import Service
from hispeed.testing.wait import wait_for

pytestmark = [pytest.mark.services, pytest.mark.kafka, pytest.mark.slow]

FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"
FILE_SINK = "org.apache.kafka.connect.file.FileStreamSinkConnector"
STRINGS = "org.apache.kafka.connect.storage.StringConverter"


@pytest.fixture
def engine(kafka_server: Service, kafka_connect: ConnectWorker) -> Iterator[Engine]:
    """An engine in Kafka mode (an application of its own) with ksql.connect.url set."""
    log_ = KafkaLog(kafka_server.bootstrap, app_id=f"kc{uuid.uuid4().hex[:8]}")
    with Engine(
        log_=log_, worker_id="w1", properties={"ksql.connect.url": kafka_connect.url}
    ) as engine:
        engine.start()  # the queries run on their own
        yield engine


def unique(stem: str) -> str:
    """A name of the test's own: the broker and the Connect cluster are the session's."""
    return f"{stem}_{uuid.uuid4().hex[:8]}"


def connect_get(worker: ConnectWorker, path: str) -> Any:
    """What the worker's REST API says, read apart from hispeed."""
    response = httpx.get(worker.url + path, timeout=10)
    response.raise_for_status()
    return response.json()


def write_lines(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def readings(first: int, count: int) -> list[dict[str, Any]]:
    return [{"ID": i, "NAME": f"n{i}"} for i in range(first, first + count)]


def stream_rows(engine: Engine, stream: str) -> list[dict[str, Any]]:
    return [{"ID": r["ID"], "NAME": r["NAME"]} for r in engine.query(f"SELECT * FROM {stream};")]


def create_lines_stream(engine: Engine, stream: str, topic: str) -> None:
    """A stream over the topic a file source writes: each line a JSON object."""
    engine.execute(
        f"CREATE STREAM {stream} (id INT, name VARCHAR) "
        f"WITH (kafka_topic='{topic}', partitions=1, value_format='JSON');"
    )


def create_file_source(engine: Engine, name: str, path: Path, topic: str) -> None:
    # a RegexRouter under a camel-case alias: the configuration keys reach Connect as
    # written (lower-cased, 'transforms.totopic.type' would not match the alias 'toTopic')
    engine.execute(
        f"""CREATE SOURCE CONNECTOR {name} WITH (
          'connector.class'='{FILE_SOURCE}', 'file'='{path}', 'topic'='placeholder',
          'value.converter'='{STRINGS}', 'tasks.max'=1,
          'transforms'='toTopic',
          'transforms.toTopic.type'='org.apache.kafka.connect.transforms.RegexRouter',
          'transforms.toTopic.regex'='.*', 'transforms.toTopic.replacement'='{topic}');"""
    )


def file_source_into_stream(engine: Engine, path: Path, lines: int) -> tuple[str, str, Path]:
    """A stream, and a file source writing `lines` lines of `path` (and later ones) to its
    topic: (the connector's name, the stream's, the file)."""
    topic, name, stream = unique("lines"), unique("FILE_IN").upper(), unique("LINES").upper()
    create_lines_stream(engine, stream, topic)
    write_lines(path, readings(0, lines))
    create_file_source(engine, name, path, topic)
    return name, stream, path


def task_running(worker: ConnectWorker, name: str) -> bool:
    status = connect_get(worker, f"/connectors/{name}/status")
    return status["connector"]["state"] == "RUNNING" and any(
        t["state"] == "RUNNING" for t in status["tasks"]
    )


def test_a_file_source_feeds_a_stream(
    engine: Engine, kafka_connect: ConnectWorker, tmp_path: Path
) -> None:
    name, stream, path = file_source_into_stream(engine, tmp_path / "in.jsonl", 50)
    try:
        assert name in connect_get(kafka_connect, "/connectors")
        expected = readings(0, 50)
        wait_for(lambda: len(stream_rows(engine, stream)) >= 50, timeout=90)
        assert sorted(stream_rows(engine, stream), key=lambda r: r["ID"]) == expected
        # lines written later follow
        write_lines(path, readings(50, 25))
        wait_for(lambda: len(stream_rows(engine, stream)) >= 75, timeout=60)
        assert sorted(stream_rows(engine, stream), key=lambda r: r["ID"]) == readings(0, 75)
    finally:
        engine.execute(f"DROP CONNECTOR IF EXISTS {name};")


def test_a_bad_line_goes_to_the_processing_log_and_the_rest_go_on(
    engine: Engine, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    write_lines(path, readings(0, 10))
    with path.open("a") as f:
        f.write('{"ID": 10, "NAME": \n')  # cut short: the worker passes it on as it is
    write_lines(path, readings(11, 10))
    name, stream, _ = file_source_into_stream(engine, path, 0)
    copy = unique("COPY").upper()
    engine.execute(f"CREATE STREAM {copy} AS SELECT * FROM {stream};")
    try:
        wait_for(lambda: len(stream_rows(engine, copy)) >= 20, timeout=90)
        expected = readings(0, 10) + readings(11, 10)
        assert sorted(stream_rows(engine, copy), key=lambda r: r["ID"]) == expected

        def errors() -> list[dict[str, Any]]:
            table = engine.log.read_table(PROCESSING_LOG, 0)
            return [json.loads(v) for v in table.column("value").to_pylist()]

        wait_for(lambda: errors(), timeout=30)
        [error] = errors()
        # the record at the bad line's offset (the 11th line: offset 10) of the source's topic
        assert error["offset"] == 10
        assert error["topic"] == engine.catalog.sources[stream].topic
    finally:
        engine.execute(f"DROP CONNECTOR IF EXISTS {name};")


def test_a_file_sink_writes_a_query_output(
    engine: Engine, kafka_connect: ConnectWorker, tmp_path: Path
) -> None:
    source, hot, name = unique("TEMPS").upper(), unique("HOT").upper(), unique("FILE_OUT").upper()
    engine.execute(
        f"""CREATE STREAM {source} (device VARCHAR KEY, temp DOUBLE)
              WITH (kafka_topic='{source.lower()}', partitions=1, value_format='JSON');
            CREATE STREAM {hot} AS SELECT device, temp FROM {source} WHERE temp > 30;"""
    )
    for i in range(40):
        engine.insert(source, {"DEVICE": f"d{i % 3}", "TEMP": 20.0 + i})
    out = tmp_path / "hot.jsonl"
    engine.execute(
        f"""CREATE SINK CONNECTOR {name} WITH ('connector.class'='{FILE_SINK}',
              'file'='{out}', 'topics'='{hot}', 'key.converter'='{STRINGS}',
              'value.converter'='{STRINGS}');"""
    )
    try:
        expected = sorted(20.0 + i for i in range(40) if 20.0 + i > 30)

        def written() -> list[float]:
            if not out.exists():
                return []
            return sorted(json.loads(line)["TEMP"] for line in out.read_text().splitlines())

        wait_for(lambda: len(written()) >= len(expected), timeout=90)
        assert written() == expected
    finally:
        engine.execute(f"DROP CONNECTOR IF EXISTS {name};")


def test_show_describe_and_drop_in_ksqldb_shapes(
    engine: Engine, kafka_connect: ConnectWorker, tmp_path: Path
) -> None:
    topic, name, stream = unique("shown"), unique("SHOWN").upper(), unique("SHOWN_S").upper()
    create_lines_stream(engine, stream, topic)
    path = tmp_path / "in.jsonl"
    write_lines(path, readings(0, 3))
    # over /ksql: CREATE answers ksqlDB's connector_info with what the worker made
    status, body = run_ksql(
        engine,
        f"""CREATE SOURCE CONNECTOR {name} WITH ('connector.class'='{FILE_SOURCE}',
              'file'='{path}', 'topic'='{topic}', 'value.converter'='{STRINGS}');""",
    )
    assert status == 200, body
    assert body[0]["@type"] == "connector_info"
    assert body[0]["info"]["name"] == name
    assert body[0]["info"]["type"] == "source"
    assert body[0]["info"]["config"]["file"] == str(path)
    # not kept in the command topic: the Connect cluster keeps it
    assert name not in engine.connectors.runners
    wait_for(lambda: task_running(kafka_connect, name), timeout=60)
    wait_for(lambda: len(stream_rows(engine, stream)) >= 3, timeout=60)

    status, body = run_ksql(engine, "SHOW CONNECTORS;")
    assert status == 200, body
    listed = body[0]
    assert listed["@type"] == "connector_list"
    assert set(listed) == {"@type", "statementText", "warnings", "connectors"}
    row = next(c for c in listed["connectors"] if c["name"] == name)
    # ksqlDB's SimpleConnectorInfo, the state summarized as its ListConnectorsExecutor does
    assert row == {
        "name": name,
        "type": "source",
        "className": FILE_SOURCE,
        "state": "RUNNING (1/1 tasks RUNNING)",
    }

    # SHOW SOURCE|SINK CONNECTORS: ksqlDB's scope, by the type the worker says
    _, body = run_ksql(engine, "SHOW SOURCE CONNECTORS;")
    assert any(c["name"] == name for c in body[0]["connectors"])
    _, body = run_ksql(engine, "SHOW SINK CONNECTORS;")
    assert all(c["name"] != name for c in body[0]["connectors"])
    # IF NOT EXISTS of a connector the cluster has: a warning, and the connector unchanged
    status, body = run_ksql(
        engine,
        f"""CREATE SOURCE CONNECTOR IF NOT EXISTS {name} WITH (
              'connector.class'='{FILE_SOURCE}', 'file'='/elsewhere', 'topic'='{topic}');""",
    )
    assert status == 200, body
    assert body[0]["@type"] == "warning_entity"
    assert body[0]["message"] == f"Connector {name} already exists"
    assert connect_get(kafka_connect, f"/connectors/{name}/config")["file"] == str(path)

    status, body = run_ksql(engine, f"DESCRIBE CONNECTOR {name};")
    assert status == 200, body
    described = body[0]
    assert described["@type"] == "connector_description"
    assert {"statementText", "connectorClass", "status", "sources", "topics", "warnings"} <= set(
        described
    )
    assert described["connectorClass"] == FILE_SOURCE
    truth = connect_get(kafka_connect, f"/connectors/{name}/status")
    assert described["status"]["name"] == truth["name"] == name
    assert described["status"]["connector"]["state"] == truth["connector"]["state"] == "RUNNING"
    assert described["status"]["connector"]["worker_id"] == truth["connector"]["worker_id"]
    assert [t["id"] for t in described["status"]["tasks"]] == [t["id"] for t in truth["tasks"]]
    assert described["status"]["type"] == "source"
    wait_for(
        lambda: topic in connect_get(kafka_connect, f"/connectors/{name}/topics")[name]["topics"]
    )
    status, body = run_ksql(engine, f"DESCRIBE CONNECTOR {name};")
    assert body[0]["topics"] == [topic]
    assert [s["name"] for s in body[0]["sources"]] == [stream]

    status, body = run_ksql(engine, f"DROP CONNECTOR {name};")
    assert status == 200, body
    assert body[0]["@type"] == "drop_connector"
    assert body[0]["connectorName"] == name
    assert name not in connect_get(kafka_connect, "/connectors")
    # a connector that is not there: the worker's answer, as ksqlDB words it; IF EXISTS warns
    status, body = run_ksql(engine, f"DROP CONNECTOR {name};")
    assert status == 400
    assert body["@type"] == "statement_error"
    assert body["message"].startswith("Failed to drop connector: ")
    assert name in body["message"]
    status, body = run_ksql(engine, f"DROP CONNECTOR IF EXISTS {name};")
    assert status == 200, body
    assert body[0] == {
        "@type": "warning_entity",
        "statementText": f"DROP CONNECTOR IF EXISTS {name};",
        "warnings": [],
        "message": f"Connector '{name}' does not exist.",
    }
    status, body = run_ksql(engine, f"DESCRIBE CONNECTOR {name};")
    assert status == 400
    assert body["message"].startswith("Failed to query connector status: ")


def test_the_workers_errors_are_statement_errors(
    engine: Engine, kafka_connect: ConnectWorker, tmp_path: Path
) -> None:
    name = unique("BAD").upper()
    # a configuration the worker refuses: its message, a 400 of ksqlDB's shape
    status, body = run_ksql(
        engine, f"CREATE SOURCE CONNECTOR {name} WITH ('connector.class'='{FILE_SOURCE}');"
    )
    assert status == 400
    assert body["@type"] == "statement_error"
    assert body["message"].startswith("Failed to create connector: ")
    assert "topic" in body["message"]
    # a class the worker does not have
    status, body = run_ksql(
        engine, f"CREATE SINK CONNECTOR {name} WITH ('connector.class'='com.example.Nothing');"
    )
    assert status == 400
    assert "com.example.Nothing" in body["message"]
    # a sink's class created as a source: refused, and not left running
    with pytest.raises(HispeedError, match="is a sink connector, not a source"):
        engine.execute(
            f"""CREATE SOURCE CONNECTOR {name} WITH ('connector.class'='{FILE_SINK}',
                  'topics'='{unique("t")}', 'file'='{tmp_path / "x"}');"""
        )
    assert name not in connect_get(kafka_connect, "/connectors")
    assert not any(name in str(r) for r in engine.execute("SHOW CONNECTORS;")[0].rows)


def test_a_worker_that_is_down_is_a_clear_error(kafka_server: Service) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    log_ = KafkaLog(kafka_server.bootstrap, app_id=f"kc{uuid.uuid4().hex[:8]}")
    with Engine(log_=log_, worker_id="w1", properties={"ksql.connect.url": down}) as engine:
        status, body = run_ksql(
            engine, f"CREATE SOURCE CONNECTOR x WITH ('connector.class'='{FILE_SOURCE}');"
        )
        assert status == 400
        assert body["message"].startswith(
            f"Failed to create connector: cannot reach Kafka Connect at {down}"
        )
        # SHOW lists hispeed's own connectors and says the cluster could not be asked
        status, body = run_ksql(engine, "SHOW CONNECTORS;")
        assert status == 200
        assert body[0]["connectors"] == []
        assert "cannot reach Kafka Connect" in body[0]["warnings"][0]["message"]
        # the settings' mistakes: what to set, and how
        create = f"CREATE SOURCE CONNECTOR x WITH ('connector.class'='{FILE_SOURCE}');"
        for wrong, said in [
            ("UNSET 'ksql.connect.url';", "needs the Connect cluster's REST address: set ksql"),
            ("SET 'ksql.connect.url'='localhost:8083';", "must be an http:// or https:// URL"),
            (
                f"SET 'ksql.connect.url'='{down}'; SET 'ksql.connect.request.timeout.ms'='0';",
                "ksql.connect.request.timeout.ms must be a positive number of milliseconds",
            ),
        ]:
            engine.execute(wrong)
            with pytest.raises(HispeedError, match=said):
                engine.execute(create)


def test_the_file_source_resumes_after_the_worker_restarts(
    engine: Engine, kafka_connect: ConnectWorker, tmp_path: Path
) -> None:
    name, stream, path = file_source_into_stream(engine, tmp_path / "in.jsonl", 100)
    try:
        wait_for(lambda: len(stream_rows(engine, stream)) >= 100, timeout=90)
        kafka_connect.stop()
        # lines written while the worker is down, then more while it comes back
        write_lines(path, readings(100, 100))
        kafka_connect.start()
        write_lines(path, readings(200, 100))
        wait_for(lambda: {r["ID"] for r in stream_rows(engine, stream)} >= set(range(300)), 90)
        rows = stream_rows(engine, stream)
        # nothing lost; the source is at-least-once (its offsets are committed each second),
        # so a line may come twice, never changed
        assert {r["ID"] for r in rows} == set(range(300))
        assert all(r == {"ID": r["ID"], "NAME": f"n{r['ID']}"} for r in rows)
        assert connect_get(kafka_connect, f"/connectors/{name}/status")["connector"]["state"] == (
            "RUNNING"
        )
    finally:
        if kafka_connect.pid == 0:
            kafka_connect.start()
        engine.execute(f"DROP CONNECTOR IF EXISTS {name};")
