"""Every endpoint of the server against malformed input: a 4xx with a JSON error that says
what is wrong (or, on a WebSocket, an error message and close 1008); never a 500, never a
traceback in the answer or an ERROR in the server's log.

The table is endpoints x bodies; each test walks its whole table against one server and
reports every failing cell at once, so one run shows all that is wrong."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.server.conftest import RunningServer, ServerFactory

#: the servers of this module refuse bodies over this many bytes
LIMIT = 64 * 1024

DEEP_ARRAY = b"[" * 1000 + b"]" * 1000
DEEP_OBJECT = b'{"a":' * 1000 + b"1" + b"}" * 1000

#: bodies no POST endpoint accepts: (name, bytes)
BAD_BODIES = [
    ("empty", b""),
    ("blank", b"   \n  "),
    ("not JSON", b"SHOW STREAMS;"),
    ("truncated JSON", b'{"ksql": "SHOW STR'),
    ("binary", bytes(range(256)) * 4),
    ("invalid UTF-8", b'{"ksql": "\xff\xfe"}'),
    ("deep array", DEEP_ARRAY),
    ("deep object", DEEP_OBJECT),
    ("over the size limit", b'{"ksql": "' + b"x" * (LIMIT + 1) + b'"}'),
]

#: bodies that are JSON but of the wrong shape for the statement endpoints
WRONG_SHAPES = [
    ("null", b"null"),
    ("number", b"1"),
    ("string", b'"SHOW STREAMS;"'),
    ("array", b'["SHOW STREAMS;"]'),
    ("missing fields", b"{}"),
    ("ksql a number", b'{"ksql": 1}'),
    ("ksql null", b'{"ksql": null}'),
    ("sql an object", b'{"sql": {"a": 1}}'),
    ("properties a list", b'{"ksql": "SHOW STREAMS;", "streamsProperties": [1]}'),
    ("properties a string", b'{"sql": "SHOW STREAMS;", "properties": "x"}'),
    ("huge identifier", b'{"ksql": "DESCRIBE ' + b"x" * (LIMIT // 2) + b';"}'),
    ("huge string", b'{"ksql": "SHOW STREAMS; \'' + b"y" * (LIMIT // 2) + b"'\"}"),
    ("bad SQL", b'{"ksql": "SHOW NOTHING;"}'),
]

STATEMENT_ENDPOINTS = ["/ksql", "/query", "/query-stream"]


@pytest.fixture
def strict(server_factory: ServerFactory) -> RunningServer:
    running = server_factory(max_request_bytes=LIMIT)
    ok = httpx.post(
        running.url + "/ksql",
        json={
            "ksql": "CREATE STREAM s (id STRING KEY, x INT) WITH (kafka_topic='s', "
            "value_format='JSON', partitions=1);"
        },
    )
    assert ok.status_code == 200, ok.text
    return running


@pytest.fixture
def server_errors(caplog: pytest.LogCaptureFixture) -> Iterator[list[logging.LogRecord]]:
    """The ERROR records the server (hispeed's and hypercorn's loggers) writes meanwhile."""
    caplog.set_level(logging.WARNING)
    errors: list[logging.LogRecord] = []
    yield errors
    errors.extend(r for r in caplog.records if r.levelno >= logging.ERROR)
    assert not errors, "the server logged errors:\n" + "\n".join(
        f"{r.name}: {r.getMessage()}" for r in errors
    )


def _problem(r: httpx.Response, *, allow_ok: bool = False) -> str | None:
    """What is wrong with an answer to bad input, or None when it is what users rely on."""
    if "Traceback" in r.text:
        return f"{r.status_code} with a traceback"
    if allow_ok and r.status_code < 300:
        return None
    if not 400 <= r.status_code < 500:
        return f"status {r.status_code}: {r.text[:200]}"
    try:
        doc = r.json()
    except json.JSONDecodeError:
        return f"{r.status_code} not JSON: {r.text[:200]}"
    if not isinstance(doc, dict) or not doc.get("message") or "error_code" not in doc:
        return f"{r.status_code} without an error message: {r.text[:200]}"
    return None


def test_post_endpoints_refuse_malformed_bodies_with_a_json_4xx(
    strict: RunningServer, server_errors: list[logging.LogRecord]
) -> None:
    endpoints = [
        *STATEMENT_ENDPOINTS,
        "/close-query",
        "/inserts-stream",
        "/topics/s",
        "/topics/fresh",
    ]
    failures = []
    with httpx.Client(base_url=strict.url, timeout=30) as client:
        for path in endpoints:
            ctypes = ["application/json"]
            if path.startswith("/topics/"):  # the only endpoint that reads NDJSON by type
                ctypes.append("application/x-ndjson")
            for name, body in BAD_BODIES:
                for ctype in ctypes:
                    r = client.post(path, content=body, headers={"content-type": ctype})
                    problem = _problem(r)
                    if problem:
                        failures.append(f"POST {path} [{name}, {ctype}]: {problem}")
        for path in [*STATEMENT_ENDPOINTS, "/close-query", "/inserts-stream"]:
            for name, body in WRONG_SHAPES:
                problem = _problem(client.post(path, content=body))
                if problem:
                    failures.append(f"POST {path} [{name}]: {problem}")
    assert not failures, "\n".join(failures)
    # nothing of it was written
    assert "fresh" not in strict.engine.log.list_topics()
    assert strict.engine.log.offsets("s", 0) == (0, 0)


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("unknown target", b'{"target": "NOPE"}\n{"ID": "a", "X": 1}\n'),
        ("target a number", b'{"target": 5}\n'),
        ("first line an array", b"[1, 2]\n"),
        ("rows but no target line", b'{"ID": "a", "X": 1}\n'),
    ],
)
def test_inserts_stream_refuses_a_bad_target_with_a_400(
    strict: RunningServer, name: str, body: bytes
) -> None:
    r = httpx.post(strict.url + "/inserts-stream", content=body)
    assert r.status_code == 400, name
    assert "line 1" in r.json()["message"]


def test_inserts_stream_names_the_unknown_target(strict: RunningServer) -> None:
    r = httpx.post(strict.url + "/inserts-stream", content=b'{"target": "NOPE"}\n{"X": 1}\n')
    assert r.status_code == 400
    assert "'NOPE' is not a stream or table" in r.json()["message"]


def test_inserts_stream_answers_each_bad_row_and_keeps_the_good(strict: RunningServer) -> None:
    body = b"\n".join([b'{"target": "s"}', DEEP_ARRAY, b'{"ID": "a", "X": 1}', b"not json", b"[1]"])
    r = httpx.post(strict.url + "/inserts-stream", content=body)
    assert r.status_code == 200
    acks = [json.loads(line) for line in r.text.splitlines()]
    assert [a["status"] for a in acks] == ["error", "ok", "error", "error"]
    assert "row 0 nests arrays and objects 1000 levels deep" in acks[0]["message"]
    assert strict.engine.log.offsets("s", 0) == (0, 1)


def test_deeply_nested_json_is_a_400_that_says_where(strict: RunningServer) -> None:
    for path in ["/ksql", "/query-stream", "/topics/s"]:
        r = httpx.post(strict.url + path, content=DEEP_ARRAY)
        assert r.status_code == 400, path
        assert "1000 levels deep (at byte 999)" in r.json()["message"], path


def test_get_endpoints_answer_bad_parameters_with_a_json_4xx(
    strict: RunningServer, server_errors: list[logging.LogRecord]
) -> None:
    cases = [
        "/status/no-such-command",
        "/topics/no-such-topic",
        "/api/redis/top",
        "/api/redis/top?pattern=x&n=many",
        "/api/redis/top?pattern=x&n=0",
        "/api/redis/top?pattern=x&n=" + "9" * 5000,
        "/no-such-path",
        "/ws/query",  # a plain GET of a WebSocket path
    ]
    failures = []
    for path in cases:
        problem = _problem(httpx.get(strict.url + path))
        if problem:
            failures.append(f"GET {path}: {problem}")
    for method, path in [("GET", "/ksql"), ("PUT", "/topics/s"), ("DELETE", "/status")]:
        problem = _problem(httpx.request(method, strict.url + path, content=b"x"))
        if problem:
            failures.append(f"{method} {path}: {problem}")
    assert not failures, "\n".join(failures)


def test_get_endpoints_ignore_a_body(strict: RunningServer) -> None:
    """What takes no body is not upset by one."""
    for path in ["/info", "/healthcheck", "/status", "/topics", "/metrics", "/api/overview"]:
        r = httpx.request("GET", strict.url + path, content=DEEP_ARRAY)
        assert r.status_code == 200, path


def _ws(server: RunningServer, path: str) -> ClientConnection:
    return connect(server.url.replace("http://", "ws://") + path, open_timeout=10)


def _refused(ws: ClientConnection) -> tuple[dict[str, object], int | None]:
    """The error message a WebSocket sends before it closes, and its close code."""
    error = json.loads(ws.recv(timeout=10))
    with pytest.raises(ConnectionClosed):
        ws.recv(timeout=10)
    return error, ws.close_code


QUERY_MESSAGES: list[tuple[str, str | bytes]] = [
    ("binary, not UTF-8", b"\xff\xfe\x00binary"),
    ("binary garbage SQL", b"\x00\x01\x02"),
    ("empty", ""),
    ("not JSON", "{not json"),
    ("deep JSON", DEEP_OBJECT.decode()),
    ("JSON array", '["SELECT * FROM s EMIT CHANGES;"]'),
    ("ksql a number", '{"ksql": 1}'),
    ("properties a list", '{"ksql": "SELECT * FROM s EMIT CHANGES;", "streamsProperties": []}'),
    ("bad SQL", "SELECT FROM;"),
    ("not a query", "SHOW STREAMS;"),
    ("unknown stream", "SELECT * FROM nope EMIT CHANGES;"),
    ("huge identifier", "SELECT * FROM " + "x" * (LIMIT // 2) + " EMIT CHANGES;"),
]


def test_ws_query_refuses_bad_first_messages_with_1008(
    strict: RunningServer, server_errors: list[logging.LogRecord]
) -> None:
    failures = []
    for name, message in QUERY_MESSAGES:
        with _ws(strict, "/ws/query") as ws:
            ws.send(message)
            error, code = _refused(ws)
            if code != 1008 or not error.get("message") or "Traceback" in str(error):
                failures.append(f"{name}: close {code}, {error}")
    assert not failures, "\n".join(failures)


def test_ws_query_binary_first_frame_is_read_as_text_when_it_is(strict: RunningServer) -> None:
    with _ws(strict, "/ws/query") as ws:
        ws.send(b"SELECT * FROM s EMIT CHANGES;")
        assert json.loads(ws.recv(timeout=10))["columnNames"] == ["ID", "X"]
    with _ws(strict, "/ws/query") as ws:
        ws.send(b"\xff\xfe")
        error, code = _refused(ws)
    assert code == 1008
    assert "binary and not UTF-8 text (byte 0)" in str(error["message"])


def test_ws_topics_refuses_bad_parameters_with_1008(
    strict: RunningServer, server_errors: list[logging.LogRecord]
) -> None:
    failures = []
    for query in ["", "?topics=", "?topics=s&from=middle", "?pattern=(", "?pattern=[a-"]:
        with _ws(strict, "/ws/topics" + query) as ws:
            error, code = _refused(ws)
            if code != 1008 or not error.get("message"):
                failures.append(f"{query!r}: close {code}, {error}")
    assert not failures, "\n".join(failures)


def test_ws_produce_answers_each_bad_message_and_stays_open(
    strict: RunningServer, server_errors: list[logging.LogRecord]
) -> None:
    bad: list[tuple[str, str | bytes]] = [
        ("empty", ""),
        ("binary", bytes(range(256))),
        ("not JSON", "{x"),
        ("deep JSON", DEEP_ARRAY.decode()),
        ("over the size limit", json.dumps(["x" * LIMIT])),
    ]
    failures = []
    with _ws(strict, "/ws/produce/s?key_field=id") as ws:
        for name, message in [*bad, ("not an object for key_field", "[1]")]:
            ws.send(message)
            answer = json.loads(ws.recv(timeout=10))
            if "offsets" in answer or not answer.get("message"):
                failures.append(f"{name}: {answer}")
        ws.send(json.dumps({"id": "a", "x": 1}))  # the socket still works
        assert json.loads(ws.recv(timeout=10))["offsets"] == [{"partition": 0, "offset": 0}]
    assert not failures, "\n".join(failures)


def test_client_disconnects_are_not_internal_errors(
    strict: RunningServer, server_errors: list[logging.LogRecord], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hispeed.server")
    port = int(strict.url.rsplit(":", 1)[1])
    # a body cut short: the client promised 1000 bytes and left after 6
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(
            b"POST /topics/s HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" + b'[{"x":'
        )
    strict.wait_for(lambda: "closed the connection after 6 bytes" in caplog.text)
    # a WebSocket that leaves before it sends its query, and one that leaves mid-query
    with _ws(strict, "/ws/query"):
        pass
    with _ws(strict, "/ws/query") as ws:
        ws.send("SELECT * FROM s EMIT CHANGES;")
        ws.recv(timeout=10)
        assert len(strict.server.state.queries) == 1
        ws.socket.shutdown(socket.SHUT_RDWR)  # no close frame: the connection just drops
    strict.wait_for(lambda: len(strict.server.state.queries) == 0)
    # and every endpoint still answers
    assert httpx.get(strict.url + "/info").status_code == 200


def test_websockets_without_credentials_get_401(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("bearer tok-123\n")
    secured = server_factory(auth_file=str(creds))
    for path in ["/ws/query", "/ws/topics?topics=t", "/ws/produce/t", "/ws/query?access_token=x"]:
        with pytest.raises(InvalidStatus) as refused:
            _ws(secured, path)
        response = refused.value.response
        assert response.status_code == 401, path
        assert "credentials" in json.loads(response.body or b"{}")["message"]
    with _ws(secured, "/ws/topics?topics=t&access_token=tok-123"):
        pass
