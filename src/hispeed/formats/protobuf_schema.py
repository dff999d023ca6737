"""Protobuf schemas for the PROTOBUF and PROTOBUF_NOSR formats: compiling, generating, reading.

* `compile_schema` turns `.proto` text (proto3, with the texts of the files it imports) into
  descriptors and message classes of Google's protobuf runtime. The text is compiled by the
  `protoc` that grpcio-tools bundles (a child process, so that its error messages can be read
  and nothing of the compiler stays in this process); the result is cached by text.
* `proto_for_columns` writes the schema ksqlDB registers for a sink, as Confluent's
  `ProtobufData.fromConnectSchema` names and numbers it: one message (`ConnectDefault1` unless a
  full name is given) whose fields are the columns in order, numbered from 1; nested structs and
  map entries are messages inside it named `ConnectDefault2`, `ConnectDefault3Entry`, ...; the
  nullable representation decides between plain scalars, `optional` ones and the
  `google.protobuf.*Value` wrappers; DECIMAL, DATE, TIME and TIMESTAMP are
  `confluent.type.Decimal`, `google.type.Date`, `google.type.TimeOfDay` and
  `google.protobuf.Timestamp`.
* `columns_for_message` is schema inference: a message's fields as ksqlDB's columns
  (`ProtobufData.toConnectSchema`, then ksqlDB's Connect-to-SQL types).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from hispeed.formats.base import Column, FormatError
from hispeed.sql import types as T
from hispeed.sql.types import SqlType

#: the wrapper messages of google/protobuf/wrappers.proto, by the SQL type they hold
WRAPPERS = {
    "BOOLEAN": "google.protobuf.BoolValue",
    "INTEGER": "google.protobuf.Int32Value",
    "BIGINT": "google.protobuf.Int64Value",
    "DOUBLE": "google.protobuf.DoubleValue",
    "STRING": "google.protobuf.StringValue",
    "BYTES": "google.protobuf.BytesValue",
}
#: wrapper message full name -> the SQL type its value reads as (Connect's unwrapped schema)
UNWRAPPED = {
    "google.protobuf.DoubleValue": T.DOUBLE,
    "google.protobuf.FloatValue": T.DOUBLE,
    "google.protobuf.Int64Value": T.BIGINT,
    "google.protobuf.UInt64Value": T.BIGINT,
    "google.protobuf.Int32Value": T.INTEGER,
    "google.protobuf.UInt32Value": T.BIGINT,
    "google.protobuf.BoolValue": T.BOOLEAN,
    "google.protobuf.StringValue": T.STRING,
    "google.protobuf.BytesValue": T.BYTES,
}
DECIMAL_TYPE = "confluent.type.Decimal"
DATE_TYPE = "google.type.Date"
TIME_TYPE = "google.type.TimeOfDay"
TIMESTAMP_TYPE = "google.protobuf.Timestamp"
_SCALARS = {"BOOLEAN": "bool", "INTEGER": "int32", "BIGINT": "int64", "DOUBLE": "double",
            "STRING": "string", "BYTES": "bytes"}  # fmt: skip
_LOGICAL = {"DATE": DATE_TYPE, "TIME": TIME_TYPE, "TIMESTAMP": TIMESTAMP_TYPE}
_IMPORTS = {
    DECIMAL_TYPE: "confluent/type/decimal.proto",
    DATE_TYPE: "google/type/date.proto",
    TIME_TYPE: "google/type/timeofday.proto",
    TIMESTAMP_TYPE: "google/protobuf/timestamp.proto",
    **{w: "google/protobuf/wrappers.proto" for w in UNWRAPPED},
}

# The files Confluent's registry resolves without a reference (its "dependencies" of the
# types it maps logical types to), which protoc's bundled include directory lacks. Written
# here from their published field names and numbers, which is all the wire format needs.
_EXTRA_FILES = {
    "google/type/date.proto": (
        'syntax = "proto3";\npackage google.type;\n'
        "message Date { int32 year = 1; int32 month = 2; int32 day = 3; }\n"
    ),
    "google/type/timeofday.proto": (
        'syntax = "proto3";\npackage google.type;\n'
        "message TimeOfDay { int32 hours = 1; int32 minutes = 2; int32 seconds = 3; "
        "int32 nanos = 4; }\n"
    ),
    "confluent/type/decimal.proto": (
        'syntax = "proto3";\npackage confluent.type;\n'
        "message Decimal { bytes value = 1; uint32 precision = 2; int32 scale = 3; }\n"
    ),
    "confluent/meta.proto": (
        'syntax = "proto3";\npackage confluent;\nimport "google/protobuf/descriptor.proto";\n'
        "message Meta { string doc = 1; map<string, string> params = 2; "
        "repeated string tags = 3; }\n"
        "extend google.protobuf.FileOptions { Meta file_meta = 1088; }\n"
        "extend google.protobuf.MessageOptions { Meta message_meta = 1088; }\n"
        "extend google.protobuf.FieldOptions { Meta field_meta = 1088; }\n"
        "extend google.protobuf.EnumOptions { Meta enum_meta = 1088; }\n"
        "extend google.protobuf.EnumValueOptions { Meta enum_value_meta = 1088; }\n"
    ),
}
_MAIN_FILE = "hispeed_schema.proto"
_CACHE_SIZE = 256
_PROTOC_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class CompiledSchema:
    """A compiled `.proto` file: its pool, and its top-level messages in the file's order."""

    pool: descriptor_pool.DescriptorPool
    package: str
    #: the file's top-level messages, in order (message index 0, 1, ...)
    messages: tuple[Descriptor, ...]

    def message(self, full_name: str | None = None) -> Descriptor:
        """The message called `full_name` (with its package; a top-level or nested one), or
        the file's first message (Confluent's `ProtobufSchema.name()`) when None."""
        if not self.messages:
            raise FormatError("the protobuf schema defines no message")
        if full_name is None:
            return self.messages[0]
        try:
            return self.pool.FindMessageTypeByName(full_name.strip())
        except KeyError:
            names = ", ".join(m.full_name for m in self.messages)
            raise FormatError(
                f"Schema for message values on topic does not contain the message "
                f"'{full_name}': the schema defines {names}"
            ) from None

    def indexes(self, message: Descriptor) -> list[int]:
        """The message's path of indexes in this file (Confluent's `MessageIndexes`)."""
        path: list[int] = []
        d: Descriptor | None = message
        while d is not None:
            siblings = d.containing_type.nested_types if d.containing_type else self.messages
            path.append(list(siblings).index(d))
            d = d.containing_type
        return path[::-1]

    def at(self, indexes: Sequence[int]) -> Descriptor:
        """The message at a path of indexes; `FormatError` when the file has none there."""
        level: Sequence[Descriptor] = self.messages
        found: Descriptor | None = None
        for i in indexes:
            if not 0 <= i < len(level):
                raise FormatError(f"no message at index path {list(indexes)}")
            found = level[i]
            level = found.nested_types
        if found is None:
            raise FormatError("an empty message index path")
        return found


