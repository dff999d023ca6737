"""The server's resource limits, each a setting: identifier length, SQL text per request,
statements per request, the size of an answer, push queries per client. One request must
not be able to take the server's memory (issue 16, defect 2)."""

from __future__ import annotations

import json

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from hispeed.config import Settings
from tests.server.conftest import RunningServer, ServerFactory


def _create(name: str, topic: str = "t") -> str:
    return (
        f"CREATE STREAM {name} (id STRING KEY, x INT) WITH (kafka_topic='{topic}', "
        "value_format='JSON', partitions=1);"
    )


def test_the_defaults_are_safe() -> None:
    settings = Settings()
    assert settings.max_identifier_length == 249  # Kafka's longest topic name
    assert settings.max_statements_per_request == 1000
    assert settings.max_sql_bytes == 1024 * 1024
    assert settings.max_response_bytes == 64 * 1024 * 1024
    assert settings.max_push_queries_per_client == 100
    assert settings.max_pull_rows == 100_000


def test_a_long_identifier_is_refused_where_it_stands(server: RunningServer) -> None:
    long_name = "s" * 250
    r = httpx.post(server.url + "/ksql", json={"ksql": "SHOW STREAMS;\n" + _create(long_name)})
    assert r.status_code == 400
    message = r.json()["message"]
    assert message.startswith("line 2:15: an identifier of 250 characters")
    assert "at most 249 characters" in message
    assert server.engine.catalog.sources == {}
    # quoted identifiers too, and in a query
    r = httpx.post(server.url + "/ksql", json={"ksql": _create(f"`{'q' * 300}`")})
    assert r.status_code == 400
    r = httpx.post(server.url + "/query-stream", json={"sql": f"SELECT * FROM {long_name};"})
    assert r.status_code == 400
    assert "at most 249 characters" in r.json()["message"]
    # 249 is fine
    r = httpx.post(server.url + "/ksql", json={"ksql": _create("s" * 249)})
    assert r.status_code == 200, r.text


def test_the_identifier_limit_is_a_setting(server_factory: ServerFactory) -> None:
    roomy = server_factory(max_identifier_length=1000)
    r = httpx.post(roomy.url + "/ksql", json={"ksql": _create("s" * 500)})
    assert r.status_code == 200, r.text


def test_the_issue_request_no_longer_answers_a_hundred_megabytes(server: RunningServer) -> None:
    """The reproducer: a 1 MB stream name and `SHOW STREAMS;` x 100 answered 105 MB."""
    r = httpx.post(
        server.url + "/ksql",
        json={"ksql": _create(f"`{'n' * 1_000_000}`") + "SHOW STREAMS;" * 100},
        timeout=60,
    )
    assert r.status_code == 400
    assert len(r.content) < 10_000
    assert "at most 249 characters" in r.json()["message"]


def test_statements_per_request_are_limited_before_any_runs(
    server_factory: ServerFactory,
) -> None:
    small = server_factory(max_statements_per_request=3)
    statements = [_create(f"s{i}", f"t{i}") for i in range(4)]
    r = httpx.post(small.url + "/ksql", json={"ksql": "\n".join(statements) + ";;"})
    assert r.status_code == 400
    assert "holds 4 statements" in r.json()["message"]
    assert "none ran" in r.json()["message"]
    assert small.engine.catalog.sources == {}
    # empty statements do not count, and three run
    r = httpx.post(small.url + "/ksql", json={"ksql": ";;" + "\n;".join(statements[:3])})
    assert r.status_code == 200, r.text
    assert sorted(small.engine.catalog.sources) == ["S0", "S1", "S2"]


def test_the_sql_text_of_a_request_is_limited(server_factory: ServerFactory) -> None:
    small = server_factory(max_sql_bytes=1000)
    for path, key in [("/ksql", "ksql"), ("/query-stream", "sql"), ("/query", "ksql")]:
        r = httpx.post(small.url + path, json={key: "SHOW STREAMS;" + ";" * 1000})
        assert r.status_code == 400, path
        assert "over the server's max_sql_bytes (1000)" in r.json()["message"], path
    with connect(small.url.replace("http", "ws") + "/ws/query", open_timeout=10) as ws:
        ws.send("SELECT * FROM s EMIT CHANGES;" + ";" * 1000)
        assert "max_sql_bytes" in json.loads(ws.recv(timeout=10))["message"]
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=10)
        assert ws.close_code == 1008


def test_an_answer_over_the_response_limit_stops_the_request(
    server_factory: ServerFactory,
) -> None:
    small = server_factory(max_response_bytes=20_000)
    name = "n" * 200
    assert httpx.post(small.url + "/ksql", json={"ksql": _create(name)}).status_code == 200
    r = httpx.post(small.url + "/ksql", json={"ksql": "SHOW STREAMS;" * 100})
    assert r.status_code == 400
    message = r.json()["message"]
    assert "passed the server's max_response_bytes (20000) at statement" in message
    ran = int(message.split("at statement ")[1].split(" ")[0])
    assert 20 < ran < 100
    assert f"the {100 - ran} after it did not run" in message
    assert len(r.content) < 20_000
    # under the limit, the whole answer
    r = httpx.post(small.url + "/ksql", json={"ksql": "SHOW STREAMS;" * 10})
    assert r.status_code == 200
    assert [e["streams"][0]["name"] for e in r.json()] == [name.upper()] * 10


