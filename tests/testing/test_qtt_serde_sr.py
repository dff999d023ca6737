"""The runner's AVRO and JSON_SR serde, checked against fastavro and json directly."""

from __future__ import annotations

import io
import json
from decimal import Decimal

import fastavro

from hispeed.registry import MemoryRegistry, Schema
from hispeed.testing.qtt_serde import JavaNumber
from hispeed.testing.qtt_serde_sr import RegistryCodec

AVRO = {
    "type": "record",
    "name": "R",
    "fields": [
        {"name": "Id", "type": ["null", "long"], "default": None},
        {
            "name": "AMOUNT",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 4, "scale": 2},
        },
        {
            "name": "M",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "E",
                    "connect.internal.type": "MapEntry",
                    "fields": [
                        {"name": "key", "type": ["null", "string"]},
                        {"name": "value", "type": ["null", "int"]},
                    ],
                },
            },
        },
    ],
}


def test_avro_specs_are_written_as_ksqldbs_test_tool_writes_them() -> None:
    registry = MemoryRegistry()
    sid = registry.register("t-value", Schema(json.dumps(AVRO)))
    codec = RegistryCodec(registry, "t")
    data = codec.encode({"ID": 5, "amount": Decimal("1.5"), "M": {"a": 1}}, "AVRO", is_key=False)
    assert data is not None
    assert data[:5] == b"\x00" + sid.to_bytes(4, "big")
    record = fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(AVRO), None)
    assert record == {"Id": 5, "AMOUNT": Decimal("1.50"), "M": [{"key": "a", "value": 1}]}
    assert codec.decode(data, "AVRO") == {
        "Id": JavaNumber("Long", 5),
        "AMOUNT": JavaNumber("BigDecimal", Decimal("1.50")),
        "M": {"a": JavaNumber("Integer", 1)},
    }


def test_json_sr_numbers_follow_the_schemas_connect_types() -> None:
    schema = {
        "type": "object",
        "properties": {
            "A": {"oneOf": [{"type": "null"}, {"type": "integer", "connect.type": "int32"}]},
            "B": {"type": "integer"},
            "C": {"type": "number"},
        },
    }
    registry = MemoryRegistry()
    registry.register("t-value", Schema(json.dumps(schema), "JSON"))
    codec = RegistryCodec(registry, "t")
    data = codec.encode({"a": 1, "b": 2, "c": 3}, "JSON_SR", is_key=False)
    assert data is not None
    assert json.loads(data[5:]) == {"A": 1, "B": 2, "C": 3.0}
    assert codec.decode(data, "JSON_SR") == {
        "A": JavaNumber("Integer", 1),
        "B": JavaNumber("Long", 2),
        "C": JavaNumber("Double", 3.0),
    }
