"""What every schema-registry format shares: the Confluent wire format, schemas by id and by
subject, registering a sink's schema and inferring a source's columns.

A record of such a format is the Confluent framing (magic byte 0, then the writer schema's id
as a 4-byte big-endian integer) followed by the format's payload (Avro binary, JSON, or a
Protobuf message with its indexes). A format plugs in by subclassing `RegistryFormat` and
implementing the schema side (`schema_for`: the schema ksqlDB registers for some columns;
`columns_of`: the columns a registered schema gives) and the data side (`reader` / `read`:
payloads of one writer schema into one Arrow column per column; `writer` / `write`: columns
into payloads). The framing, the schema cache, unknown ids and bad framing (an all-null row
and an error, never an exception) are handled here, once.

Subjects are ksqlDB's defaults, `<topic>-key` and `<topic>-value`. KEY_SCHEMA_ID /
VALUE_SCHEMA_ID pin the schema a source reads (its columns) and a sink writes (its id).
"""

from __future__ import annotations

import struct
from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.formats.base import (
    Column,
    DecodeResult,
    Format,
    FormatContext,
    FormatError,
    FormatOptions,
    apply_null_rows,
    binary_chunk,
    columns_of,
    empty_result,
    make_batch,
    null_batch,
    null_mask,
)
from hispeed.registry import RegistryError, Schema, SchemaRegistry

#: the framing's magic byte (Confluent's AbstractKafkaSchemaSerDe.MAGIC_BYTE)
MAGIC_BYTE = 0
#: magic byte and schema id
HEADER_SIZE = 5
_NO_HEADER = pa.scalar(b"\xff" * HEADER_SIZE, pa.binary())
#: past the end of any `pa.binary()` value (their lengths are 32-bit)
_NO_STOP = 2**31 - 1


def frame(schema_id: int) -> bytes:
    """The Confluent framing that precedes every payload written with `schema_id`."""
    return struct.pack(">bI", MAGIC_BYTE, schema_id)


def schema_ids(data: pa.BinaryArray) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.bool_]]:
    """Each record's schema id, and where the record is framed as Confluent frames it (not
    null, at least 5 bytes, magic byte 0). Vectorized: no Python object per record."""
    n = len(data)
    long_enough = pc.fill_null(pc.greater_equal(pc.binary_length(data), HEADER_SIZE), False)
    heads = pc.if_else(long_enough, pc.binary_slice(data, 0, HEADER_SIZE), _NO_HEADER)
    fixed = heads.cast(pa.binary(HEADER_SIZE))
    raw = np.frombuffer(fixed.buffers()[1], dtype=np.uint8)
    raw = raw[fixed.offset * HEADER_SIZE : (fixed.offset + n) * HEADER_SIZE].reshape(n, HEADER_SIZE)
    ids = raw[:, 1:].astype(np.int64)
    ids = (ids[:, 0] << 24) | (ids[:, 1] << 16) | (ids[:, 2] << 8) | ids[:, 3]
    framed = np.asarray(long_enough.to_numpy(zero_copy_only=False), bool) & (raw[:, 0] == 0)
    return ids, framed


def framing_error(record: bytes) -> str:
    """Why `record` is not in the Confluent wire format: too short for the magic byte and the
    schema id, or not starting with the magic byte 0 (Confluent's serializers say "Unknown
    magic byte!" for both; the reason is added so a user can tell what arrived)."""
    if len(record) < HEADER_SIZE:
        return (
            f"The record is {len(record)} byte{'s' if len(record) != 1 else ''} long, too short "
            f"for the schema-registry wire format (the magic byte 0 and a 4-byte schema id)"
        )
    return (
        f"Unknown magic byte! The record starts with 0x{record[0]:02x}, not the "
        "schema-registry wire format's magic byte 0x00: it was not written by a schema-registry "
        "serializer"
    )


