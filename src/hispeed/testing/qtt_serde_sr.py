"""The conformance runner's serde for AVRO and JSON_SR, as ksqlDB's test tool has them.

Written from ksqlDB's `ConnectSerdeSupplier`, `ValueSpecAvroSerdeSupplier`,
`ValueSpecJsonSchemaSerdeSupplier` and `SpecToConnectConverter`, and from Confluent's wire
format, never from hispeed's formats (nothing here imports `hispeed.formats`):

- writing a case's value: the subject's latest schema (`<topic>-key` / `<topic>-value`) is
  taken from the registry, the value converted to it as `specToConnect` converts (numbers
  through their text, DECIMAL from a number or a string, BYTES from base64, a struct's
  fields matched in any case), written by fastavro (AVRO) or as JSON (JSON_SR), after the
  magic byte and the schema's id;
- reading a record: its schema is the one its id names, and the value becomes what
  `connectToSpec` gives: INT32 an Integer, INT64 a Long, FLOAT64 a Double, DECIMAL a
  BigDecimal (as `JavaNumber`s), DATE/TIME/TIMESTAMP their numbers, maps with text keys.
"""

from __future__ import annotations

import base64
import io
import json
import struct
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

import fastavro
import msgspec

from hispeed.registry import RegistryError, SchemaRegistry
from hispeed.testing.qtt_serde import INT_MAX, INT_MIN, JavaNumber, SerdeError

_MAGIC = 0
#: decimals as JSON numbers with their scale, as Jackson writes a BigDecimal
_JSON = msgspec.json.Encoder(decimal_format="number")


def _java_text(spec: Any) -> str:
    """Java's `toString()` of the object Jackson read a case's value as."""
    if isinstance(spec, bool):
        return "true" if spec else "false"
    if isinstance(spec, Decimal):
        return str(spec)
    if isinstance(spec, dict | list):
        return json.dumps(spec, default=str)
    return str(spec)


def _java_int(spec: Any, bits: int) -> int:
    try:
        value = int(_java_text(spec))
    except ValueError:
        raise SerdeError(f'For input string: "{_java_text(spec)}"') from None
    if not -(2 ** (bits - 1)) <= value < 2 ** (bits - 1):
        raise SerdeError(f'For input string: "{value}"')
    return value


def _decimal(spec: Any, precision: int, scale: int) -> Decimal:
    if isinstance(spec, bool) or not isinstance(spec, Decimal | str):
        raise SerdeError("DECIMAL type requires JSON number in test data")
    try:
        value = Decimal(spec)
    except InvalidOperation:
        raise SerdeError(f"not a decimal: {spec!r}") from None
    with localcontext() as ctx:
        ctx.prec = max(precision, len(value.as_tuple().digits)) + scale + 2
        quantized = value.quantize(Decimal(1).scaleb(-scale))
    if quantized != value or len(quantized.as_tuple().digits) > precision:
        if quantized != value:
            raise SerdeError(f"Cannot fit decimal '{spec}' into DECIMAL({precision}, {scale})")
        raise SerdeError(
            f"Numeric field overflow: DECIMAL({precision}, {scale}) cannot hold {spec}"
        )
    return quantized


def frame(schema_id: int, payload: bytes) -> bytes:
    return struct.pack(">bI", _MAGIC, schema_id) + payload


def unframe(data: bytes) -> tuple[int, bytes]:
    if len(data) < 5 or data[0] != _MAGIC:
        raise SerdeError("Unknown magic byte!")
    (schema_id,) = struct.unpack(">I", data[1:5])
    return schema_id, data[5:]


def _latest(registry: SchemaRegistry, subject: str) -> tuple[int, Any]:
    held = registry.latest(subject)
    if held is None:
        raise SerdeError(f"Subject '{subject}' not found.")
    return held.id, json.loads(held.schema.schema)


def _by_id(registry: SchemaRegistry, schema_id: int) -> Any:
    try:
        return json.loads(registry.schema_by_id(schema_id).schema)
    except RegistryError as e:
        raise SerdeError(str(e)) from None


# -- AVRO ------------------------------------------------------------------------------------


