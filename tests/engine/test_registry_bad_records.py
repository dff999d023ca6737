"""A record of a schema-registry format that cannot be read (its schema id cut short, an id
the registry does not know, a payload that does not match its schema, no framing at all)
goes to the processing log with its topic, partition and offset and a message that says
what is wrong; the query goes on with the records after it."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.runtime.task import PROCESSING_LOG

#: each bad record's maker (from a good record of the stream's schema) and what its
#: processing-log message must say, per format (None: every format)
TOO_SHORT = "The record is 3 bytes long, too short for the schema-registry wire format"
UNKNOWN_ID = "schema id 999: Schema 999 not found"
NOT_FRAMED = "Unknown magic byte! The record starts with 0x7b, not the schema-registry"
GARBAGE = {
    # a union branch index (-64) the writer's schema has none of
    "AVRO": "the payload does not match its writer's schema: a union branch or enum symbol",
    # zigzag 0x7f is a message index count of -64
    "PROTOBUF": "The record's message indexes are invalid (a count of -64)",
    "JSON_SR": "Failed to parse JSON: JSON is malformed",
}


def bad_records(good: bytes, schema_id: int) -> list[bytes]:
    return [
        b"\x00\x00\x01",  # the schema id cut short
        struct.pack(">bI", 0, 999) + good[5:],  # an id the registry does not know
        struct.pack(">bI", 0, schema_id) + b"\x7f\x7f\x7f",  # not a payload of the schema
        b'{"A": 1}',  # plain JSON: no framing
    ]


@pytest.mark.parametrize("fmt", ["AVRO", "PROTOBUF", "JSON_SR"])
def test_bad_records_reach_the_processing_log_and_the_query_goes_on(
    tmp_path: Path, fmt: str
) -> None:
    engine = Engine(tmp_path / "data", fsync="never")
    try:
        engine.execute(
            "CREATE STREAM s (k STRING KEY, a INT, b STRING) "
            f"WITH (kafka_topic='t', value_format='{fmt}', partitions=1);"
        )
        engine.execute("CREATE STREAM o AS SELECT k, a, b FROM s;")
        engine.execute("INSERT INTO s (k, a, b) VALUES ('x', 1, 'one');")
        engine.drain()
        good = engine.log.read_table("t", 0).column("value")[0].as_py()
        schema_id = struct.unpack(">I", good[1:5])[0]
        assert engine.schema_registry.schema_by_id(schema_id)  # the id the sink registered
        engine.log.append("t", [(b"bad", v) for v in bad_records(good, schema_id)])
        engine.log.append("t", [(b"y", good)])
        engine.drain()

        out = engine.log.read_table("O", 0).to_pylist()
        assert [r["key"] for r in out] == [b"x", b"y"]  # the query went on past the bad ones
        logged: list[dict[str, Any]] = [
            json.loads(r["value"]) for r in engine.log.read_table(PROCESSING_LOG, 0).to_pylist()
        ]
        assert [(e["topic"], e["partition"], e["offset"]) for e in logged] == [
            ("t", 0, 1),
            ("t", 0, 2),
            ("t", 0, 3),
            ("t", 0, 4),
        ]
        assert {e["query"] for e in logged} == {"CSAS_O_0"}
        wanted = [TOO_SHORT, UNKNOWN_ID, GARBAGE[fmt], NOT_FRAMED]
        for entry, text in zip(logged, wanted, strict=True):
            assert entry["message"].startswith("Error deserializing value: ")
            assert text in entry["message"], entry["message"]
        # Python's internals never reach the user
        assert not any("index out of range" in e["message"] for e in logged)
    finally:
        engine.close()
