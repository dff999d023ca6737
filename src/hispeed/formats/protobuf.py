"""PROTOBUF and PROTOBUF_NOSR: ksqlDB's Protobuf formats, for keys and values.

PROTOBUF keeps its schemas in a schema registry and writes Confluent's wire format: a zero
magic byte, the schema's id (4 bytes, big-endian; that framing, the schema cache and sink
registration are `registry_format.RegistryFormat`'s), the message indexes (which message of
the schema's file: a count then the path, zigzag varints, or the single byte 0 for the file's
first message), then the message. Reading takes each record's schema by its id (any version
the producer used) and maps its fields to the declared columns by name. Writing uses the
schema given by KEY_/VALUE_SCHEMA_ID (its message picked by KEY_/VALUE_SCHEMA_FULL_NAME, else
its first), or else the schema ksqlDB generates for the columns, registered under the topic's
subject (`protobuf_schema.proto_for_columns`).

PROTOBUF_NOSR writes the bare message; its schema is the one generated from the columns.

Both read KEY_/VALUE_PROTOBUF_NULLABLE_REPRESENTATION (OPTIONAL or WRAPPER): how a null scalar
is written, and so whether it reads back null or as its default. PROTOBUF wraps single values
(WRAP_SINGLE_VALUE=false is refused, as ksqlDB's format lacks UNWRAP_SINGLES);
PROTOBUF_NOSR also unwraps them, writing one scalar column as a `google.protobuf.*Value`.
A record that cannot be read is an all-null row and an entry in `DecodeResult.errors`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from google.protobuf.message import DecodeError

from hispeed.formats.base import (
    Column,
    DecodeResult,
    Format,
    FormatError,
    FormatOptions,
    apply_null_rows,
    binary_chunk,
    columns_of,
    make_batch,
    null_out,
    register_format,
)
from hispeed.formats.protobuf_codec import Reader, Writer
from hispeed.formats.protobuf_schema import (
    WRAPPERS,
    CompiledSchema,
    columns_for_message,
    compile_schema,
    proto_for_columns,
    unsupported_reason,
)
from hispeed.formats.registry_format import RegistryFormat, framing_error
from hispeed.registry import RegistryError, Schema, SchemaRegistry
from hispeed.sql import types as sql_types
from hispeed.sql.types import SqlType

MAGIC_BYTE = 0
_NULLABLE = {"OPTIONAL": "optional", "WRAPPER": "wrapper"}


def parse_nullable(value: object, *, is_key: bool) -> str | None:
    """KEY_/VALUE_PROTOBUF_NULLABLE_REPRESENTATION as ksqlDB's properties hold it."""
    if value is None:
        return None
    text = str(value).strip().upper()
    if text not in _NULLABLE:
        side = "KEY" if is_key else "VALUE"
        raise FormatError(
            f"Invalid value {value} for property {side}_PROTOBUF_NULLABLE_REPRESENTATION: "
            "String must be one of: OPTIONAL, WRAPPER"
        )
    return _NULLABLE[text]


# -- Confluent's wire format --------------------------------------------------------------


