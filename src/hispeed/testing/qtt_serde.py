"""The conformance runner's own serde: records to bytes and back as ksqlDB's test tool does.

Written from ksqlDB's `ksqldb-functional-tests` serde suppliers and Kafka's serializers, not
from hispeed's formats, so that a record hispeed writes wrongly cannot round-trip through the
same mistake. A topic's formats come from the source over it (as ksqlDB's `TopicInfoCache`
takes them from its metastore): the format names, the columns' types and the window; the
bytes are made and read here.

| format    | serialize (a case's value)           | deserialize (what is compared)        |
|-----------|--------------------------------------|---------------------------------------|
| JSON      | the value as JSON text               | Jackson's `Object`: ints as Integer,  |
|           |                                      | Long or BigInteger by range; floats   |
|           |                                      | as BigDecimal (or Double when         |
|           |                                      | `use.exact.numeric.comparison` is     |
|           |                                      | false)                                |
| DELIMITED | a string, as its UTF-8 bytes         | the UTF-8 text                        |
| KAFKA     | by the one column's type: INTEGER 4  | INTEGER an Integer; BIGINT an Integer |
|           | bytes, BIGINT 8, DOUBLE an IEEE 754  | when it fits one, else a Long; DOUBLE |
|           | double, big-endian; STRING and BYTES | a BigDecimal of Java's text of the    |
|           | UTF-8; no column: a string           | double; STRING, BYTES, none: text     |
| NONE      | no bytes                             | null                                  |

A windowed key is the key's bytes then, big-endian, the window's start (8 bytes) for time
windows (Kafka Streams' `TimeWindowedSerializer`), or its end then its start (8 + 8 bytes)
for session windows (Kafka Streams' `SessionKeySchema`).

Java's numbers are kept apart as `JavaNumber`, because ksqlDB's comparison treats an Integer,
a Long, a Double and a BigDecimal differently.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

INT_MIN, INT_MAX = -(2**31), 2**31 - 1
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

#: the formats this serde writes and reads without a schema registry
FORMATS = ("JSON", "DELIMITED", "KAFKA", "NONE")
#: those it writes and reads with one (`qtt_serde_sr`)
SR_FORMATS = ("AVRO", "JSON_SR")
#: and those `qtt_protobuf` writes and reads (`TopicFormat.protobuf`)
PROTOBUF_FORMATS = ("PROTOBUF", "PROTOBUF_NOSR")


class SerdeError(Exception):
    """A value the test tool's serde cannot write or bytes it cannot read (the case fails)."""


@dataclass(frozen=True)
class JavaNumber:
    """A number as the Java object a deserializer returns: its class and its value."""

    kind: str  # Integer Long BigInteger Double BigDecimal
    value: int | float | Decimal

    def __repr__(self) -> str:
        return f"{self.value}" if self.kind != "BigDecimal" else f"{self.value}BD"


@dataclass(frozen=True)
class Window:
    """A windowed key's window: `kind` TIME or SESSION (ksqlDB's `WindowData`)."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class Windowed:
    """A key and its window, as Kafka Streams' `Windowed`."""

    key: Any
    window: Window


@dataclass(frozen=True)
class TopicFormat:
    """What ksqlDB's `TopicInfo` knows of a topic: formats, column types and window."""

    key_format: str
    value_format: str
    #: the SQL base type names of the key columns and of the value columns
    key_types: tuple[str, ...]
    value_types: tuple[str, ...]
    #: TUMBLING HOPPING SESSION, or None for a key without a window
    window_type: str | None = None
    window_size_ms: int | None = None
    #: the AVRO and JSON_SR serde of this topic (`qtt_serde_sr.RegistryCodec`: its registry
    #: and subjects), None without a registry
    codec: Any = None
    #: the PROTOBUF and PROTOBUF_NOSR serde of this topic (`qtt_protobuf.ProtobufCodec`)
    protobuf: Any = None


# -- integers as Java's casts wrap them ----------------------------------------------------


def wrap(value: int, bits: int) -> int:
    """`value` cast to a Java integer of `bits` bits (two's complement wrap)."""
    mask = (1 << bits) - 1
    value &= mask
    return value - (1 << bits) if value >> (bits - 1) else value


def java_integer(value: int) -> JavaNumber:
    """The class Jackson gives an integer literal: Integer, Long or BigInteger by range."""
    if INT_MIN <= value <= INT_MAX:
        return JavaNumber("Integer", value)
    if LONG_MIN <= value <= LONG_MAX:
        return JavaNumber("Long", value)
    return JavaNumber("BigInteger", value)


