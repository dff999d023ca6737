"""The AVRO format, as ksqlDB defines it: Avro binary records in the Confluent wire format.

Schemas (ksqlDB's AvroSchemaTranslator through Connect's AvroData): a value is a record named
`io.confluent.ksql.avro_schemas.KsqlDataSourceSchema` (or VALUE_SCHEMA_FULL_NAME) with one
field per column, named as the column is; every field, array element and map value is
optional (`["null", T]`, default null); a nested STRUCT is a record named after its path
(`KsqlDataSourceSchema_ADDRESS`); a MAP is an array of `key`/`value` records (Connect's
MapEntry, as its keys are optional strings); DECIMAL is bytes with the decimal logical type,
DATE `int`/date, TIME `int`/time-millis, TIMESTAMP `long`/timestamp-millis. A key of one
column, or a value with WRAP_SINGLE_VALUE=false, is that column's type alone; a key's record
is named after its source (`OutputKey`).

Reading follows ksqlDB's ConnectDataTranslator: a writer field fills the column of its name,
or of its name in upper case; a column without a field is NULL; INT widens into BIGINT,
FLOAT into DOUBLE, numbers and booleans into STRING (as Java prints them); other mismatches
are refused ("Cannot deserialize type ... as type ...").

fastavro reads and writes the records (`schemaless_reader` / `schemaless_writer` on one
buffer per batch, with the schema parsed once per schema id); each column is built by one
`pa.array` call over its values.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Sequence
from typing import Any

import fastavro
import numpy as np
import pyarrow as pa

from hispeed.formats import avro_columnar as columnar
from hispeed.formats.base import Column, FormatError, register_format
from hispeed.formats.registry_format import HEADER_SIZE, RegistryFormat
from hispeed.registry import Schema
from hispeed.sql import types as T
from hispeed.sql.javatext import java_double
from hispeed.sql.types import SqlType

#: ksqlDB's default value record name (AvroProperties.DEFAULT_AVRO_SCHEMA_FULL_NAME)
DEFAULT_FULL_NAME = "io.confluent.ksql.avro_schemas.KsqlDataSourceSchema"
_PRIMITIVES = {
    "BOOLEAN": "boolean",
    "INTEGER": "int",
    "BIGINT": "long",
    "DOUBLE": "double",
    "STRING": "string",
    "BYTES": "bytes",
}
_LOGICAL = {
    "DATE": {"type": "int", "logicalType": "date"},
    "TIME": {"type": "int", "logicalType": "time-millis"},
    "TIMESTAMP": {"type": "long", "logicalType": "timestamp-millis"},
}
#: Connect's type names, as ksqlDB's messages give them
_CONNECT = {
    "int": "int32",
    "long": "int64",
    "float": "float32",
    "double": "float64",
    "string": "string",
    "boolean": "boolean",
    "bytes": "bytes",
    "array": "array",
    "map": "map",
    "record": "struct",
    "enum": "string",
    "fixed": "bytes",
}
_SQL_CONNECT = {
    "BOOLEAN": "boolean",
    "INTEGER": "int32",
    "BIGINT": "int64",
    "DOUBLE": "float64",
    "STRING": "string",
    "BYTES": "bytes",
    "DECIMAL": "bytes",
    "DATE": "int32",
    "TIME": "int32",
    "TIMESTAMP": "int64",
    "ARRAY": "array",
    "MAP": "map",
    "STRUCT": "struct",
}
#: which Avro (Connect) types each SQL type accepts (ConnectDataTranslator.validateSchema)
_ACCEPTS = {
    "BIGINT": {"int", "long"},
    "INTEGER": {"int"},
    "DOUBLE": {"float", "double"},
    "STRING": {"int", "long", "float", "double", "boolean", "string", "enum"},
    "BOOLEAN": {"boolean"},
    "BYTES": {"bytes", "fixed"},
    "DECIMAL": {"bytes", "fixed"},
    "DATE": {"int"},
    "TIME": {"int"},
    "TIMESTAMP": {"long"},
    "ARRAY": {"array"},
    "MAP": {"map", "array"},
    "STRUCT": {"record"},
}


def avro_type(t: SqlType, name: str, *, optional: bool = True) -> Any:
    """The Avro schema of a SQL type; `name` names its records (a struct, a map's entries)."""
    base: Any
    if t.name in _PRIMITIVES:
        base = _PRIMITIVES[t.name]
    elif t.name in _LOGICAL:
        base = dict(_LOGICAL[t.name])
    elif t.name == "DECIMAL":
        base = {
            "type": "bytes",
            "scale": t.scale,
            "precision": t.precision,
            "logicalType": "decimal",
        }
    elif t.name == "ARRAY":
        assert t.element is not None
        base = {"type": "array", "items": avro_type(t.element, name)}
    elif t.name == "MAP":
        assert t.key is not None and t.element is not None
        base = {
            "type": "array",
            "items": {
                "type": "record",
                "name": _short(name),
                "namespace": _namespace(name),
                "fields": [
                    {"name": "key", "type": avro_type(t.key, name + "_MapKey"), "default": None},
                    {
                        "name": "value",
                        "type": avro_type(t.element, name + "_MapValue"),
                        "default": None,
                    },
                ],
                "connect.internal.type": "MapEntry",
            },
        }
    elif t.name == "STRUCT":
        base = _record(name, [(n, ft) for n, ft in t.fields])
    else:
        raise FormatError(f"AVRO cannot hold {t}")
    return ["null", base] if optional else base


def _record(full_name: str, fields: Sequence[tuple[str, SqlType]]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": _short(full_name),
        "namespace": _namespace(full_name),
        "fields": [
            {
                "name": n.replace(".", "_"),
                "type": avro_type(ft, f"{full_name}_{n}"),
                "default": None,
            }
            for n, ft in fields
        ],
        "connect.name": full_name,
    }


def _short(full_name: str) -> str:
    return full_name.rsplit(".", 1)[-1]


def _namespace(full_name: str) -> str:
    return full_name.rsplit(".", 1)[0] if "." in full_name else ""


def avro_schema(columns: Sequence[Column], full_name: str, *, unwrapped: bool) -> Any:
    """The Avro schema ksqlDB registers for `columns` (a record, or one column's type)."""
    if unwrapped:
        return avro_type(columns[0].type, full_name, optional=False)
    return _record(full_name, [(c.name, c.type) for c in columns])


def _non_null(schema: Any) -> Any:
    if isinstance(schema, list):
        rest = [s for s in schema if s != "null"]
        return rest[0] if len(rest) == 1 else rest
    return schema


def _kind(schema: Any) -> str:
    schema = _non_null(schema)
    if isinstance(schema, dict):
        return str(schema["type"])
    if isinstance(schema, list):
        return "union"
    return str(schema)


def _is_map_entries(schema: Any) -> bool:
    items = _non_null(schema.get("items")) if isinstance(schema, dict) else None
    if not isinstance(items, dict) or items.get("type") != "record":
        return False
    names = [f["name"] for f in items.get("fields", [])]
    return items.get("connect.internal.type") == "MapEntry" or names == ["key", "value"]


def sql_type(schema: Any, upper: bool = True) -> SqlType:
    """The SQL type of an Avro schema (inference), as Connect and ksqlDB map it."""
    schema = _non_null(schema)
    if isinstance(schema, list):
        raise FormatError(f"Unsupported Avro union: {json.dumps(schema)}")
    kind = _kind(schema)
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical == "decimal":
        return T.decimal(int(schema["precision"]), int(schema.get("scale", 0)))
    if logical == "date":
        return T.DATE
    if logical == "time-millis":
        return T.TIME
    if logical == "timestamp-millis":
        return T.TIMESTAMP
    simple = {
        "int": T.INTEGER,
        "long": T.BIGINT,
        "float": T.DOUBLE,
        "double": T.DOUBLE,
        "string": T.STRING,
        "boolean": T.BOOLEAN,
        "bytes": T.BYTES,
        "enum": T.STRING,
        "fixed": T.BYTES,
    }.get(kind)
    if simple is not None:
        return simple
    if kind == "array":
        if _is_map_entries(schema):
            fields = {f["name"]: f["type"] for f in _non_null(schema["items"])["fields"]}
            return T.map_(sql_type(fields["key"], upper), sql_type(fields["value"], upper))
        return T.array(sql_type(schema["items"], upper))
    if kind == "map":
        return T.map_(T.STRING, sql_type(schema["values"], upper))
    if kind == "record":
        # ksqlDB's ConnectKsqlSchemaTranslator names inferred fields in upper case
        return T.struct(
            [(_named(f["name"], upper), sql_type(f["type"], upper)) for f in schema["fields"]]
        )
    raise FormatError(f"Unsupported Avro type: {json.dumps(schema)}")


def _named(name: str, upper: bool) -> str:
    return name.upper() if upper else name


def _check(t: SqlType, schema: Any, path: str) -> None:
    """Refuse a writer schema a column cannot be read from (ksqlDB's validateSchema)."""
    kind = _kind(schema)
    if kind not in _ACCEPTS.get(t.name, set()) or (
        t.name == "MAP" and kind == "array" and not _is_map_entries(_non_null(schema))
    ):
        raise FormatError(
            f"Cannot deserialize type {_CONNECT.get(kind, kind)} as type "
            f"{_SQL_CONNECT.get(t.name, t.name.lower())} for path: {path}"
        )


def _converter(t: SqlType, schema: Any, path: str) -> Callable[[Any], Any] | None:
    """A function from fastavro's value to what `pa.array` builds the column from (None:
    the value as it is)."""
    _check(t, schema, path)
    kind = _kind(schema)
    inner = _non_null(schema)
    if t.name == "STRING" and kind != "string" and kind != "enum":
        if kind in ("float", "double"):
            return lambda v: None if v is None else java_double(float(v))
        if kind == "boolean":
            return lambda v: None if v is None else ("true" if v else "false")
        return lambda v: None if v is None else str(v)
    if t.name == "DOUBLE" and kind == "float":
        return None
    if t.name == "ARRAY":
        assert t.element is not None
        item = _converter(t.element, inner["items"], path + "->ARRAY")
        if item is None:
            return None
        return lambda v: None if v is None else [item(x) for x in v]
    if t.name == "MAP":
        assert t.key is not None and t.element is not None
        if kind == "map":
            val = _converter(t.element, inner["values"], path + "->MAP_VAL")
            if val is None:
                return lambda v: None if v is None else list(v.items())
            return lambda v: None if v is None else [(k, val(x)) for k, x in v.items()]
        fields = {f["name"]: f["type"] for f in _non_null(inner["items"])["fields"]}
        key = _converter(t.key, fields["key"], path + "->MAP_KEY") or (lambda x: x)
        val2 = _converter(t.element, fields["value"], path + "->MAP_VAL") or (lambda x: x)
        return lambda v: None if v is None else [(key(e["key"]), val2(e["value"])) for e in v]
    if t.name == "STRUCT":
        return _struct_converter(t, inner, path)
    return None


def _struct_converter(t: SqlType, record: Any, path: str) -> Callable[[Any], Any]:
    picks = _field_picks([n for n, _ in t.fields], record["fields"])
    convs: list[tuple[str, str | None, Callable[[Any], Any] | None]] = []
    for name, ft in t.fields:
        src = picks.get(name)
        conv = None
        if src is not None:
            conv = _converter(ft, src[1], path + "->" + name)
        convs.append((name, None if src is None else src[0], conv))

    def convert(v: Any) -> Any:
        if v is None:
            return None
        out = {}
        for name, field, conv in convs:
            x = None if field is None else v.get(field)
            out[name] = x if conv is None or x is None else conv(x)
        return out

    return convert


def _field_picks(names: Sequence[str], fields: Sequence[Any]) -> dict[str, tuple[str, Any]]:
    """Which writer field fills each column: the one of its name, else one whose name in
    upper case is the column's (ConnectDataTranslator.toKsqlStruct)."""
    by_name = {f["name"]: f for f in fields}
    picks: dict[str, tuple[str, Any]] = {}
    for n in names:
        f = by_name.get(n)
        if f is None:
            f = next((g for g in fields if g["name"].upper() == n), None)
        if f is not None:
            picks[n] = (f["name"], f["type"])
    return picks


def _to_avro(t: SqlType, schema: Any) -> Callable[[Any], Any] | None:
    """A function from Arrow's Python value to what fastavro writes with the writer's
    `schema` for it (None: as it is): a MAP as an Avro map or as Connect's key/value
    entries, a STRUCT as the writer's record (its fields matched as when reading, the
    fields the struct lacks left to their defaults)."""
    kind = _kind(schema)
    inner = _non_null(schema)
    if t.name == "ARRAY":
        assert t.element is not None
        items = inner.get("items") if isinstance(inner, dict) else None
        item = _to_avro(t.element, items)
        return None if item is None else (lambda v: None if v is None else [item(x) for x in v])
    if t.name == "MAP":
        assert t.element is not None
        if kind == "map":
            val = _to_avro(t.element, inner.get("values")) or (lambda x: x)
            return lambda v: None if v is None else {k: val(x) for k, x in v}
        entry = _non_null(inner.get("items")) if isinstance(inner, dict) else None
        fields = {f["name"]: f["type"] for f in entry["fields"]} if isinstance(entry, dict) else {}
        val = _to_avro(t.element, fields.get("value")) or (lambda x: x)
        return lambda v: None if v is None else [{"key": k, "value": val(x)} for k, x in v]
    if t.name == "STRUCT":
        writer_fields = inner.get("fields", []) if isinstance(inner, dict) else []
        picks = _field_picks([n for n, _ in t.fields], writer_fields)
        convs = []
        for n, ft in t.fields:
            out_name, field_schema = picks.get(n, (n.replace(".", "_"), None))
            convs.append((n, out_name, _to_avro(ft, field_schema)))

        def convert(v: Any) -> Any:
            if v is None:
                return None
            out = {}
            for n, out_name, c in convs:
                x = v[n]
                if x is not None:
                    out[out_name] = x if c is None else c(x)
            return out

        return convert
    return None


@register_format
class AvroFormat(RegistryFormat):
    """ksqlDB's AVRO format (keys and values)."""

    name = "AVRO"
    schema_type = "AVRO"

    def full_name_for(self) -> str:
        return self.full_name or DEFAULT_FULL_NAME

    def schema_for(self, columns: Sequence[Column]) -> Schema:
        schema = avro_schema(columns, self.full_name_for(), unwrapped=self.unwrapped(columns))
        return Schema(json.dumps(schema, separators=(",", ":")), "AVRO")

    def columns_of(self, schema: Schema) -> list[Column]:
        parsed = json.loads(schema.schema)
        top = _non_null(parsed)
        # names in upper case, unless a schema id names the schema: then as written
        # (ksqlDB's SchemaRegistryTopicSchemaSupplier, ORIGINAL_FIELD_NAME)
        upper = self.schema_id is None
        # a key is one column, ROWKEY, whatever its schema (a record gives a STRUCT)
        record = isinstance(top, dict) and top.get("type") == "record"
        if record and not self.is_key and self.wrap_single_value is not False:
            return [
                Column(_named(f["name"], upper), sql_type(f["type"], upper)) for f in top["fields"]
            ]
        return [Column("ROWKEY" if self.is_key else "ROWVAL", sql_type(parsed, upper))]

    def reader(self, schema: Schema, columns: Sequence[Column]) -> Any:
        try:
            parsed_json = json.loads(schema.schema)
            parsed = fastavro.parse_schema(parsed_json)
        except (ValueError, fastavro.schema.SchemaParseException) as e:
            raise FormatError(f"not an Avro schema: {e}") from None
        if self.unwrapped(columns):
            conv = _converter(columns[0].type, parsed_json, "")
            return parsed, [(None, conv)], None
        top = _non_null(parsed_json)
        if _kind(top) != "record":
            raise FormatError(
                f"Cannot deserialize type {_CONNECT.get(_kind(top), _kind(top))} as type struct"
            )
        picks = _field_picks([c.name for c in columns], top["fields"])
        plan: list[tuple[str | None, Callable[[Any], Any] | None]] = []
        for c in columns:
            src = picks.get(c.name)
            if src is None:
                plan.append((None, None))
            else:
                plan.append((src[0], _converter(c.type, src[1], c.name)))
        fields = columnar.flat_fields(parsed_json)
        flat_plan = None if fields is None else columnar.plan_columns(fields, columns)
        return parsed, plan, None if flat_plan is None else (fields, flat_plan)

    def read(
        self, reader: Any, payloads: pa.BinaryArray, columns: Sequence[Column]
    ) -> tuple[list[pa.Array], dict[int, str]]:
        parsed, plan, _ = reader
        n = len(payloads)
        buf = payloads.buffers()[2]
        data = b"" if buf is None else buf.to_pybytes()
        raw_offsets = payloads.buffers()[1]
        assert raw_offsets is not None
        offsets = np.frombuffer(raw_offsets, np.int32)[payloads.offset : payloads.offset + n + 1]
        offsets = offsets.tolist()
        stream = io.BytesIO(data)
        read = fastavro.schemaless_reader
        records: list[Any] = [None] * n
        errors: dict[int, str] = {}
        unwrapped = self.unwrapped(columns)
        for i in range(n):
            start, end = offsets[i], offsets[i + 1]
            try:
                stream.seek(start)
                records[i] = read(stream, parsed, None)
                if stream.tell() != end:
                    raise ValueError("the record has bytes left over after its schema's fields")
            except Exception as e:  # a record its schema cannot read: that row only
                errors[i] = f"Error deserializing AVRO message: {_payload_error(e)}"
                records[i] = None
        arrays = []
        for c, (field, conv) in zip(columns, plan, strict=True):
            if unwrapped:
                values = records
            elif field is None:
                arrays.append(pa.nulls(n, c.type.to_arrow()))
                continue
            else:
                values = [None if r is None else r.get(field) for r in records]
            if conv is not None:
                values = [None if v is None else conv(v) for v in values]
            try:
                arrays.append(pa.array(values, c.type.to_arrow()))
            except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
                raise FormatError(f"Error deserializing AVRO message: {e}") from None
        return arrays, errors

    def read_framed(
        self, reader: Any, records: pa.BinaryArray, columns: Sequence[Column]
    ) -> list[pa.Array] | None:
        # the usual batch: flat records, every one as its schema says, read by columns
        flat = reader[2]
        if flat is None or not len(records):
            return None
        return columnar.decode_flat(records, flat[0], flat[1], columns, skip=HEADER_SIZE)

    def writer(self, schema: Schema, columns: Sequence[Column]) -> Any:
        raw = json.loads(schema.schema)
        parsed = fastavro.parse_schema(raw)
        top = _non_null(raw)
        if self.unwrapped(columns):
            return parsed, [columns[0].name], [_to_avro(columns[0].type, raw)], None
        fields = top.get("fields", []) if isinstance(top, dict) else []
        picks = _field_picks([c.name for c in columns], fields)
        names = [picks[c.name][0] if c.name in picks else c.name for c in columns]
        types = [picks[c.name][1] if c.name in picks else None for c in columns]
        convs = [_to_avro(c.type, ft) for c, ft in zip(columns, types, strict=True)]
        fields = columnar.flat_fields(raw)
        flat_plan = None if fields is None else columnar.plan_columns(fields, columns)
        flat = None if flat_plan is None or fields is None else (fields, flat_plan)
        return parsed, names, convs, flat

    def write_framed(
        self, writer: Any, arrays: Sequence[pa.Array], columns: Sequence[Column], head: bytes
    ) -> pa.Array | None:
        # flat records written a column at a time; a key or an unwrapped value by fastavro
        flat = writer[3]
        if flat is None or self.unwrapped(columns) or not columns:
            return None
        return columnar.encode_flat(flat[0], flat[1], arrays, head)

    def write(
        self, writer: Any, arrays: Sequence[pa.Array], columns: Sequence[Column]
    ) -> list[Any]:
        parsed, names, convs, _ = writer
        lists = []
        for a, conv in zip(arrays, convs, strict=True):
            values = _python_values(a)
            if conv is not None:
                values = [conv(v) for v in values]
            lists.append(values)
        write = fastavro.schemaless_writer
        out: list[Any] = []
        stream = io.BytesIO()
        if self.unwrapped(columns):
            rows: Any = lists[0]
        else:
            # a null leaves its field to the writer schema's default (null, for ksqlDB's)
            rows = (
                {n: v for n, v in zip(names, values, strict=True) if v is not None}
                for values in zip(*lists, strict=True)
            )
        for row in rows:
            if row is None:  # an unwrapped null: a null record (the caller writes none)
                out.append(None)
                continue
            stream.seek(0)
            stream.truncate()
            write(stream, parsed, row)
            out.append(stream.getvalue())
        return out

    def _unsupported(self, columns: Sequence[Column], *, is_key: bool) -> str | None:
        return None


def _payload_error(e: Exception) -> str:
    """What fastavro's failure to read a payload with its writer's schema means, in words a
    user can act on (fastavro's own are those of its Python internals, such as "list index out
    of range" for a union branch the schema does not have)."""
    if isinstance(e, IndexError) and "list index" in str(e):
        return (
            "the payload does not match its writer's schema: a union branch or enum symbol "
            "index in it is out of the schema's range"
        )
    if isinstance(e, EOFError | IndexError):
        return "the payload does not match its writer's schema: it ends before the schema's fields"
    if isinstance(e, UnicodeDecodeError):
        return f"the payload does not match its writer's schema: a string is not UTF-8 ({e.reason})"
    if isinstance(e, ValueError):
        return f"the payload does not match its writer's schema: {e}"
    return f"{type(e).__name__}: {e}"


def _python_values(a: pa.Array) -> list[Any]:
    """An array's values as Python objects fastavro writes: temporal types as datetime
    objects with their logical types (fastavro converts them), the rest as they are."""
    if pa.types.is_timestamp(a.type):
        a = a.cast(pa.timestamp("ms", tz="UTC"))
    return list(a.to_pylist())
