"""PROTOBUF and PROTOBUF_NOSR: the schemas ksqlDB generates, Confluent's wire format, and
reading records as ksqlDB's protobuf serde does (defaults, optional and wrapper nulls).

Records are checked against messages built here with the protobuf runtime from hand-written
descriptors, and headers against bytes written out by hand, not against the format's own code.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from hispeed.formats import Column, FormatError, get_format
from hispeed.formats.base import FormatContext
from hispeed.formats.protobuf import message_indexes_bytes, read_header
from hispeed.formats.protobuf_schema import (
    columns_for_message,
    compile_schema,
    proto_for_columns,
)
from hispeed.registry import MemoryRegistry, Schema, SchemaReference
from hispeed.sql import types as T
from hispeed.testing.qtt_serde import JavaNumber

PRIMITIVES = [
    Column("I", T.INTEGER),
    Column("L", T.BIGINT),
    Column("D", T.DOUBLE),
    Column("B", T.BOOLEAN),
    Column("S", T.STRING),
]


def _batch(columns: list[Column], rows: list[dict[str, object]]) -> pa.RecordBatch:
    schema = pa.schema([(c.name, c.type.to_arrow()) for c in columns])
    return pa.RecordBatch.from_pylist(rows, schema=schema)


def _hand_message(fields: list[tuple[str, int, int]]) -> type:
    """A message class from a descriptor written by hand: (name, number, type) fields."""
    fdp = descriptor_pb2.FileDescriptorProto(name="hand.proto", syntax="proto3")
    msg = fdp.message_type.add(name="Hand")
    for name, number, ftype in fields:
        msg.field.add(name=name, number=number, type=ftype, label=1)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("Hand"))  # type: ignore[no-any-return]


def test_generated_schemas_are_ksqldbs_for_each_nullable_representation() -> None:
    # the texts ksqlDB registers for these columns (its protobuf.json post conditions)
    assert proto_for_columns(PRIMITIVES, nullable="optional") == (
        'syntax = "proto3";\n\nmessage ConnectDefault1 {\n  optional int32 I = 1;\n'
        "  optional int64 L = 2;\n  optional double D = 3;\n  optional bool B = 4;\n"
        "  optional string S = 5;\n}\n"
    )
    assert proto_for_columns(PRIMITIVES, nullable="wrapper") == (
        'syntax = "proto3";\n\nimport "google/protobuf/wrappers.proto";\n\n'
        "message ConnectDefault1 {\n  google.protobuf.Int32Value I = 1;\n"
        "  google.protobuf.Int64Value L = 2;\n  google.protobuf.DoubleValue D = 3;\n"
        "  google.protobuf.BoolValue B = 4;\n  google.protobuf.StringValue S = 5;\n}\n"
    )
    nested = [Column("ID", T.BIGINT), Column("M", T.map_(T.STRING, T.INTEGER))]
    assert proto_for_columns(nested) == (
        'syntax = "proto3";\n\nmessage ConnectDefault1 {\n  int64 ID = 1;\n'
        "  repeated ConnectDefault2Entry M = 2;\n\n  message ConnectDefault2Entry {\n"
        "    string key = 1;\n    int32 value = 2;\n  }\n}\n"
    )
    named = proto_for_columns([Column("A", T.STRING)], full_name="io.x.Thing")
    assert "package io.x;" in named
    assert "message Thing {" in named


@pytest.mark.parametrize(
    ("nullable", "expected"),
    [
        (None, {"I": 0, "L": 0, "D": 0.0, "B": False, "S": ""}),  # proto3 defaults
        ("OPTIONAL", dict.fromkeys(["I", "L", "D", "B", "S"])),
        ("WRAPPER", dict.fromkeys(["I", "L", "D", "B", "S"])),
    ],
)
def test_nulls_read_back_as_the_nullable_representation_says(
    nullable: str | None, expected: dict[str, object]
) -> None:
    props = {"VALUE_PROTOBUF_NULLABLE_REPRESENTATION": nullable} if nullable else {}
    fmt = get_format("PROTOBUF", props, context=FormatContext(MemoryRegistry(), "t"))
    rows = [{"I": 1, "L": 2, "D": 1.5, "B": True, "S": "x"}, dict.fromkeys(expected)]
    out = fmt.encode(_batch(PRIMITIVES, rows), PRIMITIVES)
    got = fmt.decode(out, PRIMITIVES)
    assert got.errors == []
    assert got.batch.to_pylist() == [rows[0], expected]


def test_wire_format_header_and_schema_registration() -> None:
    registry = MemoryRegistry()
    registry.register("other", Schema('syntax = "proto3"; message X { int32 a = 1; }', "PROTOBUF"))
    fmt = get_format("PROTOBUF", context=FormatContext(registry, "orders"))
    columns = [Column("ID", T.INTEGER), Column("NAME", T.STRING)]
    out = fmt.encode(_batch(columns, [{"ID": 7, "NAME": "ab"}]), columns)
    record = out[0].as_py()
    # magic byte, schema id 2 (big-endian), the single 0 for the first message, then the message
    assert record[:6] == b"\x00\x00\x00\x00\x02\x00"
    hand = _hand_message([("ID", 1, 5), ("NAME", 2, 9)])  # TYPE_INT32, TYPE_STRING
    parsed = hand.FromString(record[6:])
    assert (parsed.ID, parsed.NAME) == (7, "ab")
    held = registry.version("orders-value")
    assert held.id == 2
    assert held.schema.schema_type == "PROTOBUF"
    assert "message ConnectDefault1 {" in held.schema.schema


def test_message_indexes_as_confluent_writes_them() -> None:
    assert message_indexes_bytes([0]) == b"\x00"
    # count 2 then 1, 0: zigzag varints 4, 2, 0
    assert message_indexes_bytes([1, 0]) == b"\x04\x02\x00"
    assert read_header(b"\x00\x00\x00\x01\x00\x04\x02\x00rest") == (256, (1, 0), 8)


def test_records_of_any_registered_message_read_by_their_id_and_indexes() -> None:
    registry = MemoryRegistry()
    event = Schema('syntax = "proto3";\nmessage Event { int64 timestamp = 1; }', "PROTOBUF")
    registry.register("event.proto", event)
    text = (
        'syntax = "proto3";\nimport "event.proto";\n'
        "message First { string x = 1; }\nmessage Logistics { Event event = 1; string who = 2; }"
    )
    schema_id = registry.register(
        "t-value", Schema(text, "PROTOBUF", (SchemaReference("event.proto", "event.proto", 1),))
    )
    hand_event = _hand_message([("timestamp", 1, 3)])  # TYPE_INT64
    hand = _hand_message([("who", 2, 9)])
    body = b"\x0a" + bytes([len(ev := hand_event(timestamp=5).SerializeToString())]) + ev
    body += hand(who="me").SerializeToString()
    header = b"\x00" + schema_id.to_bytes(4, "big") + b"\x02\x02"  # indexes [1]
    columns = [
        Column("event", T.struct([("timestamp", T.BIGINT)])),
        Column("WHO", T.STRING),
        Column("MISSING", T.INTEGER),
    ]
    fmt = get_format("PROTOBUF", context=FormatContext(registry, "t"))
    bad = [b"\x05xx", b"\x00\x00\x00\x00\x63\x00", header + b"\xff\xff\xff"]
    got = fmt.decode(pa.array([header + body, None, *bad], pa.binary()), columns)
    assert got.batch.to_pylist()[0] == {"event": {"timestamp": 5}, "WHO": "me", "MISSING": None}
    assert got.null_rows.tolist() == [False, True, False, False, False]
    assert [i for i, _ in got.errors] == [2, 3, 4]
    assert got.errors[0][1].startswith("The record is 3 bytes long, too short")
    assert "99" in got.errors[1][1]  # the unknown schema id is named
    assert got.batch.to_pylist()[2:] == [dict.fromkeys(["event", "WHO", "MISSING"])] * 3


def test_inference_maps_protobuf_types_as_ksqldb() -> None:
    compiled = compile_schema(
        'syntax = "proto3"; import "google/protobuf/wrappers.proto";'
        ' import "google/protobuf/timestamp.proto";'
        " message M { enum Suit { A = 0; B = 1; } float f = 1; uint32 u = 2; sint32 s = 3;"
        " google.protobuf.BoolValue w = 4; Suit e = 5; repeated string r = 6;"
        " map<string, int64> m = 7; google.protobuf.Timestamp ts = 8; bytes b = 9; }"
    )
    assert [(c.name, str(c.type)) for c in columns_for_message(compiled.message())] == [
        ("f", "DOUBLE"), ("u", "BIGINT"), ("s", "INTEGER"), ("w", "BOOLEAN"), ("e", "STRING"),
        ("r", "ARRAY<STRING>"), ("m", "MAP<STRING, BIGINT>"), ("ts", "TIMESTAMP"),
        ("b", "BYTES"),
    ]  # fmt: skip


def test_a_schema_that_does_not_compile_is_a_clear_error() -> None:
    with pytest.raises(FormatError, match=r"Invalid protobuf schema: .*Thing"):
        compile_schema('syntax = "proto3"; message M { Thing t = 1; }')


def test_logical_types_round_trip() -> None:
    columns = [
        Column("DEC", T.decimal(6, 2)),
        Column("TS", T.TIMESTAMP),
        Column("DT", T.DATE),
        Column("TM", T.TIME),
        Column("ST", T.struct([("A", T.array(T.STRING))])),
    ]
    row = {
        "DEC": Decimal("-1234.50"),
        "TS": dt.datetime(2021, 3, 4, 5, 6, 7, 8000),
        "DT": dt.date(1969, 12, 31),
        "TM": dt.time(23, 59, 58, 999000),
        "ST": {"A": ["x", "y"]},
    }
    fmt = get_format("PROTOBUF", context=FormatContext(MemoryRegistry(), "t"))
    got = fmt.decode(fmt.encode(_batch(columns, [row]), columns), columns)
    assert got.errors == []
    assert got.batch.to_pylist() == [row]


def test_protobuf_nosr_writes_bare_messages_and_unwraps_single_keys() -> None:
    value = get_format("PROTOBUF_NOSR")
    columns = [Column("ID", T.INTEGER), Column("NAME", T.STRING)]
    out = value.encode(_batch(columns, [{"ID": 7, "NAME": None}]), columns)
    assert _hand_message([("ID", 1, 5), ("NAME", 2, 9)]).FromString(out[0].as_py()).ID == 7
    assert value.decode(out, columns).batch.to_pylist() == [{"ID": 7, "NAME": ""}]
    key = get_format("PROTOBUF_NOSR", is_key=True)
    k = [Column("K", T.BIGINT)]
    encoded = key.encode(_batch(k, [{"K": 5}, {"K": None}]), k)
    # a google.protobuf.Int64Value: field 1, varint 5; a null key is a null record
    assert encoded.to_pylist() == [b"\x08\x05", None]
    assert key.decode(encoded, k).batch.to_pylist() == [{"K": 5}, {"K": None}]


def test_protobuf_refuses_maps_without_string_keys() -> None:
    fmt = get_format("PROTOBUF")
    with pytest.raises(FormatError, match="only supports MAP types with STRING keys"):
        fmt.check_columns([Column("M", T.map_(T.INTEGER, T.DOUBLE))])


def test_a_sink_writes_with_its_own_nullable_representation(tmp_path: Path) -> None:
    from hispeed.engine import Engine
    from hispeed.log.embedded import EmbeddedLog
    from hispeed.testing.qtt_protobuf import decode_protobuf

    log = EmbeddedLog(tmp_path, fsync="never", cleaner_interval_s=None)
    engine = Engine(log_=log, properties={"auto.offset.reset": "earliest"})
    try:
        engine.execute(
            "CREATE STREAM INPUT (K STRING KEY, I INTEGER, S STRING) WITH (kafka_topic='input',"
            " value_format='PROTOBUF', value_protobuf_nullable_representation='WRAPPER',"
            " partitions=1);"
        )
        engine.execute(
            "CREATE STREAM WRAPPED WITH (value_protobuf_nullable_representation='WRAPPER') AS"
            " SELECT * FROM INPUT;"
        )
        engine.execute("CREATE STREAM PLAIN AS SELECT * FROM INPUT;")  # not inherited
        engine.execute("INSERT INTO INPUT (K, I, S) VALUES ('a', NULL, 'x');")
        engine.drain(timeout=60)
        registry = engine.schema_registry
        assert (
            "google.protobuf.Int32Value I = 1;" in registry.version("WRAPPED-value").schema.schema
        )
        assert "  int32 I = 1;" in registry.version("PLAIN-value").schema.schema
        got = {}
        for topic in ("WRAPPED", "PLAIN"):
            (record,) = [r for b in log.read(topic, 0, 0) for r in b.to_pylist()]
            got[topic] = decode_protobuf(record["value"], registry)
        assert got["WRAPPED"] == {"I": None, "S": "x"}
        assert got["PLAIN"] == {"I": JavaNumber("Integer", 0), "S": "x"}
    finally:
        engine.close()


def test_inference_upper_cases_names_unless_a_schema_id_names_the_schema(tmp_path: Path) -> None:
    from hispeed.engine import Engine
    from hispeed.log.embedded import EmbeddedLog

    log = EmbeddedLog(tmp_path, fsync="never", cleaner_interval_s=None)
    engine = Engine(log_=log, properties={"auto.offset.reset": "earliest"})
    try:
        registry = engine.schema_registry
        text = 'syntax = "proto3"; message M { message In { int32 f1 = 1; } In c1 = 1; }'
        schema_id = registry.register("t-value", Schema(text, "PROTOBUF"))
        registry.register("t-key", Schema('syntax = "proto3"; message K { int32 F1 = 1; }',
                                          "PROTOBUF"))  # fmt: skip
        log.create_topic("t", 1)
        # the value's columns inferred; the key's declared, so registered as ksqlDB's would be
        engine.execute("CREATE STREAM A (FOO INT) WITH (kafka_topic='t', format='PROTOBUF');")
        engine.execute(
            f"CREATE STREAM B WITH (kafka_topic='t', value_format='PROTOBUF',"
            f" value_schema_id={schema_id});"
        )
        engine.execute("CREATE STREAM C WITH (kafka_topic='t', value_format='PROTOBUF');")
        a, b, c = (engine.catalog.sources[n] for n in "ABC")
        assert [(col.name, str(col.type)) for col in a.key_columns] == [("F1", "INTEGER")]
        assert [(col.name, str(col.type)) for col in b.value_columns] == [
            ("c1", "STRUCT<`f1` INTEGER>")
        ]
        assert [(col.name, str(col.type)) for col in c.value_columns] == [
            ("C1", "STRUCT<`F1` INTEGER>")
        ]
    finally:
        engine.close()


def test_a_create_registers_the_side_it_declares_when_the_other_is_inferred(
    tmp_path: Path,
) -> None:
    from hispeed.engine import Engine
    from hispeed.log.embedded import EmbeddedLog

    log = EmbeddedLog(tmp_path, fsync="never", cleaner_interval_s=None)
    engine = Engine(log_=log, properties={"auto.offset.reset": "earliest"})
    try:
        registry = engine.schema_registry
        registry.register("t-key", Schema('syntax = "proto3"; message K { int32 F1 = 1; }',
                                          "PROTOBUF"))  # fmt: skip
        log.create_topic("t", 1)
        engine.execute("CREATE STREAM A (FOO INT) WITH (kafka_topic='t', format='PROTOBUF');")
        assert "int32 FOO = 1;" in registry.version("t-value").schema.schema
        assert registry.versions("t-key") == [1]
    finally:
        engine.close()


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "CREATE STREAM S (C3 INT KEY) WITH (kafka_topic='t', key_format='protobuf',"
            " value_format='protobuf', key_schema_id=1);",
            "Table elements and KEY_SCHEMA_ID cannot both exist for create statement.",
        ),
        (
            "CREATE STREAM S (C1 INT) WITH (kafka_topic='t', format='protobuf',"
            " value_schema_id=2);",
            "Table elements and VALUE_SCHEMA_ID cannot both exist for create statement.",
        ),
        (
            "CREATE STREAM S WITH (kafka_topic='t', value_format='json', value_schema_id=2);",
            "VALUE_FORMAT should support schema inference when VALUE_SCHEMA_ID is provided. "
            "Current format is JSON.",
        ),
    ],
)
def test_a_schema_id_with_columns_or_without_a_registry_format_is_refused(
    tmp_path: Path, statement: str, message: str
) -> None:
    from hispeed.engine import Engine
    from hispeed.errors import HispeedError
    from hispeed.log.embedded import EmbeddedLog

    engine = Engine(log_=EmbeddedLog(tmp_path, fsync="never", cleaner_interval_s=None))
    try:
        with pytest.raises(HispeedError) as raised:
            engine.execute(statement)
        assert str(raised.value) == message
    finally:
        engine.close()
