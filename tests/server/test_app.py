"""The HTTP API: info, health and JSON ingestion, in process and as a real server."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.log import EmbeddedLog, partition_for_key
from hispeed.server.app import MAX_BODY_BYTES, create_app
from hispeed.testing.server import server_process
from hispeed.testing.services import free_port
from tests.conftest import LogFactory


@pytest.fixture
def log(log_factory: LogFactory) -> EmbeddedLog:
    return log_factory(default_partitions=3)


@pytest.fixture
def client(log: EmbeddedLog, tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings.load(None, env={}, data_dir=tmp_path / "data", default_partitions=3)
    with TestClient(create_app(Engine(log_=log), settings)) as c:
        yield c


def test_info_and_healthcheck_answer_as_ksqldb(client: TestClient) -> None:
    info = client.get("/info").json()
    assert info["KsqlServerInfo"]["serverStatus"] == "RUNNING"
    assert info["KsqlServerInfo"]["kafkaClusterId"] == "embedded"
    health = client.get("/healthcheck").json()
    assert health["isHealthy"] is True
    assert health["details"]["kafka"]["isHealthy"] is True


def test_post_a_json_array_with_key_field(client: TestClient, log: EmbeddedLog) -> None:
    body = [{"device": "device1", "x": 1}, {"device": "device2", "x": 2}]
    response = client.post("/topics/readings?key_field=device", json=body)
    assert response.status_code == 200
    offsets = response.json()["offsets"]
    assert [o["partition"] for o in offsets] == [
        partition_for_key(b"device1", 3),
        partition_for_key(b"device2", 3),
    ]
    p = offsets[0]["partition"]
    table = log.read_table("readings", p)
    assert table.column("key").to_pylist()[offsets[0]["offset"]] == b"device1"
    assert json.loads(table.column("value")[offsets[0]["offset"]].as_py()) == body[0]


def test_post_ndjson_with_a_fixed_key_and_partition(client: TestClient, log: EmbeddedLog) -> None:
    body = b'{"a": 1}\n{"a": 2}\n\n{"a": 3}\n'
    response = client.post(
        "/topics/t?key=message&partition=2",
        content=body,
        headers={"content-type": "application/x-ndjson"},
    )
    assert response.json()["offsets"] == [{"partition": 2, "offset": i} for i in range(3)]
    assert log.read_table("t", 2).column("key").to_pylist() == [b"message"] * 3


def test_post_a_single_object(client: TestClient, log: EmbeddedLog) -> None:
    response = client.post("/topics/one?partition=0", json={"button": "pressed"})
    assert response.json() == {"topic": "one", "offsets": [{"partition": 0, "offset": 0}]}


def test_post_rest_proxy_records(client: TestClient, log: EmbeddedLog) -> None:
    body = {
        "records": [
            {"key": "a", "value": {"n": 1}, "partition": 1},
            {"key": "b", "value": {"n": 2}},
            {"value": None, "key": "a"},
        ]
    }
    response = client.post(
        "/topics/rp",
        content=json.dumps(body),
        headers={"content-type": "application/vnd.kafka.json.v2+json"},
    )
    assert response.status_code == 200, response.text
    offsets = response.json()["offsets"]
    assert offsets[0] == {"partition": 1, "offset": 0}
    assert offsets[1]["partition"] == partition_for_key(b"b", 3)
    p, o = offsets[2]["partition"], offsets[2]["offset"]
    assert log.read_table("rp", p).column("value")[o].as_py() is None


@pytest.mark.parametrize(
    ("url", "body", "headers", "message"),
    [
        ("/topics/t", b"{nope", {}, "the body is not JSON"),
        ("/topics/t", b"", {}, "the request body is empty"),
        (
            "/topics/t",
            b'{"a": 1}\nnope\n',
            {"content-type": "application/x-ndjson"},
            "line 2 is not JSON",
        ),
        ("/topics/t?key_field=id", b'[{"id": 1}, {"x": 2}]', {}, "record 1 has no field 'id'"),
        ("/topics/t?key_field=id", b"[1]", {}, "needs a JSON object"),
        ("/topics/t?partition=x", b"[1]", {}, "partition must be a number"),
        ("/topics/t?partition=9", b"[1]", {}, "there is no 9"),
        ("/topics/bad%20name", b"[1]", {}, "invalid topic name"),
        (
            "/topics/t",
            b'{"records": [{"key": "a"}]}',
            {"content-type": "application/vnd.kafka.json.v2+json"},
            'needs a "value"',
        ),
    ],
)
def test_bad_requests_get_a_clear_error_and_write_nothing(
    client: TestClient,
    log: EmbeddedLog,
    url: str,
    body: bytes,
    headers: dict[str, str],
    message: str,
) -> None:
    response = client.post(url, content=body, headers=headers)
    assert response.status_code == 400, response.text
    error = response.json()
    assert error["@type"] == "generic_error"
    assert error["error_code"] == 40000
    assert message in error["message"]
    if "t" in log.list_topics():
        assert all(log.offsets("t", p) == (0, 0) for p in range(3))


def test_oversized_body_is_refused(client: TestClient) -> None:
    response = client.post("/topics/t", content=b"[" + b"1," * (MAX_BODY_BYTES // 2) + b"1]")
    assert response.status_code == 413
    assert "over" in response.json()["message"]


def test_unknown_topics_404_when_auto_create_is_off(log: EmbeddedLog, tmp_path: Path) -> None:
    settings = Settings.load(None, env={}, auto_create_topics=False)
    with TestClient(create_app(Engine(log_=log), settings)) as client:
        response = client.post("/topics/absent", json=[1])
        assert response.status_code == 404
        assert "'absent' does not exist" in response.json()["message"]
        assert client.get("/topics/absent").status_code == 404


def test_list_and_describe_topics(client: TestClient) -> None:
    client.post("/topics/a", json=[1, 2])
    assert "a" in client.get("/topics").json()["topics"]
    described = client.get("/topics/a").json()
    assert sum(p["end_offset"] for p in described["partitions"]) == 2


@pytest.mark.slow
def test_the_server_process_serves_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    proc = server_process(data_dir, port)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert f"listening on http://127.0.0.1:{port}" in line, proc.stderr.read()
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                info = httpx.get(f"{base}/info", timeout=1)
                break
            except httpx.TransportError:
                import time

                time.sleep(0.05)
        assert info.json()["KsqlServerInfo"]["serverStatus"] == "RUNNING"
        assert httpx.get(f"{base}/healthcheck").json()["isHealthy"] is True
        posted = httpx.post(f"{base}/topics/device1?key=message", json=[{"x": 1}, {"x": 2}])
        assert posted.json()["offsets"] == [
            {"partition": 0, "offset": 0},
            {"partition": 0, "offset": 1},
        ]
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "hispeed server stopped" in out
    assert "Traceback" not in err
    # the data is there, and the directory is free for the next process
    with EmbeddedLog(data_dir, cleaner_interval_s=None) as log:
        assert log.read_table("device1", 0).column("value").to_pylist() == [b'{"x":1}', b'{"x":2}']
    assert os.path.exists(data_dir / "LOCK")
