"""Authentication on the HTTP API and the WebSockets: on with a credentials file, off without."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.server.conftest import RunningServer, ServerFactory


@pytest.fixture
def secured(server_factory: ServerFactory, tmp_path: Path) -> RunningServer:
    creds = tmp_path / "credentials"
    creds.write_text("# who may use this server\nbasic alice s3cret\nbearer tok-123\n")
    return server_factory(auth_file=str(creds))


def _basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"authorization": f"Basic {token}"}


@pytest.mark.parametrize(
    "headers",
    [{}, _basic("alice", "wrong"), _basic("mallory", "s3cret"), {"authorization": "Bearer no"}],
)
def test_requests_without_good_credentials_get_401(
    secured: RunningServer, headers: dict[str, str]
) -> None:
    for method, path in (("POST", "/ksql"), ("GET", "/info"), ("POST", "/topics/t")):
        r = httpx.request(
            method, secured.url + path, json={"ksql": "SHOW STREAMS;"}, headers=headers
        )
        assert r.status_code == 401, path
        assert r.json()["@type"] == "generic_error"
        assert "credentials" in r.json()["message"]
        assert r.headers["www-authenticate"].startswith("Basic")
    assert "t" not in secured.engine.log.list_topics()


@pytest.mark.parametrize(
    "headers", [_basic("alice", "s3cret"), {"authorization": "Bearer tok-123"}]
)
def test_requests_with_good_credentials_pass(
    secured: RunningServer, headers: dict[str, str]
) -> None:
    r = httpx.post(secured.url + "/ksql", json={"ksql": "SHOW STREAMS;"}, headers=headers)
    assert r.status_code == 200
    assert r.json()[0]["@type"] == "streams"


def test_healthcheck_stays_open_for_probes(secured: RunningServer) -> None:
    assert httpx.get(secured.url + "/healthcheck").json()["isHealthy"] is True


def test_websockets_need_credentials_too(secured: RunningServer) -> None:
    ws_base = secured.url.replace("http://", "ws://")
    with pytest.raises(InvalidStatus):  # closed before the handshake completes
        connect(ws_base + "/ws/topics?topics=t", open_timeout=5)
    with connect(
        ws_base + "/ws/produce/t", additional_headers=_basic("alice", "s3cret"), open_timeout=5
    ) as ws:
        ws.send(json.dumps([{"x": 1}]))
        assert json.loads(ws.recv(timeout=5))["offsets"] == [{"partition": 0, "offset": 0}]
    # a browser cannot set headers on a WebSocket: it may pass a bearer token in the URL
    with connect(ws_base + "/ws/topics?topics=t&from=beginning&access_token=tok-123") as ws:
        assert json.loads(ws.recv(timeout=5))["value"] == {"x": 1}


def test_without_a_credentials_file_nothing_is_asked(server: RunningServer) -> None:
    assert httpx.get(server.url + "/info").status_code == 200


def test_a_missing_credentials_file_stops_the_server_from_starting(
    server_factory: ServerFactory, tmp_path: Path
) -> None:
    from hispeed.errors import HispeedError

    with pytest.raises(HispeedError, match="nothing"):
        server_factory(auth_file=str(tmp_path / "nothing"))
