"""The schema registry's REST API, checked with confluent-kafka's `SchemaRegistryClient` (the
client Confluent keeps, written apart from hispeed) and with plain HTTP for the wire details."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hispeed.engine import Engine
from hispeed.processes import free_port
from hispeed.registry import RegistryError
from hispeed.registry import Schema as OwnSchema
from hispeed.testing.server import RunningServer, server_process

sr = pytest.importorskip("confluent_kafka.schema_registry")  # the client's extra (pyproject dev)
SchemaRegistryError = pytest.importorskip(
    "confluent_kafka.schema_registry.error"
).SchemaRegistryError

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


def record(*fields: dict[str, Any]) -> str:
    return json.dumps({"type": "record", "name": "Reading", "fields": list(fields)})


V1 = record({"name": "id", "type": "string"})
V2 = record({"name": "id", "type": "string"}, {"name": "x", "type": "double", "default": 0.0})
BAD = record({"name": "id", "type": "string"}, {"name": "y", "type": "double"})


@pytest.fixture
def client() -> Iterator[Callable[[str], Any]]:
    """confluent-kafka's registry clients of a server's registry; closed at the end (they
    hold pooled connections)."""
    made: list[Any] = []

    def make(url: str) -> Any:
        made.append(sr.SchemaRegistryClient({"url": f"{url}/schema-registry"}))
        return made[-1]

    yield make
    for c in made:
        c.close()


def test_confluents_client_registers_reads_checks_and_deletes(
    server: RunningServer, client: Callable[[str], Any]
) -> None:
    c = client(server.url)
    first = c.register_schema("readings-value", sr.Schema(V1, "AVRO"))
    assert c.register_schema("readings-value", sr.Schema(V1, "AVRO")) == first  # held: same id
    second = c.register_schema("readings-value", sr.Schema(V2, "AVRO"))
    assert second != first
    assert json.loads(c.get_schema(second).schema_str) == json.loads(V2)
    latest = c.get_latest_version("readings-value")
    assert (latest.version, latest.schema_id) == (2, second)
    assert c.get_version("readings-value", 1).schema_id == first
    found = c.lookup_schema("readings-value", sr.Schema(V1, "AVRO"))
    assert (found.version, found.schema_id) == (1, first)
    assert c.get_subjects() == ["readings-value"]
    assert c.get_versions("readings-value") == [1, 2]
    # compatibility: the default level, a check, and a refused registration
    assert c.get_compatibility() == "BACKWARD"
    assert c.test_compatibility("readings-value", sr.Schema(V2, "AVRO")) is True
    assert c.test_compatibility("readings-value", sr.Schema(BAD, "AVRO")) is False
    with pytest.raises(SchemaRegistryError) as e:
        c.register_schema("readings-value", sr.Schema(BAD, "AVRO"))
    assert (e.value.http_status_code, e.value.error_code) == (409, 409)
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in e.value.error_message
    assert c.set_compatibility("readings-value", "NONE") == {"compatibility": "NONE"}
    assert c.get_compatibility("readings-value") == "NONE"
    assert c.register_schema("readings-value", sr.Schema(BAD, "AVRO")) > second
    # deletes: a version, then the subject (soft, then hard)
    assert c.delete_version("readings-value", 3) == 3
    assert c.get_versions("readings-value") == [1, 2]
    assert c.delete_subject("readings-value") == [1, 2]
    assert c.get_subjects() == []
    assert c.delete_subject("readings-value", permanent=True) == [1, 2, 3]
    assert c.get_subjects(deleted=True) == []
    with pytest.raises(SchemaRegistryError) as e:  # (the client caches the latest versions)
        c.get_versions("readings-value", deleted=True)
    assert (e.value.http_status_code, e.value.error_code) == (404, 40401)


def test_the_wire_shapes(server: RunningServer) -> None:
    base = f"{server.url}/schema-registry"
    body = {"schema": '{"type": "object", "properties": {"a": {"type": "string"}}}'}
    r = httpx.post(f"{base}/subjects/j-value/versions", json={**body, "schemaType": "JSON"})
    assert r.status_code == 200
    assert r.headers["content-type"] == CONTENT_TYPE
    schema_id = r.json()["id"]
    doc = httpx.get(f"{base}/schemas/ids/{schema_id}").json()
    assert doc["schemaType"] == "JSON"
    assert json.loads(doc["schema"]) == json.loads(body["schema"])
    raw = httpx.get(f"{base}/schemas/ids/{schema_id}/schema")
    assert json.loads(raw.text) == json.loads(body["schema"])
    assert httpx.get(f"{base}/schemas/ids/{schema_id}/subjects").json() == ["j-value"]
    assert httpx.get(f"{base}/schemas/ids/{schema_id}/versions").json() == [
        {"subject": "j-value", "version": 1}
    ]
    version = httpx.get(f"{base}/subjects/j-value/versions/latest").json()
    assert version == {"subject": "j-value", "version": 1, "id": schema_id, **doc}
    assert sorted(httpx.get(f"{base}/schemas/types").json()) == ["AVRO", "JSON", "PROTOBUF"]
    assert httpx.get(f"{base}/config").json() == {"compatibilityLevel": "BACKWARD"}
    r = httpx.put(f"{base}/config/j-value", json={"compatibility": "FULL"})
    assert r.json() == {"compatibility": "FULL"}
    r = httpx.get(f"{base}/config/other", params={"defaultToGlobal": "false"})
    assert (r.status_code, r.json()["error_code"]) == (404, 40408)
    r = httpx.post(
        f"{base}/compatibility/subjects/j-value/versions/1",
        params={"verbose": "true"},
        json={**body, "schemaType": "JSON"},
    )
    assert r.json() == {"is_compatible": True, "messages": []}
    assert httpx.get(f"{base}/mode").json() == {"mode": "READWRITE"}


BAD_REQUESTS: list[tuple[str, str, Any, int, int]] = [
    # method, path, body (bytes: sent as is), HTTP status, error code
    ("POST", "/subjects/s/versions", b"{not json", 400, 400),
    ("POST", "/subjects/s/versions", b"[1, 2]", 422, 422),
    ("POST", "/subjects/s/versions", {}, 422, 42201),
    ("POST", "/subjects/s/versions", {"schema": 5}, 422, 42201),
    ("POST", "/subjects/s/versions", {"schema": "{nope"}, 422, 42201),
    ("POST", "/subjects/s/versions", {"schema": '"int"', "schemaType": "XML"}, 422, 42201),
    ("POST", "/subjects/s/versions", {"schema": '"int"', "references": 7}, 422, 42201),
    (
        "POST",
        "/subjects/s/versions",
        {"schema": '"int"', "references": [{"name": "x"}]},
        422,
        42201,
    ),
    (
        "POST",
        "/subjects/s/versions",
        {"schema": '"int"', "references": [{"name": "a", "subject": "none", "version": 1}]},
        422,
        42201,
    ),
    ("POST", "/subjects/s/versions", b"[" * 100_000, 400, 400),
    ("GET", "/subjects/s/versions/abc", None, 422, 42202),
    ("GET", "/subjects/s/versions/0", None, 422, 42202),
    ("GET", "/subjects/s/versions/99999999999", None, 422, 42202),
    ("GET", "/subjects/nope/versions/1", None, 404, 40401),
    ("GET", "/subjects/nope/versions", None, 404, 40401),
    ("GET", "/schemas/ids/abc", None, 404, 40403),
    ("GET", "/schemas/ids/12345", None, 404, 40403),
    ("GET", "/schemas/ids/12345/subjects", None, 404, 40403),
    ("POST", "/subjects/nope", {"schema": '"int"'}, 404, 40401),
    ("DELETE", "/subjects/nope", None, 404, 40401),
    ("DELETE", "/subjects/nope/versions/1", None, 404, 40401),
    ("PUT", "/config", {"compatibility": "SIDEWAYS"}, 422, 42203),
    ("PUT", "/config", {"compatibility": 3}, 422, 42203),
    ("PUT", "/config", [], 422, 42203),
    ("PUT", "/mode", {"mode": "IMPORT"}, 422, 42204),
    ("POST", "/compatibility/subjects/nope/versions/1", {"schema": '"int"'}, 404, 40401),
    ("GET", "/no/such/path", None, 404, 404),
    ("PATCH", "/subjects", None, 405, 405),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "code"), BAD_REQUESTS)
def test_bad_requests_get_the_registrys_errors_never_a_500(
    server: RunningServer, method: str, path: str, body: Any, status: int, code: int
) -> None:
    kwargs: dict[str, Any] = {}
    if isinstance(body, bytes):
        kwargs["content"] = body
    elif body is not None:
        kwargs["json"] = body
    r = httpx.request(method, f"{server.url}/schema-registry{path}", **kwargs)
    assert r.status_code == status, r.text
    doc = r.json()
    assert doc["error_code"] == code
    assert isinstance(doc["message"], str)
    assert doc["message"]
    assert "Traceback" not in doc["message"]


def test_an_engine_uses_another_servers_registry(server: RunningServer, tmp_path: Path) -> None:
    url = f"{server.url}/schema-registry"
    with Engine(tmp_path / "other", fsync="never", schema_registry_url=url) as engine:
        remote = engine.schema_registry
        schema_id = remote.register("t-value", OwnSchema(V1))
        # the server's own registry holds it: one registry, two engines
        assert (
            server.engine.schema_registry.schema_by_id(schema_id).schema
            == remote.schema_by_id(schema_id).schema
        )
        assert remote.version("t-value").id == schema_id
        assert remote.lookup("t-value", OwnSchema(V1)) is not None
        assert remote.lookup("t-value", OwnSchema(V2)) is None
        with pytest.raises(RegistryError) as e:
            remote.register("t-value", OwnSchema(BAD))
        assert e.value.code == 409
        assert remote.set_compatibility("NONE", "t-value") == "NONE"
        assert remote.get_compatibility("t-value") == "NONE"
        assert remote.register("t-value", OwnSchema(BAD)) > schema_id
        with pytest.raises(RegistryError) as e:
            remote.schema_by_id(999)
        assert e.value.code == 40403


@pytest.mark.slow
def test_a_server_process_keeps_its_ids_across_a_restart(
    tmp_path: Path, client: Callable[[str], Any]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start() -> subprocess.Popen[str]:
        proc = server_process(tmp_path / "data", port)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/schema-registry/subjects", timeout=1).status_code == 200:
                    return proc
            except httpx.TransportError:
                assert proc.poll() is None, proc.communicate()[1]
                time.sleep(0.05)
        proc.kill()
        raise AssertionError("the server did not start")

    def stop(proc: subprocess.Popen[str]) -> None:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        assert "Traceback" not in err

    proc = start()
    try:
        c = client(url)
        ids = [
            c.register_schema(f"s{i}-value", sr.Schema(s, "AVRO")) for i, s in enumerate([V1, V2])
        ]
        c.set_compatibility(level="FULL")
    finally:
        stop(proc)
    proc = start()
    try:
        c = client(url)
        assert [c.get_latest_version(f"s{i}-value").schema_id for i in range(2)] == ids
        assert json.loads(c.get_schema(ids[1]).schema_str) == json.loads(V2)
        assert c.get_compatibility() == "FULL"
        third = c.register_schema(
            "s2-value", sr.Schema(record({"name": "z", "type": "int"}), "AVRO")
        )
        assert third not in ids
    finally:
        stop(proc)
