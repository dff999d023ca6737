"""JSON Schema validity and the main rules of Confluent's JSON Schema compatibility checker.

A reader schema can read what a writer schema wrote unless (Confluent's difference names):
TYPE_CHANGED (integer to number is TYPE_EXTENDED, compatible; a reader type list holding the
writer's type is compatible), REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL (a new required
property without a default), REQUIRED_ATTRIBUTE_ADDED (an existing property made required),
PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL (a new property where the writer allowed any),
PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL, ADDITIONAL_PROPERTIES_REMOVED (the reader closes
an open model), ENUM_ARRAY_NARROWED, and the narrowed bounds MAX_LENGTH_ADDED/DECREASED,
MIN_LENGTH_ADDED/INCREASED, MAXIMUM_ADDED/DECREASED, MINIMUM_ADDED/INCREASED,
MAX_ITEMS_ADDED/DECREASED, MIN_ITEMS_ADDED/INCREASED, PATTERN_ADDED/CHANGED. Properties and
array items are compared recursively; `$ref`, combined schemas (allOf/anyOf/oneOf) and
dependencies are compared as wholes (any change is reported as COMBINED_TYPE_CHANGED).
"""

from __future__ import annotations

import json
from typing import Any

from hispeed.registry.base import RegistryError

INVALID_SCHEMA = 42201


def parse_json_schema(text: str) -> Any:
    """The schema document, checked against its JSON Schema draft's meta-schema."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as e:  # nested deeper than the parser recurses
        raise RegistryError(f"Invalid schema: not JSON ({e})", INVALID_SCHEMA) from None
    if not isinstance(doc, dict | bool):
        raise RegistryError(
            f"Invalid schema {text}: a JSON Schema is an object or a boolean", INVALID_SCHEMA
        )
    try:
        import jsonschema
        import jsonschema.exceptions
    except ImportError:  # without the validator the text is kept as JSON, unchecked
        return doc
    try:
        jsonschema.validators.validator_for(doc).check_schema(doc)
    except jsonschema.exceptions.SchemaError as e:
        raise RegistryError(f"Invalid schema {text}: {e.message}", INVALID_SCHEMA) from None
    except RecursionError:  # a user's schema nested too deeply to check, not a 500
        raise RegistryError("Invalid schema: nested too deeply", INVALID_SCHEMA) from None
    return doc


def json_problems(reader: Any, writer: Any, path: str = "#") -> list[str]:
    """Why `reader` cannot read what `writer` wrote (empty: it can)."""
    if reader == writer or reader is True or reader == {}:
        return []
    if not isinstance(reader, dict) or not isinstance(writer, dict):
        return [_problem("TYPE_CHANGED", path)]
    for combined in ("allOf", "anyOf", "oneOf", "not", "$ref", "if", "then", "else"):
        if reader.get(combined) != writer.get(combined):
            return [_problem("COMBINED_TYPE_CHANGED", path)]
    problems = _type_problems(reader, writer, path)
    if problems:
        return problems
    problems += _bounds(reader, writer, path)
    if "enum" in reader and not set(map(_key, writer.get("enum", [{}]))) <= set(
        map(_key, reader["enum"])
    ):  # (a writer without an enum may write any value: "{}" stands for that)
        problems.append(_problem("ENUM_ARRAY_NARROWED", path + "/enum"))
    problems += _object_problems(reader, writer, path)
    if isinstance(reader.get("items"), dict | bool) and isinstance(
        writer.get("items"), dict | bool
    ):
        problems += json_problems(reader["items"], writer["items"], path + "/items")
    return problems


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _problem(kind: str, path: str) -> str:
    return f"{{errorType:'{kind}', description:'Found {kind.lower()} at path \"{path}\"'}}"


def _types(schema: dict[str, Any]) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return {kind} if isinstance(kind, str) else set(kind)


def _type_problems(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    r, w = _types(reader), _types(writer)
    if r is None or w == r:
        return []
    if w is None:
        return [_problem("TYPE_NARROWED", path)]
    widened = {("integer", "number")}
    if all(t in r or ((t, n) in widened and n in r) for t in w for n in ("number",)):
        return []
    return [_problem("TYPE_CHANGED", path)]


def _bounds(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    problems = []
    #: (keyword, the name Confluent gives narrowing it, whether a larger value is narrower)
    for word, name, larger_narrows in (
        ("maxLength", "MAX_LENGTH", False),
        ("minLength", "MIN_LENGTH", True),
        ("maximum", "MAXIMUM", False),
        ("minimum", "MINIMUM", True),
        ("exclusiveMaximum", "EXCLUSIVE_MAXIMUM", False),
        ("exclusiveMinimum", "EXCLUSIVE_MINIMUM", True),
        ("maxItems", "MAX_ITEMS", False),
        ("minItems", "MIN_ITEMS", True),
        ("maxProperties", "MAX_PROPERTIES", False),
        ("minProperties", "MIN_PROPERTIES", True),
    ):
        if word not in reader or isinstance(reader[word], bool):
            continue
        if word not in writer:
            problems.append(_problem(f"{name}_ADDED", path))
        elif isinstance(writer[word], int | float) and (
            reader[word] > writer[word] if larger_narrows else reader[word] < writer[word]
        ):
            changed = "INCREASED" if larger_narrows else "DECREASED"
            problems.append(_problem(f"{name}_{changed}", path))
    if "pattern" in reader and reader.get("pattern") != writer.get("pattern"):
        kind = "PATTERN_ADDED" if "pattern" not in writer else "PATTERN_CHANGED"
        problems.append(_problem(kind, path))
    return problems


def _open(schema: dict[str, Any]) -> bool:
    """Whether the object model allows properties it does not list."""
    extra = schema.get("additionalProperties", True)
    return extra is not False and not schema.get("patternProperties")


def _object_problems(reader: dict[str, Any], writer: dict[str, Any], path: str) -> list[str]:
    r_props: dict[str, Any] = reader.get("properties") or {}
    w_props: dict[str, Any] = writer.get("properties") or {}
    if not r_props and not w_props and "additionalProperties" not in reader:
        return []
    problems = []
    r_required = set(reader.get("required") or ())
    w_required = set(writer.get("required") or ())
    if _open(writer) and not _open(reader):
        problems.append(_problem("ADDITIONAL_PROPERTIES_REMOVED", path))
    for name, sub in r_props.items():
        where = f"{path}/properties/{name}"
        if name in w_props:
            problems += json_problems(sub, w_props[name], where)
            if name in r_required and name not in w_required:
                problems.append(_problem("REQUIRED_ATTRIBUTE_ADDED", where))
        elif name in r_required and not (isinstance(sub, dict) and "default" in sub):
            problems.append(_problem("REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL", where))
        elif _open(writer) and sub is not True and sub != {}:
            # the writer allowed any property: old data may hold this one with another type
            extra = writer.get("additionalProperties", True)
            if extra is True or extra == {} or json_problems(sub, extra, where):
                problems.append(_problem("PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL", where))
    for name in w_props:
        if name not in r_props and not _open(reader):
            where = f"{path}/properties/{name}"
            problems.append(_problem("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL", where))
    return problems
