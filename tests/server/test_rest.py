"""ksqlDB's REST API and hispeed's WebSockets, against a running server."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote

import httpx
import pytest
from websockets.sync.client import connect

from hispeed.runtime.task import PROCESSING_LOG
from tests.server.conftest import RunningServer

READINGS = (
    "CREATE STREAM readings (device STRING KEY, x DOUBLE, y DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=2);"
)


def ksql(server: RunningServer, text: str, **props: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/ksql",
        json={"ksql": text, "streamsProperties": props},
        headers={"content-type": "application/vnd.ksql.v1+json"},
        timeout=10,
    )


def produce(server: RunningServer, topic: str, rows: list[dict[str, object]]) -> None:
    r = httpx.post(f"{server.url}/topics/{topic}?key_field=device", json=rows, timeout=10)
    assert r.status_code == 200, r.text


def test_ksql_answers_each_statement_with_its_entity(server: RunningServer) -> None:
    r = ksql(
        server,
        READINGS
        + "CREATE TABLE peaks AS SELECT device, MAX(x) AS peak FROM readings GROUP BY device;"
        + "SHOW STREAMS; SHOW TABLES; SHOW QUERIES; DESCRIBE peaks; SHOW TOPICS;",
    )
    assert r.status_code == 200, r.text
    created, ctas, streams, tables, queries, described, topics = r.json()
    assert created["@type"] == "currentStatus"
    assert created["commandStatus"] == {
        "status": "SUCCESS",
        "message": "Stream created",
        "queryId": None,
    }
    assert created["commandId"] == "stream/`READINGS`/create"
    assert ctas["commandStatus"]["queryId"] == "CTAS_PEAKS_0"
    assert [s["name"] for s in streams["streams"]] == ["READINGS"]
    assert streams["streams"][0]["valueFormat"] == "JSON"
    assert tables["tables"][0]["name"] == "PEAKS"
    assert queries["queries"][0]["id"] == "CTAS_PEAKS_0"
    assert queries["queries"][0]["sinkKafkaTopics"] == ["PEAKS"]
    description = described["sourceDescription"]
    assert [(f["name"], f["schema"]["type"], f.get("type")) for f in description["fields"]] == [
        ("DEVICE", "STRING", "KEY"),
        ("PEAK", "DOUBLE", None),
    ]
    assert description["writeQueries"][0]["id"] == "CTAS_PEAKS_0"
    assert "readings" in [t["name"] for t in topics["topics"]]
    statuses = httpx.get(f"{server.url}/status").json()["commandStatuses"]
    assert statuses["table/`PEAKS`/create"] == "SUCCESS"
    one = httpx.get(f"{server.url}/status/stream/`READINGS`/create").json()
    assert one == {"status": "SUCCESS", "message": "Stream created", "queryId": None}


def test_a_failing_statement_ends_the_request_with_ksqldb_error_shape(
    server: RunningServer,
) -> None:
    r = ksql(server, READINGS + "\nCREATE STREAM bad (x BOGUS) WITH (kafka_topic='b');")
    assert r.status_code == 400
    body = r.json()
    assert body["@type"] == "statement_error"
    assert body["error_code"] == 40001
    assert "BOGUS" in body["message"]
    assert body["statementText"].startswith("CREATE STREAM bad")
    assert [e["@type"] for e in body["entities"]] == ["currentStatus"]  # the one that ran
    r = ksql(server, "SELEC * FROM readings;")
    assert r.status_code == 400
    assert r.json()["message"].startswith("line 1:1:")
    r = ksql(server, "SELECT * FROM readings EMIT CHANGES;")
    assert r.json()["error_code"] == 40002  # queries go to /query, as in ksqlDB
    r = ksql(server, "DESCRIBE nothing;")
    assert r.status_code == 400
    assert "NOTHING" in r.json()["message"].upper()


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"", 400, "empty"),
        (b"{not json", 400, "not JSON"),
        (b'["SHOW STREAMS;"]', 400, "JSON object"),
        (b'{"ksql": 3}', 400, '"ksql"'),
    ],
)
def test_malformed_requests_get_a_json_error(
    server: RunningServer, body: bytes, status: int, words: str
) -> None:
    r = httpx.post(f"{server.url}/ksql", content=body)
    assert r.status_code == status
    assert words in r.json()["message"]
    assert r.json()["@type"] == "generic_error"


def test_oversized_requests_are_refused(server_factory: object) -> None:
    small = server_factory(max_request_bytes=1000)  # type: ignore[operator]
    r = httpx.post(f"{small.url}/ksql", json={"ksql": "SHOW STREAMS;" + " " * 2000})
    assert r.status_code == 413
    assert "over 1000 bytes" in r.json()["message"]
    r = httpx.post(f"{small.url}/topics/t", json=[{"x": "y" * 2000}])
    assert r.status_code == 413


def test_unknown_paths_and_methods_are_json(server: RunningServer) -> None:
    r = httpx.get(f"{server.url}/nothing-here")
    assert r.status_code == 404
    assert r.json()["@type"] == "generic_error"
    r = httpx.get(f"{server.url}/ksql")
    assert r.status_code == 405


def test_pull_query_over_http1_is_ksqldb_json_array(server: RunningServer) -> None:
    ksql(
        server,
        READINGS + "CREATE TABLE peaks AS SELECT device, MAX(x) AS peak FROM readings "
        "GROUP BY device;",
    )
    produce(server, "readings", [{"device": "d1", "x": 1.5}, {"device": "d2", "x": 2.5}])
    server.wait_for(lambda: len(server.engine.query("SELECT * FROM peaks")) == 2)
    r = httpx.post(f"{server.url}/query", json={"ksql": "SELECT * FROM peaks;"})
    assert r.status_code == 200
    doc = r.json()  # one valid JSON document
    assert doc[0]["header"]["schema"] == "`DEVICE` STRING KEY, `PEAK` DOUBLE"
    rows = sorted(tuple(e["row"]["columns"]) for e in doc[1:])
    assert rows == [("d1", 1.5), ("d2", 2.5)]
    lines = r.text.splitlines()  # ksql 0.10.2 reads it a line at a time
    assert lines[0].startswith('[{"header"')
    assert lines[1].startswith('{"row"')


def test_push_query_over_http1_streams_rows_until_its_limit(server: RunningServer) -> None:
    ksql(server, READINGS)

    def later() -> None:
        # once the push query is registered its start ("latest") is fixed: produce then
        server.wait_for(lambda: len(server.server.state.queries) > 0)
        produce(server, "readings", [{"device": f"d{i}", "x": i} for i in range(5)])

    threading.Thread(target=later).start()
    body = {"ksql": "SELECT device, x FROM readings WHERE x >= 1 EMIT CHANGES LIMIT 3;"}
    with httpx.stream("POST", f"{server.url}/query", json=body, timeout=10) as r:
        text = r.read().decode()
    doc = json.loads(text)
    assert doc[0]["header"]["queryId"].startswith("transient_")
    assert sorted(e["row"]["columns"][1] for e in doc[1:4]) == [1, 2, 3] or len(doc[1:4]) == 3
    assert doc[-1] == {"finalMessage": "Limit Reached"}


def test_query_stream_over_http2_and_close_query(server: RunningServer) -> None:
    ksql(server, READINGS)
    produce(server, "readings", [{"device": "old", "x": 0.5}])
    received: list[list[object]] = []
    with (
        httpx.Client(http1=False, http2=True, base_url=server.url, timeout=10) as client,
        client.stream(
            "POST",
            "/query-stream",
            json={
                "sql": "SELECT * FROM readings EMIT CHANGES;",
                "properties": {"auto.offset.reset": "earliest"},
            },
        ) as r,
    ):
        assert r.http_version == "HTTP/2"
        lines = r.iter_lines()
        header = json.loads(next(lines))
        assert header["columnNames"] == ["DEVICE", "X", "Y"]
        assert header["columnTypes"] == ["STRING", "DOUBLE", "DOUBLE"]
        received.append(json.loads(next(lines)))  # from the beginning, as asked
        produce(server, "readings", [{"device": "new", "x": 2.0, "y": 1.0}])
        received.append(json.loads(next(lines)))
        closed = client.post("/close-query", json={"queryId": header["queryId"]})
        assert closed.status_code == 200
        assert list(lines) == []  # the stream ends
    assert received == [["old", 0.5, None], ["new", 2.0, 1.0]]
    r = httpx.post(f"{server.url}/close-query", json={"queryId": "nope"})
    assert r.status_code == 400


def test_query_stream_reports_bad_queries(server: RunningServer) -> None:
    r = httpx.post(f"{server.url}/query-stream", json={"sql": "SELECT * FROM missing;"})
    assert r.status_code == 400
    assert r.json()["@type"] == "statement_error"
    assert "MISSING" in r.json()["message"]
    r = httpx.post(f"{server.url}/query-stream", json={"sql": "SHOW STREAMS;"})
    assert r.status_code == 400
    assert "/ksql" in r.json()["message"]


def test_print_over_query(server: RunningServer) -> None:
    produce(server, "events", [{"device": "a", "n": 1}, {"device": "b", "n": 2}])
    r = httpx.post(f"{server.url}/query", json={"ksql": "PRINT events FROM BEGINNING LIMIT 2;"})
    doc = r.json()
    lines = [e["row"]["columns"][0] for e in doc[1:3]]
    assert "key: a" in lines[0]
    assert '"n":1' in lines[0]
    assert doc[-1] == {"finalMessage": "Limit Reached"}


def test_inserts_stream_acks_each_row(server: RunningServer) -> None:
    ksql(server, READINGS)
    body = '{"target": "READINGS"}\n{"DEVICE": "d1", "X": 1.0}\n{"device": "d2", "x": "bad"}\n'
    r = httpx.post(f"{server.url}/inserts-stream", content=body)
    acks = [json.loads(line) for line in r.text.splitlines()]
    assert acks[0] == {"status": "ok", "seq": 0}
    assert acks[1]["status"] == "error"
    assert "READINGS.X is DOUBLE: 'bad' does not fit" in acks[1]["message"]
    assert acks[1]["seq"] == 1
    rows = server.engine.query("SELECT * FROM readings")
    assert [r["DEVICE"] for r in rows] == ["d1"]


def test_metrics_count_query_records_and_ingestion(server: RunningServer) -> None:
    ksql(server, READINGS + "CREATE STREAM high AS SELECT * FROM readings WHERE x > 1;")
    produce(server, "readings", [{"device": "a", "x": 2}, {"device": "b", "x": 0}])
    server.wait_for(lambda: server.engine.tasks["CSAS_HIGH_0"].records_in == 2)
    text = httpx.get(f"{server.url}/metrics").text
    assert 'hispeed_query_records_in_total{query="CSAS_HIGH_0"} 2' in text
    assert 'hispeed_query_records_out_total{query="CSAS_HIGH_0"} 1' in text
    assert 'hispeed_query_lag_records{query="CSAS_HIGH_0"} 0' in text
    assert 'hispeed_ingested_records_total{topic="readings",protocol="http"} 2' in text
    assert 'hispeed_ingest_batch_records_bucket{protocol="http",le="10"} 1' in text
    assert f'hispeed_topic_records_total{{topic="{PROCESSING_LOG}"}} 0' in text
    assert 'hispeed_ingest_latency_seconds_count{protocol="http"} 1' in text


# -- WebSockets ---------------------------------------------------------------------------


def caught_up(server: RunningServer) -> bool:
    """Every persistent query has read to the end of its inputs (its own progress)."""
    return all(q["lag"] == 0 for q in server.server.state.metrics.query_stats())


def ws_url(server: RunningServer, path: str) -> str:
    return server.url.replace("http://", "ws://") + path


def test_websocket_push_query_receives_rows_as_json(server: RunningServer) -> None:
    ksql(server, READINGS)
    request = json.dumps({"ksql": "SELECT device, x * 2 AS x2 FROM readings EMIT CHANGES;"})
    with connect(ws_url(server, "/ws/query"), open_timeout=5) as ws:
        ws.send(request)
        header = json.loads(ws.recv(timeout=5))
        assert header["columnNames"] == ["DEVICE", "X2"]
        produce(server, "readings", [{"device": "d1", "x": 1.5}, {"device": "d2", "x": 3}])
        rows = sorted(json.loads(ws.recv(timeout=5)) for _ in range(2))
    assert rows == [["d1", 3.0], ["d2", 6.0]]
    server.wait_for(lambda: len(server.server.state.queries) == 0)  # closed with the socket


def test_websocket_push_query_in_batches(server: RunningServer) -> None:
    ksql(server, READINGS)
    with connect(ws_url(server, "/ws/query?batch=true"), open_timeout=5) as ws:
        ws.send("SELECT device, x FROM readings EMIT CHANGES;")
        assert json.loads(ws.recv(timeout=5))["columnNames"] == ["DEVICE", "X"]
        produce(server, "readings", [{"device": f"d{i}", "x": i} for i in range(50)])
        rows: list[list[object]] = []
        while len(rows) < 50:
            batch = json.loads(ws.recv(timeout=5))
            assert isinstance(batch[0], list)  # a message is a list of rows
            rows += batch
    assert sorted(r[1] for r in rows) == list(range(50))


def test_websocket_push_query_that_joins_and_aggregates(server: RunningServer) -> None:
    ksql(
        server,
        READINGS + "CREATE TABLE devices (device STRING PRIMARY KEY, room STRING) "
        "WITH (kafka_topic='devices', value_format='JSON', partitions=2);",
    )
    produce(server, "devices", [{"device": "d1", "room": "lab"}, {"device": "d2", "room": "lab"}])
    sql = (
        "SELECT d.room, COUNT(*) AS n FROM readings r JOIN devices d ON r.device = d.device "
        "GROUP BY d.room EMIT CHANGES;"
    )
    with connect(
        ws_url(server, "/ws/query?request=" + quote(json.dumps({"ksql": sql}))), open_timeout=5
    ) as ws:
        header = json.loads(ws.recv(timeout=5))
        assert header["columnNames"] == ["ROOM", "N"]  # sent once its start is fixed
        produce(server, "readings", [{"device": "d1", "x": 1}, {"device": "d2", "x": 2}])
        counts = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and 2 not in counts:
            row = json.loads(ws.recv(timeout=5))
            assert row[0] == "lab"
            counts.append(row[1])
    assert counts[-1] == 2


def test_websocket_bad_query_gets_an_error_and_a_close(server: RunningServer) -> None:
    with connect(ws_url(server, "/ws/query"), open_timeout=5) as ws:
        ws.send("SELECT * FROM nowhere EMIT CHANGES;")
        error = json.loads(ws.recv(timeout=5))
        assert error["@type"] == "generic_error"
        assert "NOWHERE" in error["message"]


def test_websocket_topic_tail_follows_a_pattern(server: RunningServer) -> None:
    produce(server, "device1", [{"device": "device1", "x": 0}])  # before: not sent (latest)
    # the tail's start ("latest") is fixed before the handshake completes
    with connect(ws_url(server, "/ws/topics?pattern=^device.*"), open_timeout=5) as ws:
        produce(server, "device1", [{"device": "device1", "x": 1}])
        produce(server, "other", [{"device": "o", "x": 9}])
        produce(server, "device2", [{"device": "device2", "x": 2}])  # a topic made later
        got = [json.loads(ws.recv(timeout=5)) for _ in range(2)]
    assert sorted((g["topic"], g["key"], g["value"]["x"]) for g in got) == [
        ("device1", "device1", 1),
        ("device2", "device2", 2),
    ]
    with connect(ws_url(server, "/ws/topics?topics=device1&from=beginning"), open_timeout=5) as ws:
        first = json.loads(ws.recv(timeout=5))
        assert (first["offset"], first["value"]) == (0, {"device": "device1", "x": 0})


def test_websocket_produce_answers_offsets_and_refuses_bad_records(
    server: RunningServer,
) -> None:
    with connect(ws_url(server, "/ws/produce/clicks?key_field=user"), open_timeout=5) as ws:
        ws.send(json.dumps([{"user": "u1", "page": "/"}, {"user": "u2", "page": "/a"}]))
        ok = json.loads(ws.recv(timeout=5))
        assert [o["offset"] for o in ok["offsets"]] == [0, 1]
        ws.send(json.dumps([{"user": "u3"}, {"page": "no user"}]))
        bad = json.loads(ws.recv(timeout=5))
        assert bad["@type"] == "generic_error"
        assert "record 1" in bad["message"]
        assert "'user'" in bad["message"]
        ws.send("{broken")
        assert "not JSON" in json.loads(ws.recv(timeout=5))["message"]
    log_ = server.engine.log
    assert log_.offsets("clicks", 0)[1] == 2  # the bad message wrote nothing


def test_set_holds_for_the_rest_of_its_request_only(server: RunningServer) -> None:
    r = ksql(server, "SET 'auto.offset.reset'='latest'; SHOW PROPERTIES;")
    props = {p["name"]: p["value"] for p in r.json()[0]["properties"]}
    assert props["auto.offset.reset"] == "earliest"  # the engine's own: not changed for all
    assert [e["@type"] for e in r.json()] == ["properties"]


def test_set_applies_to_the_statements_after_it(server: RunningServer) -> None:
    ksql(server, READINGS)
    produce(server, "readings", [{"device": "old", "x": 1}])
    r = ksql(
        server,
        "SET 'auto.offset.reset'='latest'; CREATE STREAM fresh AS SELECT * FROM readings;",
    )
    assert r.status_code == 200, r.text  # the query's start ("latest") is fixed by now
    produce(server, "readings", [{"device": "new", "x": 2}])
    log_ = server.engine.log

    def keys() -> list[bytes]:
        return [k for p in (0, 1) for k in log_.read_table("FRESH", p).column("key").to_pylist()]

    server.wait_for(keys)
    server.wait_for(lambda: caught_up(server))  # whatever it would read, it has read
    assert keys() == [b"new"]
