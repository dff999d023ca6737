"""The AVRO format: Confluent framing, ksqlDB's schemas, inference and sink registration.

Records are made and read here with fastavro and struct directly, never with hispeed's
encoder, so a mistake in the format cannot hide behind its own reader."""

from __future__ import annotations

import datetime
import io
import json
import struct
from decimal import Decimal
from pathlib import Path

import fastavro
import pyarrow as pa
import pytest

from hispeed import Engine
from hispeed.formats import Column, get_format
from hispeed.formats.base import FormatContext
from hispeed.registry import MemoryRegistry, Schema
from hispeed.sql import types as T

VALUE_SCHEMA = {
    "type": "record",
    "name": "Reading",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "x", "type": ["null", "double"], "default": None},
        {"name": "n", "type": "int"},
        {"name": "day", "type": {"type": "int", "logicalType": "date"}},
    ],
}


def framed(schema_id: int, schema: object, record: object) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(schema), record)
    return struct.pack(">bI", 0, schema_id) + out.getvalue()


def unframed(data: bytes, registry: MemoryRegistry) -> object:
    assert data[0] == 0
    (schema_id,) = struct.unpack(">I", data[1:5])
    schema = json.loads(registry.schema_by_id(schema_id).schema)
    return fastavro.schemaless_reader(io.BytesIO(data[5:]), fastavro.parse_schema(schema), None)


def test_decode_matches_fields_by_upper_case_name_and_widens_int() -> None:
    registry = MemoryRegistry()
    sid = registry.register("t-value", Schema(json.dumps(VALUE_SCHEMA)))
    fmt = get_format("AVRO", context=FormatContext(registry, "t"))
    rec = {"id": "a", "x": None, "n": 7, "day": datetime.date(2020, 1, 2)}
    data = pa.array([framed(sid, VALUE_SCHEMA, rec), None], pa.binary())
    cols = [Column("ID", T.STRING), Column("X", T.DOUBLE), Column("N", T.BIGINT)]
    cols.append(Column("DAY", T.DATE))
    result = fmt.decode(data, cols)
    assert result.errors == []
    assert result.null_rows.tolist() == [False, True]
    assert result.batch.to_pylist()[0] == {
        "ID": "a",
        "X": None,
        "N": 7,
        "DAY": datetime.date(2020, 1, 2),
    }


def test_bad_bytes_and_unknown_ids_give_null_rows_and_errors() -> None:
    registry = MemoryRegistry()
    sid = registry.register("t-value", Schema(json.dumps(VALUE_SCHEMA)))
    fmt = get_format("AVRO", context=FormatContext(registry, "t"))
    good = framed(sid, VALUE_SCHEMA, {"id": "a", "x": 1.5, "n": 1, "day": 0})
    data = pa.array([b"{not avro}", struct.pack(">bI", 0, 99) + b"\x02", good], pa.binary())
    result = fmt.decode(data, [Column("ID", T.STRING), Column("X", T.DOUBLE)])
    assert [row for row, _ in result.errors] == [0, 1]
    assert "Unknown magic byte" in result.errors[0][1]
    assert "99" in result.errors[1][1]
    assert result.batch.to_pylist() == [
        {"ID": None, "X": None},
        {"ID": None, "X": None},
        {"ID": "a", "X": 1.5},
    ]


def test_a_sink_registers_ksqldbs_schema_and_writes_the_wire_format(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    try:
        engine.execute(
            "CREATE STREAM s (id STRING KEY, amount DECIMAL(4, 2), at TIMESTAMP, "
            "tags MAP<STRING, INT>, inner STRUCT<a INT>) WITH (kafka_topic='s', "
            "key_format='KAFKA', value_format='AVRO', partitions=1);"
        )
        engine.execute("CREATE STREAM out WITH (key_format='AVRO') AS SELECT * FROM s;")
        engine.execute(
            "INSERT INTO s (id, amount, at, tags, inner) VALUES "
            "('k1', 12.5, '2020-01-01T00:00:01', MAP('t' := 3), STRUCT(a := 4));"
        )
        engine.drain()
        registry = engine.context.schema_registry
        value = json.loads(registry.version("OUT-value").schema.schema)
        assert value["name"] == "KsqlDataSourceSchema"
        assert value["namespace"] == "io.confluent.ksql.avro_schemas"
        assert [f["name"] for f in value["fields"]] == ["AMOUNT", "AT", "TAGS", "INNER"]
        assert value["fields"][0]["type"] == [
            "null",
            {"type": "bytes", "scale": 2, "precision": 4, "logicalType": "decimal"},
        ]
        assert value["fields"][3]["type"][1]["name"] == "KsqlDataSourceSchema_INNER"
        assert json.loads(registry.version("OUT-key").schema.schema) == "string"
        [batch] = engine.log.read("OUT", 0, 0)
        record = batch.to_pylist()[0]
        assert unframed(record["key"], registry) == "k1"
        assert unframed(record["value"], registry) == {
            "AMOUNT": Decimal("12.50"),
            "AT": datetime.datetime(2020, 1, 1, 0, 0, 1, tzinfo=datetime.UTC),
            "TAGS": [{"key": "t", "value": 3}],
            "INNER": {"A": 4},
        }
    finally:
        engine.close()


def test_create_without_columns_infers_them_from_the_registry(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    try:
        registry = engine.context.schema_registry
        sid = registry.register("r-value", Schema(json.dumps(VALUE_SCHEMA)))
        engine.log.create_topic("r", 1)
        rec = {"id": "d1", "x": 0.5, "n": 3, "day": 1}
        values = pa.array([framed(sid, VALUE_SCHEMA, rec)])
        engine.log.append("r", pa.record_batch({"value": values}))
        engine.execute("CREATE STREAM r WITH (kafka_topic='r', value_format='AVRO');")
        source = engine.catalog.sources["R"]
        # field names in upper case, as ksqlDB's ConnectKsqlSchemaTranslator names them
        assert source.schema_text() == "`ID` STRING, `X` DOUBLE, `N` INTEGER, `DAY` DATE"
        rows = engine.query("SELECT * FROM r;")
        assert rows == [{"ID": "d1", "X": 0.5, "N": 3, "DAY": datetime.date(1970, 1, 2)}]
    finally:
        engine.close()


def test_inference_without_a_registered_schema_says_so(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    try:
        engine.log.create_topic("none", 1)
        with pytest.raises(Exception, match="Schema for message values on topic 'none' does not"):
            engine.execute("CREATE STREAM n WITH (kafka_topic='none', value_format='AVRO');")
    finally:
        engine.close()