def java_double_text(value: float) -> str:
    """Java's `Double.toString`: plain between 10^-3 and 10^7, else d.dddE±n."""
    if math.isnan(value) or math.isinf(value):
        raise SerdeError(f"{value} has no BigDecimal")
    if value == 0:
        return "-0.0" if math.copysign(1, value) < 0 else "0.0"
    if 1e-3 <= abs(value) < 1e7:
        text = repr(value)
        return text if "." in text or "e" in text else text + ".0"
    sign, digits, exponent = Decimal(repr(value)).as_tuple()
    assert isinstance(exponent, int)
    shown = "".join(map(str, digits)).rstrip("0") or "0"
    power = exponent + len(digits) - 1
    mantissa = shown[0] + "." + (shown[1:] or "0")
    return ("-" if sign else "") + f"{mantissa}E{power}"


# -- JSON ---------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    # Jackson refuses NaN and Infinity tokens unless told to allow them
    raise SerdeError(f"non-numeric JSON token {name}")


def decode_json(data: bytes, *, exact: bool = True) -> Any:
    """JSON bytes as Jackson's `readValue(Object.class)` gives them."""
    try:
        return json.loads(
            data,
            parse_int=lambda s: java_integer(int(s)),
            parse_float=(
                (lambda s: JavaNumber("BigDecimal", Decimal(s)))
                if exact
                else (lambda s: JavaNumber("Double", float(s)))
            ),
            parse_constant=_reject_constant,
        )
    except (ValueError, UnicodeDecodeError) as e:
        raise SerdeError(f"invalid JSON: {e}") from e


def _json_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)  # Java's BigDecimal.toString: the same digits and exponent
    if isinstance(value, float):
        return java_double_text(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(_json_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json_text(v)}" for k, v in value.items()) + "}"
    raise SerdeError(f"the test tool cannot write {value!r} as JSON")


def encode_json(value: Any) -> bytes | None:
    """A case's value as the test tool's JSON serializer writes it (None stays null)."""
    if value is None:
        return None
    return _json_text(value).encode()


# -- KAFKA --------------------------------------------------------------------------------


def _kafka_type(types: tuple[str, ...]) -> str:
    if not types:
        return "STRING"  # the test tool reads a column-less KAFKA side as a string
    if len(types) != 1:
        raise SerdeError("KAFKA format only supports single column schemas.")
    if types[0] not in ("INTEGER", "BIGINT", "DOUBLE", "STRING", "BYTES"):
        raise SerdeError("Unsupported type for KAFKA format")
    return types[0]


def encode_kafka(value: Any, types: tuple[str, ...]) -> bytes | None:
    """A case's value with Kafka's serializer for the column's type."""
    if value is None:
        return None
    t = _kafka_type(types)
    if t == "INTEGER":
        # Kafka's IntegerSerializer takes an Integer: Jackson's for a small integer only
        if isinstance(value, bool) or not isinstance(value, int) or not INT_MIN <= value <= INT_MAX:
            raise SerdeError(f"Can't serialize {value!r} as Integer")
        return struct.pack(">i", value)
    if t in ("BIGINT", "DOUBLE"):
        if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
            raise SerdeError(
                f"Can't serialize {value!r} as {'Long' if t == 'BIGINT' else 'Double'}"
            )
        if t == "BIGINT":
            return struct.pack(">q", wrap(int(value), 64))  # Number.longValue truncates
        return struct.pack(">d", float(value))
    if not isinstance(value, str):
        raise SerdeError(f"Can't serialize {value!r} as {'String' if t == 'STRING' else 'BYTES'}")
    return value.encode()


def decode_kafka(data: bytes, types: tuple[str, ...]) -> Any:
    """KAFKA bytes as the test tool's deserializer for the column's type returns them."""
    t = _kafka_type(types)
    if t == "INTEGER":
        if len(data) != 4:
            raise SerdeError("Size of data received by IntegerDeserializer is not 4")
        return JavaNumber("Integer", struct.unpack(">i", data)[0])
    if t == "BIGINT":
        if len(data) != 8:
            raise SerdeError("Size of data received by LongDeserializer is not 8")
        (n,) = struct.unpack(">q", data)
        # the test tool narrows a long strictly inside the int range to an Integer
        return JavaNumber("Integer", n) if INT_MIN < n < INT_MAX else JavaNumber("Long", n)
    if t == "DOUBLE":
        if len(data) != 8:
            raise SerdeError("Size of data received by DoubleDeserializer is not 8")
        (d,) = struct.unpack(">d", data)
        return JavaNumber("BigDecimal", Decimal(java_double_text(d)))
    return data.decode(errors="replace")


