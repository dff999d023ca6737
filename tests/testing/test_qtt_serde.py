"""The conformance runner's own serde, checked against bytes built by hand from the layouts
Kafka's serializers and Kafka Streams' window schemas publish (not from hispeed's formats)."""

from __future__ import annotations

import struct
from decimal import Decimal

import pytest

from hispeed.testing.qtt_serde import (
    JavaNumber,
    SerdeError,
    TopicFormat,
    Window,
    Windowed,
    decode,
    decode_json,
    decode_key,
    encode,
    encode_key,
    java_double_text,
)


def _topic(key_format: str, key_types: tuple[str, ...], window: str | None = None) -> TopicFormat:
    size = 30_000 if window in ("TUMBLING", "HOPPING") else None
    return TopicFormat(key_format, "JSON", key_types, ("V",), window, size)


def test_a_session_key_is_the_key_then_the_end_then_the_start() -> None:
    # Kafka Streams' SessionKeySchema: key bytes, end (8 bytes), start (8 bytes), big-endian
    raw = struct.pack(">i", 7) + struct.pack(">q", 1500) + struct.pack(">q", 100)
    key = decode_key(raw, _topic("KAFKA", ("INTEGER",), "SESSION"))
    assert key == Windowed(JavaNumber("Integer", 7), Window("SESSION", 100, 1500))
    assert encode_key(7, Window("SESSION", 100, 1500), _topic("KAFKA", ("INTEGER",), "SESSION"))
    assert (
        encode_key(7, Window("SESSION", 100, 1500), _topic("KAFKA", ("INTEGER",), "SESSION")) == raw
    )


def test_a_time_window_key_is_the_key_then_the_start_and_its_end_is_start_plus_size() -> None:
    raw = b'"k"' + struct.pack(">q", 60_000)
    key = decode_key(raw, _topic("JSON", ("STRING",), "TUMBLING"))
    assert key == Windowed("k", Window("TIME", 60_000, 90_000))
    assert encode_key("k", Window("TIME", 60_000, 90_000), _topic("JSON", ("STRING",), "HOPPING"))


def test_a_windowed_key_needs_a_windowed_topic_and_the_other_way_round() -> None:
    with pytest.raises(SerdeError):
        encode_key("k", Window("TIME", 0, 1), _topic("KAFKA", ("STRING",)))
    with pytest.raises(SerdeError):
        encode_key("k", None, _topic("KAFKA", ("STRING",), "SESSION"))
    with pytest.raises(SerdeError):
        decode_key(b"\x00" * 12, _topic("KAFKA", ("INTEGER",), "SESSION"))


def test_kafka_format_writes_what_kafkas_serializers_write() -> None:
    assert encode(10, "KAFKA", ("INTEGER",)) == b"\x00\x00\x00\x0a"
    assert encode(10, "KAFKA", ("BIGINT",)) == b"\x00" * 7 + b"\x0a"
    assert encode(Decimal("1.5"), "KAFKA", ("DOUBLE",)) == struct.pack(">d", 1.5)
    assert encode("é", "KAFKA", ("STRING",)) == "é".encode()
    # Kafka's IntegerSerializer takes an Integer only: not a string, not a long
    with pytest.raises(SerdeError):
        encode("10", "KAFKA", ("INTEGER",))
    with pytest.raises(SerdeError):
        encode(2**31, "KAFKA", ("INTEGER",))


def test_kafka_format_reads_as_the_test_tools_deserializers() -> None:
    assert decode(b"\x00\x00\x00\x0a", "KAFKA", ("INTEGER",)) == JavaNumber("Integer", 10)
    # a BIGINT that fits an int comes back as an Integer, as ksqlDB's TestBigIntDeserializer
    assert decode(b"\x00" * 7 + b"\x0a", "KAFKA", ("BIGINT",)) == JavaNumber("Integer", 10)
    big = struct.pack(">q", 2**40)
    assert decode(big, "KAFKA", ("BIGINT",)) == JavaNumber("Long", 2**40)
    assert decode(struct.pack(">d", 1e12), "KAFKA", ("DOUBLE",)) == JavaNumber(
        "BigDecimal", Decimal("1.0E12")
    )
    with pytest.raises(SerdeError):
        decode(b"\x00\x0a", "KAFKA", ("INTEGER",))  # not 4 bytes: a KAFKA int key is 4


def test_delimited_and_none() -> None:
    assert encode("10", "DELIMITED", ("INTEGER",)) == b"10"
    assert decode(b"10", "DELIMITED", ("INTEGER",)) == "10"
    with pytest.raises(SerdeError):
        encode(10, "DELIMITED", ("INTEGER",))  # the string serializer takes strings only
    assert encode("anything", "NONE", ()) is None
    assert decode(b"x", "NONE", ()) is None


def test_json_reads_numbers_as_jackson_does() -> None:
    got = decode_json(b'{"A": 1, "B": 3000000000, "C": 1.50, "D": 1e3}')
    assert got == {
        "A": JavaNumber("Integer", 1),
        "B": JavaNumber("Long", 3_000_000_000),
        "C": JavaNumber("BigDecimal", Decimal("1.50")),
        "D": JavaNumber("BigDecimal", Decimal("1e3")),
    }
    assert decode_json(b"1.5", exact=False) == JavaNumber("Double", 1.5)
    with pytest.raises(SerdeError):
        decode_json(b"NaN")
    assert encode({"A": Decimal("1.50"), "B": [1, None]}, "JSON", ()) == b'{"A":1.50,"B":[1,null]}'


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1.0, "1.0"),
        (100.5, "100.5"),
        (0.001, "0.001"),
        (1e7, "1.0E7"),
        (1e12, "1.0E12"),
        (1.5e-4, "1.5E-4"),
        (-2.5e20, "-2.5E20"),
        (0.0, "0.0"),
    ],
)
def test_doubles_read_back_as_javas_text(value: float, text: str) -> None:
    assert java_double_text(value) == text
