"""The serialization-format interface: record bytes <-> typed Arrow columns.

A `Format` turns a batch of key or value bytes (a `pa.binary()` array, nulls allowed) into one
Arrow column per declared `Column`, and typed columns back into bytes. Decoding never raises for
bad data: a record that cannot be read becomes an all-null row plus an entry in
`DecodeResult.errors`, so one bad record cannot stop a stream. Null bytes (and, for JSON, the
`null` literal) are tombstones, flagged in `DecodeResult.null_rows`.

The formats and their WITH-clause options follow ksqlDB's: JSON, DELIMITED, KAFKA and NONE,
and the schema-registry formats (`formats/registry_format.py`) that also need a
`FormatContext`: the schema registry and the topic whose subjects they use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.errors import HispeedError
from hispeed.registry import SchemaRegistry
from hispeed.sql.types import SqlType

_NAMED_DELIMITERS = {"TAB": "\t", "SPACE": " "}


class FormatError(HispeedError):
    """A format that cannot be used as asked: an unknown name, a bad option, unsupported columns."""


@dataclass(frozen=True)
class Column:
    """A declared column a format reads or writes: its name (as written) and its SQL type."""

    name: str
    type: SqlType


@dataclass
class DecodeResult:
    """What `Format.decode` gives for a batch of n records.

    `batch` has one column per declared `Column` (named by it, of its Arrow type) and n rows.
    `errors` lists (row index, reason) for the records that could not be read; their rows are
    all-null. `null_rows` is True where the record was a tombstone (null bytes, or JSON `null`);
    those rows are all-null too, and are not errors.
    """

    batch: pa.RecordBatch
    errors: list[tuple[int, str]]
    null_rows: npt.NDArray[np.bool_] = field(repr=False)

    @property
    def valid_rows(self) -> npt.NDArray[np.bool_]:
        """True where a row holds a decoded record (neither a tombstone nor an error)."""
        ok = ~self.null_rows
        if self.errors:
            ok[[i for i, _ in self.errors]] = False
        return ok


def column_text(column: Column, *, is_key: bool) -> str:
    """A column as ksqlDB prints it in messages: "`NAME` TYPE" (plus " KEY" for key columns)."""
    return f"`{column.name}` {column.type}" + (" KEY" if is_key else "")


def columns_text(columns: Sequence[Column], *, is_key: bool) -> str:
    return "[" + ", ".join(column_text(c, is_key=is_key) for c in columns) + "]"


def _contains(t: SqlType, name: str) -> bool:
    if t.name == name:
        return True
    nested = [t.element, t.key, *(ft for _, ft in t.fields)]
    return any(n is not None and _contains(n, name) for n in nested)


def parse_bool_option(name: str, value: object) -> bool:
    """A WITH-clause boolean given as a bool or as the text true/false."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise FormatError(f"{name} must be true or false, not {value!r}")


def parse_delimiter(option: str, value: object) -> str:
    """A DELIMITED delimiter: one character, or the words TAB / SPACE (as ksqlDB's Delimiter)."""
    text = str(value)
    prefix = f"Failed to prepare statement: Configuration {option} is invalid: "
    if not text.strip():
        raise FormatError(
            prefix + "Delimiter cannot be empty, if you meant to have a tab or space for "
            "delimiter, please use the special values 'TAB' or 'SPACE'\nExample valid value: ';'"
        )
    if len(text) == 1:
        return text
    named = _NAMED_DELIMITERS.get(text)
    if named is not None:
        return named
    raise FormatError(
        prefix + f"Invalid delimiter value: '{text}'. Delimiter must be a single character or "
        "TAB,SPACE\nExample valid value: ';'"
    )


@dataclass(frozen=True)
class FormatContext:
    """What a schema-registry format needs besides its WITH clause: the registry its schemas
    live in and the topic whose subjects (`<topic>-key`, `<topic>-value`) it reads and writes.
    Formats without schemas ignore it."""

    registry: SchemaRegistry | None = None
    topic: str | None = None

    def subject(self, *, is_key: bool) -> str:
        """The subject of the topic's key or value schemas, as ksqlDB names it by default
        (`KsqlConstants.getSRSubject`)."""
        return f"{self.topic}-{'key' if is_key else 'value'}"