class _Names:
    """Named Avro types seen so far (a later reference by name is to one of these)."""

    def __init__(self) -> None:
        self.types: dict[str, Any] = {}

    def resolve(self, schema: Any, namespace: str = "") -> tuple[Any, str]:
        if isinstance(schema, str) and schema not in _AVRO_PRIMITIVES:
            full = schema if "." in schema else f"{namespace}.{schema}" if namespace else schema
            found = self.types.get(full, self.types.get(schema))
            if found is None:
                raise SerdeError(f"unknown Avro type {schema}")
            return found, _namespace_of(found, namespace)
        if isinstance(schema, dict) and schema.get("type") in ("record", "enum", "fixed"):
            ns = _namespace_of(schema, namespace)
            name = schema["name"]
            full = name if "." in name else f"{ns}.{name}" if ns else name
            self.types[full] = schema
            self.types[name] = schema
            return schema, ns
        return schema, namespace


_AVRO_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _namespace_of(schema: Any, outer: str) -> str:
    if isinstance(schema, dict):
        name = str(schema.get("name", ""))
        if "." in name:
            return name.rsplit(".", 1)[0]
        return str(schema.get("namespace", outer))
    return outer


def _avro_type(schema: Any) -> str:
    return str(schema["type"]) if isinstance(schema, dict) else str(schema)


def _is_map_entries(schema: Any) -> bool:
    if not isinstance(schema, dict) or schema.get("type") != "array":
        return False
    items = schema.get("items")
    if not isinstance(items, dict) or items.get("type") != "record":
        return False
    names = [f["name"] for f in items.get("fields", [])]
    return names == ["key", "value"] and (
        items.get("connect.internal.type") == "MapEntry" or items.get("name") == "MapEntry"
    )


def _optional(schema: Any) -> Any | None:
    """The one non-null branch of an optional union (Connect's optional schema), else None."""
    if isinstance(schema, list):
        rest = [s for s in schema if s != "null"]
        if len(rest) == 1 and len(schema) == 2:
            return rest[0]
    return None


def _spec_to_avro(spec: Any, schema: Any, names: _Names, ns: str) -> Any:
    schema, ns = names.resolve(schema, ns)
    if isinstance(schema, list):
        inner = _optional(schema)
        if spec is None:
            if "null" not in schema:
                raise SerdeError("null for a non-optional field")
            return None
        if inner is None:
            raise SerdeError(f"Avro unions are not supported: {schema}")
        return _spec_to_avro(spec, inner, names, ns)
    if spec is None:
        if schema == "null":
            return None
        raise SerdeError(f"Invalid value: null used for required field: {_avro_type(schema)}")
    kind = _avro_type(schema)
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical == "decimal":
        return _decimal(spec, int(schema["precision"]), int(schema.get("scale", 0)))
    if kind == "int":
        return _java_int(spec, 32)
    if kind == "long":
        return _java_int(spec, 64)
    if kind in ("float", "double"):
        try:
            return float(_java_text(spec))
        except ValueError:
            raise SerdeError(f'For input string: "{_java_text(spec)}"') from None
    if kind == "boolean":
        return _java_text(spec).lower() == "true"
    if kind in ("string", "enum"):
        return _java_text(spec)
    if kind in ("bytes", "fixed"):
        return base64.b64decode(spec) if isinstance(spec, str) else spec
    if kind == "array":
        if _is_map_entries(schema):
            if not isinstance(spec, dict):
                raise SerdeError(f"a map expected, got {spec!r}")
            fields = {f["name"]: f["type"] for f in schema["items"]["fields"]}
            names.resolve(schema["items"], ns)
            return [
                {
                    "key": _spec_to_avro(k, fields["key"], names, ns),
                    "value": _spec_to_avro(v, fields["value"], names, ns),
                }
                for k, v in spec.items()
            ]
        if not isinstance(spec, list):
            raise SerdeError(f"an array expected, got {spec!r}")
        return [_spec_to_avro(x, schema["items"], names, ns) for x in spec]
    if kind == "map":
        if not isinstance(spec, dict):
            raise SerdeError(f"a map expected, got {spec!r}")
        return {str(k): _spec_to_avro(v, schema["values"], names, ns) for k, v in spec.items()}
    if kind == "record":
        if not isinstance(spec, dict):
            raise SerdeError(f"a struct expected, got {spec!r}")
        by_upper = {f["name"].upper(): f for f in schema["fields"]}
        given = {}
        for k, v in spec.items():
            f = by_upper.get(str(k).upper())
            if f is not None:
                given[f["name"]] = v
        return {
            f["name"]: _spec_to_avro(given.get(f["name"]), f["type"], names, ns)
            for f in schema["fields"]
        }
    raise SerdeError(f"This test does not support the data type yet: {kind}")


