"""Reading files into records, a chunk at a time: what the file and directory sources share.

A chunk of a CSV or JSON-lines file (whole lines only) or a Parquet row group becomes one
Arrow batch of `key`, `value` (a JSON object per record), `timestamp`, made by pyarrow's
readers and Polars' JSON encoder: no Python object per record on the way. A JSON line is
kept as it is (its bytes are the record's value). A line the readers cannot take (a CSV line
with too few or too many fields, a line that is not a JSON object) becomes a processing-log
entry with the file's name and the line's number, and the rest of the chunk goes on.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json
import pyarrow.parquet as pq

from hispeed.connectors.base import ConnectorError

FORMATS = ("csv", "json", "parquet")
#: file name endings that say a file's format when 'file.format' does not
EXTENSIONS = {
    ".csv": "csv",
    ".tsv": "csv",
    ".json": "json",
    ".jsonl": "json",
    ".ndjson": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: the most bytes one poll reads of a file (whole lines only), unless 'batch.bytes' says
DEFAULT_BATCH_BYTES = 4 << 20
MIN_BATCH_BYTES = 1024
MAX_BATCH_BYTES = 1 << 30
EMPTY = pa.RecordBatch.from_arrays(
    [pa.array([], pa.binary()), pa.array([], pa.binary()), pa.array([], pa.int64())],
    names=["key", "value", "timestamp"],
)


def format_of(name: str, given: str | None, what: str) -> str:
    """The format of file `name`: 'file.format' when given, else its name's ending."""
    if given:
        fmt = given.strip().lower()
        fmt = {"jsonl": "json", "ndjson": "json", "json_lines": "json"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise ConnectorError(
                f"{what}: 'file.format' must be one of {', '.join(FORMATS)}, not {given!r}"
            )
        return fmt
    for ending, fmt in EXTENSIONS.items():
        if name.lower().endswith(ending):
            return fmt
    raise ConnectorError(
        f"{what}: cannot tell the format of {name!r} from its name: set 'file.format' "
        f"({', '.join(FORMATS)})"
    )


def whole_number(config: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    """A whole-number property within [low, high], with an error that names it."""
    raw = config.get(key)
    if raw is None:
        return default
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConnectorError(f"'{key}' must be a whole number, not {raw!r}") from None
    if not low <= value <= high:
        raise ConnectorError(f"'{key}' must be from {low} to {high}, not {value}")
    return value


def flag(config: Mapping[str, str], key: str, default: bool) -> bool:
    """A true/false property."""
    raw = config.get(key)
    if raw is None:
        return default
    text = raw.strip().lower()
    if text not in ("true", "false"):
        raise ConnectorError(f"'{key}' must be true or false, not {raw!r}")
    return text == "true"


@dataclass(frozen=True)
class RecordShape:
    """How a file's rows become records: which column is the key, which the timestamp, and
    how CSV is split."""

    key_column: str | None = None
    timestamp_column: str | None = None
    delimiter: str = ","
    header: bool = True
    #: column names for a CSV file without a header line
    columns: tuple[str, ...] = ()
    #: False: every CSV field stays text ("01234" keeps its zero; the stream's JSON
    #: decoding turns text into the declared types)
    infer_types: bool = True

    @classmethod
    def from_config(cls, config: Mapping[str, str], what: str) -> RecordShape:
        """Read 'key.column', 'timestamp.column', 'csv.delimiter', 'csv.header',
        'csv.columns'."""
        delimiter = config.get("csv.delimiter", ",")
        delimiter = "\t" if delimiter in ("\\t", "tab") else delimiter
        if len(delimiter) != 1 or delimiter in '\r\n"':
            raise ConnectorError(
                f"{what}: 'csv.delimiter' must be one character, not {delimiter!r}"
            )
        try:
            header = flag(config, "csv.header", True)
            infer_types = flag(config, "csv.infer.types", True)
        except ConnectorError as e:
            raise ConnectorError(f"{what}: {e}") from None
        columns = tuple(c.strip() for c in config.get("csv.columns", "").split(",") if c.strip())
        if not header and not columns:
            raise ConnectorError(
                f"{what}: a CSV file without a header ('csv.header'='false') needs its column "
                "names in 'csv.columns'"
            )
        return cls(
            key_column=config.get("key.column") or None,
            timestamp_column=config.get("timestamp.column") or None,
            delimiter=delimiter,
            header=header,
            columns=columns,
            infer_types=infer_types,
        )


def line_ends(data: bytes) -> np.ndarray[Any, np.dtype[np.int64]]:
    """The offset of every newline in `data`."""
    return np.flatnonzero(np.frombuffer(data, np.uint8) == 10).astype(np.int64)


def split_lines(data: bytes) -> tuple[pa.Array, np.ndarray[Any, np.dtype[np.int64]]]:
    """Every non-blank line of `data` (which ends with a newline) without its line end, as
    a binary array over `data`'s buffer, and each line's index (0-based) within `data`."""
    ends = line_ends(data)
    n = len(ends)
    offsets = np.empty(n + 1, np.int64)
    offsets[0] = 0
    offsets[1:] = ends + 1
    with_end = pa.Array.from_buffers(
        pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]
    )
    lines = pc.binary_slice(with_end, 0, -1)  # the newline, in one vectorized pass
    raw = np.frombuffer(data, np.uint8)
    cr = (raw[np.maximum(ends - 1, 0)] == 13) & (ends > offsets[:-1])
    if cr.any():  # CRLF line ends: the CR too, on those lines only
        lines = pc.if_else(pa.array(cr), pc.binary_slice(lines, 0, -1), lines)
    keep = np.flatnonzero(np.diff(offsets) - 1 - cr > 0)
    if len(keep) == n:
        return lines, np.arange(n, dtype=np.int64)
    return lines.take(pa.array(keep)), keep.astype(np.int64)


def json_values(table: pa.Table) -> pa.Array:
    """Each row of `table` as a JSON object (binary), encoded by Polars in one pass.

    Temporal columns become numbers as ksqlDB's JSON has them (TIMESTAMP: epoch
    milliseconds, DATE: days, TIME: milliseconds of the day); BYTES become base64."""
    if table.num_columns == 0:
        return pa.array([b"{}"] * table.num_rows, pa.binary())
    columns = []
    for field_, column in zip(table.schema, table.columns, strict=True):
        typ = field_.type
        if pa.types.is_timestamp(typ):
            column = column.cast(pa.timestamp("ms", typ.tz)).cast(pa.int64())
        elif pa.types.is_date(typ):
            column = column.cast(pa.date32()).cast(pa.int32())
        elif pa.types.is_time(typ):
            column = column.cast(pa.time32("ms")).cast(pa.int32())
        elif pa.types.is_dictionary(typ):
            column = column.cast(typ.value_type)
        columns.append(column)
    frame = pl.from_arrow(pa.Table.from_arrays(columns, names=table.column_names))
    assert isinstance(frame, pl.DataFrame)
    binaries = [n for n, t in frame.schema.items() if t == pl.Binary]
    if binaries:
        # Polars' JSON writer has no binary (and panics on one): base64, as ksqlDB's BYTES
        frame = frame.with_columns(pl.col(n).bin.encode("base64") for n in binaries)
    encoded = frame.select(pl.struct(pl.all()).struct.json_encode()).to_series().to_arrow()
    return encoded.cast(pa.large_string()).cast(pa.binary())


def records(
    table: pa.Table, values: pa.Array, shape: RecordShape, where: str
) -> tuple[pa.RecordBatch, list[dict[str, Any]]]:
    """The log's columns for `table`'s rows whose values are `values`: the key and the
    timestamp from their columns when the shape names them."""
    n = len(values)
    key = pa.nulls(n, pa.binary())
    stamp = pa.nulls(n, pa.int64())
    if shape.key_column is not None:
        column = _column(table, shape.key_column, where)
        key = column.cast(pa.string()).cast(pa.binary())
    if shape.timestamp_column is not None:
        column = _column(table, shape.timestamp_column, where)
        stamp = _millis(column, shape.timestamp_column, where)
    batch = pa.RecordBatch.from_arrays(
        [_chunk(key), _chunk(values).cast(pa.binary()), _chunk(stamp)],
        names=["key", "value", "timestamp"],
    )
    return batch, []


def _chunk(array: pa.Array | pa.ChunkedArray) -> pa.Array:
    if isinstance(array, pa.ChunkedArray):
        return array.combine_chunks()
    return array


def _column(table: pa.Table, name: str, where: str) -> pa.ChunkedArray:
    names = {n.lower(): n for n in table.column_names}
    found = names.get(name.lower())
    if found is None:
        have = ", ".join(table.column_names)
        raise BadChunkError(f"{where} has no column {name!r} (it has {have})")
    return table.column(found)


def _millis(column: pa.ChunkedArray, name: str, where: str) -> pa.Array:
    typ = column.type
    if pa.types.is_timestamp(typ):
        return column.cast(pa.timestamp("ms", typ.tz)).cast(pa.int64())
    if pa.types.is_integer(typ):
        return column.cast(pa.int64())
    if pa.types.is_date(typ):
        return column.cast(pa.timestamp("ms")).cast(pa.int64())
    if pa.types.is_string(typ) or pa.types.is_large_string(typ):
        try:
            return column.cast(pa.timestamp("ms")).cast(pa.int64())
        except pa.ArrowInvalid:
            pass
    raise BadChunkError(
        f"{where}: the timestamp column {name!r} holds {typ}, not times or milliseconds"
    )


class BadChunkError(Exception):
    """A whole chunk cannot be made into records (its key column is missing...)."""


@dataclass
class LineReader:
    """Make records of whole lines of one CSV or JSON-lines file."""

    fmt: str
    shape: RecordShape
    file: str
    #: the CSV header's names (None: read from the file's first line)
    columns: list[str] | None = None

    def header(self, line: bytes) -> None:
        """Take the CSV header line's names."""
        parsed = pa_csv.read_csv(
            io.BytesIO(line + b"\n"),
            read_options=pa_csv.ReadOptions(use_threads=False, autogenerate_column_names=True),
            parse_options=pa_csv.ParseOptions(delimiter=self.shape.delimiter),
            convert_options=pa_csv.ConvertOptions(column_types={}),
        )
        self.columns = [str(v[0]) for v in parsed.to_pydict().values()]

    def read(self, data: bytes, first_line: int) -> tuple[pa.RecordBatch, list[dict[str, Any]]]:
        """Records of `data` (whole lines, the first of them line `first_line`, 1-based),
        and processing-log entries for the lines that could not be read."""
        if not data.strip():
            return EMPTY, []
        try:
            if self.fmt == "csv":
                return self._csv(data, first_line)
            return self._json(data, first_line)
        except BadChunkError as e:
            return EMPTY, [self.error(str(e), first_line)]

    def error(self, message: str, line: int | None) -> dict[str, Any]:
        """A processing-log entry for line `line` of the file."""
        entry: dict[str, Any] = {"message": message, "file": self.file}
        if line is not None:
            entry["line"] = line
        return entry

    def _csv(self, data: bytes, first_line: int) -> tuple[pa.RecordBatch, list[dict[str, Any]]]:
        errors: list[dict[str, Any]] = []
        columns = self.columns or list(self.shape.columns)

        def invalid(row: Any) -> str:
            line = None if row.number is None else first_line + row.number - 1
            errors.append(
                self.error(
                    f"a CSV line with {row.actual_columns} fields where the header has "
                    f"{row.expected_columns}: {row.text[:200]!r}",
                    line,
                )
            )
            return "skip"

        table = pa_csv.read_csv(
            io.BytesIO(data),
            # one block for the whole chunk: types are inferred from all of its rows, so a
            # later row never fails a type guessed from the first ones
            read_options=pa_csv.ReadOptions(
                use_threads=False, column_names=columns, block_size=len(data) + 1
            ),
            parse_options=pa_csv.ParseOptions(
                delimiter=self.shape.delimiter, invalid_row_handler=invalid
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={} if self.shape.infer_types else dict.fromkeys(columns, pa.string()),
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,
            ),
        )
        batch, more = records(table, json_values(table), self.shape, self.file)
        return batch, errors + more

    def _json(self, data: bytes, first_line: int) -> tuple[pa.RecordBatch, list[dict[str, Any]]]:
        lines, index = split_lines(data)
        needs_columns = self.shape.key_column is not None or self.shape.timestamp_column
        try:
            table = _parse_json(data, infer=bool(needs_columns))
        except pa.ArrowInvalid:
            return self._json_by_line(lines, index, first_line)
        if table.num_rows != len(lines):  # a line of blanks only: which one, line by line
            return self._json_by_line(lines, index, first_line)
        if not needs_columns:
            table = pa.table({})
        return records(table, lines, self.shape, self.file)

    def _json_by_line(
        self, lines: pa.Array, index: np.ndarray[Any, np.dtype[np.int64]], first_line: int
    ) -> tuple[pa.RecordBatch, list[dict[str, Any]]]:
        """The slow way, for a chunk with a bad line in it: each line on its own."""
        errors: list[dict[str, Any]] = []
        good: list[int] = []
        keys: list[bytes | None] = []
        stamps: list[Any] = []
        key_name, stamp_name = self.shape.key_column, self.shape.timestamp_column
        for i, raw in enumerate(lines.to_pylist()):
            line = first_line + int(index[i])
            if not raw.strip():
                continue
            try:
                value = msgspec.json.decode(raw)
            except msgspec.DecodeError as e:
                errors.append(self.error(f"not JSON: {e}: {raw[:200]!r}", line))
                continue
            if not isinstance(value, dict):
                errors.append(self.error(f"not a JSON object: {raw[:200]!r}", line))
                continue
            good.append(i)
            if key_name is not None:
                found = _get(value, key_name)
                keys.append(None if found is None else _text(found).encode())
            if stamp_name is not None:
                stamps.append(_get(value, stamp_name))
        values = lines.take(pa.array(good, pa.int64()))
        columns: dict[str, Any] = {}
        if key_name is not None:
            columns[key_name] = pa.array(keys, pa.binary())
        if stamp_name is not None:
            try:
                columns[stamp_name] = pa.array(stamps)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                return EMPTY, [*errors, self.error(f"mixed values in {stamp_name!r}", first_line)]
        table = pa.table(columns) if columns else pa.table({"_": pa.nulls(len(good))})
        try:
            batch, more = records(table, values, self.shape, self.file)
        except BadChunkError as e:
            return EMPTY, [*errors, self.error(str(e), first_line)]
        return batch, errors + more


def _get(value: dict[str, Any], name: str) -> Any:
    if name in value:
        return value[name]
    lowered = name.lower()
    for k, v in value.items():
        if k.lower() == lowered:
            return v
    return None


def _text(value: Any) -> str:
    return value if isinstance(value, str) else msgspec.json.encode(value).decode()


def _parse_json(data: bytes, *, infer: bool) -> pa.Table:
    """Parse JSON lines with pyarrow: every line must be a JSON object. With `infer`, the
    columns are typed from all the lines; without, only the syntax is checked."""
    options = pa_json.ParseOptions(
        explicit_schema=None if infer else pa.schema([]),
        unexpected_field_behavior="infer" if infer else "ignore",
    )
    return pa_json.read_json(
        io.BytesIO(data),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=len(data) + 1),
        parse_options=options,
    )


def parquet_records(
    file: pq.ParquetFile, group: int, shape: RecordShape, name: str
) -> tuple[pa.RecordBatch, list[dict[str, Any]]]:
    """Records of row group `group` of a Parquet file."""
    table = file.read_row_group(group)
    try:
        return records(table, json_values(table), shape, name)
    except BadChunkError as e:
        return EMPTY, [{"message": str(e), "file": name, "row_group": group}]


__all__ = [
    "DEFAULT_BATCH_BYTES",
    "EMPTY",
    "EXTENSIONS",
    "FORMATS",
    "MAX_BATCH_BYTES",
    "MIN_BATCH_BYTES",
    "BadChunkError",
    "LineReader",
    "RecordShape",
    "flag",
    "format_of",
    "json_values",
    "line_ends",
    "parquet_records",
    "split_lines",
    "whole_number",
]
