"""A Protobuf schema sent as a serialized FileDescriptorProto (base64), as confluent-kafka's
ProtobufSerializer registers one, written back as .proto text: the form Confluent's registry
keeps and answers with, and what the PROTOBUF format compiles."""

from __future__ import annotations

import base64
import binascii
from typing import Any

_SCALARS = {
    1: "double",
    2: "float",
    3: "int64",
    4: "uint64",
    5: "int32",
    6: "fixed64",
    7: "fixed32",
    8: "bool",
    9: "string",
    12: "bytes",
    13: "uint32",
    15: "sfixed32",
    16: "sfixed64",
    17: "sint32",
    18: "sint64",
}
_MESSAGE, _ENUM, _GROUP = 11, 14, 10
_OPTIONAL, _REQUIRED, _REPEATED = 1, 2, 3


def descriptor_text(text: str) -> str | None:
    """The .proto text of `text` when it is a base64 FileDescriptorProto, else None."""
    from google.protobuf import descriptor_pb2
    from google.protobuf.message import DecodeError

    stripped = text.strip()
    if not stripped or any(c in stripped for c in " ;{}\n"):
        return None  # .proto text, not base64
    try:
        raw = base64.b64decode(stripped, validate=True)
        file = descriptor_pb2.FileDescriptorProto.FromString(raw)
    except (binascii.Error, ValueError, DecodeError):
        return None
    if not file.message_type and not file.enum_type:
        return None
    return proto_text(file)


def proto_text(file: Any) -> str:
    """A FileDescriptorProto as .proto source."""
    syntax = file.syntax or "proto2"
    lines = [f'syntax = "{syntax}";']
    if file.package:
        lines.append(f"package {file.package};")
    lines += [f'import "{d}";' for d in file.dependency]
    for enum in file.enum_type:
        lines += _enum(enum, "")
    for message in file.message_type:
        lines += _message(message, "", syntax)
    return "\n".join(lines) + "\n"


def _enum(enum: Any, indent: str) -> list[str]:
    out = [f"{indent}enum {enum.name} {{"]
    out += [f"{indent}  {v.name} = {v.number};" for v in enum.value]
    out.append(f"{indent}}}")
    return out


def _type(field: Any) -> str:
    if field.type in (_MESSAGE, _ENUM, _GROUP):
        return str(field.type_name)  # fully qualified, with its leading dot: valid .proto
    return _SCALARS[field.type]


def _message(message: Any, indent: str, syntax: str) -> list[str]:
    inner = indent + "  "
    out = [f"{indent}message {message.name} {{"]
    maps = {
        n.name: n
        for n in message.nested_type
        if n.options.HasField("map_entry") and n.options.map_entry
    }
    oneofs: dict[int, list[Any]] = {}
    for field in message.field:
        if field.HasField("oneof_index") and not field.proto3_optional:
            oneofs.setdefault(field.oneof_index, []).append(field)
    printed_oneofs: set[int] = set()
    # nested types first: protoc lists them in the order it meets them (a map's entry at its
    # field), so this keeps the descriptor's order
    for enum in message.enum_type:
        out += _enum(enum, inner)
    for nested in message.nested_type:
        if nested.name not in maps:
            out += _message(nested, inner, syntax)
    for field in message.field:
        if field.HasField("oneof_index") and not field.proto3_optional:
            index = field.oneof_index
            if index not in printed_oneofs:
                printed_oneofs.add(index)
                out.append(f"{inner}oneof {message.oneof_decl[index].name} {{")
                out += [f"{inner}  {_field(f, maps, 'oneof')}" for f in oneofs[index]]
                out.append(f"{inner}}}")
            continue
        out.append(f"{inner}{_field(field, maps, syntax)}")
    for r in message.reserved_range:
        out.append(f"{inner}reserved {r.start} to {r.end - 1};")
    if message.reserved_name:
        out.append(f"{inner}reserved " + ", ".join(f'"{n}"' for n in message.reserved_name) + ";")
    out.append(f"{indent}}}")
    return out


def _field(field: Any, maps: dict[str, Any], syntax: str) -> str:
    entry = maps.get(field.type_name.rsplit(".", 1)[-1]) if field.type == _MESSAGE else None
    if entry is not None and field.label == _REPEATED:
        key, value = entry.field[0], entry.field[1]
        return f"map<{_type(key)}, {_type(value)}> {field.name} = {field.number};"
    label = ""
    if field.label == _REPEATED:
        label = "repeated "
    elif syntax == "oneof":
        label = ""
    elif field.label == _REQUIRED:
        label = "required "
    elif syntax == "proto2" or field.proto3_optional:
        label = "optional "
    default = f" [default = {_default(field)}]" if field.HasField("default_value") else ""
    return f"{label}{_type(field)} {field.name} = {field.number}{default};"


def _default(field: Any) -> str:
    if field.type == 9:
        text = str(field.default_value)
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return str(field.default_value)