class RegistryFormat(Format):
    """A format whose records carry the id of their schema in a schema registry."""

    uses_registry = True
    supports_wrap = True
    supports_unwrap = True
    #: the registry's schema type of this format's schemas: AVRO, JSON or PROTOBUF
    schema_type = "AVRO"

    def __init__(self, options: FormatOptions) -> None:
        super().__init__(is_key=options.is_key, wrap_single_value=options.wrap_single_value)
        self.context: FormatContext = options.context
        #: KEY_SCHEMA_ID / VALUE_SCHEMA_ID: the registered schema to read and write with
        self.schema_id = options.schema_id
        #: the schema's full name (Avro record name, Protobuf message name), if given
        self.full_name = options.schema_full_name
        self.properties = options.properties
        # schema id -> what `reader` made of its schema (or why it cannot be read)
        self._readers: dict[int, Any] = {}
        self._writer: tuple[tuple[Column, ...], int, Any] | None = None

    @classmethod
    def from_options(cls, options: FormatOptions) -> Format:
        return cls(options)

    # -- what a format implements --------------------------------------------------------

    @abstractmethod
    def schema_for(self, columns: Sequence[Column]) -> Schema:
        """The schema ksqlDB registers for `columns` on this side (key or value)."""

    @abstractmethod
    def columns_of(self, schema: Schema) -> list[Column]:
        """The columns a registered schema gives a source that declares none (inference)."""

    @abstractmethod
    def reader(self, schema: Schema, columns: Sequence[Column]) -> Any:
        """Whatever `read` needs to read payloads written with `schema` into `columns`;
        raises `FormatError` when such records cannot be read into them."""

    @abstractmethod
    def read(
        self, reader: Any, payloads: pa.BinaryArray, columns: Sequence[Column]
    ) -> tuple[list[pa.Array], dict[int, str]]:
        """The payloads (framing removed, none null) as one array per column, and the rows
        that could not be read (index -> reason)."""

    def read_framed(
        self, reader: Any, records: pa.BinaryArray, columns: Sequence[Column]
    ) -> list[pa.Array] | None:
        """A fast path: the records still framed (all with this reader's schema id, none
        null) as one array per column, or None to have them read by `read` (the default)."""
        return None

    def write_framed(
        self, writer: Any, arrays: Sequence[pa.Array], columns: Sequence[Column], head: bytes
    ) -> pa.Array | None:
        """A fast path: the records framed with `head`, as one binary array, or None to
        have them written by `write` (the default)."""
        return None

    @abstractmethod
    def writer(self, schema: Schema, columns: Sequence[Column]) -> Any:
        """Whatever `write` needs to write `columns` with the registered `schema`."""

    @abstractmethod
    def write(
        self, writer: Any, arrays: Sequence[pa.Array], columns: Sequence[Column]
    ) -> list[Any]:
        """One payload (bytes) per row of `arrays`, the framing left out."""

    # -- the registry --------------------------------------------------------------------

    @property
    def registry(self) -> SchemaRegistry:
        """The registry this format's schemas live in; `FormatError` when it has none."""
        if self.context.registry is None:
            raise FormatError(
                f"The {self.name} format needs a schema registry: set "
                "'ksql.schema.registry.url', or use an engine with its own registry"
            )
        return self.context.registry

    @property
    def subject(self) -> str:
        """The subject this side's schemas are registered under (`<topic>-key`/`-value`)."""
        if not self.context.topic:
            raise FormatError(f"The {self.name} format needs the topic whose schemas it uses")
        return self.context.subject(is_key=self.is_key)

    def unwrapped(self, columns: Sequence[Column]) -> bool:
        """Whether the single column is the whole record (a key of one column, or a value
        with WRAP_SINGLE_VALUE=false), rather than a field of a record."""
        if len(columns) != 1:
            return False
        return self.is_key or self.wrap_single_value is False

    def registered_schema(self) -> tuple[int, Schema]:
        """The schema a source of this format reads: KEY_/VALUE_SCHEMA_ID's, else the
        subject's latest; `FormatError` in ksqlDB's words when there is none."""
        registry = self.registry
        if self.schema_id is not None:
            try:
                return self.schema_id, registry.schema_by_id(self.schema_id)
            except RegistryError as e:
                raise FormatError(f"Schema Registry: {e}\nSchema id: {self.schema_id}") from None
        held = registry.latest(self.subject)
        if held is None:
            side = "key" if self.is_key else "value"
            raise FormatError(
                f"Schema for message {side}s on topic '{self.context.topic}' does not exist "
                f"in the Schema Registry.\nSubject: {self.subject}\n\nPossible causes "
                "include:\n- The topic itself does not exist\n\t-> Use SHOW TOPICS; to check\n"
                f"- Messages on the topic are not serialized using a format Schema Registry "
                f"supports\n\t-> Use PRINT '{self.context.topic}' FROM BEGINNING; to verify\n"
                f"- Messages on the topic have not been serialized using a Confluent Schema "
                "Registry supported serializer\n\t-> See https://docs.confluent.io/current/"
                "schema-registry/docs/serializer-formatter.html\n- The schema is registered on "
                "a different instance of the Schema Registry\n\t-> Use the REST API to list "
                "available subjects\thttps://docs.confluent.io/current/schema-registry/docs/"
                "api.html#get--subjects\n- You do not have permissions to access the Schema "
                "Registry.\n\t-> See https://docs.confluent.io/current/schema-registry/docs/"
                "security.html"
            )
        return held.id, held.schema

    def infer_columns(self) -> list[Column]:
        """The columns of the registered schema (`registered_schema`), for a CREATE that
        declares none on this side."""
        _, schema = self.registered_schema()
        if schema.schema_type != self.schema_type:
            raise FormatError(
                f"{'Key' if self.is_key else 'Value'} schema is not in the expected format. "
                f"You may want to set {'KEY' if self.is_key else 'VALUE'}_FORMAT to "
                f"'{_format_of(schema.schema_type)}'.\ntopic: {self.context.topic}\n"
                f"expected format: {self.name}\nactual format from Schema Registry: "
                f"{_format_of(schema.schema_type)}"
            )
        return self.columns_of(schema)

    def register(self, columns: Sequence[Column]) -> int:
        """Register the schema this format writes `columns` with under its subject (a sink);
        its id. With KEY_/VALUE_SCHEMA_ID that schema is used and nothing is registered.
        `FormatError` with the registry's message when the subject refuses it."""
        key = tuple(columns)
        if self._writer is not None and self._writer[0] == key:
            return self._writer[1]
        if self.schema_id is not None:
            schema_id, schema = self.registered_schema()
        else:
            schema = self.schema_for(columns)
            try:
                schema_id = self.registry.register(self.subject, schema)
            except RegistryError as e:
                raise FormatError(
                    f"Could not register schema for topic: {e}\nsubject: {self.subject}"
                ) from None
        self._writer = (key, schema_id, self.writer(schema, columns))
        return schema_id

    # -- records -------------------------------------------------------------------------

    def decode(self, data: pa.Array, columns: Sequence[Column]) -> DecodeResult:
        data = binary_chunk(data)
        n = len(data)
        nulls = null_mask(data)
        if n == 0 or nulls.all():
            return empty_result(columns, n, nulls)
        ids, framed = schema_ids(data)
        errors: dict[int, str] = {}
        for row in np.nonzero(~framed & ~nulls)[0].tolist():
            errors[row] = framing_error(data[row].as_py())
        groups: list[tuple[npt.NDArray[np.intp], list[pa.Array]]] = []
        for schema_id in np.unique(ids[framed]).tolist():
            rows = np.nonzero(framed & (ids == schema_id))[0]
            try:
                reader = self._reader_for(int(schema_id), columns)
            except (FormatError, RegistryError) as e:
                for row in rows.tolist():
                    errors[row] = str(e)
                continue
            whole = len(rows) == n
            part = data if whole else data.take(pa.array(rows))
            fast = self.read_framed(reader, part, columns) if part.null_count == 0 else None
            if fast is not None:
                groups.append((rows, fast))
                continue
            # an explicit stop: pyarrow 26's binary_slice without one mis-sizes its output
            # ("Negative buffer resize") when records of different lengths share a batch
            payloads = pc.binary_slice(part, HEADER_SIZE, _NO_STOP)
            arrays, bad = self.read(reader, payloads, columns)
            for i, reason in bad.items():
                errors[int(rows[i])] = reason
            if bad:
                mask = np.zeros(len(rows), bool)
                mask[list(bad)] = True
                arrays = [apply_null_rows(a, mask) for a in arrays]
            groups.append((rows, arrays))
        batch = self._scatter(columns, n, groups)
        return DecodeResult(batch, sorted(errors.items()), nulls)

    def _reader_for(self, schema_id: int, columns: Sequence[Column]) -> Any:
        cached = self._readers.get(schema_id)
        if cached is None:
            try:
                schema = self.registry.schema_by_id(schema_id)
                cached = self.reader(schema, columns)
            except (FormatError, RegistryError) as e:
                cached = FormatError(f"Error deserializing {self.name} schema id {schema_id}: {e}")
            self._readers[schema_id] = cached
        if isinstance(cached, FormatError):
            raise cached
        return cached

    @staticmethod
    def _scatter(
        columns: Sequence[Column], n: int, groups: list[tuple[npt.NDArray[np.intp], list[pa.Array]]]
    ) -> pa.RecordBatch:
        if len(groups) == 1 and len(groups[0][0]) == n:
            return make_batch(columns, groups[0][1], n)  # the usual batch: one schema, all rows
        if not groups:
            return null_batch(columns, n)
        covered = np.concatenate([rows for rows, _ in groups])
        rest = np.setdiff1d(np.arange(n), covered)
        order = np.concatenate([covered, rest])
        back = pa.array(np.argsort(order, kind="stable"))
        arrays = []
        for i, c in enumerate(columns):
            parts = [arrays_[i] for _, arrays_ in groups]
            parts.append(pa.nulls(len(rest), c.type.to_arrow()))
            arrays.append(pa.concat_arrays(parts).take(back))
        return make_batch(columns, arrays, n)

    def encode(
        self,
        batch: pa.RecordBatch | pa.Table,
        columns: Sequence[Column],
        *,
        null_rows: npt.NDArray[np.bool_] | None = None,
    ) -> pa.Array:
        schema_id = self.register(columns)
        assert self._writer is not None
        writer = self._writer[2]
        arrays = columns_of(batch, columns)
        framed = self.write_framed(writer, arrays, columns, frame(schema_id))
        if framed is not None:
            return apply_null_rows(framed, null_rows)
        payloads = self.write(writer, arrays, columns)
        if self.unwrapped(columns):
            # a null in an unwrapped column is a null record (ksqlDB writes no bytes for it)
            for row in np.nonzero(np.asarray(arrays[0].is_null()))[0].tolist():
                payloads[row] = None
        head = frame(schema_id)
        out = pa.array([None if p is None else head + p for p in payloads], pa.binary())
        return apply_null_rows(out, null_rows)


def _format_of(schema_type: str) -> str:
    return {"JSON": "JSON_SR"}.get(schema_type, schema_type)