_cache: OrderedDict[tuple[str, tuple[tuple[str, str], ...]], CompiledSchema] = OrderedDict()
_cache_lock = threading.Lock()


def compile_schema(text: str, imports: Mapping[str, str] | None = None) -> CompiledSchema:
    """Compile proto3 `text`; `imports` maps each file name it imports to that file's text.

    Google's well-known types and the logical types Confluent maps to need no entry. Raises
    `FormatError` with protoc's message for text that does not compile."""
    key = (text, tuple(sorted((imports or {}).items())))
    with _cache_lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    compiled = _compile(text, dict(imports or {}))
    with _cache_lock:
        _cache[key] = compiled
        while len(_cache) > _CACHE_SIZE:
            _cache.popitem(last=False)
    return compiled


def _protoc_include() -> str:
    # grpcio-tools keeps the well-known types' .proto files beside its protoc
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or spec.origin is None:
        raise FormatError("compiling protobuf schemas needs grpcio-tools, which is not installed")
    return str(Path(spec.origin).parent / "_proto")


def _with_implicit_imports(text: str) -> str:
    # Confluent's registry knows confluent/meta.proto without an import (schemas written by
    # hand, ksqlDB's among them, use `(confluent.field_meta)` bare); protoc needs the import.
    # It goes after the syntax statement, keeping line numbers in messages one off at most.
    if "confluent.field_meta" not in text or "confluent/meta.proto" in text:
        return text
    match = re.search(r"syntax\s*=\s*[\"'][^\"']*[\"']\s*;", text)
    at = match.end() if match else 0
    return text[:at] + ' import "confluent/meta.proto";' + text[at:]