def _avro_to_spec(value: Any, schema: Any, names: _Names, ns: str) -> Any:
    schema, ns = names.resolve(schema, ns)
    if value is None:
        return None
    if isinstance(schema, list):
        inner = _optional(schema)
        if inner is None:
            raise SerdeError(f"Avro unions are not supported: {schema}")
        return _avro_to_spec(value, inner, names, ns)
    kind = _avro_type(schema)
    logical = schema.get("logicalType") if isinstance(schema, dict) else None
    if logical == "decimal":
        return JavaNumber("BigDecimal", value)
    if kind == "int":
        return JavaNumber("Integer", value)
    if kind == "long":
        return JavaNumber("Long", value)
    if kind == "double":
        return JavaNumber("Double", value)
    if kind == "float":
        return JavaNumber("Float", value)
    if kind in ("boolean", "string", "enum"):
        return value
    if kind in ("bytes", "fixed"):
        return bytes(value)
    if kind == "array":
        if _is_map_entries(schema):
            fields = {f["name"]: f["type"] for f in schema["items"]["fields"]}
            names.resolve(schema["items"], ns)
            return {
                str(_avro_to_spec(e["key"], fields["key"], names, ns)): _avro_to_spec(
                    e["value"], fields["value"], names, ns
                )
                for e in value
            }
        return [_avro_to_spec(x, schema["items"], names, ns) for x in value]
    if kind == "map":
        return {k: _avro_to_spec(v, schema["values"], names, ns) for k, v in value.items()}
    if kind == "record":
        return {
            f["name"]: _avro_to_spec(value.get(f["name"]), f["type"], names, ns)
            for f in schema["fields"]
        }
    raise SerdeError(f"Test cannot handle data of type: {kind}")


def _raw(schema: Any) -> Any:
    """`schema` with its DATE, TIME and TIMESTAMP logical types dropped, so fastavro reads
    and writes their numbers (as Connect's converters hand them to the test tool)."""
    if isinstance(schema, list):
        return [_raw(s) for s in schema]
    if isinstance(schema, dict):
        out = {k: _raw(v) for k, v in schema.items()}
        if out.get("logicalType") in (
            "date",
            "time-millis",
            "time-micros",
            "timestamp-millis",
            "timestamp-micros",
            "local-timestamp-millis",
        ):
            del out["logicalType"]
        return out
    return schema


def encode_avro(spec: Any, registry: SchemaRegistry, subject: str) -> bytes | None:
    """A case's key or value as ksqlDB's test tool writes it for an AVRO topic."""
    if spec is None:
        return None
    schema_id, schema = _latest(registry, subject)
    datum = _spec_to_avro(spec, schema, _Names(), "")
    out = io.BytesIO()
    try:
        fastavro.schemaless_writer(out, fastavro.parse_schema(_raw(schema)), datum)
    except (ValueError, TypeError) as e:
        raise SerdeError(f"cannot write {spec!r} as Avro: {e}") from None
    return frame(schema_id, out.getvalue())


def decode_avro(data: bytes, registry: SchemaRegistry) -> Any:
    """An AVRO record as ksqlDB's test tool reads it."""
    schema_id, payload = unframe(data)
    schema = _by_id(registry, schema_id)
    stream = io.BytesIO(payload)
    try:
        value = fastavro.schemaless_reader(stream, fastavro.parse_schema(_raw(schema)), None)
    except Exception as e:  # bytes the schema cannot read
        raise SerdeError(f"Error deserializing Avro message for id {schema_id}: {e}") from None
    return _avro_to_spec(value, schema, _Names(), "")


# -- JSON_SR ---------------------------------------------------------------------------------


def _json_inner(schema: Any) -> Any:
    """A JSON schema with Connect's optional wrapper (`oneOf` null and one type) removed."""
    if isinstance(schema, dict) and "oneOf" in schema:
        rest = [s for s in schema["oneOf"] if s.get("type") != "null"]
        if len(rest) == 1:
            return rest[0]
    return schema


def _json_kind(schema: Any) -> str:
    schema = _json_inner(schema)
    if not isinstance(schema, dict):
        return "any"
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object" and ("connect.type" in schema and schema["connect.type"] == "map"):
        return "map"
    if kind == "object" and "properties" not in schema and "additionalProperties" in schema:
        return "map"
    return str(kind or "any")


def _is_decimal(schema: Any) -> bool:
    return (
        isinstance(schema, dict) and schema.get("title") == "org.apache.kafka.connect.data.Decimal"
    )


def _decimal_params(schema: Any) -> tuple[int, int]:
    params = schema.get("connect.parameters", {})
    return int(params.get("connect.decimal.precision", 64)), int(params.get("scale", 0))