def _zigzag(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def _varint(n: int) -> bytes:
    out = bytearray()
    n &= (1 << 64) - 1
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def message_indexes_bytes(indexes: Sequence[int]) -> bytes:
    """The message-indexes array as Confluent writes it ([0] as the single byte 0)."""
    if list(indexes) == [0]:
        return b"\x00"
    return _varint(_zigzag(len(indexes))) + b"".join(_varint(_zigzag(i)) for i in indexes)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    result = 0
    while True:
        if pos >= len(data):
            raise FormatError("truncated message indexes")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            break
        shift += 7
        if shift > 63:
            raise FormatError("a message index varint longer than 10 bytes")
    return (result >> 1) ^ -(result & 1), pos


def read_indexes(data: bytes, pos: int) -> tuple[tuple[int, ...], int]:
    """The message indexes at `pos` (after the framing) and where the message starts."""
    count, pos = _read_varint(data, pos)
    if count == 0:
        return (0,), pos
    if count < 0 or count > len(data):
        raise FormatError(
            f"The record's message indexes are invalid (a count of {count}): the payload after "
            "the schema id does not start with the Protobuf wire format's message indexes"
        )
    indexes = []
    for _ in range(count):
        i, pos = _read_varint(data, pos)
        indexes.append(i)
    return tuple(indexes), pos


def read_header(data: bytes) -> tuple[int, tuple[int, ...], int]:
    """(schema id, message indexes, offset of the message) of a PROTOBUF record."""
    if len(data) < 5 or data[0] != MAGIC_BYTE:
        raise FormatError(framing_error(data))
    schema_id = int.from_bytes(data[1:5], "big", signed=True)
    indexes, pos = read_indexes(data, 5)
    return schema_id, indexes, pos


# -- reading the registry ------------------------------------------------------------------


def resolve_imports(registry: SchemaRegistry, schema: Schema) -> dict[str, str]:
    """The texts of every file `schema` imports, by import name, through its references."""
    out: dict[str, str] = {}
    pending = list(schema.references)
    while pending:
        ref = pending.pop()
        if ref.name in out:
            continue
        held = registry.version(ref.subject, ref.version).schema
        out[ref.name] = held.schema
        pending.extend(held.references)
    return out


def compile_registered(registry: SchemaRegistry, schema: Schema) -> CompiledSchema:
    """A registered PROTOBUF schema compiled with its references."""
    if schema.schema_type != "PROTOBUF":
        raise FormatError(f"the schema is {schema.schema_type}, not PROTOBUF")
    return compile_schema(schema.schema, resolve_imports(registry, schema))


# -- the formats --------------------------------------------------------------------------


class _ProtobufBase(Format):
    supports_wrap = True

    def __init__(
        self,
        *,
        is_key: bool = False,
        wrap_single_value: bool | None = None,
        nullable: str | None = None,
    ) -> None:
        super().__init__(is_key=is_key, wrap_single_value=wrap_single_value)
        #: None, "optional" or "wrapper" (ksqlDB's nullableRepresentation)
        self.nullable = nullable
        self._lock = threading.Lock()
        self._readers: dict[object, Reader] = {}
        self._writers: dict[object, tuple[Writer, bytes]] = {}

    def unwrapped(self, columns: Sequence[Column]) -> bool:
        """Whether a record is one column's value rather than a message of columns."""
        if len(columns) != 1 or not self.supports_unwrap:
            return False
        return self.is_key or self.wrap_single_value is False

    def _unsupported(self, columns: Sequence[Column], *, is_key: bool) -> str | None:
        return unsupported_reason(columns)

    def _decode_with(
        self,
        data: pa.Array,
        columns: Sequence[Column],
        reader_for: Any,
    ) -> DecodeResult:
        data = binary_chunk(data)
        n = len(data)
        raw = data.to_pylist()
        values: list[list[Any]] = [[None] * n for _ in columns]
        nulls = np.zeros(n, np.bool_)
        errors: dict[int, str] = {}
        for i, record in enumerate(raw):
            if record is None:
                nulls[i] = True
                continue
            try:
                reader, payload = reader_for(record)
                row = reader.read(payload)
            except Exception as e:
                errors[i] = _reason(e)
                continue
            for j, v in enumerate(row):
                values[j][i] = v
        arrays: list[pa.Array] = []
        for j, c in enumerate(columns):
            arrays.append(_to_arrow(values[j], c, errors))
        arrays, _ = null_out(arrays, errors, n)
        return DecodeResult(make_batch(columns, arrays, n), sorted(errors.items()), nulls)

    def _encode_with(
        self,
        batch: pa.RecordBatch | pa.Table,
        columns: Sequence[Column],
        writer: Writer,
        header: bytes,
        null_rows: npt.NDArray[np.bool_] | None,
    ) -> pa.Array:
        n = batch.num_rows
        lists = [_python_values(a) for a in columns_of(batch, columns)]
        out: list[bytes | None] = []
        skip = null_rows if null_rows is not None else np.zeros(n, np.bool_)
        # one unwrapped column's null is a null record, as Connect writes a null value
        bare = self.unwrapped(columns)
        for i in range(n):
            if skip[i] or (bare and lists[0][i] is None):
                out.append(None)
                continue
            try:
                out.append(header + writer.write([col[i] for col in lists]))
            except FormatError:
                raise
            except Exception as e:
                raise FormatError(f"cannot serialize as {self.name}: {_reason(e)}") from e
        return apply_null_rows(pa.array(out, pa.binary()), null_rows)


def _upper_fields(t: SqlType) -> SqlType:
    """`t` with every STRUCT field name, at any depth, in upper case."""
    if t.name == "STRUCT":
        return sql_types.struct([(n.upper(), _upper_fields(ft)) for n, ft in t.fields])
    if t.name == "ARRAY" and t.element is not None:
        return sql_types.array(_upper_fields(t.element))
    if t.name == "MAP" and t.key is not None and t.element is not None:
        return sql_types.map_(t.key, _upper_fields(t.element))
    return t


def _reason(e: Exception) -> str:
    text = str(e) or type(e).__name__
    if isinstance(e, DecodeError):
        return f"the payload does not match its writer's schema: {text}"
    return text if isinstance(e, FormatError | RegistryError) else f"{type(e).__name__}: {text}"


def _python_values(arr: pa.Array) -> list[Any]:
    t = arr.type
    if pa.types.is_timestamp(t):
        return arr.cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]
    if pa.types.is_date32(t) or pa.types.is_time32(t):
        return arr.cast(pa.int32()).to_pylist()  # type: ignore[no-any-return]
    return arr.to_pylist()  # type: ignore[no-any-return]


