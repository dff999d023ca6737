"""The JSON_SR format: framed JSON, ksqlDB's JSON Schemas, inference. Records are made and
read here by hand (struct and json), not with hispeed's encoder."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pyarrow as pa

from hispeed import Engine
from hispeed.formats import Column, get_format
from hispeed.formats.base import FormatContext
from hispeed.registry import MemoryRegistry, Schema
from hispeed.sql import types as T

INT = {"type": "integer", "connect.type": "int32"}


def test_decode_reads_the_json_after_the_framing() -> None:
    registry = MemoryRegistry()
    sid = registry.register("t-value", Schema('{"type":"object"}', "JSON"))
    fmt = get_format("JSON_SR", context=FormatContext(registry, "t"))
    head = struct.pack(">bI", 0, sid)
    data = pa.array([head + b'{"foo": 3, "BAR": "x"}', b'{"foo": 4}'], pa.binary())
    result = fmt.decode(data, [Column("FOO", T.INTEGER), Column("BAR", T.STRING)])
    assert [row for row, _ in result.errors] == [1]  # not framed: Unknown magic byte
    assert result.batch.to_pylist() == [{"FOO": 3, "BAR": "x"}, {"FOO": None, "BAR": None}]


def test_a_sink_registers_connects_json_schema(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    try:
        engine.execute(
            "CREATE STREAM s (k INT KEY, foo INT, d DECIMAL(4, 2)) WITH (kafka_topic='s', "
            "format='JSON_SR', partitions=1);"
        )
        engine.execute("CREATE STREAM out AS SELECT * FROM s;")
        engine.execute("INSERT INTO s (k, foo, d) VALUES (1, 2, 3.5);")
        engine.drain()
        registry = engine.context.schema_registry
        assert json.loads(registry.version("OUT-key").schema.schema) == {
            "oneOf": [{"type": "null"}, INT]
        }
        value = json.loads(registry.version("OUT-value").schema.schema)
        assert value["properties"]["FOO"] == {
            "connect.index": 0,
            "oneOf": [{"type": "null"}, INT],
        }
        assert value["properties"]["D"]["oneOf"][1]["title"] == (
            "org.apache.kafka.connect.data.Decimal"
        )
        [batch] = engine.log.read("OUT", 0, 0)
        record = batch.to_pylist()[0]
        (key_id,) = struct.unpack(">I", record["key"][1:5])
        assert registry.schema_by_id(key_id).schema_type == "JSON"
        assert json.loads(record["key"][5:]) == 1
        assert json.loads(record["value"][5:]) == {"FOO": 2, "D": 3.5}
        engine.execute("CREATE STREAM again WITH (kafka_topic='OUT', format='JSON_SR');")
        assert engine.catalog.sources["AGAIN"].schema_text() == (
            "`ROWKEY` INTEGER KEY, `FOO` INTEGER, `D` DECIMAL(4, 2)"
        )
    finally:
        engine.close()