def _compile(text: str, imports: dict[str, str]) -> CompiledSchema:
    text = _with_implicit_imports(text)
    with tempfile.TemporaryDirectory(prefix="hispeed-proto-") as tmp:
        root = Path(tmp)
        files = {**_EXTRA_FILES, **imports, _MAIN_FILE: text}
        for name, body in files.items():
            path = root / name
            if not path.resolve().is_relative_to(root.resolve()):
                raise FormatError(f"a protobuf reference name outside the schema: {name!r}")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(body)
        out = root / "out.pb"
        cmd = [sys.executable, "-m", "grpc_tools.protoc", f"-I{root}", f"-I{_protoc_include()}",
               f"--descriptor_set_out={out}", "--include_imports", _MAIN_FILE]  # fmt: skip
        try:
            done = subprocess.run(
                cmd, cwd=root, capture_output=True, text=True, timeout=_PROTOC_TIMEOUT_S,
                env={**os.environ, "PYTHONWARNINGS": "ignore"},
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise FormatError("compiling the protobuf schema timed out") from None
        if done.returncode != 0 or not out.exists():
            message = (done.stderr or done.stdout).strip().replace(str(root) + os.sep, "")
            raise FormatError(f"Invalid protobuf schema: {message}")
        fds = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for fdp in fds.file:
        pool.Add(fdp)
    main = pool.FindFileByName(_MAIN_FILE)
    main_proto = next(f for f in fds.file if f.name == _MAIN_FILE)
    messages = tuple(main.message_types_by_name[m.name] for m in main_proto.message_type)
    return CompiledSchema(pool, main.package, messages)


def message_class(descriptor: Descriptor) -> Any:
    """The runtime's message class for a descriptor (upb-backed where available)."""
    return message_factory.GetMessageClass(descriptor)


def message_names(compiled: CompiledSchema) -> list[str]:
    """The full names of a file's top-level messages (ksqlDB's `schemaFullNames`)."""
    return [m.full_name for m in compiled.messages]


# -- inference: a message as columns -----------------------------------------------------


def is_map_entry(field: FieldDescriptor) -> bool:
    """True for a map field (a repeated entry message with `key` and `value`)."""
    if field.type != FieldDescriptor.TYPE_MESSAGE or not _repeated(field):
        return False
    entry = field.message_type
    return bool(entry.GetOptions().map_entry) or (
        entry.name.endswith("Entry")
        and [f.name for f in entry.fields] == ["key", "value"]
        and not any(_repeated(f) for f in entry.fields)
    )


def _repeated(field: FieldDescriptor) -> bool:
    return bool(field.is_repeated)


_INT32 = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32)
_INT64 = (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_INT64,
          FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED64,
          FieldDescriptor.TYPE_SFIXED64)  # fmt: skip


def field_sql_type(field: FieldDescriptor, *, _seen: tuple[str, ...] = ()) -> SqlType:
    """The SQL type a field reads as (repeated fields as ARRAY, maps as MAP)."""
    if is_map_entry(field):
        key, value = field.message_type.fields
        return T.map_(_scalar_type(key, _seen), _scalar_type(value, _seen))
    t = _scalar_type(field, _seen)
    return T.array(t) if _repeated(field) else t


def _scalar_type(field: FieldDescriptor, seen: tuple[str, ...]) -> SqlType:
    ft = field.type
    if ft in _INT32:
        return T.INTEGER
    if ft in _INT64:
        return T.BIGINT
    if ft in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return T.DOUBLE
    if ft == FieldDescriptor.TYPE_BOOL:
        return T.BOOLEAN
    if ft in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_ENUM):
        return T.STRING
    if ft == FieldDescriptor.TYPE_BYTES:
        return T.BYTES
    if ft == FieldDescriptor.TYPE_MESSAGE:
        return message_sql_type(field.message_type, seen)
    raise FormatError(f"protobuf field {field.full_name} has a type ksqlDB does not read")