def _to_arrow(values: list[Any], column: Column, errors: dict[int, str]) -> pa.Array:
    target = column.type.to_arrow()
    try:
        return pa.array(values, target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        pass
    # one value does not fit (e.g. a decimal past the column's precision): find it, make its
    # row an error, and build the column from the rest
    for i, v in enumerate(values):
        if v is None:
            continue
        try:
            pa.array([v], target)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
            errors.setdefault(i, f"column `{column.name}`: {e}")
            values[i] = None
    return pa.array(values, target)


@register_format
class ProtobufNoSRFormat(_ProtobufBase):
    """PROTOBUF_NOSR: bare Protobuf messages whose schema comes from the columns."""

    name = "PROTOBUF_NOSR"
    supports_unwrap = True

    @classmethod
    def from_options(cls, options: FormatOptions) -> Format:
        """The format from `get_format`'s options (the nullable representation)."""
        side = "KEY" if options.is_key else "VALUE"
        return cls(
            is_key=options.is_key,
            wrap_single_value=options.wrap_single_value,
            nullable=parse_nullable(
                options.properties.get(f"{side}_PROTOBUF_NULLABLE_REPRESENTATION"),
                is_key=options.is_key,
            ),
        )

    def schema_text(self, columns: Sequence[Column]) -> str:
        """The `.proto` the records are written with (ksqlDB's, from the columns)."""
        if self.unwrapped(columns):
            t = columns[0].type
            if t.name != "STRUCT":
                return ""  # a google.protobuf.*Value (see _message)
            columns = [Column(n, ft) for n, ft in t.fields]
        return proto_for_columns(columns, nullable=self.nullable)

    def _message(self, columns: Sequence[Column]) -> Any:
        if self.unwrapped(columns) and columns[0].type.name != "STRUCT":
            t = columns[0].type
            wrapper = WRAPPERS.get(t.name)
            if wrapper is None:
                raise FormatError(f"PROTOBUF_NOSR cannot hold a single {t} value unwrapped")
            compiled = compile_schema(
                f'syntax = "proto3";\nimport "google/protobuf/wrappers.proto";\n'
                f"message Unwrapped {{ {wrapper} value = 1; }}\n"
            )
            return compiled.pool.FindMessageTypeByName(wrapper)
        return compile_schema(self.schema_text(columns)).message()

    def decode(self, data: pa.Array, columns: Sequence[Column]) -> DecodeResult:
        key = tuple(columns)
        with self._lock:
            reader = self._readers.get(key)
        if reader is None:
            reader = Reader(self._message(columns), columns, unwrapped=self.unwrapped(columns))
            with self._lock:
                self._readers[key] = reader
        return self._decode_with(data, columns, lambda record: (reader, record))

    def encode(
        self,
        batch: pa.RecordBatch | pa.Table,
        columns: Sequence[Column],
        *,
        null_rows: npt.NDArray[np.bool_] | None = None,
    ) -> pa.Array:
        key = tuple(columns)
        with self._lock:
            held = self._writers.get(key)
        if held is None:
            writer = Writer(self._message(columns), columns, unwrapped=self.unwrapped(columns))
            held = (writer, b"")
            with self._lock:
                self._writers[key] = held
        return self._encode_with(batch, columns, held[0], held[1], null_rows)


class _RecordsOfOneSchema:
    """What `ProtobufFormat.read` needs for the records of one schema id: the compiled file
    and a `Reader` per message (records name theirs by message indexes)."""

    def __init__(self, compiled: CompiledSchema, columns: Sequence[Column]) -> None:
        self.compiled = compiled
        self.columns = list(columns)
        self.readers: dict[tuple[int, ...], Reader] = {}

    def reader(self, indexes: tuple[int, ...]) -> Reader:
        reader = self.readers.get(indexes)
        if reader is None:
            reader = Reader(self.compiled.at(indexes), self.columns)
            self.readers[indexes] = reader
        return reader


@register_format
class ProtobufFormat(RegistryFormat):
    """PROTOBUF: Confluent's wire format, the schemas in a schema registry."""

    name = "PROTOBUF"
    schema_type = "PROTOBUF"
    supports_unwrap = False  # ksqlDB's PROTOBUF has WRAP_SINGLES only: keys are messages too

    def __init__(self, options: FormatOptions) -> None:
        super().__init__(options)
        side = "KEY" if options.is_key else "VALUE"
        #: None, "optional" or "wrapper" (ksqlDB's nullableRepresentation)
        self.nullable = parse_nullable(
            options.properties.get(f"{side}_PROTOBUF_NULLABLE_REPRESENTATION"),
            is_key=options.is_key,
        )

    def unwrapped(self, columns: Sequence[Column]) -> bool:
        return False

    def _unsupported(self, columns: Sequence[Column], *, is_key: bool) -> str | None:
        return unsupported_reason(columns)

    def _compile(self, schema: Schema) -> CompiledSchema:
        return compile_registered(self.registry, schema)

    def schema_for(self, columns: Sequence[Column]) -> Schema:
        text = proto_for_columns(columns, full_name=self.full_name, nullable=self.nullable)
        return Schema(text, "PROTOBUF")

    def columns_of(self, schema: Schema) -> list[Column]:
        columns = columns_for_message(self._compile(schema).message(self._message_name()))
        if self.schema_id is not None:
            return columns
        # ksqlDB upper-cases inferred field names unless the schema was named by its id
        # (SchemaRegistryTopicSchemaSupplier: UPPERCASE_FIELD_NAME / ORIGINAL_FIELD_NAME)
        return [Column(c.name.upper(), _upper_fields(c.type)) for c in columns]

    def _message_name(self) -> str | None:
        # ksqlDB ignores a full name that is one of Connect's defaults (ProtobufSchemaTranslator)
        name = (self.full_name or "").strip()
        return None if not name or name.startswith("ConnectDefault") else name

    def reader(self, schema: Schema, columns: Sequence[Column]) -> Any:
        return _RecordsOfOneSchema(self._compile(schema), columns)

    def read(
        self, reader: Any, payloads: pa.BinaryArray, columns: Sequence[Column]
    ) -> tuple[list[pa.Array], dict[int, str]]:
        assert isinstance(reader, _RecordsOfOneSchema)
        raw = payloads.to_pylist()
        n = len(raw)
        values: list[list[Any]] = [[None] * n for _ in columns]
        errors: dict[int, str] = {}
        for i, payload in enumerate(raw):
            try:
                indexes, offset = read_indexes(payload, 0)
                row = reader.reader(indexes).read(payload[offset:])
            except Exception as e:
                errors[i] = _reason(e)
                continue
            for j, v in enumerate(row):
                values[j][i] = v
        arrays = [_to_arrow(values[j], c, errors) for j, c in enumerate(columns)]
        return arrays, errors

    def writer(self, schema: Schema, columns: Sequence[Column]) -> Any:
        compiled = self._compile(schema)
        message = compiled.message(self._message_name())
        return Writer(message, columns), message_indexes_bytes(compiled.indexes(message))

    def write(
        self, writer: Any, arrays: Sequence[pa.Array], columns: Sequence[Column]
    ) -> list[Any]:
        write, indexes = writer
        lists = [_python_values(a) for a in arrays]
        out: list[Any] = []
        for i in range(len(arrays[0]) if arrays else 0):
            try:
                out.append(indexes + write.write([col[i] for col in lists]))
            except FormatError:
                raise
            except Exception as e:
                raise FormatError(f"cannot serialize as {self.name}: {_reason(e)}") from e
        return out
