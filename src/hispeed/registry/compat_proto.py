"""Protobuf schema validity (compiled by grpcio-tools' protoc) and the main rules of Confluent's
Protobuf compatibility checker.

Comparing the schema that wrote (original) with the one that reads (update), as Confluent
names the differences: PACKAGE_CHANGED, MESSAGE_REMOVED, FIELD_KIND_CHANGED (a scalar, a
message and an enum are different kinds), FIELD_SCALAR_KIND_CHANGED (outside Protobuf's
wire-compatible groups: int32/uint32/int64/uint64/bool, sint32/sint64, fixed32/sfixed32,
fixed64/sfixed64, string/bytes), FIELD_NAMED_TYPE_CHANGED (another message or enum),
REQUIRED_FIELD_ADDED and REQUIRED_FIELD_REMOVED (proto2), ONEOF_FIELD_REMOVED and
MULTIPLE_FIELDS_MOVED_TO_ONEOF are incompatible; fields and messages added, and fields removed,
are compatible (Protobuf skips unknown fields and defaults missing ones).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hispeed.registry.base import RegistryError, Schema

INVALID_SCHEMA = 42201
MAIN = "__registered__.proto"
#: seconds protoc may take to compile one schema (it takes well under one)
PROTOC_TIMEOUT_S = 30.0

#: scalar types Protobuf reads from each other's wire bytes (FieldDescriptorProto.Type names)
_GROUPS = [
    {"TYPE_INT32", "TYPE_UINT32", "TYPE_INT64", "TYPE_UINT64", "TYPE_BOOL"},
    {"TYPE_SINT32", "TYPE_SINT64"},
    {"TYPE_FIXED32", "TYPE_SFIXED32"},
    {"TYPE_FIXED64", "TYPE_SFIXED64"},
    {"TYPE_STRING", "TYPE_BYTES"},
]


def parse_proto(schema: Schema, resolve: Callable[[Schema], list[tuple[str, Schema]]]) -> Any:
    """The schema's FileDescriptorProto, compiled by protoc with its references as the files
    it imports; 42201 with protoc's message when it does not compile."""
    from google.protobuf import descriptor_pb2

    with tempfile.TemporaryDirectory(prefix="hispeed-proto-") as tmp:
        root = Path(tmp)
        for name, ref in resolve(schema):
            path = root / name
            if not path.resolve().is_relative_to(root.resolve()):
                raise RegistryError(f"Invalid reference name {name!r}", INVALID_SCHEMA)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(ref.schema)
        (root / MAIN).write_text(schema.schema)
        out = root / "out.pb"
        import grpc_tools

        includes = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
        try:
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "grpc_tools.protoc",
                    f"-I{root}",
                    f"-I{includes}",
                    f"--descriptor_set_out={out}",
                    MAIN,
                ],
                capture_output=True,
                text=True,
                timeout=PROTOC_TIMEOUT_S,
                cwd=root,
            )
        except subprocess.TimeoutExpired:
            raise RegistryError("Invalid schema: protoc took too long", INVALID_SCHEMA) from None
        if done.returncode != 0:
            reason = done.stderr.strip().replace(str(root) + os.sep, "") or "protoc failed"
            raise RegistryError(f"Invalid schema {schema.schema!r}: {reason}", INVALID_SCHEMA)
        files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    return files.file[-1]


def proto_problems(
    reader: Schema, writer: Schema, resolve: Callable[[Schema], list[tuple[str, Schema]]]
) -> list[str]:
    """Why data written with `writer` cannot be read with `reader` (empty: it can)."""
    original, update = parse_proto(writer, resolve), parse_proto(reader, resolve)
    problems = []
    if original.package != update.package:
        problems.append(_problem("PACKAGE_CHANGED", "#/"))
    updated = dict(_messages(update.message_type, update.package))
    for name, message in _messages(original.message_type, original.package):
        if name not in updated:
            problems.append(_problem("MESSAGE_REMOVED", f"#/{name}"))
        else:
            problems += _message_problems(message, updated[name], name)
    return problems


def _problem(kind: str, path: str) -> str:
    return f"{{errorType:'{kind}', description:'Found {kind.lower()} at path \"{path}\"'}}"


def _messages(messages: Any, prefix: str) -> Iterator[tuple[str, Any]]:
    for message in messages:
        name = f"{prefix}.{message.name}" if prefix else message.name
        yield name, message
        yield from _messages(message.nested_type, name)


def _kind(field: Any) -> str:
    from google.protobuf.descriptor_pb2 import FieldDescriptorProto

    if field.type == FieldDescriptorProto.TYPE_MESSAGE:
        return "message"
    if field.type == FieldDescriptorProto.TYPE_ENUM:
        return "enum"
    return "scalar"


def _message_problems(original: Any, update: Any, name: str) -> list[str]:
    from google.protobuf.descriptor_pb2 import FieldDescriptorProto

    required = FieldDescriptorProto.LABEL_REQUIRED
    problems = []
    old_fields = {f.number: f for f in original.field}
    new_fields = {f.number: f for f in update.field}
    for number, old in old_fields.items():
        path = f"#/{name}/{number}"
        new = new_fields.get(number)
        if new is None:
            if old.label == required:
                problems.append(_problem("REQUIRED_FIELD_REMOVED", path))
            continue
        if _kind(old) != _kind(new):
            problems.append(_problem("FIELD_KIND_CHANGED", path))
        elif _kind(old) == "scalar" and old.type != new.type:
            names = {
                FieldDescriptorProto.Type.Name(old.type),
                FieldDescriptorProto.Type.Name(new.type),
            }
            if not any(names <= group for group in _GROUPS):
                problems.append(_problem("FIELD_SCALAR_KIND_CHANGED", path))
        elif _kind(old) != "scalar" and old.type_name.lstrip(".") != new.type_name.lstrip("."):
            problems.append(_problem("FIELD_NAMED_TYPE_CHANGED", path))
        if new.label == required and old.label != required:
            problems.append(_problem("REQUIRED_FIELD_ADDED", path))
    for number, new in new_fields.items():
        if number not in old_fields and new.label == required:
            problems.append(_problem("REQUIRED_FIELD_ADDED", f"#/{name}/{number}"))
    problems += _oneof_problems(original, update, name)
    return problems


def _oneof_problems(original: Any, update: Any, name: str) -> list[str]:
    def members(message: Any) -> dict[str, set[int]]:
        groups: dict[str, set[int]] = {}
        for f in message.field:
            if f.HasField("oneof_index") and not f.proto3_optional:
                groups.setdefault(message.oneof_decl[f.oneof_index].name, set()).add(f.number)
        return groups

    problems = []
    old, new = members(original), members(update)
    for oneof, numbers in old.items():
        if oneof not in new or not numbers <= new[oneof]:
            problems.append(_problem("ONEOF_FIELD_REMOVED", f"#/{name}/{oneof}"))
    old_numbers = {n for numbers in old.values() for n in numbers}
    existing = {f.number for f in original.field}
    for oneof, numbers in new.items():
        moved = (numbers & existing) - old_numbers
        if len(moved) > 1:
            problems.append(_problem("MULTIPLE_FIELDS_MOVED_TO_ONEOF", f"#/{name}/{oneof}"))
    return problems