def message_sql_type(message: Descriptor, seen: tuple[str, ...] = ()) -> SqlType:
    """A message as the SQL type its value reads as: wrappers and logical types as scalars,
    any other message as a STRUCT of its fields."""
    name = message.full_name
    if name in UNWRAPPED:
        return UNWRAPPED[name]
    if name == TIMESTAMP_TYPE:
        return T.TIMESTAMP
    if name == DATE_TYPE:
        return T.DATE
    if name == TIME_TYPE:
        return T.TIME
    if name == DECIMAL_TYPE:
        raise FormatError("a confluent.type.Decimal field needs its precision and scale")
    if name in seen:
        raise FormatError(f"the protobuf message {name} is recursive, which SQL cannot type")
    return T.struct([(f.name, _field_type(f, (*seen, name))) for f in message.fields])


def _field_type(field: FieldDescriptor, seen: tuple[str, ...]) -> SqlType:
    if field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.full_name == DECIMAL_TYPE:
        precision, scale = decimal_params(field)
        t = T.decimal(precision, scale)
        return T.array(t) if _repeated(field) else t
    return field_sql_type(field, _seen=seen)


def decimal_params(field: FieldDescriptor) -> tuple[int, int]:
    """A decimal field's precision and scale, from its `confluent.field_meta` params
    (Confluent's defaults when absent: ksqlDB's widest precision, scale 0)."""
    params = _field_meta_params(field)
    try:
        precision = int(params.get("precision", "64"))
        scale = int(params.get("scale", "0"))
    except ValueError:
        raise FormatError(f"bad decimal parameters on {field.full_name}: {params}") from None
    return precision, scale


_FIELD_META = 1088  # confluent/meta.proto's extension number on FieldOptions


