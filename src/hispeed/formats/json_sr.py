"""The JSON_SR format, as ksqlDB defines it: JSON in the Confluent wire format, its JSON Schema
in a schema registry.

A record is the magic byte, the schema's id, then JSON text read and written exactly as the
JSON format reads and writes it (ksqlDB's KsqlJsonDeserializer serves both, skipping the
framing for JSON_SR; its coercions and field matching are the JSON format's, so this format
hands the payloads to `JsonFormat`, a batch at a time).

The schema a sink registers is what Connect's JsonSchemaData makes of ksqlDB's columns
(JsonSchemaTranslator): an object with one property per column, each carrying its
`connect.index` and, being optional, written `{"oneOf": [{"type": "null"}, T]}`; INT and
BIGINT are integers with `connect.type` int32 / int64, DOUBLE a number (float64), BYTES a
string (bytes), DECIMAL/DATE/TIME/TIMESTAMP Connect's logical types by `title`, a MAP an object
of `additionalProperties`. Inference reads such schemas back into columns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import pyarrow as pa

from hispeed.formats._json import JsonFormat
from hispeed.formats.base import Column, FormatError, register_format
from hispeed.formats.json_sr_validate import RecordValidator
from hispeed.formats.registry_format import RegistryFormat
from hispeed.registry import Schema
from hispeed.sql import types as T
from hispeed.sql.types import SqlType

_CONNECT = "org.apache.kafka.connect.data."
_SIMPLE: dict[str, dict[str, Any]] = {
    "BOOLEAN": {"type": "boolean"},
    "INTEGER": {"type": "integer", "connect.type": "int32"},
    "BIGINT": {"type": "integer", "connect.type": "int64"},
    "DOUBLE": {"type": "number", "connect.type": "float64"},
    "STRING": {"type": "string"},
    "BYTES": {"type": "string", "connect.type": "bytes"},
    "DATE": {"type": "integer", "title": _CONNECT + "Date", "connect.version": 1},
    "TIME": {"type": "integer", "title": _CONNECT + "Time", "connect.version": 1},
    "TIMESTAMP": {"type": "integer", "title": _CONNECT + "Timestamp", "connect.version": 1},
}
_LOGICAL_CONNECT = {"DATE": "int32", "TIME": "int32", "TIMESTAMP": "int64"}


def json_schema(t: SqlType, *, optional: bool = True) -> dict[str, Any]:
    """The JSON Schema Connect writes for a SQL type (optional: in a null-or-T `oneOf`)."""
    base: dict[str, Any]
    if t.name in _SIMPLE:
        base = dict(_SIMPLE[t.name])
        if t.name in _LOGICAL_CONNECT:
            base["connect.type"] = _LOGICAL_CONNECT[t.name]
    elif t.name == "DECIMAL":
        base = {
            "type": "number",
            "title": _CONNECT + "Decimal",
            "connect.version": 1,
            "connect.parameters": {
                "scale": str(t.scale),
                "connect.decimal.precision": str(t.precision),
            },
            "connect.type": "bytes",
        }
    elif t.name == "ARRAY":
        assert t.element is not None
        base = {"type": "array", "items": json_schema(t.element)}
    elif t.name == "MAP":
        assert t.element is not None
        base = {
            "type": "object",
            "additionalProperties": json_schema(t.element),
            "connect.type": "map",
        }
    elif t.name == "STRUCT":
        base = _object([(n, ft) for n, ft in t.fields])
    else:
        raise FormatError(f"JSON_SR cannot hold {t}")
    return {"oneOf": [{"type": "null"}, base]} if optional else base


def _object(fields: Sequence[tuple[str, SqlType]]) -> dict[str, Any]:
    props = {}
    for i, (name, t) in enumerate(fields):
        props[name] = {"connect.index": i, **json_schema(t)}
    return {"type": "object", "properties": props}


def _inner(schema: Any) -> Any:
    if isinstance(schema, dict) and "oneOf" in schema:
        rest = [s for s in schema["oneOf"] if s.get("type") != "null"]
        if len(rest) == 1:
            return rest[0]
    return schema


def sql_type(schema: Any, upper: bool = True) -> SqlType:
    """The SQL type of a JSON Schema (inference), as ksqlDB's JsonSchemaTranslator maps it."""
    schema = _inner(schema)
    if not isinstance(schema, dict):
        raise FormatError(f"Unsupported JSON schema: {json.dumps(schema)}")
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    title = str(schema.get("title", ""))
    connect = schema.get("connect.type")
    if title == _CONNECT + "Decimal":
        params = schema.get("connect.parameters", {})
        return T.decimal(int(params.get("connect.decimal.precision", 64)), int(params["scale"]))
    if title in (_CONNECT + "Date", _CONNECT + "Time", _CONNECT + "Timestamp"):
        return {"Date": T.DATE, "Time": T.TIME, "Timestamp": T.TIMESTAMP}[title.rsplit(".", 1)[1]]
    if kind == "boolean":
        return T.BOOLEAN
    if kind == "integer":
        return T.INTEGER if connect in ("int8", "int16", "int32") else T.BIGINT
    if kind == "number":
        return T.DOUBLE
    if kind == "string":
        return T.BYTES if connect == "bytes" else T.STRING
    if kind == "array":
        return T.array(sql_type(schema.get("items", {}), upper))
    if kind == "object":
        if connect == "map" or ("properties" not in schema and "additionalProperties" in schema):
            return T.map_(T.STRING, sql_type(schema["additionalProperties"], upper))
        props = schema.get("properties", {})
        # ksqlDB's ConnectKsqlSchemaTranslator names inferred fields in upper case
        return T.struct([(n.upper() if upper else n, sql_type(p, upper)) for n, p in props.items()])
    raise FormatError(f"Unsupported JSON schema type: {json.dumps(schema)}")