def test_push_queries_per_client_are_limited(server_factory: ServerFactory) -> None:
    small = server_factory(max_push_queries_per_client=2)
    assert httpx.post(small.url + "/ksql", json={"ksql": _create("s")}).status_code == 200
    ws_url = small.url.replace("http", "ws") + "/ws/query"
    with connect(ws_url, open_timeout=10) as first, connect(ws_url, open_timeout=10) as second:
        for ws in (first, second):
            ws.send("SELECT * FROM s EMIT CHANGES;")
            assert "columnNames" in json.loads(ws.recv(timeout=10))
        with connect(ws_url, open_timeout=10) as third:
            third.send("SELECT * FROM s EMIT CHANGES;")
            error = json.loads(third.recv(timeout=10))
            assert "has 2 push queries open" in error["message"]
            assert "max_push_queries_per_client" in error["message"]
            with pytest.raises(ConnectionClosed):
                third.recv(timeout=10)
            assert third.close_code == 1008
        r = httpx.post(small.url + "/query-stream", json={"sql": "SELECT * FROM s EMIT CHANGES;"})
        assert r.status_code == 429
        assert "has 2 push queries open" in r.json()["message"]
        # pull queries are not push queries
        r = httpx.post(small.url + "/query-stream", json={"sql": "SELECT * FROM s;"})
        assert r.status_code == 200
    # closing them frees their places
    small.wait_for(lambda: len(small.server.state.queries) == 0)
    with connect(ws_url, open_timeout=10) as again:
        again.send("SELECT * FROM s EMIT CHANGES;")
        assert "columnNames" in json.loads(again.recv(timeout=10))


def test_a_large_pull_answer_arrives_whole(server: RunningServer) -> None:
    """Pull rows are encoded and sent a chunk at a time; every row still arrives, once."""
    assert httpx.post(server.url + "/ksql", json={"ksql": _create("s")}).status_code == 200
    records = [{"id": str(i), "x": i} for i in range(2500)]
    r = httpx.post(server.url + "/topics/t?key_field=id", json=records)
    assert r.status_code == 200
    r = httpx.post(server.url + "/query-stream", json={"sql": "SELECT * FROM s;"}, timeout=60)
    lines = r.text.splitlines()
    assert json.loads(lines[0])["columnNames"] == ["ID", "X"]
    assert sorted(json.loads(line)[1] for line in lines[1:]) == list(range(2500))
    r = httpx.post(server.url + "/query", json={"ksql": "SELECT * FROM s;"}, timeout=60)
    rows = [e["row"]["columns"][1] for e in r.json() if "row" in e]
    assert sorted(rows) == list(range(2500))


def test_a_pull_query_over_a_stream_past_its_bound_is_a_400(server_factory: ServerFactory) -> None:
    small = server_factory(engine_properties={"pull.max.rows": 3})
    assert httpx.post(small.url + "/ksql", json={"ksql": _create("s")}).status_code == 200
    for i in range(5):
        small.engine.insert("s", {"ID": "a", "X": i})
    for endpoint, body in (("/query-stream", "sql"), ("/query", "ksql")):
        r = httpx.post(small.url + endpoint, json={body: "SELECT * FROM s;"})
        assert r.status_code == 400, r.text
        assert "returns at most 3 rows" in r.json()["message"]
        r = httpx.post(small.url + endpoint, json={body: "SELECT * FROM s LIMIT 3;"})
        assert r.status_code == 200, r.text


def _many(server: RunningServer, topic: str, n: int) -> None:
    server.engine.log.create_topic(topic, 1)  # one partition: one order to sample from
    rows = [{"device": f"d{i % 4}", "n": i} for i in range(n)]
    r = httpx.post(f"{server.url}/topics/{topic}?key_field=device", json=rows, timeout=30)
    assert r.status_code == 200, r.text


def _printed(line: str) -> int:
    """The `n` of a PRINT line ("rowtime: ..., key: d1, value: {...}, partition: 0")."""
    value = line.split("value: ", 1)[1].rsplit(", partition:", 1)[0]
    return int(json.loads(value)["n"])


@pytest.mark.parametrize("endpoint", ["/query", "/query-stream"])
def test_print_streams_every_intervalth_record_until_its_limit(
    server: RunningServer, endpoint: str
) -> None:
    _many(server, "big", 2000)
    body = {
        "ksql" if endpoint == "/query" else "sql": "PRINT big FROM BEGINNING INTERVAL 10 LIMIT 50;"
    }
    r = httpx.post(server.url + endpoint, json=body, timeout=30)
    assert r.status_code == 200, r.text
    if endpoint == "/query":
        lines = [e["row"]["columns"][0] for e in r.json() if "row" in e]
    else:
        lines = [json.loads(x)[0] for x in r.text.splitlines()[1:] if x.startswith("[")]
    assert [_printed(line) for line in lines] == list(range(0, 500, 10))


def test_a_streamed_print_reads_a_bounded_chunk_at_a_time(server: RunningServer) -> None:
    """However large the topic, one poll of a PRINT holds print_poll_records records."""
    from hispeed.server.streaming import QuerySession

    _many(server, "big", 300)
    session = QuerySession(
        server.engine, "PRINT big FROM BEGINNING;", settings=Settings(print_poll_records=7)
    )
    try:
        seen: list[int] = []
        sizes: list[int] = []
        while len(seen) < 300:
            rows = session.poll(1.0)
            sizes.append(len(rows))
            seen += [_printed(r[0]) for r in rows]
        assert sorted(seen) == list(range(300))
        assert max(sizes) <= 7, sizes
    finally:
        session.close()


def test_print_defaults_are_safe() -> None:
    settings = Settings()
    assert settings.print_max_records == 10_000
    assert settings.print_poll_records == 500
