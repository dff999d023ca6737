"""JSON_SR records checked against their registered JSON Schema where ksqlDB checks them: with
`ksql.schema.registry.json.fail.invalid.schema=true` (Confluent's serde setting, which ksqlDB
passes on) a record that does not match is a deserialization error in the processing log;
by default, as in ksqlDB, records are not checked. A remote `$ref` is never fetched."""

from __future__ import annotations

import http.server
import json
import struct
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.registry import JSON_FAIL_INVALID_SCHEMA, Schema, SchemaReference
from hispeed.runtime.task import PROCESSING_LOG

SCHEMA = {
    "type": "object",
    "properties": {
        "ID": {"type": "string", "maxLength": 4},
        "X": {"type": "number", "minimum": 0},
    },
    "required": ["ID"],
}
RECORDS = [
    {"ID": "a", "X": 1.5},
    {"ID": "b", "X": -2.0},  # below the minimum
    {"X": 3.0},  # no ID
    {"ID": "toolong", "X": 4.0},
    {"ID": "e", "X": 5.0},
]


def framed(schema_id: int, record: Any) -> bytes:
    """A record in Confluent's wire format, built apart from hispeed's formats."""
    return struct.pack(">bI", 0, schema_id) + json.dumps(record).encode()


def run(engine: Engine, schema: dict[str, Any], records: list[Any], **refs: Any) -> Any:
    references = tuple(SchemaReference(n, s, v) for n, (s, v) in refs.items())
    schema_id = engine.schema_registry.register(
        "t-value", Schema(json.dumps(schema), "JSON", references)
    )
    engine.log.create_topic("t", 1)
    engine.log.append("t", [(b"k", framed(schema_id, r)) for r in records])
    engine.execute(
        "CREATE STREAM s (ID STRING, X DOUBLE) WITH (kafka_topic='t', value_format='JSON_SR');"
    )
    engine.execute("CREATE STREAM o WITH (value_format='JSON') AS SELECT * FROM s;")
    engine.drain()
    out = [json.loads(r["value"]) for r in engine.log.read_table("O", 0).to_pylist()]
    logged = [json.loads(r["value"]) for r in engine.log.read_table(PROCESSING_LOG, 0).to_pylist()]
    return out, logged


@pytest.fixture
def validating(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(tmp_path / "d", fsync="never", properties={JSON_FAIL_INVALID_SCHEMA: "true"})
    yield engine
    engine.close()


def test_records_that_do_not_match_their_schema_go_to_the_processing_log(
    validating: Engine,
) -> None:
    out, logged = run(validating, SCHEMA, RECORDS)
    assert [r["ID"] for r in out] == ["a", "e"]  # the query goes on past the bad ones
    assert [e["offset"] for e in logged] == [1, 2, 3]
    assert {e["topic"] for e in logged} == {"t"}
    messages = [e["message"] for e in logged]
    assert 'JSON {"ID": "b", "X": -2.0} does not match its schema' in messages[0]
    assert "-2.0 is less than the minimum of 0 (at $.X)" in messages[0]
    assert "'ID' is a required property" in messages[1]
    assert "'toolong' is too long (at $.ID)" in messages[2]


def test_records_are_not_checked_by_default_as_in_ksqldb(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "d", fsync="never")
    try:
        out, logged = run(engine, SCHEMA, RECORDS)
    finally:
        engine.close()
    assert [r["ID"] for r in out] == ["a", "b", None, "toolong", "e"]
    assert logged == []


def test_the_setting_must_be_a_boolean(tmp_path: Path) -> None:
    with pytest.raises(HispeedError, match="must be true or false, not 'yes'"):
        Engine(tmp_path / "d", fsync="never", properties={JSON_FAIL_INVALID_SCHEMA: "yes"})


def test_a_reference_resolves_to_the_registered_schema_it_names(validating: Engine) -> None:
    registry = validating.schema_registry
    registry.register("id-value", Schema(json.dumps({"type": "string", "maxLength": 4}), "JSON"))
    schema = {
        "type": "object",
        "properties": {"ID": {"$ref": "id.json"}, "X": {"type": "number"}},
    }
    out, logged = run(validating, schema, RECORDS, **{"id.json": ("id-value", 1)})
    assert [r["ID"] for r in out] == ["a", "b", None, "e"]
    assert [e["offset"] for e in logged] == [3]
    assert "'toolong' is too long" in logged[0]["message"]


def test_a_remote_ref_is_never_fetched(validating: Engine) -> None:
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requests.append(self.path)
            body = json.dumps({"type": "string"}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/id.json"
        schema = {"type": "object", "properties": {"ID": {"$ref": url}}}
        out, logged = run(validating, schema, [{"ID": "a"}])
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert requests == []
    assert out == []
    assert (
        "never fetches a $ref that is not one of the schema's registered references"
        in (logged[0]["message"])
    )
    assert url in logged[0]["message"]
