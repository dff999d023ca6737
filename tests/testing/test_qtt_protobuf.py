"""The conformance runner's own Protobuf serde (`qtt_protobuf`): what the test tool writes
for a case's value and what it reads back from records hispeed's formats write.

Expected bytes are written out by hand from the protobuf encoding rules (field key =
number << 3 | wire type), so neither side of a check is the code under test alone.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from hispeed.formats import Column, get_format
from hispeed.formats.base import FormatContext
from hispeed.registry import MemoryRegistry, Schema
from hispeed.sql import types as T
from hispeed.testing.qtt_protobuf import (
    decode_protobuf,
    decode_protobuf_nosr,
    encode_protobuf,
    encode_protobuf_nosr,
)
from hispeed.testing.qtt_serde import JavaNumber, SerdeError

COLUMNS = [("I", T.INTEGER), ("L", T.BIGINT), ("S", T.STRING)]


def test_nosr_writes_the_columns_message_matching_fields_ignoring_case() -> None:
    # I=1 (key 0x08), L=2 (0x10), S="ab" (0x1a, length 2): fields numbered in column order
    assert encode_protobuf_nosr({"i": 1, "l": 2, "S": "ab"}, COLUMNS, None) == (
        b"\x08\x01\x10\x02\x1a\x02ab"
    )
    assert encode_protobuf_nosr(None, COLUMNS, None) is None
    with pytest.raises(SerdeError):
        encode_protobuf_nosr({"I": 1.5}, COLUMNS, None)  # Integer.valueOf("1.5") fails


@pytest.mark.parametrize(
    ("nullable", "unset"),
    [(None, [JavaNumber("Integer", 0), JavaNumber("Long", 0), ""]), ("optional", [None] * 3),
     ("wrapper", [None] * 3)],
)  # fmt: skip
def test_nosr_reads_unset_fields_as_the_nullable_representation_says(
    nullable: str | None, unset: list[object]
) -> None:
    got = decode_protobuf_nosr(
        encode_protobuf_nosr({}, COLUMNS, nullable) or b"", COLUMNS, nullable
    )
    assert got == dict(zip(["I", "L", "S"], unset, strict=True))


def test_reads_what_hispeeds_protobuf_format_writes_as_java_objects() -> None:
    registry = MemoryRegistry()
    columns = [
        Column("ID", T.BIGINT),
        Column("DEC", T.decimal(4, 2)),
        Column("M", T.map_(T.STRING, T.INTEGER)),
        Column("A", T.array(T.DOUBLE)),
    ]
    fmt = get_format("PROTOBUF", context=FormatContext(registry, "out"))
    batch = pa.RecordBatch.from_pylist(
        [{"ID": 5, "DEC": Decimal("1.50"), "M": [("k", 1)], "A": [0.5]}],
        schema=pa.schema([(c.name, c.type.to_arrow()) for c in columns]),
    )
    record = fmt.encode(batch, columns)[0].as_py()
    assert decode_protobuf(record, registry) == {
        "ID": JavaNumber("Long", 5),
        "DEC": JavaNumber("BigDecimal", Decimal("1.50")),
        "M": {"k": JavaNumber("Integer", 1)},
        "A": [JavaNumber("Double", 0.5)],
    }
    with pytest.raises(SerdeError, match="magic byte"):
        decode_protobuf(b"\x01" + record[1:], registry)


def test_writes_with_the_subjects_latest_schema_for_hispeed_to_read() -> None:
    registry = MemoryRegistry()
    text = (
        'syntax = "proto3"; import "confluent/type/decimal.proto"; message Row { int32 c1 = 1;'
        ' confluent.type.Decimal c6 = 6 [(confluent.field_meta) = { params: [{ value: "4",'
        ' key: "precision" }, { value: "2", key: "scale" }]}]; enum E { A = 0; B = 1; } E e = 7; }'
    )
    schema_id = registry.register("in-value", Schema(text, "PROTOBUF"))
    record = encode_protobuf({"C1": 3, "c6": 1.5, "e": "B"}, registry, "in-value")
    assert record is not None
    assert record[:6] == b"\x00" + schema_id.to_bytes(4, "big") + b"\x00"
    columns = [Column("C1", T.INTEGER), Column("C6", T.decimal(4, 2)), Column("E", T.STRING)]
    fmt = get_format("PROTOBUF", context=FormatContext(registry, "in"))
    got = fmt.decode(pa.array([record], pa.binary()), columns)
    assert got.errors == []
    assert got.batch.to_pylist() == [{"C1": 3, "C6": Decimal("1.50"), "E": "B"}]


def test_nosr_round_trip_with_hispeeds_format() -> None:
    columns = [Column("V", T.decimal(6, 4)), Column("ST", T.struct([("X", T.STRING)]))]
    cols = [(c.name, c.type) for c in columns]
    fmt = get_format("PROTOBUF_NOSR")
    written = encode_protobuf_nosr({"V": 10.0, "st": {"x": "y"}}, cols, None)
    got = fmt.decode(pa.array([written], pa.binary()), columns)
    assert got.batch.to_pylist() == [{"V": Decimal("10.0000"), "ST": {"X": "y"}}]
    back = decode_protobuf_nosr(fmt.encode(got.batch, columns)[0].as_py(), cols, None)
    assert back == {"V": JavaNumber("BigDecimal", Decimal("10.0000")), "ST": {"X": "y"}}


def test_the_runner_picks_the_sources_message_by_its_full_name() -> None:
    registry = MemoryRegistry()
    text = 'syntax = "proto3"; message K1 { uint32 k1 = 1; } message K2 { string k1 = 1; }'
    schema_id = registry.register("in-key", Schema(text, "PROTOBUF"))
    record = encode_protobuf({"K1": "A"}, registry, "in-key", full_name="K2")
    # message indexes [1]: count 1 then 1, zigzag varints 2 and 2; then k1 = "A"
    assert record == b"\x00" + schema_id.to_bytes(4, "big") + b"\x02\x02" + b"\x0a\x01A"
    assert decode_protobuf(record, registry) == {"k1": "A"}


def test_a_case_schema_with_references_takes_the_first_id_as_ksqldbs_tool_gives_it(
    tmp_path: Path,
) -> None:
    from hispeed.testing.qtt import Case, case_registry

    event = 'syntax = "proto3"; message Event { int64 timestamp = 1; }'
    topic = {
        "name": "input",
        "valueFormat": "PROTOBUF",
        "valueSchema": 'syntax = "proto3"; import "event.proto"; message L { Event event = 1; }',
        "valueSchemaReferences": [{"name": "event.proto", "format": "PROTOBUF", "schema": event}],
    }
    case = Case(
        "f.json", "n", {"topics": [topic]}, ["CREATE STREAM S WITH (value_format='PROTOBUF');"], {}
    )
    registry = case_registry(case)
    held = registry.version("input-value")
    assert held.id == 1  # as `value_schema_id=1` in ksqlDB's own cases names it
    assert registry.version("event.proto").schema.schema == event


def test_the_runner_shows_protobuf_format_properties_as_ksqldbs_format_info() -> None:
    from hispeed.testing._qtt_strict import protobuf_format_properties

    shown = protobuf_format_properties(
        "PROTOBUF", "VALUE", {"VALUE_PROTOBUF_NULLABLE_REPRESENTATION": "WRAPPER"}
    )
    assert shown == {"unwrapPrimitives": "true", "nullableRepresentation": "wrapper"}
    assert protobuf_format_properties("PROTOBUF_NOSR", "KEY", {}) == {}
    assert protobuf_format_properties("JSON", "VALUE", {"X": 1}) == {}


def test_decimals_read_alike_once_confluents_protobuf_serde_is_loaded() -> None:
    """confluent-kafka's protobuf serde registers `confluent.field_meta` on FieldOptions in the
    runtime when imported (the registry's interop tests import it): the runner must still read
    a decimal's precision and scale, whichever tests ran before."""
    import confluent_kafka.schema_registry.protobuf  # noqa: F401

    test_writes_with_the_subjects_latest_schema_for_hispeed_to_read()