# -- one side, and windowed keys ----------------------------------------------------------


def encode(
    value: Any,
    fmt: str,
    types: tuple[str, ...],
    topic: TopicFormat | None = None,
    *,
    is_key: bool = False,
) -> bytes | None:
    """A case's key or value (not windowed) in `fmt`; `topic` gives the AVRO and JSON_SR
    formats their registry and subject."""
    if fmt in SR_FORMATS and topic is not None and topic.codec is not None:
        encoded: bytes | None = topic.codec.encode(value, fmt, is_key=is_key)
        return encoded
    if fmt in PROTOBUF_FORMATS and topic is not None and topic.protobuf is not None:
        written: bytes | None = topic.protobuf.encode(value, fmt, is_key=is_key)
        return written
    if fmt == "NONE":
        return None
    if fmt == "JSON":
        return encode_json(value)
    if fmt == "DELIMITED":
        if value is None:
            return None
        if not isinstance(value, str):
            raise SerdeError(f"Can't serialize {value!r} with the DELIMITED (string) serializer")
        return value.encode()
    if fmt == "KAFKA":
        return encode_kafka(value, types)
    raise SerdeError(f"format {fmt} needs a schema registry")


def decode(
    data: bytes | None,
    fmt: str,
    types: tuple[str, ...],
    *,
    exact: bool = True,
    topic: TopicFormat | None = None,
    is_key: bool = False,
) -> Any:
    """Bytes of one side (not windowed) as the test tool's deserializer for `fmt` reads them."""
    if fmt == "NONE" or data is None:
        return None
    if fmt in SR_FORMATS and topic is not None and topic.codec is not None:
        return topic.codec.decode(data, fmt)
    if fmt in PROTOBUF_FORMATS and topic is not None and topic.protobuf is not None:
        return topic.protobuf.decode(data, fmt, is_key=is_key)
    if fmt == "JSON":
        return decode_json(data, exact=exact)
    if fmt == "DELIMITED":
        return data.decode(errors="replace")
    if fmt == "KAFKA":
        return decode_kafka(data, types)
    raise SerdeError(f"format {fmt} needs a schema registry")


def encode_key(key: Any, window: Window | None, topic: TopicFormat) -> bytes | None:
    """A record's key, with its window when the topic's key format is windowed."""
    windowed = topic.window_type is not None
    if window is not None and not windowed:
        raise SerdeError("a windowed key for a topic whose key format has no window")
    if windowed and window is None:
        raise SerdeError(f"a key without a window for a {topic.window_type} windowed topic")
    inner = encode(key, topic.key_format, topic.key_types, topic, is_key=True)
    if window is None:
        return inner
    if inner is None:
        raise SerdeError("a windowed key whose key serializes to null")
    if topic.window_type == "SESSION":
        return inner + struct.pack(">qq", window.end, window.start)
    return inner + struct.pack(">q", window.start)


def decode_key(data: bytes | None, topic: TopicFormat, *, exact: bool = True) -> Any:
    """A record's key: a `Windowed` for a windowed topic (None for null or empty bytes)."""
    if topic.window_type is None:
        return decode(
            data, topic.key_format, topic.key_types, exact=exact, topic=topic, is_key=True
        )
    if not data:
        return None
    if topic.window_type == "SESSION":
        if len(data) < 16:
            raise SerdeError(f"a session-windowed key of {len(data)} bytes")
        end, start = struct.unpack(">qq", data[-16:])
        key = decode(
            data[:-16], topic.key_format, topic.key_types, exact=exact, topic=topic, is_key=True
        )
        return Windowed(key, Window("SESSION", start, end))
    if len(data) < 8:
        raise SerdeError(f"a time-windowed key of {len(data)} bytes")
    (start,) = struct.unpack(">q", data[-8:])
    end = start + (topic.window_size_ms or 0)
    if end > LONG_MAX:  # Kafka Streams caps a window's end at Long.MAX_VALUE
        end = LONG_MAX
    key = decode(
        data[:-8], topic.key_format, topic.key_types, exact=exact, topic=topic, is_key=True
    )
    return Windowed(key, Window("TIME", start, end))