@register_format
class JsonSchemaFormat(RegistryFormat):
    """ksqlDB's JSON_SR format (keys and values)."""

    name = "JSON_SR"
    schema_type = "JSON"

    def _json(self) -> JsonFormat:
        return JsonFormat(is_key=self.is_key, wrap_single_value=self.wrap_single_value)

    def schema_for(self, columns: Sequence[Column]) -> Schema:
        if self.unwrapped(columns):
            schema = json_schema(columns[0].type, optional=self.is_key)
        else:
            schema = _object([(c.name, c.type) for c in columns])
            if self.is_key:
                schema = {"oneOf": [{"type": "null"}, schema]}
        return Schema(json.dumps(schema, separators=(",", ":")), "JSON")

    def columns_of(self, schema: Schema) -> list[Column]:
        parsed = json.loads(schema.schema)
        top = _inner(parsed)
        # names in upper case, unless a schema id names the schema (ORIGINAL_FIELD_NAME)
        upper = self.schema_id is None
        is_object = isinstance(top, dict) and top.get("type") == "object"
        wrapped = not self.is_key and self.wrap_single_value is not False
        if is_object and "properties" in top and wrapped:
            return [
                Column(n.upper() if upper else n, sql_type(p, upper))
                for n, p in top["properties"].items()
            ]
        return [Column("ROWKEY" if self.is_key else "ROWVAL", sql_type(parsed, upper))]

    def reader(self, schema: Schema, columns: Sequence[Column]) -> Any:
        # records are checked against their schema only where ksqlDB checks them
        registry = self.registry
        check = RecordValidator(registry, schema) if registry.validate_json else None
        return self._json(), check

    def read(
        self, reader: Any, payloads: pa.BinaryArray, columns: Sequence[Column]
    ) -> tuple[list[pa.Array], dict[int, str]]:
        json_format, check = reader
        result = json_format.decode(payloads, columns)
        arrays = [result.batch.column(c.name) for c in columns]
        errors = dict(result.errors)
        if check is not None:
            # a row that is JSON but not of its schema: an error, its columns nulled (by
            # the caller) as for any row that cannot be read
            for row, reason in check.errors(payloads).items():
                errors.setdefault(row, reason)
        return arrays, errors

    def writer(self, schema: Schema, columns: Sequence[Column]) -> Any:
        return self._json()

    def write(
        self, writer: Any, arrays: Sequence[pa.Array], columns: Sequence[Column]
    ) -> list[Any]:
        n = len(arrays[0]) if arrays else 0
        batch = (
            pa.RecordBatch.from_arrays(list(arrays), names=[c.name for c in columns])
            if columns
            else pa.RecordBatch.from_pydict({})
        )
        out = writer.encode(batch, columns)
        assert len(out) == n or not columns
        return list(out.to_pylist())

    def _unsupported(self, columns: Sequence[Column], *, is_key: bool) -> str | None:
        return self._json()._unsupported(columns, is_key=is_key)
