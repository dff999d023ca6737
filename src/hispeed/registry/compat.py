"""Schema validity and compatibility, as Confluent's Schema Registry checks them on registration.

Levels (global, or a subject's own): NONE; BACKWARD (the default: the new schema reads what the
latest wrote); FORWARD (the latest reads what the new one writes); FULL (both); and their
_TRANSITIVE forms, checked against every live version instead of the latest only.

Per type:
- AVRO: Avro's schema-resolution rules, with Apache Avro's reader/writer compatibility checker
  (the Java checker's port, which Confluent's registry uses); fastavro validates the text first.
- JSON: the main rules of Confluent's JSON Schema checker (`compat_json`).
- PROTOBUF: the main rules of Confluent's Protobuf checker (`compat_proto`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from hispeed.registry.base import RegistryError, Schema

LEVELS = (
    "NONE",
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
)
DEFAULT_LEVEL = "BACKWARD"
#: Confluent's error codes for a bad request body
INVALID_SCHEMA = 42201
INVALID_LEVEL = 42203

#: a schema -> the schemas it references, transitively, each with its reference's name
#: (dependencies first)
Resolver = Callable[[Schema], list[tuple[str, Schema]]]


def check_level(level: Any) -> str:
    """A compatibility level as given (any case), checked; Confluent's 42203 otherwise."""
    text = str(level).strip().upper() if isinstance(level, str) else ""
    if text not in LEVELS:
        raise RegistryError(
            "Invalid compatibility level. Valid values are none, backward, forward, full, "
            "backward_transitive, forward_transitive, and full_transitive",
            INVALID_LEVEL,
        )
    return text


def canonical(schema: Schema, resolve: Resolver) -> Schema:
    """The schema checked for validity (42201 if invalid) and in the text it is kept as: JSON
        types without insignificant whitespace (so equal schemas get one id), Protobuf as given (a
    serialized descriptor as .proto text)."""
    kind = schema.schema_type
    if kind == "AVRO":
        _avro(schema, resolve)
        text = json.dumps(json.loads(schema.schema), separators=(",", ":"))
    elif kind == "JSON":
        from hispeed.registry.compat_json import parse_json_schema

        text = json.dumps(parse_json_schema(schema.schema), separators=(",", ":"))
    elif kind == "PROTOBUF":
        from hispeed.registry.compat_proto import parse_proto
        from hispeed.registry.proto_text import descriptor_text

        # confluent-kafka's ProtobufSerializer sends a base64 FileDescriptorProto: kept, as
        # Confluent's registry keeps it, as .proto text
        text = descriptor_text(schema.schema) or schema.schema
        parse_proto(Schema(text, kind, schema.references), resolve)
    else:
        raise RegistryError(f"Invalid schema type {kind}", INVALID_SCHEMA)
    return Schema(text, kind, schema.references)


def incompatibilities(
    level: str, new: Schema, olds: Sequence[tuple[int, Schema]], resolve: Resolver
) -> list[str]:
    """What makes `new` incompatible under `level` with `olds` ((version, schema), oldest
    first: every live version of the subject); empty when it is compatible."""
    if level == "NONE" or not olds:
        return []
    against = list(olds) if level.endswith("_TRANSITIVE") else [olds[-1]]
    base = level.removesuffix("_TRANSITIVE")
    found: list[str] = []
    for version, old in reversed(against):  # the latest first, as Confluent reports
        if old.schema_type != new.schema_type:
            found.append(
                f"{{errorType:'TYPE_MISMATCH', description:'The new schema is {new.schema_type}"
                f" and the old one {old.schema_type}'}}, {{oldSchemaVersion: {version}}}"
            )
            continue
        problems: list[str] = []
        if base in ("BACKWARD", "FULL"):
            problems += _pair(reader=new, writer=old, resolve=resolve)
        if base in ("FORWARD", "FULL"):
            problems += [
                p for p in _pair(reader=old, writer=new, resolve=resolve) if p not in problems
            ]
        if problems:
            found += problems
            found.append(f"{{oldSchemaVersion: {version}}}")
            found.append(f"{{oldSchema: '{old.schema}'}}")
    if found:
        found.append(f"{{compatibility: '{level}'}}")
    return found