#: the WITH-clause properties the schema-registry formats read (ksqlDB's CommonCreateConfigs);
#: the catalog keeps them with a source's key or value properties
#: (the PROTOBUF formats' nullable representation is one of them: a sink takes its own, as
#: ksqlDB's CreateSourceAsProperties, not its source's)
KEY_SCHEMA_PROPERTIES = (
    "KEY_SCHEMA_ID",
    "KEY_SCHEMA_FULL_NAME",
    "KEY_AVRO_SCHEMA_FULL_NAME",
    "KEY_PROTOBUF_NULLABLE_REPRESENTATION",
)
VALUE_SCHEMA_PROPERTIES = (
    "VALUE_SCHEMA_ID",
    "VALUE_SCHEMA_FULL_NAME",
    "VALUE_AVRO_SCHEMA_FULL_NAME",
    "VALUE_PROTOBUF_NULLABLE_REPRESENTATION",
)


@dataclass(frozen=True)
class FormatOptions:
    """A format's checked options, as `get_format` hands them to `Format.from_options`."""

    is_key: bool
    #: WRAP_SINGLE_VALUE as given (None: the format's default); values only
    wrap_single_value: bool | None
    #: the delimiter (DELIMITED only), ',' when none is given
    delimiter: str
    #: the whole WITH clause, names in upper case
    properties: Mapping[str, object]
    context: FormatContext

    @property
    def schema_id(self) -> int | None:
        """KEY_SCHEMA_ID or VALUE_SCHEMA_ID (by side), or None."""
        raw = self.properties.get("KEY_SCHEMA_ID" if self.is_key else "VALUE_SCHEMA_ID")
        if raw is None:
            return None
        try:
            return int(str(raw))
        except ValueError:
            side = "KEY" if self.is_key else "VALUE"
            raise FormatError(f"{side}_SCHEMA_ID must be an integer, not {raw!r}") from None

    @property
    def schema_full_name(self) -> str | None:
        """KEY_/VALUE_SCHEMA_FULL_NAME, else (as ksqlDB reads it for AVRO)
        KEY_/VALUE_AVRO_SCHEMA_FULL_NAME, or None."""
        side = "KEY" if self.is_key else "VALUE"
        for name in (f"{side}_SCHEMA_FULL_NAME", f"{side}_AVRO_SCHEMA_FULL_NAME"):
            raw = self.properties.get(name)
            if raw is not None:
                return str(raw)
        return None


@runtime_checkable
class SchemaFormat(Protocol):
    """What the statements ask of a format that keeps its schemas in a registry (AVRO,
    JSON_SR, PROTOBUF): a sink registers its schema, a CREATE without columns infers them.
    `registry_format.RegistryFormat` implements it; a format may implement it alone."""

    is_key: bool

    @property
    def subject(self) -> str:
        """The subject of this side's schemas (`<topic>-key` / `<topic>-value`)."""

    def register(self, columns: Sequence[Column]) -> int:
        """Register the schema written for `columns` under `subject`; its id
        (`FormatError` with the registry's message when refused)."""

    def infer_columns(self) -> list[Column]:
        """The columns of the registered schema (KEY_/VALUE_SCHEMA_ID's, else the latest)."""