def _field_meta_params(field: FieldDescriptor) -> dict[str, str]:
    # The option is an extension the runtime's own FieldOptions does not know, so it stays in
    # the options' bytes: find it there and read it with the schema's own Meta message.
    raw = field.GetOptions().SerializeToString()
    pos = 0
    while pos < len(raw):
        tag, pos = _raw_varint(raw, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            _, pos = _raw_varint(raw, pos)
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            size, pos = _raw_varint(raw, pos)
            if number == _FIELD_META:
                try:
                    meta = field.file.pool.FindMessageTypeByName("confluent.Meta")
                except KeyError:
                    return {}
                parsed = message_class(meta).FromString(raw[pos : pos + size])
                return {str(k): str(v) for k, v in parsed.params.items()}
            pos += size
        else:
            return {}
    return {}


def _raw_varint(raw: bytes, pos: int) -> tuple[int, int]:
    n = shift = 0
    while pos < len(raw):
        b = raw[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, pos
    return n, pos


def columns_for_message(message: Descriptor) -> list[Column]:
    """Schema inference: the columns a message's fields read as, in field order."""
    return [Column(f.name, _field_type(f, (message.full_name,))) for f in message.fields]


# -- generation: columns as a schema ------------------------------------------------------


@dataclass
class _Writer:
    nullable: str | None  # None, "optional" or "wrapper"
    counter: int = 0
    imports: set[str] | None = None

    def next_name(self) -> str:
        self.counter += 1
        return f"ConnectDefault{self.counter}"

    def need(self, type_name: str) -> None:
        assert self.imports is not None
        self.imports.add(_IMPORTS[type_name])


def proto_for_columns(
    columns: Sequence[Column], *, full_name: str | None = None, nullable: str | None = None
) -> str:
    """The proto3 schema ksqlDB registers for `columns` (see the module's notes).

    `nullable`: the PROTOBUF_NULLABLE_REPRESENTATION as ksqlDB passes it (None, "optional"
    or "wrapper"). `full_name`: KEY_/VALUE_SCHEMA_FULL_NAME (a dotted name's prefix becomes
    the package); ksqlDB ignores names starting with ConnectDefault."""
    w = _Writer(nullable, imports=set())
    package: str | None = None
    name: str | None = None
    if full_name and full_name.strip() and not full_name.strip().startswith("ConnectDefault"):
        parts = full_name.strip().split(".")
        package = ".".join(parts[:-1]) or None
        name = parts[-1]
    name = name or w.next_name()
    body = _message(w, name, [(c.name, c.type) for c in columns], indent="")
    head = 'syntax = "proto3";\n'
    if package:
        head += f"package {package};\n"
    assert w.imports is not None
    if w.imports:
        head += "\n" + "".join(f'import "{i}";\n' for i in sorted(w.imports))
    return head + "\n" + body


def _message(w: _Writer, name: str, fields: list[tuple[str, SqlType]], indent: str) -> str:
    lines: list[str] = []
    nested: list[str] = []
    inner = indent + "  "
    for tag, (field_name, t) in enumerate(fields, start=1):
        label = ""
        if t.name == "ARRAY":
            assert t.element is not None
            label, t = "repeated ", t.element
            if t.name in ("ARRAY", "MAP"):
                raise FormatError("PROTOBUF cannot hold an ARRAY directly inside an ARRAY")
        type_name, options = _field_type_name(w, t, field_name, nested, inner)
        if not label and w.nullable == "optional" and t.name not in ("MAP",):
            label = "optional "
        if t.name == "MAP":
            label = "repeated "
        lines.append(f"{inner}{label}{type_name} {field_name} = {tag}{options};\n")
    text = f"{indent}message {name} {{\n" + "".join(lines)
    if nested:
        text += "\n" + "\n".join(nested)
    return text + f"{indent}}}\n"


def _field_type_name(
    w: _Writer, t: SqlType, field_name: str, nested: list[str], indent: str
) -> tuple[str, str]:
    if t.name in _SCALARS:
        if w.nullable == "wrapper":
            w.need(WRAPPERS[t.name])
            return WRAPPERS[t.name], ""
        return _SCALARS[t.name], ""
    if t.name in _LOGICAL:
        w.need(_LOGICAL[t.name])
        return _LOGICAL[t.name], ""
    if t.name == "DECIMAL":
        w.need(DECIMAL_TYPE)
        assert w.imports is not None
        w.imports.add("confluent/meta.proto")
        options = (
            ' [(confluent.field_meta) = { params: [{ key: "precision", value: '
            f'"{t.precision}" }}, {{ key: "scale", value: "{t.scale}" }}] }}]'
        )
        return DECIMAL_TYPE, options
    if t.name == "STRUCT":
        name = w.next_name()
        if name == field_name:
            name += "Message"
        nested.append(_message(w, name, list(t.fields), indent))
        return name, ""
    if t.name == "MAP":
        assert t.key is not None and t.element is not None
        if t.key.name != "STRING":
            raise FormatError(
                "PROTOBUF format only supports MAP types with STRING keys. "
                "See https://github.com/confluentinc/ksql/issues/6177."
            )
        name = w.next_name() + "Entry"
        # map entries keep plain scalars: Connect's map key and value schemas are optional,
        # but an entry's fields are written as the nullable representation says
        nested.append(_message(w, name, [("key", t.key), ("value", t.element)], indent))
        return name, ""
    raise FormatError(f"PROTOBUF cannot hold a column of type {t}")


def unsupported_reason(columns: Sequence[Column]) -> str | None:
    """Why PROTOBUF cannot carry `columns` (ksqlDB's SchemaValidator wording), or None."""

    def walk(t: SqlType) -> str | None:
        if t.name == "MAP" and t.key is not None and t.key.name != "STRING":
            return (
                "PROTOBUF format only supports MAP types with STRING keys. "
                "See https://github.com/confluentinc/ksql/issues/6177."
            )
        for inner in (t.element, t.key, *(ft for _, ft in t.fields)):
            if inner is not None:
                reason = walk(inner)
                if reason:
                    return reason
        return None

    for c in columns:
        reason = walk(c.type)
        if reason:
            return reason
    return None
