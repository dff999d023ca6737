"""The conformance runner's own Protobuf serde: PROTOBUF and PROTOBUF_NOSR as ksqlDB's test
tool writes and reads them (`ValueSpecProtobufSerdeSupplier`, `ValueSpecProtobufNoSRSerdeSupplier`).

Written apart from hispeed's formats (nothing here imports `hispeed.formats`): schemas are
compiled here with protoc in this process, the NOSR schema is built as a descriptor (not as
text) from the columns, and values go through Confluent's rules as this module restates them.

Writing (a case's value, JSON as the case file holds it): PROTOBUF uses the subject's latest
registered schema (the test tool's `getLatestSchemaMetadata`) and its first message, and
frames the message as Confluent's serializer does (magic 0, the id, message indexes [0] as the
single byte 0). A value's fields are matched to the message's fields ignoring case (the test
tool's `specToConnect`); a field the value lacks, or gives as null, is left unset.

Reading gives what the test tool's `connectToSpec` gives: a message as a dict of *all* its
fields by their names; an unset proto3 scalar as its default, an unset `optional` scalar or
message as None; int32 fields as Integer, 64-bit and unsigned 32-bit ones as Long, float and
double as Double, `confluent.type.Decimal` as BigDecimal, Timestamp as a Long of
milliseconds, Date as an Integer of days, TimeOfDay as an Integer of milliseconds, enums as
their symbol, bytes as bytes, wrapper messages as their value.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    empty_pb2,
    message_factory,
    unknown_fields,
)
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from hispeed.registry import Schema, SchemaRegistry
from hispeed.sql.types import SqlType
from hispeed.testing.qtt_serde import JavaNumber, SerdeError, java_double_text

_WRAPPER_KIND = {
    "google.protobuf.DoubleValue": "Double",
    "google.protobuf.FloatValue": "Double",
    "google.protobuf.Int64Value": "Long",
    "google.protobuf.UInt64Value": "Long",
    "google.protobuf.Int32Value": "Integer",
    "google.protobuf.UInt32Value": "Long",
    "google.protobuf.BoolValue": "bool",
    "google.protobuf.StringValue": "str",
    "google.protobuf.BytesValue": "bytes",
}
_LOGICAL_FILES = {
    "google/type/date.proto": 'syntax = "proto3"; package google.type;\n'
    "message Date { int32 year = 1; int32 month = 2; int32 day = 3; }\n",
    "google/type/timeofday.proto": 'syntax = "proto3"; package google.type;\n'
    "message TimeOfDay { int32 hours = 1; int32 minutes = 2; int32 seconds = 3; "
    "int32 nanos = 4; }\n",
    "confluent/type/decimal.proto": 'syntax = "proto3"; package confluent.type;\n'
    "message Decimal { bytes value = 1; uint32 precision = 2; int32 scale = 3; }\n",
    "confluent/meta.proto": 'syntax = "proto3"; package confluent;\n'
    'import "google/protobuf/descriptor.proto";\n'
    "message Meta { string doc = 1; map<string, string> params = 2; repeated string tags = 3; }\n"
    "extend google.protobuf.FieldOptions { Meta field_meta = 1088; }\n",
}
_ROOT = "qtt_main.proto"
_compile_lock = threading.Lock()
_compiled: dict[tuple[str, tuple[tuple[str, str], ...]], descriptor_pool.DescriptorPool] = {}

_I32 = {FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32}
_FLOATS = {FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE}


# -- schemas ------------------------------------------------------------------------------


def _imports(registry: SchemaRegistry, schema: Schema) -> dict[str, str]:
    out: dict[str, str] = {}
    todo = list(schema.references)
    while todo:
        ref = todo.pop()
        if ref.name not in out:
            held = registry.version(ref.subject, ref.version).schema
            out[ref.name] = held.schema
            todo.extend(held.references)
    return out


def _file_set(text: str, imports: dict[str, str]) -> descriptor_pb2.FileDescriptorSet:
    """`text` and everything it imports, compiled by protoc (in this process)."""
    from grpc_tools import protoc

    with TemporaryDirectory(prefix="qtt-proto-") as tmp:
        root = Path(tmp)
        if "(confluent.field_meta)" in text and '"confluent/meta.proto"' not in text:
            # Confluent's registry resolves this option without an import; protoc does not
            head, sep, rest = text.partition(";")
            text = head + sep + ' import "confluent/meta.proto";' + rest if sep else text
        for name, body in {**_LOGICAL_FILES, **imports, _ROOT: text}.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(body)
        include = Path(protoc.__file__).parent / "_proto"
        out = root / "set.pb"
        code = protoc.main(["protoc", f"-I{root}", f"-I{include}",
                            f"--descriptor_set_out={out}", "--include_imports",
                            str(root / _ROOT)])  # fmt: skip
        if code != 0 or not out.exists():
            raise SerdeError("the test tool cannot parse the topic's protobuf schema")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def compiled_file(text: str) -> descriptor_pb2.FileDescriptorProto:
    """The file a .proto text (importing only well-known types) compiles to, its name left
    out: two texts that declare the same things compile to equal files, however written."""
    files = _file_set(text, {}).file
    root = next(f for f in files if f.name == _ROOT)
    out = descriptor_pb2.FileDescriptorProto()
    out.CopyFrom(root)
    out.ClearField("name")
    return out


def _pool(text: str, imports: dict[str, str]) -> descriptor_pool.DescriptorPool:
    key = (text, tuple(sorted(imports.items())))
    with _compile_lock:
        if key not in _compiled:
            pool = descriptor_pool.DescriptorPool()
            for f in _file_set(text, imports).file:
                pool.Add(f)
            _compiled[key] = pool
        return _compiled[key]


def _first_message(pool: descriptor_pool.DescriptorPool) -> Descriptor:
    main = pool.FindFileByName(_ROOT)
    proto = descriptor_pb2.FileDescriptorProto()
    main.CopyToProto(proto)
    if not proto.message_type:
        raise SerdeError("the topic's protobuf schema has no message")
    return pool.FindMessageTypeByName(
        ((proto.package + ".") if proto.package else "") + proto.message_type[0].name
    )


def _message_at(pool: descriptor_pool.DescriptorPool, indexes: list[int]) -> Descriptor:
    main = pool.FindFileByName(_ROOT)
    proto = descriptor_pb2.FileDescriptorProto()
    main.CopyToProto(proto)
    prefix = (proto.package + ".") if proto.package else ""
    level = list(proto.message_type)
    name = ""
    for i in indexes:
        if not 0 <= i < len(level):
            raise SerdeError(f"no message at indexes {indexes}")
        name = (name + "." if name else prefix) + level[i].name
        level = list(level[i].nested_type)
    return pool.FindMessageTypeByName(name)


# -- the NOSR schema: Connect's struct of the columns, as ProtobufData names it -----------


_NOSR_SCALAR = {
    "INTEGER": FieldDescriptor.TYPE_INT32,
    "BIGINT": FieldDescriptor.TYPE_INT64,
    "DOUBLE": FieldDescriptor.TYPE_DOUBLE,
    "BOOLEAN": FieldDescriptor.TYPE_BOOL,
    "STRING": FieldDescriptor.TYPE_STRING,
    "BYTES": FieldDescriptor.TYPE_BYTES,
}
_NOSR_WRAP = {"INTEGER": "Int32Value", "BIGINT": "Int64Value", "DOUBLE": "DoubleValue",
              "BOOLEAN": "BoolValue", "STRING": "StringValue", "BYTES": "BytesValue"}  # fmt: skip
_NOSR_LOGICAL = {
    "TIMESTAMP": ".google.protobuf.Timestamp",
    "DATE": ".google.type.Date",
    "TIME": ".google.type.TimeOfDay",
    "DECIMAL": ".confluent.type.Decimal",
}


class _NoSrBuilder:
    """Builds the descriptor Confluent's `fromConnectSchema` makes of ksqlDB's columns."""

    files = 0

    def __init__(self, nullable: str | None) -> None:
        self.nullable = nullable
        self.index = 0
        _NoSrBuilder.files += 1
        self.file = descriptor_pb2.FileDescriptorProto(
            name=f"qtt_nosr_{_NoSrBuilder.files}.proto", syntax="proto3"
        )
        self.deps: set[str] = set()

    def _name(self) -> str:
        self.index += 1
        return f"ConnectDefault{self.index}"

    def build(self, columns: Sequence[tuple[str, SqlType]]) -> descriptor_pool.DescriptorPool:
        root = self.file.message_type.add(name=self._name())
        self._fill(root, list(columns), "." + root.name)
        self.file.dependency.extend(sorted(self.deps))
        pool = descriptor_pool.DescriptorPool()
        for f in _dependency_files():
            if f.name != _ROOT:
                pool.Add(f)
        pool.Add(self.file)
        return pool

    def _fill(self, msg: Any, fields: list[tuple[str, SqlType]], scope: str) -> None:
        for number, (name, t) in enumerate(fields, start=1):
            f = msg.field.add(name=name, number=number, label=1)
            if t.name == "ARRAY":
                assert t.element is not None
                f.label = 3
                t = t.element
            if t.name == "MAP":
                assert t.key is not None and t.element is not None
                f.label = 3
                entry = msg.nested_type.add(name=self._name() + "Entry")
                self._fill(entry, [("key", t.key), ("value", t.element)], scope + "." + entry.name)
                f.type, f.type_name = FieldDescriptor.TYPE_MESSAGE, scope + "." + entry.name
            elif t.name == "STRUCT":
                nested = msg.nested_type.add(name=self._name())
                if nested.name == name:
                    nested.name += "Message"
                self._fill(nested, list(t.fields), scope + "." + nested.name)
                f.type, f.type_name = FieldDescriptor.TYPE_MESSAGE, scope + "." + nested.name
            elif t.name in _NOSR_LOGICAL:
                f.type, f.type_name = FieldDescriptor.TYPE_MESSAGE, _NOSR_LOGICAL[t.name]
                if t.name == "DECIMAL":
                    assert t.precision is not None and t.scale is not None
                    full = scope.lstrip(".") + "." + name
                    _nosr_decimals[(self.file.name, full)] = (t.precision, t.scale)
                self.deps.add(_dep(_NOSR_LOGICAL[t.name]))
            elif self.nullable == "wrapper":
                f.type = FieldDescriptor.TYPE_MESSAGE
                f.type_name = ".google.protobuf." + _NOSR_WRAP[t.name]
                self.deps.add("google/protobuf/wrappers.proto")
            else:
                f.type = _NOSR_SCALAR[t.name]
            if self.nullable == "optional" and f.label != 3:
                f.proto3_optional = True
                msg.oneof_decl.add(name="_" + name)
                f.oneof_index = len(msg.oneof_decl) - 1


_deps: list[descriptor_pb2.FileDescriptorProto] = []


def _dependency_files() -> list[descriptor_pb2.FileDescriptorProto]:
    """The files a NOSR schema may import (wrappers, Timestamp, the logical types)."""
    with _compile_lock:
        if not _deps:
            # a message using each file, so that protoc has no unused import to warn of
            text = (
                'syntax = "proto3";\nimport "google/protobuf/wrappers.proto";\n'
                'import "google/protobuf/timestamp.proto";\n'
                + "".join(f'import "{f}";\n' for f in sorted(_LOGICAL_FILES))
                + "message Uses { google.protobuf.Int32Value a = 1; google.protobuf.Timestamp b"
                " = 2; google.type.Date c = 3; google.type.TimeOfDay d = 4; confluent.type."
                'Decimal e = 5 [(confluent.field_meta) = { doc: "" }]; }\n'
            )
            _deps.extend(_file_set(text, {}).file)
        return list(_deps)


def _dep(type_name: str) -> str:
    return {
        ".google.protobuf.Timestamp": "google/protobuf/timestamp.proto",
        ".google.type.Date": "google/type/date.proto",
        ".google.type.TimeOfDay": "google/type/timeofday.proto",
        ".confluent.type.Decimal": "confluent/type/decimal.proto",
    }[type_name]


_nosr: dict[tuple[Any, ...], Descriptor] = {}


def nosr_message(columns: Sequence[tuple[str, SqlType]], nullable: str | None) -> Descriptor:
    """The message PROTOBUF_NOSR records of these columns are (the test tool's schema)."""
    key = (tuple(columns), nullable)
    if key not in _nosr:
        pool = _NoSrBuilder(nullable).build(columns)
        _nosr[key] = pool.FindMessageTypeByName("ConnectDefault1")
    return _nosr[key]


# -- values into messages -------------------------------------------------------------------


def _spec_scalar(field: FieldDescriptor, v: Any) -> Any:
    text = v if isinstance(v, str) else _java_text(v)
    try:
        if field.type == FieldDescriptor.TYPE_ENUM:
            symbol = field.enum_type.values_by_name.get(text)
            if symbol is None:
                raise SerdeError(f"{text} is not a symbol of {field.enum_type.full_name}")
            return symbol.number
        if field.type in _FLOATS:
            return float(text)
        if field.type == FieldDescriptor.TYPE_BOOL:
            return text.lower() == "true"  # Java's Boolean.valueOf
        if field.type == FieldDescriptor.TYPE_STRING:
            return text
        if field.type == FieldDescriptor.TYPE_BYTES:
            return base64.b64decode(text) if isinstance(v, str) else bytes(v)
        n = int(text)  # Integer.valueOf / Long.valueOf: no fraction allowed
    except ValueError as e:
        raise SerdeError(f"cannot write {v!r} to the protobuf field {field.name}: {e}") from e
    if field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return n & 0xFFFFFFFF
    if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return n & 0xFFFFFFFFFFFFFFFF
    return n


def _java_text(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return java_double_text(v)
    if isinstance(v, JavaNumber):
        return str(v.value)
    return str(v)


#: (NOSR file, field full name) -> the DECIMAL column's (precision, scale)
_nosr_decimals: dict[tuple[str, str], tuple[int, int]] = {}


def _decimal_params(field: FieldDescriptor) -> tuple[int, int]:
    """A decimal field's precision and scale: the NOSR column's, else its field_meta params."""
    known = _nosr_decimals.get((field.file.name, field.full_name))
    if known is not None:
        return known
    try:
        meta = field.file.pool.FindMessageTypeByName("confluent.Meta")
    except KeyError:
        return 64, 0
    # read from the options' bytes as unknown fields of an empty message: once another module
    # (confluent-kafka's protobuf serde) registers `confluent.field_meta` on FieldOptions in
    # the runtime, the option is no longer an unknown field of FieldOptions itself
    holder = empty_pb2.Empty.FromString(field.GetOptions().SerializeToString())
    for unknown in unknown_fields.UnknownFieldSet(holder):
        if unknown.field_number == 1088:
            params = dict(message_factory.GetMessageClass(meta).FromString(unknown.data).params)
            return int(params.get("precision", "64")), int(params.get("scale", "0"))
    return 64, 0


def _fill_message(msg: Any, spec: Any, scale_of: FieldDescriptor | None = None) -> None:
    d = msg.DESCRIPTOR
    name = d.full_name
    if name in _WRAPPER_KIND:
        msg.value = _spec_scalar(d.fields_by_name["value"], spec)
        return
    if name == "google.protobuf.Timestamp":
        seconds, ms = divmod(int(_java_text(spec)), 1000)
        msg.seconds, msg.nanos = seconds, ms * 1_000_000
        return
    if name == "google.type.Date":
        import datetime as dt

        day = dt.date(1970, 1, 1) + dt.timedelta(days=int(_java_text(spec)))
        msg.year, msg.month, msg.day = day.year, day.month, day.day
        return
    if name == "google.type.TimeOfDay":
        ms = int(_java_text(spec))
        msg.hours, msg.minutes, msg.seconds = ms // 3_600_000, ms // 60_000 % 60, ms // 1000 % 60
        msg.nanos = ms % 1000 * 1_000_000
        return
    if name == "confluent.type.Decimal":
        precision, scale = _decimal_params(scale_of) if scale_of is not None else (64, 0)
        try:
            value = Decimal(_java_text(spec)).quantize(Decimal(1).scaleb(-scale), ROUND_HALF_UP)
        except InvalidOperation as e:
            raise SerdeError(f"{spec!r} is no DECIMAL({precision}, {scale})") from e
        unscaled = int(value.scaleb(scale))
        if len(str(abs(unscaled))) > precision:
            raise SerdeError(f"{spec!r} does not fit DECIMAL({precision}, {scale})")
        msg.value = unscaled.to_bytes((unscaled.bit_length() + 8) // 8, "big", signed=True)
        msg.precision, msg.scale = len(str(abs(unscaled))), scale
        return
    if not isinstance(spec, dict):
        raise SerdeError(f"the test tool writes a {name} message from an object, not {spec!r}")
    by_upper = {f.name.upper(): f for f in d.fields}
    for key, value in spec.items():
        field = by_upper.get(str(key).upper())
        if field is None or value is None:
            continue
        _set_field(msg, field, value)


def _is_map(field: FieldDescriptor) -> bool:
    if not field.is_repeated or field.type != FieldDescriptor.TYPE_MESSAGE:
        return False
    entry = field.message_type
    return bool(entry.GetOptions().map_entry) or (
        entry.name.endswith("Entry") and [f.name for f in entry.fields] == ["key", "value"]
    )


def _set_field(msg: Any, field: FieldDescriptor, value: Any) -> None:
    name = field.name
    if _is_map(field):
        if not isinstance(value, dict):
            raise SerdeError(f"the map field {name} needs an object, not {value!r}")
        target = getattr(msg, name)
        key_f, value_f = field.message_type.fields
        real = bool(field.message_type.GetOptions().map_entry)
        for k, v in value.items():
            if real:
                if value_f.type == FieldDescriptor.TYPE_MESSAGE:
                    sub = target[_spec_scalar(key_f, k)]
                    if v is not None:
                        _fill_message(sub, v, value_f)
                elif v is not None:
                    target[_spec_scalar(key_f, k)] = _spec_scalar(value_f, v)
            else:
                entry = target.add()
                _set_field(entry, key_f, k)
                if v is not None:
                    _set_field(entry, value_f, v)
        return
    if field.is_repeated:
        if not isinstance(value, list):
            raise SerdeError(f"the repeated field {name} needs a list, not {value!r}")
        target = getattr(msg, name)
        for v in value:
            if v is None:
                raise SerdeError(f"a null element in the repeated field {name}")
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                _fill_message(target.add(), v, field)
            else:
                target.append(_spec_scalar(field, v))
        return
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        sub = getattr(msg, name)
        sub.SetInParent()
        _fill_message(sub, value, field)
        return
    setattr(msg, name, _spec_scalar(field, value))


def _serialize(message: Descriptor, spec: Any) -> bytes:
    msg = message_factory.GetMessageClass(message)()
    _fill_message(msg, spec)
    return bytes(msg.SerializeToString())


# -- messages into values -------------------------------------------------------------------


def _read_scalar(field: FieldDescriptor, v: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        symbol = field.enum_type.values_by_number.get(v)
        return symbol.name if symbol is not None else str(v)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _read_message(v)
    if field.type in _FLOATS:
        return JavaNumber("Double", float(v))
    if field.type == FieldDescriptor.TYPE_BOOL or field.type == FieldDescriptor.TYPE_STRING:
        return v
    if field.type == FieldDescriptor.TYPE_BYTES:
        return bytes(v)
    return JavaNumber("Integer" if field.type in _I32 else "Long", int(v))


def _read_message(msg: Any) -> Any:
    d = msg.DESCRIPTOR
    name = d.full_name
    if name in _WRAPPER_KIND:
        return _read_scalar(d.fields_by_name["value"], msg.value)
    if name == "google.protobuf.Timestamp":
        return JavaNumber("Long", msg.seconds * 1000 + msg.nanos // 1_000_000)
    if name == "google.type.Date":
        import datetime as dt

        days = (dt.date(msg.year, msg.month, msg.day) - dt.date(1970, 1, 1)).days
        return JavaNumber("Integer", days)
    if name == "google.type.TimeOfDay":
        ms = ((msg.hours * 60 + msg.minutes) * 60 + msg.seconds) * 1000 + msg.nanos // 10**6
        return JavaNumber("Integer", ms)
    if name == "confluent.type.Decimal":
        unscaled = int.from_bytes(msg.value, "big", signed=True)
        return JavaNumber("BigDecimal", Decimal(unscaled).scaleb(-msg.scale))
    out: dict[str, Any] = {}
    for field in d.fields:
        out[field.name] = _read_field(msg, field)
    return out


def _read_field(msg: Any, field: FieldDescriptor) -> Any:
    value = getattr(msg, field.name)
    if _is_map(field):
        key_f, value_f = field.message_type.fields
        if field.message_type.GetOptions().map_entry:
            return {str(_plain(_read_scalar(key_f, k))): _read_scalar(value_f, v)
                    for k, v in value.items()}  # fmt: skip
        return {str(_plain(_read_field(e, key_f))): _read_field(e, value_f) for e in value}
    if field.is_repeated:
        return [_read_scalar(field, v) for v in value]
    if field.has_presence and not msg.HasField(field.name):
        return None
    return _read_scalar(field, value)


def _plain(v: Any) -> Any:
    return v.value if isinstance(v, JavaNumber) else v


# -- the serde ------------------------------------------------------------------------------


def encode_protobuf(
    value: Any, registry: SchemaRegistry, subject: str, *, full_name: str | None = None
) -> bytes | None:
    """A case's value as the test tool's PROTOBUF serializer writes it (None stays null):
    with the subject's latest schema, its message called `full_name` (the source's
    KEY_/VALUE_SCHEMA_FULL_NAME), else its first."""
    if value is None:
        return None
    held = registry.latest(subject)
    if held is None:
        raise SerdeError(f"no schema registered under {subject}")
    pool = _pool(held.schema.schema, _imports(registry, held.schema))
    message, indexes = _first_message(pool), b"\x00"
    if full_name and not full_name.strip().startswith("ConnectDefault"):
        message = pool.FindMessageTypeByName(full_name.strip())
        indexes = _indexes_bytes(_path_of(message))
    body = _serialize(message, value)
    return b"\x00" + held.id.to_bytes(4, "big") + indexes + body


def _path_of(message: Descriptor) -> list[int]:
    path = []
    while message.containing_type is not None:
        path.append(list(message.containing_type.nested_types).index(message))
        message = message.containing_type
    main = descriptor_pb2.FileDescriptorProto()
    message.file.CopyToProto(main)
    path.append([m.name for m in main.message_type].index(message.name))
    return path[::-1]


def _indexes_bytes(path: list[int]) -> bytes:
    if path == [0]:
        return b"\x00"
    out = bytearray()
    for n in [len(path), *path]:
        z = (n << 1) ^ (n >> 63)
        while z > 0x7F:
            out.append(z & 0x7F | 0x80)
            z >>= 7
        out.append(z)
    return bytes(out)


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while True:
        if pos >= len(data):
            raise SerdeError("truncated protobuf message indexes")
        b = data[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return (n >> 1) ^ -(n & 1), pos


def decode_protobuf(data: bytes, registry: SchemaRegistry) -> Any:
    """PROTOBUF bytes as the test tool's deserializer reads them (see the module's notes)."""
    if len(data) < 6 or data[0] != 0:
        raise SerdeError("Unknown magic byte!")
    schema_id = int.from_bytes(data[1:5], "big")
    try:
        schema = registry.schema_by_id(schema_id)
    except Exception as e:
        raise SerdeError(f"schema {schema_id}: {e}") from e
    count, pos = _varint(data, 5)
    indexes = [0]
    if count:
        indexes = []
        for _ in range(count):
            i, pos = _varint(data, pos)
            indexes.append(i)
    pool = _pool(schema.schema, _imports(registry, schema))
    cls = message_factory.GetMessageClass(_message_at(pool, indexes))
    try:
        return _read_message(cls.FromString(data[pos:]))
    except Exception as e:
        raise SerdeError(f"bad protobuf message: {e}") from e


def encode_protobuf_nosr(
    value: Any, columns: Sequence[tuple[str, SqlType]], nullable: str | None
) -> bytes | None:
    """A case's value as the test tool's PROTOBUF_NOSR serializer writes it."""
    if value is None:
        return None
    return _serialize(nosr_message(columns, nullable), value)


def decode_protobuf_nosr(
    data: bytes, columns: Sequence[tuple[str, SqlType]], nullable: str | None
) -> Any:
    """PROTOBUF_NOSR bytes as the test tool reads them with the columns' schema."""
    cls = message_factory.GetMessageClass(nosr_message(columns, nullable))
    try:
        return _read_message(cls.FromString(data))
    except Exception as e:
        raise SerdeError(f"bad protobuf message: {e}") from e


class ProtobufCodec:
    """A topic's PROTOBUF / PROTOBUF_NOSR serde for the runner: its registry and subjects, and
    (for NOSR, whose schema is the columns') the source's columns and nullable settings."""

    def __init__(
        self,
        registry: SchemaRegistry,
        topic: str,
        *,
        key_columns: Sequence[tuple[str, SqlType]] = (),
        value_columns: Sequence[tuple[str, SqlType]] = (),
        key_nullable: str | None = None,
        value_nullable: str | None = None,
        key_full_name: str | None = None,
        value_full_name: str | None = None,
    ) -> None:
        self.registry = registry
        self.topic = topic
        self.columns = {True: tuple(key_columns), False: tuple(value_columns)}
        self.nullable = {True: _nullable(key_nullable), False: _nullable(value_nullable)}
        self.full_name = {True: key_full_name, False: value_full_name}

    def _subject(self, is_key: bool) -> str:
        return f"{self.topic}-{'key' if is_key else 'value'}"

    def encode(self, value: Any, fmt: str, *, is_key: bool = False) -> bytes | None:
        """A case's key or value as the test tool writes it in `fmt`."""
        if fmt == "PROTOBUF":
            return encode_protobuf(
                value, self.registry, self._subject(is_key), full_name=self.full_name[is_key]
            )
        return encode_protobuf_nosr(value, self.columns[is_key], self.nullable[is_key])

    def decode(self, data: bytes, fmt: str, *, is_key: bool = False) -> Any:
        """A record's key or value bytes as the test tool reads them in `fmt`."""
        if fmt == "PROTOBUF":
            return decode_protobuf(data, self.registry)
        return decode_protobuf_nosr(data, self.columns[is_key], self.nullable[is_key])


def _nullable(value: object) -> str | None:
    """A *_PROTOBUF_NULLABLE_REPRESENTATION as the converters' config takes it."""
    if value is None:
        return None
    return {"OPTIONAL": "optional", "WRAPPER": "wrapper"}.get(str(value).strip().upper())