class Format(ABC):
    """A serialization format bound to its options and to the side (key or value) it serves."""

    #: the format's name as ksqlDB spells it: JSON, DELIMITED, KAFKA, NONE
    name: str = ""
    #: which of ksqlDB's wrapping features the format supports, for WRAP_SINGLE_VALUE checks
    supports_wrap: bool = False
    supports_unwrap: bool = False
    #: whether the format reads the KEY_DELIMITER / VALUE_DELIMITER options (DELIMITED)
    takes_delimiter: bool = False
    #: whether the format keeps its schemas in a schema registry (AVRO, JSON_SR, PROTOBUF):
    #: such a format is a `registry_format.RegistryFormat` and needs a `FormatContext`
    uses_registry: bool = False

    def __init__(self, *, is_key: bool = False, wrap_single_value: bool | None = None) -> None:
        self.is_key = is_key
        #: WRAP_SINGLE_VALUE as given (None: the format's default); values only
        self.wrap_single_value = None if is_key else wrap_single_value

    @classmethod
    def configured(cls, *, is_key: bool, wrap_single_value: bool | None, delimiter: str) -> Format:
        """The format as `get_format` makes it from checked options; `delimiter` matters only
        to a format that `takes_delimiter`."""
        return cls(is_key=is_key, wrap_single_value=wrap_single_value)

    @classmethod
    def from_options(cls, options: FormatOptions) -> Format:
        """The format made from all of `get_format`'s checked options and its context; formats
        without schemas need only what `configured` takes."""
        return cls.configured(
            is_key=options.is_key,
            wrap_single_value=options.wrap_single_value,
            delimiter=options.delimiter,
        )

    def __repr__(self) -> str:
        side = "key" if self.is_key else "value"
        return f"<{type(self).__name__} {self.name} {side}>"

    @abstractmethod
    def decode(self, data: pa.Array, columns: Sequence[Column]) -> DecodeResult:
        """Read a `pa.binary()` array of records (nulls allowed) into one column per `Column`."""

    @abstractmethod
    def encode(
        self,
        batch: pa.RecordBatch | pa.Table,
        columns: Sequence[Column],
        *,
        null_rows: npt.NDArray[np.bool_] | None = None,
    ) -> pa.Array:
        """Write the `columns` of `batch` (looked up by name) as a `pa.binary()` array.

        One value per row; rows flagged in `null_rows` are written as null bytes (tombstones).
        """

    def row_encoder(
        self, columns: Sequence[Column]
    ) -> Callable[[Sequence[Any]], bytes | None] | None:
        """A function that writes one row of plain Python values (one per column, each None
        or of its column's exact Python type: str for STRING, float for DOUBLE, int for
        INTEGER/BIGINT in range, bool for BOOLEAN) as `encode` writes that row, byte for
        byte (None: a null record); None when the format has no such path for `columns`.
        `Engine.insert`'s single rows go through it without building Arrow arrays."""
        return None

    def check_columns(self, columns: Sequence[Column], *, is_key: bool | None = None) -> None:
        """Raise `FormatError`, saying why, when this format cannot carry `columns`."""
        key = self.is_key if is_key is None else is_key
        if key:
            for c in columns:
                if _contains(c.type, "MAP"):
                    raise FormatError(
                        "Map keys, including types that contain maps, are not supported as they "
                        "may lead to unexpected behavior due to inconsistent serialization. Key "
                        f"column name: `{c.name}`. Column type: {c.type}. See "
                        "https://github.com/confluentinc/ksql/issues/6621 for more."
                    )
        elif self.wrap_single_value is not None and len(columns) != 1:
            raise FormatError("'WRAP_SINGLE_VALUE' is only valid for single-field value schemas")
        reason = self._unsupported(columns, is_key=key)
        if reason is not None:
            raise FormatError(
                f"{'Key' if key else 'Value'} format does not support schema.\n"
                f"format: {self.name}\n"
                f"schema: Persistence{{columns={columns_text(columns, is_key=key)}, "
                f"features=[{self._features(columns, is_key=key)}]}}\n"
                f"reason: {reason}"
            )

    def _features(self, columns: Sequence[Column], *, is_key: bool) -> str:
        if is_key:
            both = self.supports_wrap and self.supports_unwrap
            return "UNWRAP_SINGLES" if both and len(columns) == 1 else ""
        if self.wrap_single_value is None:
            return ""
        return "WRAP_SINGLES" if self.wrap_single_value else "UNWRAP_SINGLES"

    @abstractmethod
    def _unsupported(self, columns: Sequence[Column], *, is_key: bool) -> str | None:
        """Why the format cannot carry `columns` (ksqlDB's wording), or None when it can."""


#: the SQL types whose values `Format.row_encoder`'s functions take as plain Python values
PLAIN_TYPES = frozenset({"STRING", "DOUBLE", "INTEGER", "BIGINT", "BOOLEAN"})


def empty_result(
    columns: Sequence[Column], n: int, null_rows: npt.NDArray[np.bool_]
) -> DecodeResult:
    """A result of n all-null rows (used when every record is a tombstone or unreadable)."""
    return DecodeResult(null_batch(columns, n), [], null_rows)


def null_batch(columns: Sequence[Column], n: int) -> pa.RecordBatch:
    """n rows of nulls with one column per `Column` (zero columns still keep the row count)."""
    if not columns:
        rows = pa.StructArray.from_buffers(pa.struct([]), n, [None], children=[])
        return pa.RecordBatch.from_struct_array(rows)
    return pa.RecordBatch.from_arrays(
        [pa.nulls(n, type=c.type.to_arrow()) for c in columns], names=[c.name for c in columns]
    )


def null_out(
    arrays: list[pa.Array], error_rows: Mapping[int, str], n: int
) -> tuple[list[pa.Array], npt.NDArray[np.bool_]]:
    """Make the rows that failed all-null in every column; also returns which rows those are."""
    bad = np.zeros(n, dtype=np.bool_)
    if not error_rows:
        return arrays, bad
    bad[list(error_rows)] = True
    mask = pa.array(bad)
    return [pc.if_else(mask, pa.nulls(n, a.type), a) for a in arrays], bad


