"""hispeed.Client: the embedded engine's methods against a running server."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import hispeed
from hispeed.client import (
    Client,
    ConnectionFailedError,
    ServerError,
    StatementError,
    UnreachableError,
    split_statements,
    statements_of,
)
from hispeed.errors import HispeedError, SqlError
from hispeed.testing.services import free_port
from tests.server.conftest import RunningServer

READINGS = (
    "CREATE STREAM readings (device STRING KEY, x DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)
PEAKS = "CREATE TABLE peaks AS SELECT device, MAX(x) AS peak FROM readings GROUP BY device;"


@pytest.fixture
def client(server: RunningServer) -> Iterator[Client]:
    with hispeed.Client(server.url, timeout=10) as c:
        yield c


@pytest.fixture
def peaks(server: RunningServer, client: Client) -> RunningServer:
    """The server with readings of two devices and the table of their peaks, caught up."""
    client.execute(READINGS + PEAKS)
    client.produce(
        "readings",
        [{"device": "a", "x": 1.0}, {"device": "b", "x": 5.0}, {"device": "a", "x": 3.0}],
        key_field="device",
    )
    server.wait_for(lambda: len(client.query("SELECT * FROM peaks")) == 2)
    server.wait_for(lambda: {"DEVICE": "a", "PEAK": 3.0} in client.query("SELECT * FROM peaks"))
    return server


def test_client_is_exported_beside_the_engine() -> None:
    assert hispeed.Client is Client
    assert "Client" in hispeed.__all__


def test_execute_maps_each_entity_to_the_engines_result(
    server: RunningServer, client: Client
) -> None:
    created, ctas, streams, tables, queries, described, props = client.execute(
        READINGS + PEAKS + "SHOW STREAMS; SHOW TABLES; SHOW QUERIES; DESCRIBE peaks; "
        "SHOW PROPERTIES;"
    )
    assert (created.kind, created.message, created.query_id) == ("status", "Stream created", None)
    assert created.statement == READINGS
    assert ctas.query_id == "CTAS_PEAKS_0"
    assert streams.kind == "streams"
    assert tables.kind == "tables"
    assert queries.kind == "queries"
    assert described.kind == "describe"
    assert described.rows == [
        {"name": "DEVICE", "type": "STRING", "key": True},
        {"name": "PEAK", "type": "DOUBLE", "key": False},
    ]
    assert described.info["writeQueries"] == ["CTAS_PEAKS_0"]
    assert described.info["topic"] == "PEAKS"
    assert props.kind == "properties"
    # the same rows as the engine behind the server gives
    engine = server.engine
    for remote, sql in ((streams, "SHOW STREAMS"), (tables, "SHOW TABLES")):
        assert remote.rows == engine.execute(sql)[0].rows
    assert queries.rows == engine.execute("SHOW QUERIES")[0].rows
    # the EXTENDED forms answer ksqlDB's description lists; the client gives the same rows
    streams, tables, queries = client.execute(
        "SHOW STREAMS EXTENDED; SHOW TABLES EXTENDED; SHOW QUERIES EXTENDED;"
    )
    assert (streams.kind, tables.kind, queries.kind) == ("streams", "tables", "queries")
    assert streams.rows == engine.execute("SHOW STREAMS")[0].rows
    assert tables.rows == engine.execute("SHOW TABLES")[0].rows
    assert queries.rows == engine.execute("SHOW QUERIES")[0].rows


def test_execute_runs_insert_values_and_pull_queries(peaks: RunningServer, client: Client) -> None:
    inserted, pulled = client.execute(
        "INSERT INTO readings (device, x) VALUES ('c', 7.5);\n"
        "SELECT * FROM readings WHERE device = 'b'"  # the last statement needs no `;`
    )
    assert (inserted.kind, inserted.message) == ("status", "Inserted")
    assert pulled.kind == "rows"
    assert pulled.rows == [{"DEVICE": "b", "X": 5.0}]
    assert pulled.info == {"columns": ["DEVICE", "X"], "types": ["STRING", "DOUBLE"]}
    peaks.wait_for(lambda: {"DEVICE": "c", "PEAK": 7.5} in client.query("SELECT * FROM peaks"))


def test_execute_refuses_a_push_query(client: Client) -> None:
    client.execute(READINGS)
    with pytest.raises(HispeedError, match=r"push query: run it with Client.stream"):
        client.execute("SELECT * FROM readings EMIT CHANGES;")


def test_statement_errors_carry_the_servers_message_and_position(client: Client) -> None:
    client.execute(READINGS)
    with pytest.raises(StatementError) as caught:
        client.execute("SELECT *\nFROM readings WHERE nope = 1;")
    e = caught.value
    assert isinstance(e, SqlError)
    assert isinstance(e, ServerError)
    assert (e.line, e.column) == (2, 21)
    # placed as ksqlDB's analyzer places an unknown column
    assert str(e).startswith("Line: 2, Col: 21: WHERE column 'NOPE' cannot be resolved.")
    assert e.reason.startswith("WHERE column 'NOPE'")
    assert e.status == 400
    with pytest.raises(
        StatementError, match="Unknown statement 'CREAT'\\nDid you mean 'CREATE'"
    ) as caught:
        client.execute("CREAT STREAM x;")
    assert caught.value.error_code == 40001
    assert (caught.value.line, caught.value.column) == (1, 1)  # placed as its parser places it
    assert str(caught.value).startswith("line 1:1: Syntax Error\n")
    with pytest.raises(ServerError, match="already exists") as refused:
        client.execute(READINGS)
    assert refused.value.status == 400


@pytest.mark.parametrize("fmt", ["rows", "polars", "pandas"])
def test_query_gives_rows_or_a_dataframe(peaks: RunningServer, client: Client, fmt: str) -> None:
    got = client.query("SELECT device, peak FROM peaks;", format=fmt)
    if fmt == "rows":
        rows = got
    elif fmt == "polars":
        assert got.columns == ["DEVICE", "PEAK"]
        rows = got.to_dicts()
    else:
        assert list(got.columns) == ["DEVICE", "PEAK"]
        rows = got.to_dict("records")
    assert sorted(rows, key=lambda r: r["DEVICE"]) == [
        {"DEVICE": "a", "PEAK": 3.0},
        {"DEVICE": "b", "PEAK": 5.0},
    ]
    assert rows == peaks.engine.query("SELECT device, peak FROM peaks")


def test_query_of_nothing_keeps_its_columns(peaks: RunningServer, client: Client) -> None:
    frame = client.query("SELECT * FROM peaks WHERE device = 'z'", format="pandas")
    assert list(frame.columns) == ["DEVICE", "PEAK"]
    assert len(frame) == 0


def test_query_refuses_what_is_not_one_pull_query(client: Client) -> None:
    client.execute(READINGS)
    with pytest.raises(HispeedError, match="format must be rows, polars or pandas"):
        client.query("SELECT * FROM readings", format="arrow")
    with pytest.raises(HispeedError, match=r"Client.stream"):
        client.query("SELECT * FROM readings EMIT CHANGES")
    with pytest.raises(HispeedError, match="one SELECT"):
        client.query("SHOW STREAMS;")


def test_stream_receives_rows_produced_after_it_started(
    server: RunningServer, client: Client
) -> None:
    client.execute(READINGS)
    client.insert("readings", {"device": "before", "x": 0.0})
    with client.stream("SELECT device, x FROM readings WHERE x > 1 EMIT CHANGES;") as rows:
        assert rows.columns == ["DEVICE", "X"]
        assert rows.types == ["STRING", "DOUBLE"]
        client.produce("readings", [{"device": "a", "x": 0.5}, {"device": "b", "x": 2.0}])
        client.insert("readings", {"device": "c", "x": 3.0})
        got = [next(iter(rows)), next(iter(rows))]
    assert got == [{"DEVICE": None, "X": 2.0}, {"DEVICE": "c", "X": 3.0}]
    assert rows.closed
    server.wait_for(lambda: len(server.server.state.queries) == 0)


def test_stream_from_beginning_ends_at_its_limit(peaks: RunningServer, client: Client) -> None:
    query = client.stream("SELECT * FROM readings EMIT CHANGES LIMIT 2;", from_beginning=True)
    assert list(query) == [{"DEVICE": "a", "X": 1.0}, {"DEVICE": "b", "X": 5.0}]
    assert query.ended
    query.close()  # after the end: nothing to close on the server, and no error


def test_stream_close_ends_the_query_on_the_server(peaks: RunningServer, client: Client) -> None:
    query = client.stream("SELECT * FROM readings EMIT CHANGES;")
    registry = peaks.server.state.queries
    peaks.wait_for(lambda: len(registry) == 1)
    query.close()
    peaks.wait_for(lambda: len(registry) == 0)
    assert list(query) == []


def test_stream_is_an_async_iterator(peaks: RunningServer, client: Client) -> None:
    async def main() -> list[dict[str, Any]]:
        got = []
        async with client.stream(
            "SELECT device, x FROM readings EMIT CHANGES;", from_beginning=True
        ) as rows:
            async for row in rows:
                got.append(row)
                if len(got) == 3:
                    client.insert("readings", {"device": "late", "x": 9.0})
                if len(got) == 4:
                    break
        return got

    got = asyncio.run(main())
    assert [r["DEVICE"] for r in got] == ["a", "b", "a", "late"]
    peaks.wait_for(lambda: len(peaks.server.state.queries) == 0)


def test_stream_of_an_unknown_source_raises_at_once(client: Client) -> None:
    with pytest.raises(ServerError, match="NOPE"):
        client.stream("SELECT * FROM nope EMIT CHANGES;")


def test_insert_reports_the_rows_the_server_refuses(client: Client) -> None:
    client.execute(READINGS)
    client.insert("readings", {"DEVICE": "a", "X": 1.5})
    assert client.query("SELECT * FROM readings") == [{"DEVICE": "a", "X": 1.5}]
    with pytest.raises(ServerError, match="NOPE"):
        client.insert("nope", {"x": 1})


def test_produce_returns_offsets_and_keys_records(server: RunningServer, client: Client) -> None:
    client.execute(READINGS)
    offsets = client.produce(
        "readings", [{"device": "k", "x": 1.0}, {"device": "k", "x": 2.0}], key_field="device"
    )
    assert offsets == [{"partition": 0, "offset": 0}, {"partition": 0, "offset": 1}]
    assert client.query("SELECT device FROM readings") == [{"DEVICE": "k"}, {"DEVICE": "k"}]
    with pytest.raises(ServerError, match="no field 'id'"):
        client.produce("readings", [{"x": 1}], key_field="id")


def test_info_names_the_server(client: Client) -> None:
    info = client.info()
    assert info["KsqlServerInfo"]["version"] == hispeed.__version__
    assert info["KsqlServerInfo"]["serverStatus"] == "RUNNING"


def test_a_server_that_is_not_there_is_unreachable() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, timeout=2) as client, pytest.raises(UnreachableError) as caught:
        client.info()
    assert str(caught.value).startswith(f"cannot reach hispeed at {url}: ")
    assert isinstance(caught.value, ConnectionFailedError)


class _Recorder(BaseHTTPRequestHandler):
    """Answers /info only to `Basic user:secret` or `Bearer tok`, as an authenticating server."""

    def do_GET(self) -> None:
        header = self.headers.get("authorization", "")
        basic = "Basic " + base64.b64encode(b"user:secret").decode()
        if header in (basic, "Bearer tok"):
            body, status = b'{"KsqlServerInfo": {"version": "x"}}', 200
        else:
            body = b'{"@type": "generic_error", "error_code": 40100, "message": "Unauthorized"}'
            status = 401
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return  # quiet: the test reads the answers


@pytest.fixture
def auth_url() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize(
    ("auth", "ok"),
    [(("user", "secret"), True), ("tok", True), (("user", "wrong"), False), (None, False)],
)
def test_auth_sends_basic_or_bearer_credentials(auth_url: str, auth: Any, ok: bool) -> None:
    with Client(auth_url, auth=auth) as client:
        if ok:
            assert client.info() == {"KsqlServerInfo": {"version": "x"}}
        else:
            with pytest.raises(ServerError, match="Unauthorized") as caught:
                client.info()
            assert (caught.value.status, caught.value.error_code) == (401, 40100)


@pytest.mark.parametrize(
    ("text", "statements", "rest"),
    [
        ("SHOW STREAMS;", ["SHOW STREAMS;"], ""),
        ("SELECT 'a;b' FROM s; SHOW", ["SELECT 'a;b' FROM s;"], " SHOW"),
        ("SELECT `x;` -- c;\n FROM s;", ["SELECT `x;` -- c;\n FROM s;"], ""),
        ("/* ; */ SHOW TABLES; /* open", ["/* ; */ SHOW TABLES;"], " /* open"),
        ("SELECT 'it''s;", [], "SELECT 'it''s;"),
        ('SELECT "a""b;" FROM s;', ['SELECT "a""b;" FROM s;'], ""),
    ],
)
def test_split_statements_respects_quotes_and_comments(
    text: str, statements: list[str], rest: str
) -> None:
    got, left = split_statements(text)
    assert [s.text for s in got] == statements
    assert left == rest


def test_statements_know_which_endpoint_runs_them() -> None:
    pull, push, show, printed, commented = statements_of(
        "SELECT * FROM t; SELECT 'EMIT' FROM s EMIT CHANGES; SHOW STREAMS; PRINT 'x';"
        "-- SELECT\nSELECT x FROM t"
    )
    assert (pull.is_query, pull.is_push) == (True, False)
    assert (push.is_query, push.is_push) == (True, True)
    assert (show.is_query, show.is_push) == (False, False)
    assert printed.is_push
    assert commented.text == "-- SELECT\nSELECT x FROM t"
    assert (commented.is_query, commented.is_push) == (True, False)
    assert statements_of("-- only a comment\n  ") == []