def incompatible_message(subject: str, problems: list[str]) -> str:
    """Confluent's 409 message for a schema refused on registration."""
    return (
        "Schema being registered is incompatible with an earlier schema for subject "
        f'"{subject}", details: [{", ".join(problems)}]'
    )


def _pair(reader: Schema, writer: Schema, resolve: Resolver) -> list[str]:
    if reader.schema_type == "AVRO":
        return _avro_pair(reader, writer, resolve)
    if reader.schema_type == "JSON":
        from hispeed.registry.compat_json import json_problems

        return json_problems(json.loads(reader.schema), json.loads(writer.schema))
    from hispeed.registry.compat_proto import proto_problems

    return proto_problems(reader, writer, resolve)


def _avro(schema: Schema, resolve: Resolver) -> Any:
    """The schema parsed by Apache Avro (named types of its references known), after
    fastavro's check of it; 42201 with the parser's reason when it is not a valid schema."""
    import avro.errors
    import avro.name
    import avro.schema
    import fastavro
    from fastavro.schema import SchemaParseException

    try:
        doc = json.loads(schema.schema)
    except (ValueError, RecursionError) as e:
        raise RegistryError(f"Invalid schema: not JSON ({e})", INVALID_SCHEMA) from None
    try:
        names = avro.name.Names()
        named: dict[str, Any] = {}
        for _, ref in resolve(schema):
            ref_doc = json.loads(ref.schema)
            fastavro.parse_schema(ref_doc, named_schemas=named)
            avro.schema.make_avsc_object(ref_doc, names)
        fastavro.parse_schema(doc, named_schemas=named)
        return avro.schema.make_avsc_object(doc, names)
    except (
        avro.errors.AvroException,
        SchemaParseException,  # fastavro's: not a ValueError (a record without a name)
        ValueError,
        TypeError,
        KeyError,
        AttributeError,
    ) as e:
        raise RegistryError(f"Invalid schema {schema.schema}: {e}", INVALID_SCHEMA) from None
    except RecursionError:  # nested deeper than the parsers recurse: a user's schema, not a 500
        raise RegistryError("Invalid schema: nested too deeply", INVALID_SCHEMA) from None


def _avro_pair(reader: Schema, writer: Schema, resolve: Resolver) -> list[str]:
    from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType

    checker = ReaderWriterCompatibilityChecker()  # type: ignore[no-untyped-call]
    result = checker.get_compatibility(_avro(reader, resolve), _avro(writer, resolve))
    if result.compatibility is SchemaCompatibilityType.compatible:
        return []
    problems = []
    for kind, message, location in zip(
        result.incompatibilities, result.messages, result.locations, strict=False
    ):
        error_type = str(kind.value).upper()
        description = _avro_description(error_type, message, location)
        problems.append(
            f"{{errorType:'{error_type}', description:'{description}', additionalInfo:'{message}'}}"
        )
    return problems


#: Confluent's wording of Avro's incompatibilities ({detail} and {location} filled in)
_AVRO_WORDS = {
    "READER_FIELD_MISSING_DEFAULT_VALUE": "The field '{detail}' at path '{location}' in the new "
    "schema has no default value and is missing in the old schema",
    "TYPE_MISMATCH": "The type (path '{location}') of a field in the new schema does not match "
    "with the old schema",
    "MISSING_ENUM_SYMBOLS": "The new schema is missing enum symbols '{detail}' at path "
    "'{location}' in the old schema",
    "MISSING_UNION_BRANCH": "The new schema is missing a type inside a union field at path "
    "'{location}' in the old schema",
    "NAME_MISMATCH": "The type name at path '{location}' in the new schema does not match the "
    "old schema",
    "FIXED_SIZE_MISMATCH": "The size of FIXED type field at path '{location}' in the new schema "
    "does not match with the old schema",
}


def _avro_description(error_type: str, detail: str, location: str) -> str:
    words = _AVRO_WORDS.get(error_type, "{detail} at path '{location}'")
    return words.format(detail=detail, location=location)