def make_batch(columns: Sequence[Column], arrays: Sequence[pa.Array], n: int) -> pa.RecordBatch:
    """A batch from one array per column (no columns: n rows, zero columns)."""
    if not columns:
        return null_batch(columns, n)
    return pa.RecordBatch.from_arrays(list(arrays), names=[c.name for c in columns])


def binary_chunk(data: pa.Array | pa.ChunkedArray) -> pa.BinaryArray:
    """The records as one contiguous `pa.binary()` array (large_binary/string are accepted)."""
    if isinstance(data, pa.ChunkedArray):
        data = data.combine_chunks() if data.num_chunks != 1 else data.chunk(0)
    if not pa.types.is_binary(data.type):
        data = data.cast(pa.binary())
    return data


def null_mask(data: pa.Array) -> npt.NDArray[np.bool_]:
    """True where a record's bytes are null (a numpy copy, safe to modify)."""
    return np.asarray(data.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_).copy()


def columns_of(batch: pa.RecordBatch | pa.Table, columns: Sequence[Column]) -> list[pa.Array]:
    """The batch's arrays for `columns`, by name, cast to each column's Arrow type."""
    out: list[pa.Array] = []
    names = batch.schema.names
    for c in columns:
        if c.name not in names:
            raise FormatError(f"cannot serialize: the batch has no column `{c.name}`")
        arr = batch.column(c.name)
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks != 1 else arr.chunk(0)
        target = c.type.to_arrow()
        if not arr.type.equals(target):
            arr = arr.cast(target)
        out.append(arr)
    return out


def apply_null_rows(values: pa.Array, null_rows: npt.NDArray[np.bool_] | None) -> pa.Array:
    """Replace the rows flagged in `null_rows` by nulls."""
    if null_rows is None or not np.any(null_rows):
        return values
    return pc.if_else(pa.array(null_rows), pa.nulls(len(values), values.type), values)


#: the formats `get_format` knows, by name in upper case: filled by `register_format` as each
#: format's module is imported (`hispeed.formats` imports the built-in ones)
FORMATS: dict[str, type[Format]] = {}

F = TypeVar("F", bound=type[Format])


def register_format(cls: F) -> F:
    """Class decorator: make a `Format` subclass available to `get_format` by its `name`."""
    FORMATS[cls.name.upper()] = cls
    return cls


def get_format(
    name: str,
    properties: Mapping[str, object] | None = None,
    *,
    is_key: bool = False,
    context: FormatContext | None = None,
) -> Format:
    """The format called `name` (any case), configured from ksqlDB WITH-clause `properties`.

    Options read (names in any case): VALUE_DELIMITER / KEY_DELIMITER (DELIMITED only; which one
    depends on `is_key`), WRAP_SINGLE_VALUE (values only), and for the schema-registry formats
    KEY_/VALUE_SCHEMA_ID and KEY_/VALUE_SCHEMA_FULL_NAME. Other options are ignored, so the
    whole WITH clause can be passed. `context`: the registry and topic a schema-registry
    format uses (without one it can be checked but not used to read or write records).
    """
    props = {str(k).upper(): v for k, v in (properties or {}).items()}
    upper = name.strip().upper()
    cls = FORMATS.get(upper)
    if cls is None:
        raise FormatError(f"Unknown format: {name}")

    delimiter_option = "KEY_DELIMITER" if is_key else "VALUE_DELIMITER"
    delimiter = props.get(delimiter_option)
    if delimiter is not None and not cls.takes_delimiter:
        raise FormatError(f"{upper} does not support the following configs: [delimiter]")

    wrap: bool | None = None
    raw_wrap = props.get("WRAP_SINGLE_VALUE")
    if raw_wrap is not None and not is_key:
        wrap = parse_bool_option("WRAP_SINGLE_VALUE", raw_wrap)
        if (wrap and not cls.supports_wrap) or (not wrap and not cls.supports_unwrap):
            raise FormatError(
                f"Format '{upper}' does not support 'WRAP_SINGLE_VALUE' set to "
                f"'{str(wrap).lower()}'."
            )

    sep = "," if delimiter is None else parse_delimiter(delimiter_option, delimiter)
    options = FormatOptions(is_key, wrap, sep, props, context or FormatContext())
    return cls.from_options(options)