def _spec_to_json(spec: Any, schema: Any) -> Any:
    if spec is None:
        return None
    schema = _json_inner(schema)
    kind = _json_kind(schema)
    if _is_decimal(schema):
        precision, scale = _decimal_params(schema)
        return _decimal(spec, precision, scale)
    connect = schema.get("connect.type") if isinstance(schema, dict) else None
    if kind == "integer":
        return _java_int(spec, 32 if connect in ("int8", "int16", "int32") else 64)
    if kind == "number":
        try:
            return float(_java_text(spec))
        except ValueError:
            raise SerdeError(f'For input string: "{_java_text(spec)}"') from None
    if kind == "boolean":
        return _java_text(spec).lower() == "true"
    if kind == "string":
        if connect == "bytes" and not isinstance(spec, str):
            return base64.b64encode(spec).decode()
        return _java_text(spec)
    if kind == "array":
        if not isinstance(spec, list):
            raise SerdeError(f"an array expected, got {spec!r}")
        return [_spec_to_json(x, schema.get("items", {})) for x in spec]
    if kind == "map":
        if not isinstance(spec, dict):
            raise SerdeError(f"a map expected, got {spec!r}")
        values = schema.get("additionalProperties", {})
        return {str(k): _spec_to_json(v, values) for k, v in spec.items()}
    if kind == "object":
        if not isinstance(spec, dict):
            raise SerdeError(f"a struct expected, got {spec!r}")
        props = schema.get("properties", {})
        by_upper = {name.upper(): name for name in props}
        out = {}
        for k, v in spec.items():
            name = by_upper.get(str(k).upper())
            if name is not None:
                out[name] = _spec_to_json(v, props[name])
        return out
    return spec


def _json_to_spec(value: Any, schema: Any) -> Any:
    if value is None:
        return None
    schema = _json_inner(schema)
    kind = _json_kind(schema)
    connect = schema.get("connect.type") if isinstance(schema, dict) else None
    if _is_decimal(schema):
        return JavaNumber("BigDecimal", Decimal(str(value)))
    if kind == "integer":
        if not isinstance(value, int) or isinstance(value, bool):
            raise SerdeError(f"an integer expected, got {value!r}")
        if connect in ("int8", "int16", "int32") and INT_MIN <= value <= INT_MAX:
            return JavaNumber("Integer", value)
        return JavaNumber("Long", value)
    if kind == "number":
        return JavaNumber("Double", float(value))
    if kind == "string" and connect == "bytes":
        return base64.b64decode(value)
    if kind == "array":
        return [_json_to_spec(x, schema.get("items", {})) for x in value]
    if kind == "map":
        values = schema.get("additionalProperties", {})
        return {str(k): _json_to_spec(v, values) for k, v in value.items()}
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _json_to_spec(value.get(name), props[name]) for name in props}
    return value


def encode_json_sr(spec: Any, registry: SchemaRegistry, subject: str) -> bytes | None:
    """A case's key or value as ksqlDB's test tool writes it for a JSON_SR topic."""
    if spec is None:
        return None
    schema_id, schema = _latest(registry, subject)
    value = _spec_to_json(spec, schema)
    return frame(schema_id, _JSON.encode(value))


def decode_json_sr(data: bytes, registry: SchemaRegistry) -> Any:
    """A JSON_SR record as ksqlDB's test tool reads it."""
    schema_id, payload = unframe(data)
    schema = _by_id(registry, schema_id)
    try:
        value = json.loads(payload, parse_float=Decimal)
    except ValueError as e:
        raise SerdeError(f"Error deserializing JSON message for id {schema_id}: {e}") from None
    return _json_to_spec(value, schema)


class RegistryCodec:
    """The AVRO and JSON_SR serde of one topic: its registry and subjects."""

    def __init__(self, registry: SchemaRegistry, topic: str) -> None:
        self.registry = registry
        self.topic = topic

    def encode(self, spec: Any, fmt: str, *, is_key: bool) -> bytes | None:
        """A case's key or value in `fmt` (AVRO or JSON_SR)."""
        subject = f"{self.topic}-{'key' if is_key else 'value'}"
        if fmt == "AVRO":
            return encode_avro(spec, self.registry, subject)
        return encode_json_sr(spec, self.registry, subject)

    def decode(self, data: bytes, fmt: str) -> Any:
        """A record's key or value bytes in `fmt` (AVRO or JSON_SR)."""
        if fmt == "AVRO":
            return decode_avro(data, self.registry)
        return decode_json_sr(data, self.registry)
